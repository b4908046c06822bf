//! A credential an agent puts into an argument no manifest redacts, or into its intent,
//! reaches the upstream as sent but never the audit log: every record holds a marker
//! with its kind and digest instead, and the chain still verifies. A credential an
//! upstream prints on its stderr, or that its command line holds, never reaches the
//! gateway's log or banner either.

use crate::common;

use std::sync::{Arc, Mutex};

use common::{EXE, Harness, text};
use serde_json::json;
use tokio::io::AsyncBufReadExt;

const AWS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXBhcnQ";

#[tokio::test]
async fn a_credential_in_arguments_or_intent_is_forwarded_but_never_audited() {
    let h = Harness::start().await;
    let github = format!("ghp_{}", "Z9".repeat(18));
    let sent = format!("deploy with {AWS_KEY} and {github}");
    let result = h
        .call(
            "demo_echo",
            json!({"text": sent, "intent": format!("test the token {JWT}")}),
        )
        .await
        .unwrap();
    assert_eq!(text(&result), sent, "the upstream got the text as sent");
    assert_eq!(h.upstream_calls()[0]["args"]["text"], json!(sent));

    let records = h.audit().await;
    let log = std::fs::read_to_string(h.audit_path()).unwrap();
    for secret in [AWS_KEY, github.as_str(), JWT] {
        assert!(!log.contains(secret), "`{secret}` is in the audit log");
    }
    let attempt = records.iter().find(|r| r["kind"] == "attempt").unwrap();
    let args = attempt["args"]["text"].as_str().unwrap();
    assert!(
        args.starts_with("deploy with [secret aws-access-key sha256:")
            && args.contains(" and [secret github-token sha256:"),
        "{args}"
    );
    let intent = attempt["intent"].as_str().unwrap();
    assert!(
        intent.starts_with("test the token [secret jwt sha256:"),
        "{intent}"
    );
    let outcome = records.iter().find(|r| r["kind"] == "outcome").unwrap();
    assert_eq!(outcome["intent"], attempt["intent"]);

    let path = h.audit_path();
    let (ok, report) = common::run_exe_async(&["audit", "verify", path.to_str().unwrap()]).await;
    assert!(ok, "{report}");
}

#[tokio::test]
async fn a_credential_an_upstream_prints_is_masked_in_the_gateways_log() {
    let dir = tempfile::tempdir().unwrap();
    let setup = common::Setup {
        config_extra: "[listen]\nhttp = \"127.0.0.1:0\"\n".into(),
        ..common::Setup::default()
    };
    let config = common::write_setup(dir.path(), &setup);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("command = \"{EXE}\"\nargs = [\"demo-tools\""),
        &format!(
            "command = \"sh\"\nargs = [\"-c\", \"echo 'connecting with key {AWS_KEY}' >&2; exec \\\"$0\\\" \\\"$@\\\"\", \"{EXE}\", \"demo-tools\""
        ),
    );
    assert!(text.contains("command = \"sh\""), "{text}");
    std::fs::write(&config, text).unwrap();
    let mut child = tokio::process::Command::new(EXE)
        .args(["serve", "--transport", "http", "--config"])
        .arg(&config)
        .env("MCP_WARDEN_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut reader = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let seen = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = reader.next_line().await {
            seen.lock().unwrap().push(line);
        }
    });
    // Wait for the upstream's line to be logged (the gateway logs its child's stderr).
    let logged = async {
        loop {
            // The child's line, logged, and the banner that shows its command line.
            let both = {
                let seen = lines.lock().unwrap();
                seen.iter().any(|l| l.contains("connecting with key"))
                    && seen.iter().any(|l| l.contains("upstream `demo`"))
            };
            if both {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), logged)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the upstream's stderr was not logged: {:?}",
                lines.lock().unwrap()
            )
        });
    child.kill().await.unwrap();
    let all = lines.lock().unwrap().join("\n");
    assert!(!all.contains(AWS_KEY), "{all}");
    assert!(
        all.contains("connecting with key [secret aws-access-key sha256:"),
        "{all}"
    );
}
