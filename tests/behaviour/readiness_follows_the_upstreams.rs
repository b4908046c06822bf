//! `/readyz` answers 503 while a required upstream is down and cannot be started again,
//! naming it, and 200 once it is back (the probe itself starts it again, so a replica a
//! load balancer took out of rotation comes back without a call); an upstream marked
//! `required = false` never holds readiness back. `/metrics` follows: `upstream_up` and
//! `upstream_restarts`.

use crate::common;

use std::time::Duration;

use common::{EXE, Harness, Setup};
use serde_json::Value;

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Poll `url` (bounded) until it answers `status`; its body.
async fn until_status(url: &str, status: u16) -> String {
    for _ in 0..150 {
        let (got, body) = get(url).await;
        if got == status {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never answered {status}");
}

#[tokio::test]
async fn readyz_is_503_while_a_required_upstream_is_down_and_200_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::write_setup(dir.path(), &Setup::default());
    let (stop, calls) = (dir.path().join("stop"), dir.path().join("calls.jsonl"));
    // The demo upstream, started through a shell that refuses to start it while `stop`
    // exists; and an optional upstream nobody listens for.
    let config = std::fs::read_to_string(&path).unwrap().replace(
        &format!("command = \"{EXE}\"\nargs = [\"demo-tools\", \"--call-log\", \"{}\"]", calls.display()),
        &format!(
            "command = \"/bin/sh\"\nargs = [\"-c\", \"test -e {} && exit 1; exec {EXE} demo-tools --call-log {}\"]",
            stop.display(),
            calls.display()
        ),
    ) + "\n[[upstream]]\nid = \"optional\"\nurl = \"http://127.0.0.1:9/mcp\"\nrequired = false\n";
    assert!(config.contains("/bin/sh"), "{config}");
    std::fs::write(&path, config).unwrap();
    let h = Harness::at(dir, &path).await;
    let admin = h.serve_admin().await;
    let ready = format!("{admin}/readyz");

    let body: Value = serde_json::from_str(&until_status(&ready, 200).await).unwrap();
    assert_eq!(body["upstreams"]["demo"], "up", "{body}");
    assert_eq!(body["upstreams"]["optional"], "down", "{body}");
    assert_eq!(body["status"], "ready", "{body}");

    std::fs::write(&stop, "").unwrap();
    let killed = std::process::Command::new("pkill")
        .arg("-f")
        .arg(calls.to_str().unwrap())
        .status()
        .unwrap();
    assert!(killed.success(), "the demo upstream was running");
    let body: Value = serde_json::from_str(&until_status(&ready, 503).await).unwrap();
    assert_eq!(body["status"], "not ready", "{body}");
    assert_eq!(body["upstreams"]["demo"], "down", "{body}");
    let problems = body["problems"].to_string();
    assert!(
        problems.contains("upstream `demo` is not connected"),
        "{body}"
    );
    assert!(!problems.contains("optional"), "{body}");
    let (_, metrics) = get(&format!("{admin}/metrics")).await;
    assert_eq!(
        common::metric(&metrics, "mcp_warden_upstream_up{server=\"demo\"}"),
        Some(0.0)
    );

    std::fs::remove_file(&stop).unwrap();
    let body: Value = serde_json::from_str(&until_status(&ready, 200).await).unwrap();
    assert_eq!(body["upstreams"]["demo"], "up", "{body}");
    let (_, metrics) = get(&format!("{admin}/metrics")).await;
    assert_eq!(
        common::metric(&metrics, "mcp_warden_upstream_up{server=\"demo\"}"),
        Some(1.0)
    );
    assert_eq!(
        common::metric(
            &metrics,
            "mcp_warden_upstream_restarts_total{server=\"demo\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    // And it serves calls again.
    let echoed = h
        .call("demo_echo", serde_json::json!({"text": "back"}))
        .await
        .unwrap();
    assert_eq!(common::text(&echoed), "back");
}
