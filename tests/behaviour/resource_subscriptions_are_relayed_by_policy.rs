//! `resources/subscribe` through the gateway: decided like a read and audited, forwarded
//! to the upstream, and each update comes back renamed to the subscribed client only;
//! unsubscribing stops it upstream. A subscription policy refuses never reaches the
//! upstream.
#![allow(deprecated)] // resources/subscribe is legacy-only in 2026-07-28; clients here speak 2025-11-25

use crate::common;

use std::time::Duration;

use common::{Harness, Setup};
use rmcp::model::{SubscribeRequestParams, UnsubscribeRequestParams};
use serde_json::json;

#[tokio::test]
async fn a_subscribed_client_hears_of_updates_renamed_and_others_do_not() {
    let h = Harness::start().await;
    h.client
        .peer()
        .subscribe(SubscribeRequestParams::new("demo+note://plan"))
        .await
        .unwrap();
    let (_other, other_events) = common::connect(&h.state).await;
    let saved = h
        .call(
            "demo_write_note",
            json!({"title": "plan", "body": "new plan", "intent": "update the plan"}),
        )
        .await
        .unwrap();
    assert_ne!(saved.is_error, Some(true));
    tokio::time::timeout(Duration::from_secs(5), h.events.update.notified())
        .await
        .expect("the subscriber hears of the update");
    assert_eq!(*h.events.updated.lock().unwrap(), ["demo+note://plan"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        other_events.updated.lock().unwrap().is_empty(),
        "not subscribed"
    );

    h.client
        .peer()
        .unsubscribe(UnsubscribeRequestParams::new("demo+note://plan"))
        .await
        .unwrap();
    let calls = h.upstream_calls();
    assert!(
        calls.contains(&json!({"subscribe": "note://plan"})),
        "{calls:?}"
    );
    // Over 2026-07-28 the subscription is a listen, which ends when the gateway lets it
    // go; the demo server notes its end as the listen's task winds down.
    let ended = || {
        h.upstream_calls()
            .contains(&json!({"unsubscribe": "note://plan"}))
    };
    for _ in 0..50 {
        if ended() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ended(), "{:?}", h.upstream_calls());
    let record = h
        .audit()
        .await
        .into_iter()
        .find(|r| r["kind"] == "access")
        .unwrap();
    assert_eq!(
        (&record["method"], &record["name"]),
        (&json!("resources/subscribe"), &json!("note://plan"))
    );
}

#[tokio::test]
async fn a_subscription_policy_refuses_never_reaches_the_upstream() {
    let shipped = std::fs::read_to_string(common::repo().join("policies/policy.csv")).unwrap();
    let h = Harness::with(Setup {
        policy: Some(format!(
            "{shipped}\np, role:assistant, demo/resources/*, read, deny\n"
        )),
        ..Setup::default()
    })
    .await;
    let err = h
        .client
        .peer()
        .subscribe(SubscribeRequestParams::new("demo+note://plan"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("denied by policy rule"), "{err}");
    assert!(h.upstream_calls().is_empty());
    let record = &h.audit().await[0];
    assert_eq!(
        (&record["method"], &record["decision"]),
        (&json!("resources/subscribe"), &json!("deny"))
    );
}
