//! The Python MCP SDK's own client (PyPI `mcp` 2.x, installed into `.venv` by `.ci/run`)
//! through the gateway, over stdio (the client launches `mcp-warden serve`) and over
//! Streamable HTTP. The client first tries 2026-07-28's `server/discover`; the gateway
//! answers "method not found" and the client settles on 2025-11-25 through `initialize`.
//! It lists the tools, an allowed call returns the upstream's answer, and a refused call
//! comes back as a tool error (`isError`) that the SDK reads, and is audited.

use crate::common;

use std::path::Path;

use common::{EXE, Setup, read_lines, repo, write_setup};
use serde_json::Value;

fn python_client(args: &[&str]) -> Value {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "run `python3 -m venv .venv && .venv/bin/pip install -r requirements-test.txt` (.ci/run does)"
    );
    let out = std::process::Command::new(python)
        .arg(repo().join("tests/clients/python_client.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_seen(seen: &Value, audit: &Path) {
    assert_eq!(seen["protocol_version"], "2025-11-25", "{seen}");
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
    assert_seen(&seen, &dir.path().join("audit.jsonl"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_client_works_over_streamable_http() {
    let (dir, url, state) = common::http_gateway(&Setup::default()).await;
    let seen = tokio::task::spawn_blocking(move || python_client(&["http", &url]))
        .await
        .unwrap();
    state.audit.flush().await.unwrap();
    assert_seen(&seen, &dir.path().join("audit.jsonl"));
}
