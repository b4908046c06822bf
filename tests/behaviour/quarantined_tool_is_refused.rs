//! A tool whose live definition no longer matches its manifest pin is hidden and its
//! calls are refused with a message that says how to re-pin; the upstream never sees them.

use crate::common;

use common::{Harness, Setup, assert_refused};
use serde_json::json;

fn manifest_with_stale_pin() -> String {
    let shipped = std::fs::read_to_string(common::repo().join("tool-manifests/demo.toml")).unwrap();
    let stale = format!("pin = \"sha256:{}\"", "ab".repeat(32));
    let mut out = String::new();
    let mut in_read_note = false;
    for line in shipped.lines() {
        if line.starts_with('[') {
            in_read_note = line == "[tools.read_note]";
        }
        if in_read_note && line.starts_with("pin =") {
            out.push_str(&stale);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn a_changed_tool_is_quarantined() {
    let h = Harness::with(Setup {
        manifest: Some(manifest_with_stale_pin()),
        ..Setup::default()
    })
    .await;
    let names = h.tool_names().await;
    assert!(
        !names.contains(&"demo_read_note".to_string()),
        "quarantined tools are not listed: {names:?}"
    );
    assert!(names.contains(&"demo_list_notes".to_string()));
    let result = h
        .call("demo_read_note", json!({"title": "plan", "intent": "x"}))
        .await
        .unwrap();
    assert_refused(&h, &result, "is quarantined", "integrity");
    let message = common::text(&result);
    assert!(message.contains("update `pin`"), "{message}");
    assert!(message.contains("demo.toml"), "{message}");
}
