//! A name that is not in the catalog — never existed, or offered upstream but not listed
//! in the manifest — is a JSON-RPC error, is audited, and never reaches the upstream.

use crate::common;

use common::{Harness, Setup};
use serde_json::json;

#[tokio::test]
async fn unknown_tool_is_a_protocol_error_that_is_audited() {
    let h = Harness::start().await;
    let err = h
        .call("demo_delete_everything", json!({"intent": "x"}))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("unknown tool `demo_delete_everything`"),
        "{message}"
    );
    assert!(h.upstream_calls().is_empty());
    let audit = h.audit().await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["decision"], "deny");
    assert_eq!(audit[0]["stage"], "catalog");
    assert_eq!(audit[0]["requested"], "demo_delete_everything");
}

#[tokio::test]
async fn a_tool_the_manifest_does_not_list_is_hidden_and_uncallable() {
    let without_refund = manifest_without_refund();
    let setup = Setup {
        manifest: Some(without_refund),
        ..Setup::as_agent("agent:ops-bot", Some("user:alice"))
    };
    let h = Harness::with(setup).await;
    let names = h.tool_names().await;
    assert!(
        !names.contains(&"demo_issue_refund".to_string()),
        "{names:?}"
    );
    let err = h
        .call(
            "demo_issue_refund",
            json!({"order_id": "1", "amount_cents": 5, "intent": "x"}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown tool"));
    assert!(h.upstream_calls().is_empty());
}

#[tokio::test]
async fn an_upstream_configured_to_expose_unlisted_tools_shows_them_as_act() {
    let without_refund = manifest_without_refund();
    let setup = Setup {
        manifest: Some(without_refund),
        upstream_extra: "expose_unlisted = true".into(),
        ..Setup::as_agent("agent:ops-bot", Some("user:alice"))
    };
    let h = Harness::with(setup).await;
    let tool = h
        .state
        .current()
        .catalog
        .resolve("demo_issue_refund")
        .unwrap();
    assert_eq!(tool.tier, mcp_warden::manifest::Tier::Act);
}

/// The shipped demo manifest without its `issue_refund` entry.
fn manifest_without_refund() -> String {
    let shipped = std::fs::read_to_string(common::repo().join("tool-manifests/demo.toml")).unwrap();
    shipped
        .split("[tools.issue_refund]")
        .next()
        .unwrap()
        .to_string()
}
