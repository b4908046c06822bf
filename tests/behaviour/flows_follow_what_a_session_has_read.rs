//! Flow rules over what a session has read, with the shipped demo manifest (`read_note`
//! labelled `internal`, `send_message` marked `egress`) and the shipped `flows.toml`.
//! `agent:ops-bot` for `user:alice` may send messages freely by policy; once its session
//! has read a note, a message waits for an approver (who denies it here: the upstream
//! never sees it), and the refusal, the request and the audit record name the flow, the
//! label and where it was read. A fresh session sends freely; a refused or failed read
//! gives no label. A flow that could loosen the policy is refused at reload, which keeps
//! the last good rules; a `deny` flow refuses at once.

use crate::common;

use std::sync::Arc;

use common::{Harness, Setup, first_pending, repo, spawn_call, text};
use serde_json::{Value, json};

const CAROL: &str = "user:carol";

async fn harness() -> Arc<Harness> {
    let h = Harness::with(Setup {
        approval_timeout: "30s".into(),
        config_extra: "[[approver]]\nidentity = \"user:carol\"\n".into(),
        ..Setup::as_agent("agent:ops-bot", Some("user:alice"))
    })
    .await;
    std::fs::copy(
        repo().join("policies/flows.toml"),
        h.dir.path().join("policies/flows.toml"),
    )
    .unwrap();
    h.state.reload("test").await.unwrap();
    Arc::new(h)
}

fn message() -> Value {
    json!({"to": "bob@example.com", "body": "the plan", "intent": "send bob the plan"})
}

fn sent(h: &Harness) -> usize {
    h.upstream_calls()
        .iter()
        .filter(|c| c["tool"] == "send_message")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_note_then_sending_a_message_waits_for_an_approver_who_denies_it() {
    let h = harness().await;
    // On its own, the message goes: policy allows it.
    let first = h.call("demo_send_message", message()).await.unwrap();
    assert_ne!(first.is_error, Some(true), "{}", text(&first));
    assert_eq!(sent(&h), 1);
    let read = h
        .call("demo_read_note", json!({"title": "plan"}))
        .await
        .unwrap();
    assert_ne!(read.is_error, Some(true), "{}", text(&read));

    let call = spawn_call(&h, "demo_send_message", message());
    let request = first_pending(&h).await;
    let reason = request.call.reason.clone().unwrap();
    assert!(
        reason.contains("this session read `internal` via `demo/read_note`")
            && reason.contains("`demo/send_message` sends data outside")
            && reason.contains("flow `internal-out`"),
        "{reason}"
    );
    h.state
        .decide_approval(&request.id, CAROL, false, Some("not outside".into()))
        .await
        .unwrap();
    let refused = call.await.unwrap();
    assert_eq!(refused.is_error, Some(true));
    assert_eq!(sent(&h), 1, "the upstream never saw the second message");

    let audit = h.audit().await;
    let decision = audit
        .iter()
        .find(|r| r["kind"] == "decision" && r["tool"] == "send_message")
        .unwrap();
    assert_eq!(decision["flow"]["flow"], "internal-out");
    assert_eq!(decision["flow"]["label"], "internal");
    assert_eq!(decision["flow"]["via"], "demo/read_note");
    assert_eq!(decision["flow"]["effect"], "approve");
    assert_eq!(decision["policy_effect"], "approve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_session_and_a_read_that_gave_nothing_acquire_no_label() {
    let h = harness().await;
    // A read refused at the arguments stage, and one the upstream failed: no data, no label.
    let long = "x".repeat(65);
    let refused = h
        .call("demo_read_note", json!({"title": long}))
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    let failed = h
        .call("demo_read_note", json!({"title": "nope"}))
        .await
        .unwrap();
    assert_eq!(failed.is_error, Some(true), "{}", text(&failed));
    let sent_now = h.call("demo_send_message", message()).await.unwrap();
    assert_ne!(sent_now.is_error, Some(true), "{}", text(&sent_now));
    // This session reads a note; another session's message still goes.
    h.call("demo_read_note", json!({"title": "plan"}))
        .await
        .unwrap();
    let (other, _) = common::connect(&h.state).await;
    let args = message().as_object().unwrap().clone();
    let elsewhere = other
        .peer()
        .call_tool(
            rmcp::model::CallToolRequestParams::new("demo_send_message").with_arguments(args),
        )
        .await
        .unwrap();
    assert_ne!(elsewhere.is_error, Some(true), "{}", text(&elsewhere));
    assert_eq!(sent(&h), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lax_flow_is_refused_at_reload_and_a_deny_flow_refuses_at_once() {
    let h = harness().await;
    let flows = h.dir.path().join("policies/flows.toml");
    std::fs::write(
        &flows,
        "[[flow]]\nname = \"lax\"\nfrom = [\"internal\"]\nto = \"egress\"\neffect = \"allow\"\n",
    )
    .unwrap();
    let problems = h.state.reload("test").await.unwrap_err();
    let said: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        said.iter()
            .any(|p| p.contains("flows.toml:1") && p.contains("only makes it stricter")),
        "{said:?}"
    );
    // The last good rules still hold: after a read, a message waits.
    h.call("demo_read_note", json!({"title": "plan"}))
        .await
        .unwrap();
    let call = spawn_call(&h, "demo_send_message", message());
    let request = first_pending(&h).await;
    h.state
        .decide_approval(&request.id, CAROL, false, None)
        .await
        .unwrap();
    assert_eq!(call.await.unwrap().is_error, Some(true));

    std::fs::write(
        &flows,
        "[[flow]]\nname = \"no-leaks\"\nfrom = [\"internal\"]\nto = \"egress\"\neffect = \"deny\"\n",
    )
    .unwrap();
    h.state.reload("test").await.unwrap();
    let denied = h.call("demo_send_message", message()).await.unwrap();
    assert_eq!(denied.is_error, Some(true));
    assert!(
        text(&denied).contains("flow `no-leaks`"),
        "{}",
        text(&denied)
    );
    assert_eq!(sent(&h), 0);
    let audit = h.audit().await;
    let last = audit.last().unwrap();
    assert_eq!(
        (&last["stage"], &last["flow"]["effect"]),
        (&json!("policy"), &json!("deny"))
    );
}

/// Real servers: once a session has read a file through npm server-filesystem (labelled
/// `secrets` here), a `deny` flow keeps it from writing to npm server-memory; before the
/// read, the same write goes through, and the refused one never reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_through_one_real_server_stops_a_write_to_another() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("key.txt"), "s3cret").unwrap();
    let data = std::fs::canonicalize(&data).unwrap();
    let manifests = common::shipped_manifests(dir.path(), &[("/srv/data", &data)]);
    let fs_manifest = manifests.join("filesystem.toml");
    let shipped = std::fs::read_to_string(&fs_manifest).unwrap();
    let labelled = shipped.replacen(
        "[tools.read_text_file]\ntier = \"read\"\n",
        "[tools.read_text_file]\ntier = \"read\"\nlabels = [\"secrets\"]\n",
        1,
    );
    assert_ne!(labelled, shipped);
    std::fs::write(&fs_manifest, labelled).unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/policy.csv"),
        "p, role:a, */*, read, allow\np, role:a, */*, transform, allow\ng, agent:desktop, role:a\ng, user:alice, role:a\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("policies/flows.toml"),
        "[[flow]]\nname = \"secrets-stay\"\nfrom = [\"secrets\"]\ntools = \"memory/*\"\ntier = \"transform\"\neffect = \"deny\"\n",
    )
    .unwrap();
    let bin = |name: &str| repo().join("node_modules/.bin").join(name);
    let config = format!(
        "[gateway]\nmanifests = \"{manifests}\"\npolicy_model = \"{repo}/policies/model.conf\"\naudit_log = \"audit.jsonl\"\n\n[identity.stdio]\nagent = \"agent:desktop\"\non_behalf_of = \"user:alice\"\n\n[[upstream]]\nid = \"fs\"\ncommand = \"{fs}\"\nargs = [\"{data}\"]\n\n[[upstream]]\nid = \"memory\"\ncommand = \"{memory}\"\nenv = {{ MEMORY_FILE_PATH = \"{graph}\" }}\n",
        manifests = manifests.display(),
        repo = repo().display(),
        fs = bin("mcp-server-filesystem").display(),
        memory = bin("mcp-server-memory").display(),
        data = data.display(),
        graph = dir.path().join("graph.jsonl").display(),
    );
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, config).unwrap();
    let h = Harness::at(dir, &path).await;
    let entity = |name: &str| {
        json!({"entities": [{"name": name, "entityType": "note", "observations": ["x"]}],
               "intent": "remember it"})
    };
    let before = h
        .call("memory_create_entities", entity("before"))
        .await
        .unwrap();
    assert_ne!(before.is_error, Some(true), "{}", text(&before));
    let read = h
        .call(
            "fs_read_text_file",
            json!({"path": data.join("key.txt"), "intent": "read the key"}),
        )
        .await
        .unwrap();
    assert!(text(&read).contains("s3cret"), "{}", text(&read));
    let after = h
        .call("memory_create_entities", entity("after"))
        .await
        .unwrap();
    assert_eq!(after.is_error, Some(true));
    assert!(
        text(&after).contains("flow `secrets-stay`"),
        "{}",
        text(&after)
    );
    let graph = h.call("memory_read_graph", json!({})).await.unwrap();
    let graph = text(&graph);
    assert!(
        graph.contains("before") && !graph.contains("after"),
        "{graph}"
    );
}

/// A session budget: two `act` calls a session, then a `deny` budget refuses the third
/// (named, counted in the audit record), and a new session starts again from none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_past_its_act_budget_is_refused_and_a_new_one_starts_afresh() {
    let h = harness().await;
    std::fs::write(
        h.dir.path().join("policies/flows.toml"),
        "[[budget]]\nname = \"two-acts\"\nact_calls = 2\neffect = \"deny\"\n",
    )
    .unwrap();
    h.state.reload("test").await.unwrap();
    for _ in 0..2 {
        let sent_one = h.call("demo_send_message", message()).await.unwrap();
        assert_ne!(sent_one.is_error, Some(true), "{}", text(&sent_one));
    }
    let third = h.call("demo_send_message", message()).await.unwrap();
    assert_eq!(third.is_error, Some(true));
    assert!(
        text(&third).contains("made 2 `act` calls") && text(&third).contains("budget `two-acts`"),
        "{}",
        text(&third)
    );
    assert_eq!(sent(&h), 2);
    let audit = h.audit().await;
    let refused = audit.last().unwrap();
    assert_eq!(refused["flow"]["flow"], "two-acts");
    assert_eq!(refused["flow"]["budget"], "act_calls");
    assert_eq!(
        (&refused["flow"]["limit"], &refused["flow"]["count"]),
        (&json!(2), &json!(2))
    );
    let (other, _) = common::connect(&h.state).await;
    let args = message().as_object().unwrap().clone();
    let fresh = other
        .peer()
        .call_tool(
            rmcp::model::CallToolRequestParams::new("demo_send_message").with_arguments(args),
        )
        .await
        .unwrap();
    assert_ne!(fresh.is_error, Some(true), "{}", text(&fresh));
    assert_eq!(sent(&h), 3);
}

/// What an HTTP session has read is dropped when the client closes the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_sessions_labels_go_when_the_session_is_closed() {
    let setup = Setup::as_agent("agent:ops-bot", Some("user:alice"));
    let (dir, url, state) = common::http_gateway(&setup).await;
    std::fs::copy(
        repo().join("policies/flows.toml"),
        dir.path().join("policies/flows.toml"),
    )
    .unwrap();
    state.reload("test").await.unwrap();
    let http = reqwest::Client::new();
    let post = |session: Option<String>, body: Value| {
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
    let opened = post(None, init).await.unwrap();
    let id = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    opened.text().await.unwrap();
    post(
        Some(id.clone()),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await
    .unwrap();
    let read = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "demo_read_note", "arguments": {"title": "plan"}}});
    let answer = post(Some(id.clone()), read)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(answer.contains("\"result\""), "{answer}");
    // The session as the gateway keeps it (the client holds it sealed): its records'.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let audit = common::audit_records(&dir.path().join("audit.jsonl"));
    let attempt = audit.iter().rev().find(|r| r["kind"] == "attempt").unwrap();
    let key = attempt["session"].as_str().unwrap().to_string();
    assert!(key.starts_with("http:") && !key.contains(&id), "{key}");
    assert_eq!(
        state.sessions.held(&key, None).acquired[0].label,
        "internal"
    );
    let closed = http
        .delete(&url)
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    assert!(state.sessions.held(&key, None).acquired.is_empty());
}

/// A grant does not lift a flow: the desktop assistant may send messages only with an
/// approval; a grant at the `act` tier lets it send at once, until the session reads a
/// note: then the message waits for an approver all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_does_not_lift_a_flow() {
    let h = Arc::new(
        Harness::with(Setup {
            approval_timeout: "1s".into(),
            config_extra: "[[approver]]\nidentity = \"user:carol\"\n".into(),
            ..Setup::default()
        })
        .await,
    );
    std::fs::copy(
        repo().join("policies/flows.toml"),
        h.dir.path().join("policies/flows.toml"),
    )
    .unwrap();
    h.state.reload("test").await.unwrap();
    let request: mcp_warden::gateway::GrantRequest = serde_json::from_value(json!({
        "to": "agent:desktop", "on_behalf_of": "user:alice", "tools": "demo/send_message",
        "tier": "act", "ttl": "10m", "reason": "send the weekly note"}))
    .unwrap();
    h.state.grant(CAROL, request).await.unwrap();
    let granted = h.call("demo_send_message", message()).await.unwrap();
    assert_ne!(granted.is_error, Some(true), "{}", text(&granted));
    h.call("demo_read_note", json!({"title": "plan"}))
        .await
        .unwrap();
    let held = h.call("demo_send_message", message()).await.unwrap();
    assert_eq!(held.is_error, Some(true));
    assert!(
        text(&held).contains("flow `internal-out`"),
        "{}",
        text(&held)
    );
    assert_eq!(sent(&h), 1);
}
