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
