//! `mcp-warden serve --config F` launched by a client as a child process: the client
//! lists and calls tools over its stdin/stdout, and refusals work the same way.

use crate::common;

use common::{EXE, Setup, TestClient, read_lines, text, write_setup};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;

#[tokio::test]
async fn a_client_launching_the_gateway_over_stdio_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), &Setup::default());
    let mut cmd = tokio::process::Command::new(EXE);
    cmd.args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path());
    let client = TestClient::default()
        .serve(TokioChildProcess::new(cmd).unwrap())
        .await
        .unwrap();
    let tools = client.peer().list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "demo_read_note"));
    let args = json!({"text": "over stdio"}).as_object().unwrap().clone();
    let result = client
        .peer()
        .call_tool(CallToolRequestParams::new("demo_echo").with_arguments(args))
        .await
        .unwrap();
    assert_eq!(text(&result), "over stdio");
    let refused = client
        .peer()
        .call_tool(
            CallToolRequestParams::new("demo_send_message").with_arguments(
                json!({"to": "a@example.com", "body": "x", "intent": "y"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    assert!(text(&refused).contains("expired after 1s without a decision"));
    client.cancel().await.unwrap();
    let audit = read_lines(&dir.path().join("audit.jsonl"));
    // Signed checkpoints come between records (at least every second) and at shutdown.
    let kinds: Vec<&str> = audit
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .filter(|k| *k != "checkpoint")
        .collect();
    assert_eq!(
        kinds,
        ["attempt", "outcome", "approval", "approval", "decision"],
        "{audit:?}"
    );
    assert_eq!(
        audit.last().unwrap()["kind"],
        "checkpoint",
        "the clean shutdown signs what it wrote"
    );
    assert!(audit[0]["session"].as_str().unwrap().starts_with("stdio:"));
}

/// A tool name the caller made up, with a newline and an ESC sequence in it, reaches the
/// gateway's log escaped: no forged log line, no terminal control.
#[tokio::test]
async fn what_a_caller_sends_reaches_the_log_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), &Setup::default());
    let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
    let mut cmd = tokio::process::Command::new(EXE);
    cmd.args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env("MCP_WARDEN_LOG", "info");
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::from(log))
        .spawn()
        .unwrap();
    let client = ().serve(transport).await.unwrap();
    let forged = "demo_nothing\n2026-01-01T00:00:00Z  INFO approved by user:cfo\u{1b}[2J";
    let refused = client
        .peer()
        .call_tool(CallToolRequestParams::new(forged))
        .await;
    assert!(refused.is_err() || refused.unwrap().is_error == Some(true));
    client.cancel().await.unwrap();
    let logged = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap();
    assert!(logged.contains("demo_nothing\\u{000A}2026"), "{logged}");
    assert!(!logged.contains('\u{1b}'), "no raw ESC in the log");
    assert!(
        !logged
            .lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "no forged line: {logged}"
    );
}
