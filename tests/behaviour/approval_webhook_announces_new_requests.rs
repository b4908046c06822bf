//! A new approval request is announced to the configured webhook: a JSON notice with who
//! asks, for whom, why, which tool, and the link to the approvals page, but never the
//! call's arguments, nor an intent the tool's manifest redacts.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::post;
use common::{Harness, Setup, text};
use serde_json::{Value, json};
use tokio::sync::mpsc;

common::on_both_stores!(
    a_new_request_is_announced_with_a_link_and_without_arguments,
    a_redacted_intent_is_not_in_the_notice,
    control_and_bidi_characters_in_the_intent_are_escaped_in_the_text,
);

/// A webhook receiver on a free loopback port: its URL, and the notices it receives.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (tx, notices) = mpsc::unbounded_channel::<Value>();
    let hook = axum::Router::new().route(
        "/hook",
        post(move |Json(body): Json<Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await });
    (hook_url, notices)
}

/// A gateway that tells `hook_url` of each new approval request (with `manifest` in place
/// of the demo's, when given).
async fn hooked(hook_url: &str, manifest: Option<String>) -> Arc<Harness> {
    let setup = Setup {
        manifest,
        approval_timeout: "1m".into(),
        approval_extra: format!("webhook = \"{hook_url}\"\n"),
        ..Setup::default()
    };
    Arc::new(Harness::with(setup).await)
}

async fn a_new_request_is_announced_with_a_link_and_without_arguments() {
    let (hook_url, mut notices) = receiver().await;

    let h = hooked(&hook_url, None).await;
    let page = h.serve_admin().await;
    let waiting = common::spawn_call(
        &h,
        "demo_issue_refund",
        json!({"order_id": "secret-order-77", "amount_cents": 1200, "intent": "refund the broken kettle"}),
    );
    let notice = tokio::time::timeout(Duration::from_secs(10), notices.recv())
        .await
        .expect("the webhook is called")
        .unwrap();
    let id = notice["id"].as_str().unwrap().to_string();
    assert_eq!(notice["event"], "approval.requested");
    assert_eq!(notice["agent"], "agent:desktop");
    assert_eq!(notice["chain"], json!(["user:alice", "agent:desktop"]));
    assert_eq!(notice["tool"], "issue_refund");
    assert_eq!(notice["tier"], "act");
    assert_eq!(notice["intent"], "refund the broken kettle");
    assert_eq!(notice["url"], format!("{page}/#request-{id}"));
    assert!(
        !notice.to_string().contains("secret-order-77"),
        "arguments stay behind sign-in: {notice}"
    );

    h.state
        .decide_approval(&id, "user:carol", false, None)
        .await
        .unwrap();
    assert!(text(&waiting.await.unwrap()).contains("denied by `user:carol`"));
}

async fn a_redacted_intent_is_not_in_the_notice() {
    let (hook_url, mut notices) = receiver().await;
    let shipped = std::fs::read_to_string(common::repo().join("tool-manifests/demo.toml")).unwrap();
    let manifest = shipped.replace(
        "[tools.issue_refund]\ntier = \"act\"\n",
        "[tools.issue_refund]\ntier = \"act\"\nredact = [\"/intent\"]\n",
    );
    let h = hooked(&hook_url, Some(manifest)).await;
    let _waiting = common::spawn_call(
        &h,
        "demo_issue_refund",
        json!({"order_id": "1001", "amount_cents": 1200, "intent": "Jane Roe was charged twice"}),
    );
    let notice = tokio::time::timeout(Duration::from_secs(10), notices.recv())
        .await
        .expect("the webhook is called")
        .unwrap();
    assert_eq!(
        notice["intent"],
        "[redacted: read it on the approvals page]"
    );
    assert!(!notice.to_string().contains("Jane Roe"), "{notice}");
}

/// The notice's one line for people cannot be forged from the intent: a newline with a
/// fake verdict, an ESC sequence and a right-to-left override arrive escaped.
async fn control_and_bidi_characters_in_the_intent_are_escaped_in_the_text() {
    let (hook_url, mut notices) = receiver().await;
    let h = hooked(&hook_url, None).await;
    let intent = "refund\nAPPROVED by user:cfo\u{1b}[2K\r\u{202e}lanigiro";
    let _waiting = common::spawn_call(
        &h,
        "demo_issue_refund",
        json!({"order_id": "1", "amount_cents": 1200, "intent": intent}),
    );
    let notice = tokio::time::timeout(Duration::from_secs(10), notices.recv())
        .await
        .expect("the webhook is called")
        .unwrap();
    let line = notice["text"].as_str().unwrap();
    assert!(
        !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "{line:?}"
    );
    assert!(
        line.ends_with("refund\\u{000A}APPROVED by user:cfo\\u{001B}[2K\\u{000D}\\u{202E}lanigiro"),
        "{line}"
    );
}
