//! The Python MCP SDK's own client (PyPI `mcp` 2.x, installed into `.venv` by `.ci/run`)
//! through the gateway, over stdio (the client launches `mcp-warden serve`) and over
//! Streamable HTTP. In its default mode the client asks `server/discover` first and speaks
//! 2026-07-28 (no session: every request carries its own version and capabilities); in
//! legacy mode it opens a 2025-11-25 session with `initialize`. Either way it lists the
//! tools, an allowed call returns the upstream's answer (the upstream itself is on
//! 2025-11-25), and a refused call comes back as a tool error (`isError`) that the SDK
//! reads, and is audited.

use crate::common;

use std::path::Path;

use common::{EXE, Setup, read_lines, repo, write_setup};
use serde_json::Value;

fn python_client(args: &[&str]) -> Value {
    python_client_in("auto", args)
}

/// The client in `mode` (`auto` or `legacy`).
fn python_client_in(mode: &str, args: &[&str]) -> Value {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "run `python3 -m venv .venv && .venv/bin/pip install -r requirements-test.txt` (.ci/run does)"
    );
    let out = std::process::Command::new(python)
        .arg(repo().join("tests/clients/python_client.py"))
        .args(args)
        .env("MCP_WARDEN_TEST_MODE", mode)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_seen(seen: &Value, version: &str, audit: &Path) {
    assert_eq!(seen["protocol_version"], version, "{seen}");
    assert_eq!(seen["server"], "mcp-warden");
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"demo_echo") && tools.contains(&"demo_issue_refund"),
        "{tools:?}"
    );
    assert_eq!(seen["allowed"]["is_error"], false);
    assert_eq!(seen["allowed"]["text"][0], "from the python sdk");
    assert_eq!(seen["refused"]["is_error"], true);
    assert!(
        seen["refused"]["text"][0]
            .as_str()
            .unwrap()
            .starts_with("missing `intent`"),
        "{seen}"
    );
    let records = read_lines(audit);
    assert!(
        records
            .iter()
            .any(|r| r["kind"] == "attempt" && r["tool"] == "echo")
    );
    assert!(
        records.iter().any(|r| r["kind"] == "decision"
            && r["tool"] == "write_note"
            && r["stage"] == "intent")
    );
}

#[test]
fn the_python_sdk_client_works_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), &Setup::default());
    let seen = python_client(&[
        "stdio",
        EXE,
        "serve",
        "--transport",
        "stdio",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_seen(&seen, "2026-07-28", &dir.path().join("audit.jsonl"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_client_works_over_streamable_http() {
    let (dir, url, state) = common::http_gateway(&Setup::default()).await;
    let seen = tokio::task::spawn_blocking(move || python_client(&["http", &url]))
        .await
        .unwrap();
    state.audit.flush().await.unwrap();
    let audit = dir.path().join("audit.jsonl");
    assert_seen(&seen, "2026-07-28", &audit);
    // No session: the calls are kept together by the caller's chain.
    let attempt = read_lines(&audit)
        .into_iter()
        .find(|r| r["kind"] == "attempt")
        .unwrap();
    assert_eq!(attempt["session"], "http:chain:user:alice>agent:desktop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_client_in_legacy_mode_opens_a_session() {
    let (dir, url, state) = common::http_gateway(&Setup::default()).await;
    let seen = tokio::task::spawn_blocking(move || python_client_in("legacy", &["http", &url]))
        .await
        .unwrap();
    state.audit.flush().await.unwrap();
    let audit = dir.path().join("audit.jsonl");
    assert_seen(&seen, "2025-11-25", &audit);
    let attempt = read_lines(&audit)
        .into_iter()
        .find(|r| r["kind"] == "attempt")
        .unwrap();
    assert!(
        attempt["session"].as_str().unwrap().starts_with("http:")
            && !attempt["session"]
                .as_str()
                .unwrap()
                .starts_with("http:chain:"),
        "{attempt}"
    );
}
