//! A tool owner whose callers may put sensitive context in their intent redacts it
//! (`redact = ["/intent"]`), or an operator redacts every intent (`[gateway]
//! redact_intent`): every record of those calls keeps only the intent's digest, the
//! approver still reads it on the approvals page while deciding, and the webhook notice,
//! which goes to another service, does not carry it.

use crate::common;

use std::sync::Arc;

use common::{Harness, Setup, text};
use mcp_warden::admin::auth::token_hash;
use serde_json::{Value, json};

const CAROL: &str = "carol-intent-token";
const INTENT: &str = "customer 4412 (Jane Roe, card ending 0093) was double charged";

fn sha256(text: &str) -> String {
    mcp_warden::digest::sha256(text.as_bytes())
}

#[tokio::test]
async fn a_redacted_intent_is_only_a_digest_in_every_record_yet_the_approver_reads_it() {
    let shipped = std::fs::read_to_string(common::repo().join("tool-manifests/demo.toml")).unwrap();
    let manifest = shipped.replace(
        "[tools.issue_refund]\ntier = \"act\"\n",
        "[tools.issue_refund]\ntier = \"act\"\nredact = [\"/intent\"]\n",
    );
    assert_ne!(manifest, shipped);
    let h = Arc::new(
        Harness::with(Setup {
            manifest: Some(manifest),
            approval_timeout: "30s".into(),
            config_extra: format!(
                "[[approver]]\nidentity = \"user:carol\"\nsha256 = \"{}\"\n",
                token_hash(CAROL)
            ),
            ..Setup::default()
        })
        .await,
    );
    let admin = h.serve_admin().await;
    let refund = |cents: u64| json!({"order_id": "1001", "amount_cents": cents, "intent": INTENT});
    // Refused at the arguments stage: the decision record.
    let refused = h.call("demo_issue_refund", refund(60_000)).await.unwrap();
    assert_eq!(refused.is_error, Some(true));
    // Parked, read by the approver on the page's API, approved, made.
    let waiting = common::spawn_call(&h, "demo_issue_refund", refund(1200));
    let id = common::first_pending(&h).await.id;
    let shown: Value = reqwest::Client::new()
        .get(format!("{admin}/approvals/{id}"))
        .bearer_auth(CAROL)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["intent"], INTENT, "{shown}");
    h.state
        .decide_approval(&id, "user:carol", true, None)
        .await
        .unwrap();
    assert!(text(&waiting.await.unwrap()).contains("refunded"));

    let records = h.audit().await;
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    for kind in ["decision", "approval", "attempt", "outcome"] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }
    for r in &records {
        assert_eq!(r["intent"], "[redacted]", "{r}");
        assert_eq!(r["intent_digest"], sha256(INTENT), "{r}");
    }
    let log = std::fs::read_to_string(h.audit_path()).unwrap();
    assert!(
        !log.contains("Jane Roe"),
        "the intent's text is not in the log"
    );
}

#[tokio::test]
async fn the_gateway_can_redact_every_callers_intent() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_setup(dir.path(), &Setup::default());
    let config = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        config.replacen("[gateway]\n", "[gateway]\nredact_intent = true\n", 1),
    )
    .unwrap();
    let h = Harness::at(dir, &path).await;
    let echoed = h
        .call("demo_echo", json!({"text": "hi", "intent": INTENT}))
        .await
        .unwrap();
    assert_eq!(text(&echoed), "hi");
    let attempt = h
        .audit()
        .await
        .into_iter()
        .find(|r| r["kind"] == "attempt")
        .unwrap();
    assert_eq!(
        (&attempt["intent"], &attempt["intent_digest"]),
        (&json!("[redacted]"), &json!(sha256(INTENT)))
    );
}
