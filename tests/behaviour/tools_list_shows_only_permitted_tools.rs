//! `tools/list` goes through the same policy as `tools/call`: a caller sees exactly the
//! tools it may call or request approval for, each with a required `intent` property.

use crate::common;

use common::{Harness, Setup};
use serde_json::json;

fn names(tools: &[rmcp::model::Tool]) -> Vec<String> {
    let mut n: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    n.sort();
    n
}

#[tokio::test]
async fn an_assistant_sees_read_transform_and_approvable_act_tools() {
    let h = Harness::start().await;
    let tools = h.tools().await;
    assert_eq!(
        names(&tools),
        [
            "demo_echo",
            "demo_issue_refund",
            "demo_list_notes",
            "demo_read_note",
            "demo_send_message",
            "demo_slow_count",
            "demo_toggle_extra",
            "demo_write_note"
        ]
    );
    let read_note = tools.iter().find(|t| t.name == "demo_read_note").unwrap();
    let schema = serde_json::Value::Object((*read_note.input_schema).clone());
    assert_eq!(schema["properties"]["intent"]["type"], "string");
    assert_eq!(schema["required"], json!(["title", "intent"]));
}

#[tokio::test]
async fn a_caller_whose_chain_denies_act_does_not_see_act_tools() {
    let h = Harness::with(Setup::as_agent("agent:ops-bot", Some("user:bob"))).await;
    let listed = names(&h.tools().await);
    assert!(listed.contains(&"demo_write_note".to_string()));
    assert!(
        !listed
            .iter()
            .any(|n| n == "demo_send_message" || n == "demo_issue_refund"),
        "{listed:?}"
    );
}

#[tokio::test]
async fn a_caller_without_rules_sees_nothing() {
    let h = Harness::with(Setup::as_agent("agent:stranger", None)).await;
    assert!(h.tools().await.is_empty());
}
