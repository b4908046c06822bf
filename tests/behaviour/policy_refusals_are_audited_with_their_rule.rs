//! Policy refusals: a deny rule wins, no rule means deny, `approve` is refused until an
//! approver exists, and every identity in the delegation chain must be allowed.

use crate::common;

use common::{Harness, Setup, assert_refused};
use serde_json::json;

fn message() -> serde_json::Value {
    json!({"to": "bob@example.com", "body": "hi", "intent": "tell bob"})
}

#[tokio::test]
async fn a_deny_rule_wins_over_an_allow() {
    // user:bob is both staff (allow everything) and intern (deny act).
    let h = Harness::with(Setup::as_agent("agent:ops-bot", Some("user:bob"))).await;
    let result = h.call("demo_send_message", message()).await.unwrap();
    assert_refused(
        &h,
        &result,
        "denied by policy rule `p, role:intern, */*, act, deny`",
        "policy",
    );
    assert_rule(&h, "role:intern, */*, act, deny").await;
}

#[tokio::test]
async fn no_matching_rule_is_a_deny() {
    let h = Harness::with(Setup::as_agent("agent:stranger", None)).await;
    let result = h.call("demo_list_notes", json!({})).await.unwrap();
    assert_refused(
        &h,
        &result,
        "no policy rule allows `agent:stranger` to use `demo/list_notes`",
        "policy",
    );
}

#[tokio::test]
async fn an_agent_never_exceeds_its_principal() {
    // agent:ops-bot is staff, but user:mallory has no role at all.
    let h = Harness::with(Setup::as_agent("agent:ops-bot", Some("user:mallory"))).await;
    let result = h.call("demo_list_notes", json!({})).await.unwrap();
    assert_refused(
        &h,
        &result,
        "no policy rule allows `user:mallory`",
        "policy",
    );
    let verdicts = h.audit().await.pop().unwrap()["verdicts"].clone();
    assert_eq!(verdicts[0]["identity"], "user:mallory");
    assert_eq!(
        verdicts[1]["effect"], "allow",
        "the agent alone was allowed: {verdicts}"
    );
}

#[tokio::test]
async fn a_principal_never_lends_more_than_its_agent_may_do() {
    // user:alice is staff (act allowed); agent:desktop is an assistant (act needs approval).
    let h = Harness::start().await;
    let result = h.call("demo_send_message", message()).await.unwrap();
    assert_refused(&h, &result, "expired after 1s without a decision", "policy");
    assert_rule(&h, "role:assistant, demo/*, act, approve").await;
}

#[tokio::test]
async fn approve_wins_over_allow_for_the_same_identity() {
    // ops-bot and alice are staff (allow *), but refunds need approval for staff.
    let h = Harness::with(Setup::as_agent("agent:ops-bot", Some("user:alice"))).await;
    let args = json!({"order_id": "1001", "amount_cents": 1200, "intent": "refund the order"});
    let result = h.call("demo_issue_refund", args).await.unwrap();
    assert_refused(&h, &result, "expired after 1s without a decision", "policy");
}

/// The last audit record names the deciding rule.
async fn assert_rule(h: &Harness, rule: &str) {
    let record = h.audit().await.pop().unwrap();
    assert!(record["rule"].as_str().unwrap().contains(rule), "{record}");
}
