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

/// Over stdio too, every malformed line gets its JSON-RPC error (with the id when it can
/// be read), nothing is forwarded, the session goes on, and each refusal is audited with
/// the stdio identity.
#[tokio::test]
async fn malformed_lines_on_stdio_get_json_rpc_errors_and_the_session_goes_on() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), &Setup::default());
    let mut child = std::process::Command::new(EXE)
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut send = |line: &str| {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    };
    let mut read = || -> serde_json::Value {
        let mut answer = String::new();
        stdout.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap()
    };
    send(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    );
    assert_eq!(read()["id"], 1);
    send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    let mut ask = |line: &str| {
        send(line);
        read()
    };
    for (line, code, id) in [
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/li"#,
            -32700,
            json!(null),
        ),
        (
            r#"{"jsonrpc":"1.0","id":3,"method":"tools/list"}"#,
            -32600,
            json!(3),
        ),
        (
            r#"{"jsonrpc":"2.0","id":null,"method":"tools/list"}"#,
            -32600,
            json!(null),
        ),
        (
            r#"[{"jsonrpc":"2.0","id":4,"method":"ping"}]"#,
            -32600,
            json!(null),
        ),
        (
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"demo_echo","name":"x"}}"#,
            -32602,
            json!(5),
        ),
    ] {
        let answer = ask(line);
        assert_eq!(
            (&answer["error"]["code"], &answer["id"]),
            (&json!(code), &id),
            "{line}: {answer}"
        );
    }
    // A line over 4 MiB is answered, not dropped (the caller would wait for ever).
    let huge = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"ping\",\"params\":{{\"pad\":\"{}\"}}}}",
        "x".repeat(4 << 20)
    );
    let answer = ask(&huge);
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over 4194304 bytes")
    );
    let pong = ask(r#"{"jsonrpc":"2.0","id":6,"method":"ping"}"#);
    assert_eq!(
        (&pong["id"], &pong["result"]),
        (&json!(6), &json!({})),
        "the session goes on"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let audit = read_lines(&dir.path().join("audit.jsonl"));
    let refused: Vec<_> = audit.iter().filter(|r| r["stage"] == "transport").collect();
    assert_eq!(refused.len(), 6, "{audit:?}");
    assert!(
        refused
            .iter()
            .all(|r| r["chain"] == json!(["user:alice", "agent:desktop"]))
    );
    assert!(
        !dir.path().join("calls.jsonl").exists()
            || read_lines(&dir.path().join("calls.jsonl")).is_empty()
    );
}
