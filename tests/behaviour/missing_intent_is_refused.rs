//! A transform or act call without a stated intent is refused with a message that says
//! exactly what to add, and never reaches the upstream.

use crate::common;

use common::{Harness, Setup, assert_refused};
use serde_json::json;

#[tokio::test]
async fn transform_without_intent_is_refused() {
    let h = Harness::start().await;
    let result = h
        .call("demo_write_note", json!({"title": "todo", "body": "b"}))
        .await
        .unwrap();
    assert_refused(
        &h,
        &result,
        "missing `intent`: add the `intent` argument with one sentence",
        "intent",
    );
}

#[tokio::test]
async fn act_with_blank_intent_is_refused() {
    let h = Harness::with(Setup::as_agent("agent:ops-bot", Some("user:alice"))).await;
    let args = json!({"to": "bob@example.com", "body": "hi", "intent": "   "});
    let result = h.call("demo_send_message", args).await.unwrap();
    assert_refused(&h, &result, "missing `intent`", "intent");
}
