//! Arguments are checked against the tool's own schema and the manifest's constraints;
//! a violation names the argument, never echoes its value, and is never forwarded.

use crate::common;

use common::{Harness, Setup, assert_refused};
use serde_json::json;

#[tokio::test]
async fn arguments_violating_the_tools_schema_are_refused() {
    let h = Harness::start().await;
    let result = h
        .call("demo_read_note", json!({"title": 42, "intent": "read"}))
        .await
        .unwrap();
    assert_refused(&h, &result, "argument `/title` is invalid", "arguments");
}

#[tokio::test]
async fn arguments_violating_the_manifest_constraint_are_refused_without_echoing_them() {
    let h = Harness::with(Setup::as_agent("agent:ops-bot", Some("user:alice"))).await;
    let args = json!({"to": "attacker@evil.test", "body": "data", "intent": "send the report"});
    let result = h.call("demo_send_message", args).await.unwrap();
    assert_refused(
        &h,
        &result,
        "argument `/to` violates the tool owner's constraint",
        "arguments",
    );
    assert!(!common::text(&result).contains("evil.test"));
}

#[tokio::test]
async fn a_missing_constrained_argument_is_refused() {
    let h = Harness::with(Setup::as_agent("agent:ops-bot", Some("user:alice"))).await;
    let result = h
        .call(
            "demo_issue_refund",
            json!({"order_id": "1", "intent": "refund"}),
        )
        .await
        .unwrap();
    assert_refused(&h, &result, "argument", "arguments");
}
