//! `notifications/tools/list_changed` from an upstream refreshes the catalog and is
//! passed on to connected clients.

use crate::common;

use std::time::Duration;

use common::{Harness, text};
use serde_json::json;

/// The demo shows its extra tool; the client hears the list changed and sees the tool.
async fn the_extra_tool_appears(h: &Harness) {
    let result = h
        .call(
            "demo_toggle_extra",
            json!({"intent": "show the extra tool"}),
        )
        .await
        .unwrap();
    assert_eq!(text(&result), "extra tool shown");
    tokio::time::timeout(Duration::from_secs(10), h.events.list_changed.notified())
        .await
        .expect("the client hears that the tool list changed");
    let names = h.tool_names().await;
    assert!(names.contains(&"demo_extra".to_string()), "{names:?}");
}

/// Over 2025-11-25 (`notifications/tools/list_changed`); the 2026-07-28 way is below.
#[tokio::test]
async fn a_new_upstream_tool_listed_in_the_manifest_appears_after_list_changed() {
    let h = Harness::with(common::Setup {
        upstream_extra: "protocol = \"2025-11-25\"\n".into(),
        ..common::Setup::default()
    })
    .await;
    assert!(h.state.current().catalog.resolve("demo_extra").is_err());
    the_extra_tool_appears(&h).await;
    let extra = h.call("demo_extra", json!({})).await.unwrap();
    assert_eq!(text(&extra), "extra ran");
}

/// A gateway whose demo upstream never announces changes, re-listed every second.
async fn quiet_upstream() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_setup(dir.path(), &common::Setup::default());
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replacen("[gateway]\n", "[gateway]\nrelist_interval = \"1s\"\n", 1)
        .replacen("\"demo-tools\", ", "\"demo-tools\", \"--quiet\", ", 1);
    assert!(text.contains("--quiet") && text.contains("relist_interval"));
    std::fs::write(&path, text).unwrap();
    let config = mcp_warden::config::Config::load(&path).unwrap();
    let state = mcp_warden::gateway::State::start(config).await.unwrap();
    let (client, events) = common::connect(&state).await;
    Harness {
        dir,
        state,
        client,
        events,
    }
}

#[tokio::test]
async fn a_server_that_changes_silently_is_caught_by_the_periodic_re_list() {
    let h = quiet_upstream().await;
    let result = h
        .call(
            "demo_toggle_extra",
            json!({"intent": "show the extra tool"}),
        )
        .await
        .unwrap();
    assert_eq!(text(&result), "extra tool shown");
    assert!(
        h.state.current().catalog.resolve("demo_extra").is_err(),
        "nothing was announced, so nothing changed yet"
    );
    tokio::time::timeout(Duration::from_secs(10), h.events.list_changed.notified())
        .await
        .expect("the re-list finds the change and tells the client");
    let extra = h.call("demo_extra", json!({})).await.unwrap();
    assert_eq!(text(&extra), "extra ran");
}

/// A re-list that finds the same tools says nothing: clients are not told the list
/// changed (they would list it again each time, for nothing).
#[tokio::test]
async fn a_re_list_that_finds_nothing_changed_says_nothing() {
    let h = quiet_upstream().await;
    let told = tokio::time::timeout(
        Duration::from_millis(3500),
        h.events.list_changed.notified(),
    )
    .await;
    assert!(
        told.is_err(),
        "three re-lists of an unchanged server announced a change"
    );
    assert!(h.state.current().catalog.resolve("demo_echo").is_ok());
}

/// A 2026-07-28 upstream (the demo, as the gateway speaks to it by default) tells of its list changes only on
/// a `subscriptions/listen`: the gateway holds one open, so the new tool appears all the
/// same, and a client's resource subscription becomes a listen on the upstream whose
/// updates reach it.
#[tokio::test]
async fn a_2026_upstream_is_listened_to_for_list_changes_and_updates() {
    let h = Harness::start().await;
    assert_eq!(
        h.state.upstreams.speaks("demo").as_deref(),
        Some("2026-07-28")
    );
    the_extra_tool_appears(&h).await;

    #[allow(deprecated)] // the client here speaks 2025-11-25, where this is how to subscribe
    h.client
        .peer()
        .subscribe(rmcp::model::SubscribeRequestParams::new("demo+note://plan"))
        .await
        .unwrap();
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
    assert!(
        h.upstream_calls()
            .contains(&json!({"subscribe": "note://plan"})),
        "the upstream was asked through a listen"
    );
}
