//! The gateway over Streamable HTTP: several clients at once, an upstream that is itself
//! a Streamable HTTP server, and DNS-rebinding protection on the listener.

use crate::common;

use common::{Setup, TestClient, demo_over_http, point_demo_at, read_lines, text, write_setup};
use mcp_warden::config::Config;
use mcp_warden::gateway::State;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn gateway_over_http(
    setup: &Setup,
    upstream_url: Option<&str>,
) -> (tempfile::TempDir, String, tokio::sync::oneshot::Sender<()>) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_setup(dir.path(), setup);
    if let Some(url) = upstream_url {
        point_demo_at(&path, url);
    }
    let state = State::start(Config::load(&path).unwrap()).await.unwrap();
    let listener = mcp_warden::listener::HttpListener::bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mcp_warden::transport::serve_http(
        state,
        listener,
        async move {
            let _ = stopped.await;
        },
    ));
    (dir, url, stop)
}

#[tokio::test]
async fn several_http_clients_call_through_the_gateway_at_once() {
    let (dir, url, _stop) = gateway_over_http(&Setup::default(), None).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let transport = StreamableHttpClientTransport::from_uri(url.as_str());
        clients.push(TestClient::default().serve(transport).await.unwrap());
    }
    let calls = clients.iter().enumerate().map(|(i, c)| {
        let args = json!({"text": format!("hello {i}")})
            .as_object()
            .unwrap()
            .clone();
        c.peer()
            .call_tool(CallToolRequestParams::new("demo_echo").with_arguments(args))
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(text(&r.unwrap()), format!("hello {i}"));
    }
    let audit = common::audit_records(&dir.path().join("audit.jsonl"));
    assert_eq!(audit.iter().filter(|r| r["kind"] == "attempt").count(), 3);
    let sessions: std::collections::HashSet<String> = audit
        .iter()
        .map(|r| r["session"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        sessions.len(),
        3,
        "each HTTP session is told apart in the audit: {sessions:?}"
    );
}

#[tokio::test]
async fn an_http_upstream_is_fronted_like_a_child_process() {
    let upstream_dir = tempfile::tempdir().unwrap();
    let calls = upstream_dir.path().join("calls.jsonl");
    let (_child, upstream_url) = demo_over_http(&calls);
    let (_dir, url, _stop) = gateway_over_http(&Setup::default(), Some(&upstream_url)).await;
    // The client presents its own credential to the gateway; it must never reach upstream.
    let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
        .auth_header("client-secret-token");
    let client = TestClient::default()
        .serve(StreamableHttpClientTransport::from_config(config))
        .await
        .unwrap();
    let args = json!({"title": "plan", "intent": "check"})
        .as_object()
        .unwrap()
        .clone();
    let result = client
        .peer()
        .call_tool(CallToolRequestParams::new("demo_read_note").with_arguments(args))
        .await
        .unwrap();
    assert!(text(&result).contains("Refund order 1001"), "{result:?}");
    let refused = client
        .peer()
        .call_tool(
            CallToolRequestParams::new("demo_write_note").with_arguments(
                json!({"title": "x", "body": "y"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    let received = read_lines(&calls);
    assert_eq!(
        received.len(),
        1,
        "only the permitted call reached the HTTP upstream"
    );
    let headers = &received[0]["headers"];
    assert_eq!(
        headers["x-gateway-key"],
        json!(std::env::var("PATH").unwrap()),
        "gateway-held header, expanded: {headers}"
    );
    assert!(
        !headers.to_string().contains("client-secret-token"),
        "the client's credential leaked upstream: {headers}"
    );
    assert!(headers.get("authorization").is_none(), "{headers}");
}

async fn raw_post(url: &str, host: &str, origin: Option<&str>) -> String {
    let addr = url.trim_start_matches("http://").trim_end_matches("/mcp");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused() {
    let (_dir, url, _stop) = gateway_over_http(&Setup::default(), None).await;
    let port = url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/mcp")
        .to_string();
    let good = raw_post(&url, &format!("127.0.0.1:{port}"), None).await;
    assert!(good.starts_with("HTTP/1.1 200"), "{good}");
    let rebinding = raw_post(&url, "attacker.example", None).await;
    assert!(rebinding.starts_with("HTTP/1.1 403"), "{rebinding}");
    let foreign_origin = raw_post(
        &url,
        &format!("localhost:{port}"),
        Some("https://attacker.example"),
    )
    .await;
    assert!(
        foreign_origin.starts_with("HTTP/1.1 403"),
        "{foreign_origin}"
    );
}
