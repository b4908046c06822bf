//! `[[limit]]` rules hold one identity back without holding back the others: past its
//! rate an agent's calls are refused with when to retry, never forwarded, and audited at
//! the `limits` stage; a principal with as many approval requests waiting as allowed
//! cannot add another (a retry of a waiting call still joins its own request).

use std::sync::Arc;
use std::time::Duration;

use crate::common;

use common::{Harness, Setup, text};
use serde_json::json;

fn limited(extra: &str) -> Setup {
    Setup {
        config_extra: extra.to_string(),
        approval_timeout: "1m".into(),
        ..Setup::default()
    }
}

#[tokio::test]
async fn an_agent_past_its_rate_is_refused_with_when_to_retry_and_never_forwarded() {
    let h = Harness::with(limited(
        "[[limit]]\nwho = \"agent:*\"\ntools = \"demo/*\"\ntier = \"read\"\ncalls = 3\nper = \"1h\"\n",
    ))
    .await;
    for n in 0..3 {
        let said = format!("call {n}");
        assert_eq!(
            text(&h.call("demo_echo", json!({"text": said})).await.unwrap()),
            said
        );
    }
    let refused = h
        .call("demo_echo", json!({"text": "one too many"}))
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    let message = text(&refused);
    assert!(
        message.contains("rate limit: `agent:desktop` may make 3 `read` calls to `demo/*` every 1h; try again in 20m"),
        "{message}"
    );
    assert_eq!(
        h.upstream_calls().len(),
        3,
        "the fourth never reached the upstream"
    );
    let last = h.audit().await.into_iter().last().unwrap();
    assert_eq!(
        (&last["decision"], &last["stage"]),
        (&json!("deny"), &json!("limits"))
    );
    assert_eq!(last["error"], json!(message));
    // A reload that leaves the rule as it was keeps its bucket.
    h.state.reload("test").await.unwrap();
    let still = h
        .call("demo_echo", json!({"text": "after reload"}))
        .await
        .unwrap();
    assert!(text(&still).contains("rate limit"), "{}", text(&still));
    // Another tier is not counted.
    let write = json!({"title": "t", "body": "b", "intent": "save"});
    assert_ne!(
        h.call("demo_write_note", write).await.unwrap().is_error,
        Some(true)
    );
}

#[tokio::test]
async fn a_principal_with_as_many_requests_waiting_as_allowed_cannot_add_another() {
    let h = Arc::new(
        Harness::with(limited(
            "[[limit]]\nwho = \"user:*\"\npending_approvals = 1\n",
        ))
        .await,
    );
    let refund = |order: &str| json!({"order_id": order, "amount_cents": 500, "intent": "refund"});
    let first = common::spawn_call(&h, "demo_issue_refund", refund("1"));
    let waiting = common::first_pending(&h).await;
    let second = h.call("demo_issue_refund", refund("2")).await.unwrap();
    assert_eq!(second.is_error, Some(true));
    assert!(
        text(&second).contains("`user:alice` already has 1 approval requests waiting (at most 1)"),
        "{}",
        text(&second)
    );
    let last = h.audit().await.into_iter().last().unwrap();
    assert_eq!(last["stage"], "limits");
    // The same call again joins its own request instead of being refused.
    let again = common::spawn_call(&h, "demo_issue_refund", refund("1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !again.is_finished(),
        "a retry of the waiting call waits with it"
    );
    h.state
        .decide_approval(&waiting.id, "user:carol", true, None)
        .await
        .unwrap();
    let results = [first.await.unwrap(), again.await.unwrap()];
    assert!(
        results.iter().any(|r| r.is_error != Some(true)),
        "{results:?}"
    );
    assert!(
        results.iter().all(|r| !text(r).contains("already has")),
        "the retry joined its request, it was not refused by the cap: {results:?}"
    );
    let refunds = h
        .upstream_calls()
        .iter()
        .filter(|c| c["tool"] == "issue_refund")
        .count();
    assert_eq!(
        refunds, 1,
        "the approved call ran once; the refused one never"
    );
}
