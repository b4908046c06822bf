//! When a call needs approval besides the policy's `approve` effect: an `act` call that
//! policy allows only through a wildcard tier waits (the configurable `act` default); a
//! tool owner's rule asks for approval only `when` its condition holds, with its own
//! quorum of distinct approvers, timeout, and approver role.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, Setup, text};
use mcp_warden::approval::{ApprovalError, Status};
use serde_json::{Value, json};

common::on_both_stores!(
    an_act_call_allowed_only_by_a_wildcard_tier_waits_for_a_human,
    with_the_act_default_set_to_policy_the_policy_alone_decides,
    an_owner_rule_holds_calls_above_its_threshold_for_a_quorum_of_two,
    an_owner_rule_can_require_approvers_with_a_role,
);

const POLICY: &str = "p, role:staff, demo/*, *, allow\n\
p, role:approver, demo/*, approve, allow\n\
g, agent:ops-bot, role:staff\n\
g, user:alice, role:staff\n\
g, user:carol, role:approver\n\
g, user:erin, role:approver\n\
g, user:erin, role:data-owner\n";

fn setup(manifest_rules: &[(&str, &str)], approval_extra: &str) -> Setup {
    let mut manifest =
        std::fs::read_to_string(common::repo().join("tool-manifests/demo.toml")).unwrap();
    for (tool, rule) in manifest_rules {
        let header = format!("[tools.{tool}]\n");
        assert!(manifest.contains(&header));
        manifest = manifest.replace(&header, &format!("{header}approval = {rule}\n"));
    }
    Setup {
        agent: "agent:ops-bot".into(),
        on_behalf_of: Some("user:alice".into()),
        manifest: Some(manifest),
        policy: Some(POLICY.into()),
        approval_timeout: "1s".into(),
        approval_extra: approval_extra.into(),
        ..Setup::default()
    }
}

fn refund(amount: u64) -> Value {
    json!({"order_id": "1001", "amount_cents": amount, "intent": "refund the order"})
}

async fn an_act_call_allowed_only_by_a_wildcard_tier_waits_for_a_human() {
    let h = Harness::with(setup(&[], "")).await;
    let result = h.call("demo_issue_refund", refund(900)).await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("expired after 1s"),
        "{}",
        text(&result)
    );
    assert!(h.upstream_calls().is_empty());
    let refusal = h
        .audit()
        .await
        .into_iter()
        .find(|a| a["kind"] == "decision")
        .unwrap();
    assert_eq!(refusal["decision"], "deny");
    let requested = h
        .audit()
        .await
        .into_iter()
        .find(|a| a["event"] == "requested")
        .unwrap();
    assert_eq!(requested["tier"], "act");
    let read = h.call("demo_list_notes", json!({})).await.unwrap();
    assert_ne!(read.is_error, Some(true), "reads are not held: {read:?}");
}

async fn with_the_act_default_set_to_policy_the_policy_alone_decides() {
    let h = Harness::with(setup(&[], "act = \"policy\"\n")).await;
    let result = h.call("demo_issue_refund", refund(900)).await.unwrap();
    assert_eq!(text(&result), "refunded 9.00 for order 1001");
    assert_eq!(h.upstream_calls().len(), 1);
    assert!(h.state.approvals.list(None).await.unwrap().is_empty());
}

async fn an_owner_rule_holds_calls_above_its_threshold_for_a_quorum_of_two() {
    let rule = "{ quorum = 2, timeout = \"30s\", when = { properties = { amount_cents = { minimum = 10000 } }, required = [\"amount_cents\"] } }";
    let h = Arc::new(Harness::with(setup(&[("issue_refund", rule)], "")).await);
    let small = h.call("demo_issue_refund", refund(900)).await.unwrap();
    assert_eq!(
        text(&small),
        "refunded 9.00 for order 1001",
        "below the threshold the owner's rule says no approval is needed"
    );

    let waiting = common::spawn_call(&h, "demo_issue_refund", refund(25000));
    let r = common::first_pending(&h).await;
    assert_eq!(
        (r.call.quorum, r.call.timeout),
        (2, Duration::from_secs(30))
    );
    let first = h
        .state
        .decide_approval(&r.id, "user:carol", true, None)
        .await
        .unwrap();
    assert_eq!(first.status, Status::Pending, "one of two approvals");
    let twice = h
        .state
        .decide_approval(&r.id, "user:carol", true, None)
        .await;
    assert!(
        matches!(twice, Err(ApprovalError::AlreadyDecided { .. })),
        "{twice:?}"
    );
    assert_eq!(
        h.upstream_calls().len(),
        1,
        "still waiting after one approver"
    );
    let second = h
        .state
        .decide_approval(&r.id, "user:erin", true, None)
        .await
        .unwrap();
    assert_eq!(second.status, Status::Approved);
    let result = waiting.await.unwrap();
    assert_eq!(text(&result), "refunded 250.00 for order 1001");
    assert_eq!(h.upstream_calls().len(), 2);
    let attempt = h
        .audit()
        .await
        .into_iter()
        .rfind(|a| a["kind"] == "attempt")
        .unwrap();
    assert_eq!(
        attempt["approval"]["approvers"],
        json!(["user:carol", "user:erin"])
    );
}

async fn an_owner_rule_can_require_approvers_with_a_role() {
    let rule = "{ approvers = \"role:data-owner\", timeout = \"30s\" }";
    let h = Arc::new(Harness::with(setup(&[("write_note", rule)], "")).await);
    let waiting = common::spawn_call(
        &h,
        "demo_write_note",
        json!({"title": "plan", "body": "b", "intent": "save the plan"}),
    );
    let r = common::first_pending(&h).await;
    assert_eq!(r.call.tier, "transform", "an owner rule holds any tier");
    let carol = h
        .state
        .decide_approval(&r.id, "user:carol", true, None)
        .await;
    match carol {
        Err(e @ ApprovalError::NotInRole { .. }) => {
            assert!(e.to_string().contains("role:data-owner"), "{e}")
        }
        other => panic!("carol lacks the owner's role: {other:?}"),
    }
    assert!(
        h.audit()
            .await
            .iter()
            .any(|a| a["event"] == "refused-decision" && a["actor"] == "user:carol")
    );
    h.state
        .decide_approval(&r.id, "user:erin", true, None)
        .await
        .unwrap();
    assert_eq!(text(&waiting.await.unwrap()), "saved `plan`");
}
