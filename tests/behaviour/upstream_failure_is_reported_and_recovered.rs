//! When an upstream process dies, a permitted call is answered with "upstream
//! unavailable" (its outcome audited as unknown), and the gateway restarts the upstream
//! on a later call.

use crate::common;

use std::time::Duration;

use common::{Harness, text};
use serde_json::json;

#[tokio::test]
async fn a_dead_upstream_is_reported_then_restarted() {
    let h = Harness::start().await;
    assert_eq!(
        text(&h.call("demo_echo", json!({"text": "one"})).await.unwrap()),
        "one"
    );
    let calls = h.dir.path().join("calls.jsonl");
    let killed = std::process::Command::new("pkill")
        .arg("-f")
        .arg(calls.to_str().unwrap())
        .status()
        .unwrap();
    assert!(killed.success(), "the demo upstream was running");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let failed = h.call("demo_echo", json!({"text": "two"})).await.unwrap();
    assert_eq!(failed.is_error, Some(true));
    assert!(
        text(&failed).contains("upstream `demo` is unavailable"),
        "{}",
        text(&failed)
    );
    let outcome = h
        .audit()
        .await
        .into_iter()
        .rev()
        .find(|r| r["kind"] == "outcome")
        .unwrap();
    assert_eq!(outcome["outcome"], "unknown");

    let mut answer = String::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = h.call("demo_echo", json!({"text": "three"})).await.unwrap();
        answer = text(&r);
        if r.is_error != Some(true) {
            break;
        }
    }
    assert_eq!(answer, "three", "the upstream was restarted");
    mcp_warden::audit::verify(&h.audit_path()).unwrap();
}
