//! The README's approval walk-through with the real binary: `serve` prints where the MCP
//! endpoint and the approvals page are; `mcp-warden call` makes an `act` call that waits;
//! `mcp-warden approvals list / approve` (with the token the gateway generated) decides
//! it; the call prints its result; `audit show` tells the whole story and `audit verify`
//! passes.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{EXE, Setup, write_setup};

fn warden(config: &Path, args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_act_call_waits_is_approved_from_the_cli_and_the_audit_tells_the_story() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(
        dir.path(),
        &Setup {
            approval_timeout: "5m".into(),
            config_extra: "[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[[approver]]\nidentity = \"user:carol\"\n".into(),
            ..Setup::default()
        },
    );
    let (_gateway, endpoint, page) = common::serve_exe(&config).await;
    assert!(
        endpoint.ends_with("/mcp") && page.starts_with("http://127.0.0.1:"),
        "{endpoint} {page}"
    );

    let call = tokio::process::Command::new(EXE)
        .args(["call", "--url", &endpoint, "demo_issue_refund"])
        .arg(r#"{"order_id": "1001", "amount_cents": 1200, "intent": "refund the damaged kettle"}"#)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let mut id = String::new();
    for _ in 0..100 {
        let list = warden(&config, &["approvals", "--url", &page, "list"]);
        assert!(
            list.status.success(),
            "{}",
            String::from_utf8_lossy(&list.stderr)
        );
        if let Some(first) = stdout(&list).split_whitespace().next() {
            id = first.to_string();
            assert!(
                stdout(&list).contains("demo/issue_refund [act]  agent:desktop for user:alice"),
                "{}",
                stdout(&list)
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!id.is_empty(), "the waiting call is listed");
    let approve = warden(
        &config,
        &[
            "approvals",
            "--url",
            &page,
            "approve",
            &id,
            "--comment",
            "kettle photo checked",
        ],
    );
    assert!(
        approve.status.success(),
        "{}",
        String::from_utf8_lossy(&approve.stderr)
    );

    let done = tokio::time::timeout(Duration::from_secs(30), call.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(stdout(&done).trim(), "refunded 12.00 for order 1001");
    assert!(String::from_utf8_lossy(&done.stderr).contains("waiting for a human approver"));

    // The outcome record follows the answer by at most 20 ms (the next group commit).
    let mut story = String::new();
    for _ in 0..100 {
        story = stdout(&warden(&config, &["audit", "show"]));
        if story.contains("OK       demo/issue_refund") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let short = &id[..8];
    let expected = [
        format!(
            "WAITING  demo/issue_refund by agent:desktop for user:alice for approval (request {short})"
        ),
        format!("APPROVED request {short} by user:carol: \"kettle photo checked\""),
        format!("USED     approval {short} for demo/issue_refund"),
        "ALLOWED  demo/issue_refund by agent:desktop for user:alice, approved by user:carol"
            .to_string(),
        "OK       demo/issue_refund".to_string(),
    ];
    let mut at = 0;
    for e in &expected {
        let found = story[at..]
            .find(e.as_str())
            .unwrap_or_else(|| panic!("`{e}` in order in:\n{story}"));
        at += found + e.len();
    }
    assert!(warden(&config, &["audit", "verify"]).status.success());
}
