//! The approvals page in a real browser (Debian's Chromium, driven by playwright-core):
//! an approver signs in from the start-up link, the page shows a call that starts waiting
//! after it loaded (it refreshes by itself) with who, for whom, intent, tool, tier and
//! arguments with hidden characters escaped, and clicking Approve lets the call finish.

use crate::common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::{Harness, Setup, repo, text};
use mcp_warden::admin::auth::token_hash;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

common::on_both_stores!(clicking_approve_on_the_page_lets_the_waiting_call_finish(
    flavor = "multi_thread",
    worker_threads = 2
),);

const CAROL: &str = "carol-browser-token";

async fn next(lines: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the browser script answers within a minute")
        .unwrap()
        .expect("the browser script ended early; see its stderr above");
    serde_json::from_str(&line).unwrap()
}

async fn clicking_approve_on_the_page_lets_the_waiting_call_finish() {
    let h = Arc::new(
        Harness::with(Setup {
            approval_timeout: "5m".into(),
            config_extra: format!(
                "[[approver]]\nidentity = \"user:carol\"\nsha256 = \"{}\"\n",
                token_hash(CAROL)
            ),
            ..Setup::default()
        })
        .await,
    );
    let url = h.serve_admin().await;
    let shot = h.dir.path().join("approvals-page.png");
    let mut browser = tokio::process::Command::new("node")
        .arg(repo().join("tests/browser/approve.mjs"))
        .args([url.as_str(), CAROL, shot.to_str().unwrap()])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (installed by .ci/run)");
    let mut lines = BufReader::new(browser.stdout.take().unwrap()).lines();
    let ready = next(&mut lines).await;
    assert_eq!(ready["identity"], "user:carol");
    assert!(
        !ready["url"].as_str().unwrap().contains(CAROL),
        "the token leaves the address bar"
    );

    let waiting = common::spawn_call(
        &h,
        "demo_issue_refund",
        json!({"order_id": "10\u{202e}01", "amount_cents": 4200, "intent": "refund order 1001\u{200b} as promised"}),
    );
    let seen = next(&mut lines).await["seen"].clone();
    assert_eq!(seen["tool"], "demo/issue_refund");
    assert_eq!(seen["tier"], "act");
    assert_eq!(seen["agent"], "agent:desktop");
    assert_eq!(seen["principal"], "user:alice");
    assert_eq!(seen["intent"], "refund order 1001\\u{200B} as promised");
    let args = seen["args"].as_str().unwrap();
    assert!(
        args.contains("10\\u{202E}01"),
        "bidi override shown escaped: {args}"
    );
    assert!(!args.contains('\u{202e}'), "{args}");
    assert!(args.contains("4200"), "{args}");
    assert_eq!(seen["escapes"], 2);
    assert!(seen["left"].as_str().unwrap().contains("left"), "{seen}");
    assert!(
        h.upstream_calls().is_empty(),
        "nothing forwarded before the click"
    );

    let done = next(&mut lines).await;
    assert!(
        done["done"].as_str().unwrap().starts_with("Approved"),
        "{done}"
    );
    let result = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text(&result), "refunded 42.00 for order 10\u{202e}01");
    assert_eq!(h.upstream_calls().len(), 1);
    let approved = h
        .audit()
        .await
        .into_iter()
        .find(|a| a["event"] == "approved")
        .expect("the click is audited");
    assert_eq!(approved["actor"], "user:carol");
    assert_eq!(
        approved["approval"]["verdicts"][0]["comment"],
        "checked with the customer"
    );
    assert!(browser.wait().await.unwrap().success());
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a screenshot was taken"
    );
    let _ = std::fs::copy(&shot, repo().join("target/approvals-page.png"));
}
