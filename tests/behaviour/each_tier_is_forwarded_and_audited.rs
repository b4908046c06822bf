//! The happy path for each tier: the call reaches the demo upstream once, with the
//! intent stripped, and the audit log holds an attempt and an outcome record.

use crate::common;

use common::{Harness, Setup, text};
use serde_json::json;

#[tokio::test]
async fn read_call_is_forwarded_without_intent_and_audited() {
    let h = Harness::start().await;
    let result = h
        .call(
            "demo_read_note",
            json!({"title": "plan", "intent": "check the refund plan"}),
        )
        .await
        .unwrap();
    assert_ne!(result.is_error, Some(true));
    assert!(text(&result).contains("Refund order 1001"));
    assert_eq!(
        h.upstream_calls(),
        vec![json!({"tool": "read_note", "args": {"title": "plan"}})]
    );
    let audit = h.audit().await;
    assert_eq!(audit.len(), 2, "{audit:?}");
    let (attempt, outcome) = (&audit[0], &audit[1]);
    assert_eq!(attempt["kind"], "attempt");
    assert_eq!(attempt["decision"], "allow");
    assert_eq!(attempt["tier"], "read");
    assert_eq!(attempt["intent"], "check the refund plan");
    assert_eq!(attempt["chain"], json!(["user:alice", "agent:desktop"]));
    assert_eq!(attempt["agent"], "agent:desktop");
    assert!(
        attempt["rule"]
            .as_str()
            .unwrap()
            .contains("p, role:assistant, demo/*, read, allow")
    );
    assert_eq!(outcome["kind"], "outcome");
    assert_eq!(outcome["call_id"], attempt["call_id"]);
    assert_eq!(outcome["outcome"], "ok");
    assert!(outcome["latency_ms"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn read_call_may_omit_intent() {
    let h = Harness::start().await;
    let result = h.call("demo_list_notes", json!({})).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(h.upstream_calls().len(), 1);
}

#[tokio::test]
async fn transform_call_is_forwarded_and_its_redacted_arguments_stay_out_of_the_audit() {
    let h = Harness::start().await;
    let args =
        json!({"title": "todo", "body": "the secret body", "intent": "remember the follow-up"});
    let result = h.call("demo_write_note", args).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(
        h.upstream_calls()[0]["args"],
        json!({"title": "todo", "body": "the secret body"})
    );
    let attempt = &h.audit().await[0];
    assert_eq!(attempt["tier"], "transform");
    assert_eq!(
        attempt["args"],
        json!({"title": "todo", "body": "[redacted]"})
    );
    let exact = mcp_warden::digest::canonical(&json!({"title": "todo", "body": "the secret body"}));
    assert_eq!(attempt["args_digest"], json!(exact));
    assert!(
        !std::fs::read_to_string(h.audit_path())
            .unwrap()
            .contains("the secret body")
    );
}

#[tokio::test]
async fn act_call_by_a_chain_that_may_act_is_forwarded() {
    let h = Harness::with(Setup::as_agent("agent:ops-bot", Some("user:alice"))).await;
    let args =
        json!({"to": "bob@example.com", "body": "hi", "intent": "tell bob the refund went out"});
    let result = h.call("demo_send_message", args).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(text(&result), "message sent to bob@example.com");
    assert_eq!(h.upstream_calls().len(), 1);
    let audit = h.audit().await;
    assert_eq!(audit[0]["tier"], "act");
    assert_eq!(audit[0]["decision"], "allow");
    assert_eq!(audit[1]["outcome"], "ok");
}

#[tokio::test]
async fn intent_may_come_from_meta() {
    let h = Harness::start().await;
    let mut meta = rmcp::model::RequestMetaObject::default();
    meta.0
        .0
        .insert("io.mcp-warden/intent".into(), json!("file the note"));
    let mut params = rmcp::model::CallToolRequestParams::new("demo_write_note").with_arguments(
        json!({"title": "x", "body": "y"})
            .as_object()
            .unwrap()
            .clone(),
    );
    params.meta = Some(meta);
    let result = h.client.peer().call_tool(params).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(h.audit().await[0]["intent"], "file the note");
}
