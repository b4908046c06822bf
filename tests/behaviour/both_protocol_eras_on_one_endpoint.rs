//! Both protocol eras on one Streamable HTTP endpoint, seen on the wire: a 2026-07-28
//! request (its version and capabilities in its own `_meta`, no session) is answered
//! statelessly, `server/discover` says what this caller can use and that the answer is
//! private, routing headers that disagree with the body are refused before any decision
//! (the upstream never sees the call, the audit has no attempt), a version the gateway
//! does not speak gets `-32022` with the list it does, methods the revision removed are
//! "method not found"; and a 2025-11-25 session ended with `DELETE` is answered 200 and
//! is gone.

use crate::common;

use common::{Setup, modern};
use serde_json::{Value, json};

fn modern_meta() -> Value {
    modern::meta(json!({}))
}

/// POST a 2026-07-28 request: the status, the session id if any, the message.
async fn post(url: &str, body: Value, extra: &[(&str, &str)]) -> (u16, Option<String>, Value) {
    let answer = modern::post(url, &body, None, extra).await;
    (answer.status, answer.session, answer.message)
}

fn call(id: u64, name: &str, arguments: Value) -> Value {
    modern::call(id, name, json!({"arguments": arguments}), json!({}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_says_what_this_caller_may_use_and_keeps_it_private() {
    let (_dir, url, _state) = common::http_gateway(&Setup::default()).await;
    let discover = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": {"_meta": modern_meta()}});
    let (status, session, answer) = post(&url, discover, &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(session, None, "2026-07-28 has no sessions");
    let result = &answer["result"];
    let versions: Vec<&str> = result["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        versions.contains(&"2026-07-28") && versions.contains(&"2025-11-25"),
        "{versions:?}"
    );
    assert_eq!(result["cacheScope"], "private", "{result}");
    assert_eq!(result["ttlMs"], 0, "{result}");
    assert!(result["capabilities"]["tools"].is_object(), "{result}");

    // A caller policy lets see no tool is not told there are tools.
    let nobody = Setup::as_agent("agent:stranger", None);
    let (_dir2, url2, _state2) = common::http_gateway(&nobody).await;
    let discover = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": {"_meta": modern_meta()}});
    let (_, _, answer) = post(&url2, discover, &[]).await;
    assert!(
        answer["result"]["capabilities"].get("tools").is_none(),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modern_call_is_decided_audited_and_answered_without_a_session() {
    let h_setup = Setup::default();
    let (dir, url, state) = common::http_gateway(&h_setup).await;
    let (status, session, answer) = post(
        &url,
        call(1, "demo_echo", json!({"text": "modern"})),
        &[("mcp-name", "demo_echo")],
    )
    .await;
    assert_eq!((status, session), (200, None), "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "modern", "{answer}");
    assert_eq!(answer["result"]["resultType"], "complete", "{answer}");

    let listed = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list",
        "params": {"_meta": modern_meta()}});
    let (_, _, answer) = post(&url, listed, &[]).await;
    assert_eq!(answer["result"]["cacheScope"], "private", "{answer}");
    assert_eq!(answer["result"]["ttlMs"], 0, "{answer}");

    state.audit.flush().await.unwrap();
    let records = common::read_lines(&dir.path().join("audit.jsonl"));
    let attempt = records
        .iter()
        .find(|r| r["kind"] == "attempt" && r["tool"] == "echo")
        .unwrap();
    assert_eq!(attempt["session"], "http:chain:user:alice>agent:desktop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_headers_that_disagree_with_the_body_are_refused_before_any_decision() {
    let (dir, url, state) = common::http_gateway(&Setup::default()).await;
    let calls_log = dir.path().join("calls.jsonl");
    // The header names a read tool, the body an act tool.
    let refund = call(
        1,
        "demo_issue_refund",
        json!({"order": "A-1", "amount_cents": 100, "intent": "test"}),
    );
    let (status, _, answer) = post(&url, refund.clone(), &[("mcp-name", "demo_echo")]).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], -32020, "{answer}");
    // The method header disagrees too.
    let listed = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list",
        "params": {"_meta": modern_meta()}});
    let (status, _, answer) = post_with_method(&url, &listed, "tools/call").await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], -32020, "{answer}");

    state.audit.flush().await.unwrap();
    let records = common::read_lines(&dir.path().join("audit.jsonl"));
    assert!(
        !records.iter().any(|r| r["tool"] == "issue_refund"),
        "nothing was decided for the refused call: {records:?}"
    );
    let seen = std::fs::read_to_string(&calls_log).unwrap_or_default();
    assert!(!seen.contains("issue_refund"), "{seen}");
}

/// POST `body` with an `Mcp-Method` header of `method` (whatever the body says).
async fn post_with_method(url: &str, body: &Value, method: &str) -> (u16, Option<String>, Value) {
    let answer = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap();
    (
        status,
        None,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_version_gets_the_list_and_removed_methods_are_not_found() {
    let (_dir, url, _state) = common::http_gateway(&Setup::default()).await;
    let mut meta = modern_meta();
    meta["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    let future = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": meta}});
    let answer = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2099-01-01")
        .header("mcp-method", "tools/list")
        .body(future.to_string())
        .send()
        .await
        .unwrap();
    let text = answer.text().await.unwrap();
    assert!(text.contains("-32022"), "{text}");
    assert!(
        text.contains("2026-07-28") && text.contains("2025-11-25"),
        "{text}"
    );

    for removed in [
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
    ] {
        let mut params = json!({"_meta": modern_meta()});
        if removed == "logging/setLevel" {
            params["level"] = json!("info");
        }
        if removed.starts_with("resources/") {
            params["uri"] = json!("note://plan");
        }
        let body = json!({"jsonrpc": "2.0", "id": 3, "method": removed, "params": params});
        let name = params_name(&body);
        let (status, _, answer) = post(
            &url,
            body,
            &name
                .iter()
                .map(|n| ("mcp-name", n.as_str()))
                .collect::<Vec<_>>(),
        )
        .await;
        assert_eq!(
            answer["error"]["code"], -32601,
            "{removed}: {status} {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_by_delete_is_answered_200_and_is_gone() {
    let (_dir, url, _state) = common::http_gateway(&Setup::default()).await;
    let http = reqwest::Client::new();
    let legacy = |session: Option<&str>, body: Value| {
        let mut request = http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25");
        if let Some(s) = session {
            request = request.header("mcp-session-id", s);
        }
        request.body(body.to_string()).send()
    };
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let opened = legacy(None, init).await.unwrap();
    let id = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    opened.text().await.unwrap();
    let closed = http
        .delete(&url)
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status().as_u16(), 200);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let after = legacy(Some(&id), list).await.unwrap();
    assert_eq!(
        after.status().as_u16(),
        404,
        "a closed session is not found"
    );
}

/// The `Mcp-Name` a request names (a resource's URI), if any.
fn params_name(body: &Value) -> Option<String> {
    body["params"]["uri"].as_str().map(String::from)
}

/// A 2026-07-28 request names its own log level: the upstream's log entries reach that
/// request, on its own stream, before its answer, at or above the level, and only when
/// policy lets the caller read the server's logs; a request that names none gets none.
/// (The demo server over stdio logs once before it echoes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_names_a_log_level_gets_the_upstreams_log_entries() {
    let entries = |setup: Setup| async move {
        let (_dir, url, _state) = common::http_gateway(&setup).await;
        let mut counts = Vec::new();
        for level in [Some("debug"), Some("error"), None] {
            let mut body = call(1, "demo_echo", json!({"text": "logged"}));
            if let Some(level) = level {
                body["params"]["_meta"]["io.modelcontextprotocol/logLevel"] = json!(level);
            }
            let answer = modern::post(&url, &body, None, &[]).await;
            assert!(answer.message["result"].is_object(), "{}", answer.message);
            let logged = answer
                .messages
                .iter()
                .filter(|m| m["method"] == "notifications/message")
                .count();
            counts.push(logged);
        }
        counts
    };
    assert_eq!(
        entries(Setup::default()).await,
        [1, 0, 0],
        "debug gets the entry, error (above info) and no level none"
    );
    let no_logs = Setup {
        policy: Some(
            "p, role:t, demo/*, read, allow\np, role:t, demo/logs, read, deny\n\
             g, agent:desktop, role:t\ng, user:alice, role:t\n"
                .into(),
        ),
        ..Setup::default()
    };
    assert_eq!(
        entries(no_logs).await,
        [0, 0, 0],
        "a caller who may not read the logs gets none"
    );
}

/// Open a `subscriptions/listen` stream asking for `notifications`: the stream's
/// messages as they come, one JSON value each.
async fn listen(url: &str, notifications: Value) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    use futures::StreamExt;
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "subscriptions/listen",
        "params": {"notifications": notifications, "_meta": modern_meta()}});
    let answer = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "subscriptions/listen")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = answer.bytes_stream();
        let mut pending = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                let data = line
                    .trim()
                    .strip_prefix("data:")
                    .map(str::trim)
                    .unwrap_or("");
                if let Ok(message) = serde_json::from_str::<Value>(data) {
                    let _ = tx.send(message);
                }
            }
        }
    });
    rx
}

/// The next message on a listen stream whose method is `method` (within 10 s).
async fn next_of(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Value>, method: &str) -> Value {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let message = rx.recv().await.expect("the listen stream ended");
            if message["method"] == method || (method == "result" && message.get("id").is_some()) {
                return message;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {method} on the listen stream"))
}

/// `subscriptions/listen` (2026-07-28): each resource it names is decided and audited as
/// a subscription; its updates come renamed, and the tool-list changes it asked for come
/// too. A listen for what the caller may not read ends with the refusal, audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_is_decided_like_a_subscription_and_hears_what_it_asked_for() {
    let (dir, url, state) = common::http_gateway(&Setup::default()).await;
    let mut heard = listen(
        &url,
        json!({"toolsListChanged": true, "resourceSubscriptions": ["demo+note://plan"]}),
    )
    .await;
    let ack = next_of(&mut heard, "notifications/subscriptions/acknowledged").await;
    assert!(ack.to_string().contains("demo+note://plan"), "{ack}");

    let write = call(
        2,
        "demo_write_note",
        json!({"title": "plan", "body": "new plan", "intent": "update the plan"}),
    );
    let (_, _, written) = post(&url, write, &[]).await;
    assert!(written["result"].is_object(), "{written}");
    let updated = next_of(&mut heard, "notifications/resources/updated").await;
    assert_eq!(updated["params"]["uri"], "demo+note://plan", "{updated}");

    let toggle = call(
        3,
        "demo_toggle_extra",
        json!({"intent": "show the extra tool"}),
    );
    let (_, _, toggled) = post(&url, toggle, &[]).await;
    assert!(toggled["result"].is_object(), "{toggled}");
    next_of(&mut heard, "notifications/tools/list_changed").await;

    state.audit.flush().await.unwrap();
    let audit = common::read_lines(&dir.path().join("audit.jsonl"));
    assert!(
        audit.iter().any(|r| r["kind"] == "access"
            && r["method"] == "resources/subscribe"
            && r["decision"] == "allow"),
        "{audit:#?}"
    );

    // A caller policy lets read nothing.
    let (dir, url, state) = common::http_gateway(&Setup::as_agent("agent:stranger", None)).await;
    let mut refused = listen(&url, json!({"resourceSubscriptions": ["demo+note://plan"]})).await;
    let end = next_of(&mut refused, "result").await;
    assert!(end["error"].is_object(), "{end}");
    state.audit.flush().await.unwrap();
    let audit = common::read_lines(&dir.path().join("audit.jsonl"));
    assert!(
        audit.iter().any(|r| r["kind"] == "access"
            && r["method"] == "resources/subscribe"
            && r["decision"] == "deny"),
        "{audit:#?}"
    );
}
