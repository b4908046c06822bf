//! A request nobody decides expires after its timeout (measured on a paused clock, so the
//! test takes no real ten minutes): the caller is told how long it waited, the call is
//! never made, expiry is audited, and a decision that comes later changes nothing and is
//! audited too. A decision wakes the waiting call at once, with no time passing on that
//! clock: the call waits on the store's changes, not on a timer.

use crate::common;

use std::sync::Arc;

use common::{Harness, Setup, text};
use mcp_warden::approval::{ApprovalError, Status};
use serde_json::json;

#[tokio::test]
async fn an_undecided_request_expires_after_its_timeout_and_late_decisions_change_nothing() {
    let h = Harness::with(Setup {
        approval_timeout: "10m".into(),
        ..Setup::default()
    })
    .await;
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let result = h
        .call(
            "demo_issue_refund",
            json!({"order_id": "1001", "amount_cents": 1200, "intent": "refund the order"}),
        )
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_secs(600),
        "the call waited its full timeout on the paused clock: {waited:?}"
    );
    assert_eq!(result.is_error, Some(true));
    let message = text(&result);
    assert!(
        message.contains("expired after 10m without a decision; the call was not made"),
        "{message}"
    );
    assert!(h.upstream_calls().is_empty());

    let request = h.state.approvals.list(None).await.unwrap().pop().unwrap();
    assert_eq!(request.status, Status::Expired);
    let late = h
        .state
        .decide_approval(&request.id, "user:carol", true, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            late,
            ApprovalError::Closed {
                status: "expired",
                ..
            }
        ),
        "{late}"
    );
    let events: Vec<String> = h
        .audit()
        .await
        .iter()
        .filter(|r| r["kind"] == "approval")
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["requested", "expired", "refused-decision"]);
    assert!(
        h.upstream_calls().is_empty(),
        "a late approval forwards nothing"
    );
}

#[tokio::test]
async fn a_decision_wakes_the_waiting_call_with_no_time_passing() {
    let h = Arc::new(
        Harness::with(Setup {
            approval_timeout: "10m".into(),
            ..Setup::default()
        })
        .await,
    );
    tokio::time::pause();
    let refund = json!({"order_id": "1001", "amount_cents": 1200, "intent": "refund the order"});
    let _waiting = common::spawn_call(&h, "demo_issue_refund", refund);
    let id = common::first_pending(&h).await.id;
    let decided_at = tokio::time::Instant::now();
    h.state
        .decide_approval(&id, "user:carol", true, None)
        .await
        .unwrap();
    // Never idle, so the paused clock cannot move: only a wake-up by the decision itself
    // lets the waiting call use its approval.
    let mut status = Status::Approved;
    for _ in 0..100_000 {
        status = h.state.approvals.get(&id).await.unwrap().status;
        if status == Status::Executed {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(
        status,
        Status::Executed,
        "the waiting call used its approval"
    );
    assert_eq!(
        decided_at.elapsed(),
        std::time::Duration::ZERO,
        "no time passed on the paused clock"
    );
}
