//! Fifty calls wait at once while two approvers race to approve each of them: every
//! request gets exactly one winning decision, and every call is forwarded exactly once
//! with its own arguments. Two identical calls share one request, and its approval runs
//! one of them.

use crate::common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::{Harness, Setup, text};
use mcp_warden::approval::{ApprovalError, Status};
use serde_json::json;

common::on_both_stores!(
    fifty_calls_raced_by_two_approvers_each_execute_exactly_once(
        flavor = "multi_thread",
        worker_threads = 4
    ),
    an_identical_call_waits_on_the_same_request_and_one_approval_runs_one_call,
);

const CALLS: usize = 50;

async fn fifty_calls_raced_by_two_approvers_each_execute_exactly_once() {
    let shipped = std::fs::read_to_string(common::repo().join("policies/policy.csv")).unwrap();
    let h = Arc::new(
        Harness::with(Setup {
            approval_timeout: "2m".into(),
            policy: Some(format!("{shipped}\ng, user:erin, role:approver\n")),
            ..Setup::default()
        })
        .await,
    );
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let args = json!({"order_id": format!("order-{i}"), "amount_cents": 100 + i, "intent": "bulk refund"});
                h.call("demo_issue_refund", args).await.unwrap()
            })
        })
        .collect();

    let mut ids = Vec::new();
    for _ in 0..200 {
        ids = h.state.approvals.list(Some(Status::Pending)).await.unwrap();
        if ids.len() == CALLS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ids.len(), CALLS, "every call parked");

    let decisions: Vec<_> = ids
        .iter()
        .flat_map(|r| {
            ["user:carol", "user:erin", "user:carol"].map(|who| {
                let (h, id) = (h.clone(), r.id.clone());
                tokio::spawn(async move { h.state.decide_approval(&id, who, true, None).await })
            })
        })
        .collect();
    let mut won = 0;
    for d in decisions {
        match d.await.unwrap() {
            Ok(r) => {
                assert_eq!(r.status, Status::Approved);
                won += 1;
            }
            Err(ApprovalError::Closed { .. } | ApprovalError::AlreadyDecided { .. }) => {}
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    }
    assert_eq!(won, CALLS, "exactly one decision per request counts");

    for (i, call) in calls.into_iter().enumerate() {
        let result = call.await.unwrap();
        assert_eq!(
            text(&result),
            format!(
                "refunded {}.{:02} for order order-{i}",
                (100 + i) / 100,
                (100 + i) % 100
            )
        );
    }
    let forwarded = h.upstream_calls();
    assert_eq!(forwarded.len(), CALLS, "each call forwarded once");
    let orders: BTreeSet<String> = forwarded
        .iter()
        .map(|c| c["args"]["order_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(orders.len(), CALLS, "with its own arguments");
    let executed = h
        .state
        .approvals
        .list(Some(Status::Executed))
        .await
        .unwrap();
    assert_eq!(executed.len(), CALLS);
    let attempts = h
        .audit()
        .await
        .iter()
        .filter(|r| r["kind"] == "attempt")
        .count();
    assert_eq!(attempts, CALLS);
}

async fn an_identical_call_waits_on_the_same_request_and_one_approval_runs_one_call() {
    let h = Arc::new(
        Harness::with(Setup {
            approval_timeout: "2m".into(),
            ..Setup::default()
        })
        .await,
    );
    let args = json!({"order_id": "1001", "amount_cents": 700, "intent": "refund"});
    let first = common::spawn_call(&h, "demo_issue_refund", args.clone());
    let request = common::first_pending(&h).await;
    let second = common::spawn_call(&h, "demo_issue_refund", args);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.state.approvals.list(None).await.unwrap().len(),
        1,
        "the retry joins the pending request instead of asking again"
    );
    h.state
        .decide_approval(&request.id, "user:carol", true, None)
        .await
        .unwrap();
    let mut texts = vec![text(&first.await.unwrap()), text(&second.await.unwrap())];
    texts.sort();
    assert_eq!(texts[1], "refunded 7.00 for order 1001");
    assert!(
        texts[0].contains("was already used by an identical call"),
        "{texts:?}"
    );
    assert_eq!(h.upstream_calls().len(), 1);
}
