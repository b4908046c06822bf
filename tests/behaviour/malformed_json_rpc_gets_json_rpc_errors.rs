//! Over Streamable HTTP, a malformed message gets the JSON-RPC error a client can act on
//! (`-32700` parse error, `-32600` invalid request, `-32602` invalid params) with HTTP
//! 400, and is never forwarded; a request id reused while the first request with it is
//! still running is refused, the first call runs once and still gets its answer.

use crate::common;

use serde_json::{Value, json};

struct Session {
    http: reqwest::Client,
    url: String,
    id: String,
}

impl Session {
    async fn open(url: &str) -> Self {
        let http = reqwest::Client::new();
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let response = Self::raw(&http, url, None, init.to_string()).await;
        let id = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_string();
        let session = Self {
            http,
            url: url.to_string(),
            id,
        };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        session.post(initialized.to_string()).await;
        session
    }

    async fn raw(
        http: &reqwest::Client,
        url: &str,
        session: Option<&str>,
        body: String,
    ) -> reqwest::Response {
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(s) = session {
            request = request.header("mcp-session-id", s);
        }
        request.body(body).send().await.unwrap()
    }

    /// POST `body`; the status and the body (an event stream's last `data:` as JSON).
    async fn post(&self, body: String) -> (u16, Value) {
        let response = Self::raw(&self.http, &self.url, Some(&self.id), body).await;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or(&text);
        (status, serde_json::from_str(json).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn malformed_messages_get_json_rpc_errors_and_are_never_forwarded() {
    let (dir, url, state) = common::http_gateway(&common::Setup::default()).await;
    let session = Session::open(&url).await;
    let call = |params: &str| {
        format!("{{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{params}}}")
    };
    for (body, code) in [
        (
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/li".to_string(),
            -32700,
        ),
        (
            "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"tools/list\"}".into(),
            -32600,
        ),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"tools/list\"}".into(),
            -32600,
        ),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"tools/list\"}".into(),
            -32600,
        ),
        ("{\"jsonrpc\":\"2.0\",\"id\":1}".into(), -32600),
        (
            "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}]".into(),
            -32600,
        ),
        (
            call(
                "{\"name\":\"demo_echo\",\"name\":\"demo_write_note\",\"arguments\":{\"text\":\"x\"}}",
            ),
            -32602,
        ),
        (
            call("{\"name\":\"demo_echo\",\"arguments\":\"text=x\"}"),
            -32602,
        ),
    ] {
        let (status, answer) = session.post(body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["jsonrpc"], "2.0", "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
    let (_, answer) = session
        .post(call("{\"name\":\"demo_echo\",\"arguments\":\"x\"}"))
        .await;
    assert_eq!(
        answer["id"], 4,
        "the request's own id is answered when it can be read"
    );
    // Each refusal is audited at the transport stage, with what the client was told.
    state.audit.flush().await.unwrap();
    let refused: Vec<Value> = common::audit_records(&dir.path().join("audit.jsonl"))
        .into_iter()
        .filter(|r| r["kind"] == "decision" && r["stage"] == "transport")
        .collect();
    assert_eq!(refused.len(), 9, "{refused:?}");
    assert!(refused.iter().all(|r| r["decision"] == "deny"
        && r["http"]["status"] == 400
        && r["http"]["method"] == "POST"));
    assert!(
        refused[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("parse error"),
        "{}",
        refused[0]
    );
    assert!(
        common::audit_records(&dir.path().join("audit.jsonl"))
            .iter()
            .all(|r| r["kind"] != "attempt"),
        "nothing was forwarded"
    );
    drop(state);
    assert!(
        !dir.path().join("calls.jsonl").exists()
            || std::fs::read_to_string(dir.path().join("calls.jsonl"))
                .unwrap()
                .is_empty()
    );
}

#[tokio::test]
async fn a_request_id_still_in_flight_is_refused_and_the_first_call_runs_once() {
    let (dir, url, state) = common::http_gateway(&common::Setup::default()).await;
    let session = std::sync::Arc::new(Session::open(&url).await);
    let slow = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "demo_slow_count", "arguments": {"steps": 3, "delay_ms": 300}}});
    let first = {
        let session = session.clone();
        let body = slow.to_string();
        tokio::spawn(async move { session.post(body).await })
    };
    // Wait until the first call has reached the upstream.
    let calls = dir.path().join("calls.jsonl");
    for _ in 0..100 {
        if std::fs::read_to_string(&calls).is_ok_and(|c| !c.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let again = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "demo_echo", "arguments": {"text": "second"}}});
    let (status, answer) = session.post(again.to_string()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        (answer["id"].clone(), answer["error"]["code"].clone()),
        (json!(5), json!(-32600))
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("still in use"),
        "{answer}"
    );
    state.audit.flush().await.unwrap();
    let audited = common::audit_records(&dir.path().join("audit.jsonl"));
    assert!(
        audited.iter().any(|r| r["stage"] == "transport"
            && r["error"]
                .as_str()
                .is_some_and(|e| e.contains("still in use"))),
        "the refusal is audited"
    );
    let (status, answer) = first.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(answer["id"], 5);
    assert!(
        answer["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("3"),
        "{answer}"
    );
    let upstream = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        upstream.lines().count(),
        1,
        "the upstream ran one call: {upstream}"
    );
    // Answered, the id may be used again.
    let (status, answer) = session.post(again.to_string()).await;
    assert_eq!(
        (status, answer["result"]["content"][0]["text"].clone()),
        (200, json!("second"))
    );
}
