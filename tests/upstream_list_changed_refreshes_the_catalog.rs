//! `notifications/tools/list_changed` from an upstream refreshes the catalog and is
//! passed on to connected clients.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test code

mod common;

use std::time::Duration;

use common::{Harness, text};
use serde_json::json;

#[tokio::test]
async fn a_new_upstream_tool_listed_in_the_manifest_appears_after_list_changed() {
    let h = Harness::start().await;
    assert!(h.state.catalog().resolve("demo_extra").is_err());
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
    let extra = h.call("demo_extra", json!({})).await.unwrap();
    assert_eq!(text(&extra), "extra ran");
}
