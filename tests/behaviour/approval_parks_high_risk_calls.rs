//! A call whose policy effect is `approve` waits for a human approver: approved, it is
//! forwarded once with exactly the bound arguments; denied or expired, it is refused and
//! never forwarded; the requester and its chain can never approve, nor can anyone
//! without the `approve` permission; an approval granted while nobody waits is honoured
//! by the identical call only, once.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, Setup, text};
use mcp_warden::approval::{ApprovalError, Status};
use serde_json::{Value, json};

common::on_both_stores!(
    an_approved_call_is_forwarded_once_with_the_bound_arguments,
    a_denied_call_is_refused_naming_the_approver,
    the_requester_its_user_and_unpermitted_identities_cannot_approve,
    an_approval_is_honoured_by_the_identical_retry_only_and_only_once,
    a_cancelled_call_never_uses_an_approval,
);

fn refund(amount: u64) -> Value {
    json!({"order_id": "1001", "amount_cents": amount, "intent": "refund the damaged order"})
}

async fn harness() -> Arc<Harness> {
    Arc::new(
        Harness::with(Setup {
            approval_timeout: "30s".into(),
            ..Setup::default()
        })
        .await,
    )
}

async fn an_approved_call_is_forwarded_once_with_the_bound_arguments() {
    let h = harness().await;
    let waiting = common::spawn_call(&h, "demo_issue_refund", refund(1200));
    let id = common::first_pending(&h).await.id;
    assert!(
        h.upstream_calls().is_empty(),
        "nothing is forwarded before approval"
    );
    let approved = h
        .state
        .decide_approval(&id, "user:carol", true, Some("checked the order".into()))
        .await
        .unwrap();
    assert_eq!(approved.status, Status::Approved);
    let result = waiting.await.unwrap();
    assert_eq!(text(&result), "refunded 12.00 for order 1001");
    assert_eq!(
        h.upstream_calls(),
        vec![json!({"tool": "issue_refund", "args": {"order_id": "1001", "amount_cents": 1200}})]
    );
    let attempt = h
        .audit()
        .await
        .into_iter()
        .find(|r| r["kind"] == "attempt")
        .unwrap();
    assert_eq!(
        attempt["approval"],
        json!({"id": id, "approvers": ["user:carol"]})
    );
    // The README's promise: an approved call's attempt says `approve`, not `allow`.
    assert_eq!(attempt["decision"], "approve", "{attempt}");
    let events: Vec<String> = h
        .audit()
        .await
        .iter()
        .filter(|r| r["kind"] == "approval")
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["requested", "approved", "executed"]);
    assert_eq!(
        h.state.approvals.get(&id).await.unwrap().status,
        Status::Executed
    );
}

async fn a_denied_call_is_refused_naming_the_approver() {
    let h = harness().await;
    let waiting = common::spawn_call(&h, "demo_issue_refund", refund(1200));
    let id = common::first_pending(&h).await.id;
    h.state
        .decide_approval(&id, "user:carol", false, Some("not damaged".into()))
        .await
        .unwrap();
    let result = waiting.await.unwrap();
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("was denied by `user:carol`: not damaged"),
        "{}",
        text(&result)
    );
    assert!(h.upstream_calls().is_empty());
}

async fn the_requester_its_user_and_unpermitted_identities_cannot_approve() {
    let h = harness().await;
    let waiting = common::spawn_call(&h, "demo_issue_refund", refund(1200));
    let id = common::first_pending(&h).await.id;
    for who in ["agent:desktop", "user:alice"] {
        let err = h
            .state
            .decide_approval(&id, who, true, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApprovalError::SeparationOfDuties { .. }),
            "{who}: {err}"
        );
    }
    let err = h
        .state
        .decide_approval(&id, "user:bob", true, None)
        .await
        .unwrap_err();
    assert!(matches!(err, ApprovalError::NotPermitted { .. }), "{err}");
    let refused = h
        .audit()
        .await
        .iter()
        .filter(|r| r["event"] == "refused-decision")
        .count();
    assert_eq!(refused, 3, "refused decisions are audited too");
    assert_eq!(
        h.state.approvals.get(&id).await.unwrap().status,
        Status::Pending
    );
    h.state
        .decide_approval(&id, "user:carol", false, None)
        .await
        .unwrap();
    waiting.await.unwrap();
    assert!(h.upstream_calls().is_empty());
}

/// A gateway holding an approved request for a refund of 12.00 whose caller gave up
/// waiting before the approver decided: the gateway and the request's id.
async fn approved_after_its_caller_left() -> (Arc<Harness>, String) {
    let h = Arc::new(
        Harness::with(Setup {
            approval_timeout: "30s".into(),
            ..Setup::default()
        })
        .await,
    );
    let caller = h.clone();
    let waiting = tokio::spawn(async move { caller.call("demo_issue_refund", refund(1200)).await });
    let id = common::first_pending(&h).await.id;
    waiting.abort();
    h.state
        .decide_approval(&id, "user:carol", true, None)
        .await
        .unwrap();
    (h, id)
}

async fn an_approval_is_honoured_by_the_identical_retry_only_and_only_once() {
    // The caller gives up waiting (cancels); the request stays pending, then is approved.
    let (h, id) = approved_after_its_caller_left().await;

    // Different arguments: a new request, which here expires unapproved.
    let other = h.clone();
    let changed = tokio::spawn(async move {
        other
            .call("demo_issue_refund", refund(99_00))
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pending = h.state.approvals.list(Some(Status::Pending)).await.unwrap();
    assert_eq!(pending.len(), 1, "changed arguments need a new approval");
    h.state
        .decide_approval(&pending[0].id, "user:carol", false, None)
        .await
        .unwrap();
    assert_eq!(changed.await.unwrap().is_error, Some(true));

    // The identical call uses the approval without waiting, once.
    let first = h.call("demo_issue_refund", refund(1200)).await.unwrap();
    assert_eq!(text(&first), "refunded 12.00 for order 1001");
    let calls = h.upstream_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let again = common::spawn_call(&h, "demo_issue_refund", refund(1200));
    let replay = common::first_pending(&h).await.id;
    assert_ne!(
        replay, id,
        "a used approval is never reused: the replay needs a new one"
    );
    h.state
        .decide_approval(&replay, "user:carol", false, None)
        .await
        .unwrap();
    assert_eq!(again.await.unwrap().is_error, Some(true));
    assert_eq!(h.upstream_calls().len(), 1);
}

/// A call the client cancels at once never uses an approval, even one that is already
/// there for it: the approval stays for the call the client makes next.
async fn a_cancelled_call_never_uses_an_approval() {
    use rmcp::model::{CallToolRequest, ClientRequest};
    use rmcp::service::PeerRequestOptions;
    let (h, id) = approved_after_its_caller_left().await;
    // The identical call, cancelled as soon as it is sent.
    let args = refund(1200).as_object().unwrap().clone();
    let params = rmcp::model::CallToolRequestParams::new("demo_issue_refund").with_arguments(args);
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
    let handle = h
        .client
        .peer()
        .send_request_with_option(request, PeerRequestOptions::no_options())
        .await
        .unwrap();
    handle.cancel(Some("changed my mind".into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let request = h.state.approvals.get(&id).await.unwrap();
    assert_eq!(
        request.status,
        Status::Approved,
        "the cancelled call did not use it"
    );
    assert!(h.upstream_calls().is_empty(), "nothing was forwarded");
    let audit = h.audit().await;
    assert!(
        audit.iter().any(|r| r["kind"] == "decision"
            && r["error"]
                .as_str()
                .is_some_and(|e| e.contains("cancelled before approval request"))),
        "the audit says why: {audit:?}"
    );
    // The next identical call uses it, once.
    let made = h.call("demo_issue_refund", refund(1200)).await.unwrap();
    assert_eq!(text(&made), "refunded 12.00 for order 1001");
}
