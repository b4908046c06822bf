//! MCP clients keep their HTTP connection open between calls (every SDK client pools
//! them). One connection, one session, 200 `tools/call`s one after another: every call
//! is answered on that same connection, reaches the upstream once and is audited. (The
//! listener's part, Nagle off on each accepted connection, is checked in
//! `src/listener.rs`: with it on, each of these calls waited for a delayed ACK.) A quick
//! answer comes as one whole response with its length; one that takes longer streams,
//! its progress first, nothing lost; a stream lost in the middle of a call is taken up
//! again from its last event; a request in an unknown session gets 404.

use crate::common;

use std::collections::HashMap;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use common::{Setup, read_lines};

const CALLS: usize = 200;

/// One HTTP/1.1 connection, used for every request.
struct Connection {
    stream: BufReader<TcpStream>,
    host: String,
    session: Option<String>,
}

struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Connection {
    async fn open(url: &str) -> Self {
        let host = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let stream = TcpStream::connect(&host).await.unwrap();
        Self {
            stream: BufReader::new(stream),
            host,
            session: None,
        }
    }

    async fn post(&mut self, message: &Value) -> Response {
        let body = message.to_string();
        let mut head = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        if let Some(s) = &self.session {
            head.push_str(&format!("Mcp-Session-Id: {s}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(&body);
        self.stream
            .get_mut()
            .write_all(head.as_bytes())
            .await
            .unwrap();
        self.read_response().await
    }

    async fn line(&mut self) -> String {
        let mut line = String::new();
        let n = self.stream.read_line(&mut line).await.unwrap();
        assert!(n > 0, "the gateway closed the kept-alive connection");
        line.trim_end_matches("\r\n").to_string()
    }

    async fn read_response(&mut self) -> Response {
        let status_line = self.line().await;
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = HashMap::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap();
            headers.insert(k.to_ascii_lowercase(), v.trim().to_string());
        }
        let mut body = Vec::new();
        if let Some(len) = headers.get("content-length") {
            body.resize(len.parse().unwrap(), 0);
            self.stream.read_exact(&mut body).await.unwrap();
        } else if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
            loop {
                let size = usize::from_str_radix(self.line().await.trim(), 16).unwrap();
                if size == 0 {
                    assert_eq!(self.line().await, "", "no trailers expected");
                    break;
                }
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).await.unwrap();
                body.extend_from_slice(&chunk[..size]);
            }
        }
        Response {
            status,
            headers,
            body: String::from_utf8(body).unwrap(),
        }
    }
}

/// The JSON-RPC message with this id in a response (JSON, or an SSE stream).
fn message(response: &Response, id: u64) -> Value {
    response
        .body
        .lines()
        .map(|l| l.strip_prefix("data:").unwrap_or(l).trim())
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|m| m["id"] == json!(id))
        .unwrap_or_else(|| panic!("no answer to {id} in {:?}", response.body))
}

/// A connection with an initialized session.
async fn session(url: &str) -> Connection {
    let mut conn = Connection::open(url).await;
    let init = conn
        .post(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "keep-alive", "version": "1"}}}),
        )
        .await;
    assert_eq!(init.status, 200, "{}", init.body);
    assert!(message(&init, 0)["result"]["serverInfo"].is_object());
    conn.session = init.headers.get("mcp-session-id").cloned();
    assert!(conn.session.is_some(), "{:?}", init.headers);
    let initialized = conn
        .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    assert_eq!(initialized.status, 202);
    conn
}

/// The `data:` messages of an event stream, in order.
fn events(response: &Response) -> Vec<Value> {
    response
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .collect()
}

/// Between two quick calls, a slow one streams: its progress first and in order, then its
/// result. (Whether a quick answer goes out whole depends on it coming within the 10 ms
/// hold, which a loaded machine may miss; the unit tests of `transport::coalesce` hold
/// that rule in paused time.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_streams_in_order_between_quick_ones() {
    let (_dir, url, _state) = common::http_gateway(&Setup::default()).await;
    let mut conn = session(&url).await;

    let quick = conn
        .post(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "demo_echo", "arguments": {"text": "quick"}}}),
        )
        .await;
    assert_eq!(quick.status, 200, "{}", quick.body);
    assert!(
        quick.headers["content-type"].starts_with("text/event-stream"),
        "{:?}",
        quick.headers
    );
    assert_eq!(
        message(&quick, 1)["result"]["content"][0]["text"],
        json!("quick")
    );

    // 3 steps 100 ms apart: far longer than a response is held back, so it streams,
    // every progress notification first and in order, then the result.
    let slow = conn
        .post(
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "_meta": {"progressToken": "p"},
            "name": "demo_slow_count", "arguments": {"steps": 3, "delay_ms": 100}}}),
        )
        .await;
    assert_eq!(slow.status, 200, "{}", slow.body);
    assert_eq!(
        slow.headers.get("transfer-encoding").map(String::as_str),
        Some("chunked"),
        "{:?}",
        slow.headers
    );
    let got = events(&slow);
    let progress: Vec<Option<f64>> = got
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].as_f64())
        .collect();
    assert_eq!(progress, [Some(1.0), Some(2.0), Some(3.0)], "{got:?}");
    assert!(got.iter().all(|m| m["method"] != "notifications/progress" || m["params"]["progressToken"] == "p"));
    assert_eq!(
        got.last().unwrap()["id"],
        json!(2),
        "the result comes last: {got:?}"
    );
    assert_ne!(message(&slow, 2)["result"]["isError"], json!(true));

    // And the connection is still good for the next quick call.
    let after = conn
        .post(
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "demo_echo", "arguments": {"text": "after"}}}),
        )
        .await;
    assert_eq!(
        message(&after, 3)["result"]["content"][0]["text"],
        json!("after")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_calls_on_one_connection_are_all_answered_and_audited() {
    let (dir, url, state) = common::http_gateway(&Setup::default()).await;
    let mut conn = session(&url).await;

    for id in 1..=CALLS as u64 {
        let response = conn
            .post(
                &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
                "name": "demo_echo", "arguments": {"text": format!("call {id}")}}}),
            )
            .await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert_ne!(
            response.headers.get("connection").map(String::as_str),
            Some("close")
        );
        let answer = message(&response, id);
        assert_ne!(answer["result"]["isError"], json!(true), "{answer}");
        assert_eq!(
            answer["result"]["content"][0]["text"],
            json!(format!("call {id}")),
            "{answer}"
        );
    }

    assert_eq!(
        read_lines(&dir.path().join("calls.jsonl")).len(),
        CALLS,
        "the upstream saw each call once"
    );
    state.audit.flush().await.unwrap();
    let audit = common::audit_records(&dir.path().join("audit.jsonl"));
    let count = |kind: &str| audit.iter().filter(|r| r["kind"] == kind).count();
    assert_eq!((count("attempt"), count("outcome")), (CALLS, CALLS));
    mcp_warden::audit::verify(&dir.path().join("audit.jsonl")).unwrap();
}

impl Connection {
    /// Send a request head (and body) without reading the answer.
    async fn send(&mut self, method: &str, extra: &str, body: &str) {
        let mut head = format!(
            "{method} /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n{extra}",
            self.host,
            body.len()
        );
        if let Some(s) = &self.session {
            head.push_str(&format!("Mcp-Session-Id: {s}\r\n"));
        }
        head.push_str("\r\n");
        head.push_str(body);
        self.stream
            .get_mut()
            .write_all(head.as_bytes())
            .await
            .unwrap();
    }

    /// Read a streamed (chunked) response's head and then its events until `until`
    /// says stop; the events read, as (id, data) pairs.
    async fn events_until(
        &mut self,
        until: impl Fn(&[(String, Value)]) -> bool,
    ) -> Vec<(String, Value)> {
        let status = self.line().await;
        assert!(status.contains(" 200 "), "{status}");
        while !self.line().await.is_empty() {}
        let (mut text, mut got) = (String::new(), Vec::new());
        while !until(&got) {
            let size = usize::from_str_radix(self.line().await.trim(), 16).unwrap();
            assert!(size > 0, "the stream ended early: {got:?}");
            let mut chunk = vec![0; size + 2];
            self.stream.read_exact(&mut chunk).await.unwrap();
            text.push_str(std::str::from_utf8(&chunk[..size]).unwrap());
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                let field = |name: &str| {
                    event
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_string())
                };
                let data = field("data:").and_then(|d| serde_json::from_str(&d).ok());
                if let (Some(id), Some(data)) = (field("id:"), data) {
                    got.push((id, data));
                }
            }
        }
        got
    }
}

/// A client whose POST stream drops in the middle of a call reconnects with the id of
/// the last event it saw (SEP-1699) and gets the rest: the progress it missed, in order,
/// then the result, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_dropped_mid_call_is_taken_up_again_from_its_last_event() {
    let (_dir, url, _state) = common::http_gateway(&Setup::default()).await;
    let mut conn = session(&url).await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "_meta": {"progressToken": "p"},
        "name": "demo_slow_count", "arguments": {"steps": 5, "delay_ms": 100}}});
    conn.send("POST", "", &call.to_string()).await;
    let first = conn.events_until(|got| !got.is_empty()).await;
    assert_eq!(first[0].1["params"]["progress"], json!(1.0), "{first:?}");
    let last_seen = first[0].0.clone();
    let session_id = conn.session.clone();
    drop(conn); // the connection is lost
    // Long enough for more progress to be sent meanwhile, into the lost stream.
    tokio::time::sleep(std::time::Duration::from_millis(250)).await;

    let mut again = Connection::open(&url).await;
    again.session = session_id;
    let header = format!("Last-Event-ID: {last_seen}\r\n");
    again.send("GET", &header, "").await;
    let rest = again
        .events_until(|got| got.iter().any(|(_, m)| m["id"] == json!(7)))
        .await;
    let progress: Vec<&Value> = rest
        .iter()
        .filter(|(_, m)| m["method"] == "notifications/progress")
        .map(|(_, m)| &m["params"]["progress"])
        .collect();
    assert_eq!(
        progress,
        [&json!(2.0), &json!(3.0), &json!(4.0), &json!(5.0)],
        "{rest:?}"
    );
    assert_eq!(rest.last().unwrap().1["id"], json!(7), "{rest:?}");
    assert_ne!(rest.last().unwrap().1["result"]["isError"], json!(true));
    // Event ids go on from the one the client last saw.
    let (stream, index) = last_seen.split_once('/').unwrap();
    let next = format!("{stream}/{}", index.parse::<u64>().unwrap() + 1);
    assert_eq!(rest[0].0, next, "{rest:?}");
}

/// A request in a session the gateway does not have (never opened, or closed when it
/// sat idle) is answered 404, which tells a client to start a new session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_an_unknown_session_gets_404() {
    let (_dir, url, _state) = common::http_gateway(&Setup::default()).await;
    let mut conn = Connection::open(&url).await;
    conn.session = Some("3f0c5e2a9b7d4c1e8f6a0b2c4d6e8f10".into());
    let answer = conn
        .post(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(answer.status, 404, "{}", answer.body);
}

/// A call that ends while its client is away: the answer finds the POST stream gone and
/// is kept, and the client that reconnects with its last event id gets the progress it
/// missed and the answer, and the stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_found_its_stream_gone_is_kept_for_the_client() {
    let (_dir, url, _state) = common::http_gateway(&Setup::default()).await;
    let mut conn = session(&url).await;
    let call = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {
        "_meta": {"progressToken": "q"},
        "name": "demo_slow_count", "arguments": {"steps": 4, "delay_ms": 50}}});
    conn.send("POST", "", &call.to_string()).await;
    let first = conn.events_until(|got| !got.is_empty()).await;
    let last_seen = first[0].0.clone();
    let session_id = conn.session.clone();
    drop(conn);
    // The call ends meanwhile (4 steps of 50 ms).
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;

    let mut again = Connection::open(&url).await;
    again.session = session_id;
    again
        .send("GET", &format!("Last-Event-ID: {last_seen}\r\n"), "")
        .await;
    let rest = again
        .events_until(|got| got.iter().any(|(_, m)| m["id"] == json!(8)))
        .await;
    let progress: Vec<&Value> = rest
        .iter()
        .filter(|(_, m)| m["method"] == "notifications/progress")
        .map(|(_, m)| &m["params"]["progress"])
        .collect();
    assert_eq!(
        progress,
        [&json!(2.0), &json!(3.0), &json!(4.0)],
        "{rest:?}"
    );
    assert_eq!(
        rest.last().unwrap().1["result"]["content"][0]["text"],
        json!("counted to 4")
    );
    // Taken once: the same id again finds nothing to take up (an empty stream, which
    // ends a client's reconnecting instead of sending it round again).
    let mut third = Connection::open(&url).await;
    third.session = again.session.clone();
    third
        .send("GET", &format!("Last-Event-ID: {last_seen}\r\n"), "")
        .await;
    let empty = third.read_response().await;
    assert_eq!(empty.status, 200);
    assert!(events(&empty).is_empty(), "{}", empty.body);
}
