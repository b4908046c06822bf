//! The gateway in front of a real third-party server, npm
//! `@modelcontextprotocol/server-filesystem` (installed by `.ci/run` with `npm ci`), with
//! the shipped `tool-manifests/filesystem.toml`: all 14 tools pinned and tiered.

use crate::common;

use std::path::PathBuf;

use common::{TestClient, repo, text};
use mcp_warden::config::Config;
use mcp_warden::gateway::State;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use serde_json::{Value, json};

fn server_bin() -> PathBuf {
    let bin = repo().join("node_modules/.bin/mcp-server-filesystem");
    assert!(
        bin.exists(),
        "{} is missing: run `npm ci` in the repository (the CI script does)",
        bin.display()
    );
    bin
}

struct Fs {
    dir: tempfile::TempDir,
    client: RunningService<rmcp::RoleClient, TestClient>,
    state: std::sync::Arc<State>,
}

impl Fs {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("hello.txt"), "hello from disk").unwrap();
        let data = std::fs::canonicalize(&data).unwrap();
        let manifests = common::shipped_manifests(dir.path(), &[("/srv/data", &data)]);
        let config = format!(
            "[gateway]\nmanifests = \"{manifests}\"\npolicy_model = \"{repo}/policies/model.conf\"\npolicy = \"{repo}/policies/policy.csv\"\naudit_log = \"audit.jsonl\"\n\n[approval]\ntimeout = \"1s\"\n\n[identity.stdio]\nagent = \"agent:desktop\"\non_behalf_of = \"user:alice\"\n\n[[upstream]]\nid = \"fs\"\ncommand = \"{bin}\"\nargs = [\"{data}\"]\n",
            repo = repo().display(),
            manifests = manifests.display(),
            bin = server_bin().display(),
            data = data.display(),
        );
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, config).unwrap();
        let state = State::start(Config::load(&path).unwrap()).await.unwrap();
        let (client, _) = common::connect(&state).await;
        Self { dir, client, state }
    }

    fn data(&self) -> PathBuf {
        // The server resolves symlinks (macOS /var → /private/var; harmless here).
        std::fs::canonicalize(self.dir.path().join("data")).unwrap()
    }

    async fn call(&self, name: &str, args: Value) -> CallToolResult {
        let args = args.as_object().unwrap().clone();
        self.client
            .peer()
            .call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(args))
            .await
            .unwrap()
    }

    async fn audit(&self) -> Vec<Value> {
        self.state.audit.flush().await.unwrap();
        common::audit_records(&self.dir.path().join("audit.jsonl"))
    }
}

#[tokio::test]
async fn all_fourteen_tools_are_listed_pinned_and_tiered() {
    let fs = Fs::start().await;
    let tools = fs.client.peer().list_all_tools().await.unwrap();
    assert_eq!(
        tools.len(),
        14,
        "every tool matches its pin: {:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    assert!(tools.iter().all(|t| t.name.starts_with("fs_")));
}

#[tokio::test]
async fn reads_and_writes_pass_and_moves_wait_for_approval() {
    let fs = Fs::start().await;
    let data = fs.data();
    let hello = data.join("hello.txt").display().to_string();
    let read = fs
        .call(
            "fs_read_text_file",
            json!({"path": hello, "intent": "read the greeting"}),
        )
        .await;
    assert_eq!(text(&read), "hello from disk");

    let new = data.join("new.txt").display().to_string();
    let write = fs
        .call(
            "fs_write_file",
            json!({"path": new, "content": "secret text", "intent": "save the draft"}),
        )
        .await;
    assert_ne!(write.is_error, Some(true), "{write:?}");
    assert_eq!(
        std::fs::read_to_string(data.join("new.txt")).unwrap(),
        "secret text"
    );

    let no_intent = fs
        .call(
            "fs_write_file",
            json!({"path": data.join("other.txt").display().to_string(), "content": "x"}),
        )
        .await;
    assert_eq!(no_intent.is_error, Some(true));
    assert!(text(&no_intent).contains("missing `intent`"));
    assert!(
        !data.join("other.txt").exists(),
        "a refused write never happens"
    );

    let moved = fs.call("fs_move_file", json!({"source": hello, "destination": data.join("gone.txt").display().to_string(), "intent": "tidy up"})).await;
    assert_eq!(moved.is_error, Some(true));
    assert!(
        text(&moved).contains("expired after 1s without a decision"),
        "{}",
        text(&moved)
    );
    assert!(
        data.join("hello.txt").exists(),
        "a refused move never happens"
    );

    let audit = fs.audit().await;
    let write_attempt = audit
        .iter()
        .find(|r| r["kind"] == "attempt" && r["tool"] == "write_file")
        .unwrap();
    assert_eq!(write_attempt["args"]["content"], "[redacted]");
    assert_eq!(write_attempt["tier"], "transform");
    let move_record = audit
        .iter()
        .find(|r| r["requested"] == "fs_move_file")
        .unwrap();
    assert_eq!(move_record["tier"], "act");
    assert_eq!(move_record["decision"], "deny");
    assert_eq!(move_record["policy_effect"], "approve");
}

/// The shipped path rules hold every path inside the served directory before the server
/// sees it: a read or a write that climbs out (even one the server's own checks might
/// catch) is refused at the gateway, with no attempt record, and the refusal is audited.
#[tokio::test]
async fn paths_that_leave_the_served_directory_are_refused_before_the_server() {
    let fs = Fs::start().await;
    let data = fs.data().display().to_string();
    let outside = std::fs::canonicalize(fs.dir.path())
        .unwrap()
        .join("outside.txt");
    std::fs::write(&outside, "not served").unwrap();
    let escapes = [
        (
            "fs_read_text_file",
            json!({"path": format!("{data}/../outside.txt")}),
        ),
        (
            "fs_read_multiple_files",
            json!({"paths": [format!("{data}/hello.txt"), format!("{data}/../outside.txt")]}),
        ),
        (
            "fs_write_file",
            json!({"path": format!("{data}/..%2foutside.txt"), "content": "x", "intent": "save"}),
        ),
        (
            "fs_get_file_info",
            json!({"path": format!("{data}/hello.txt\n/etc/passwd")}),
        ),
    ];
    for (tool, args) in escapes {
        let refused = fs.call(tool, args).await;
        assert_eq!(refused.is_error, Some(true), "{tool}: {refused:?}");
        assert!(
            text(&refused).contains("(`path` rule)"),
            "{tool}: {}",
            text(&refused)
        );
    }
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "not served");
    let audit = fs.audit().await;
    assert!(
        audit.iter().all(|r| r["kind"] != "attempt"),
        "nothing was forwarded"
    );
    let refusals: Vec<&Value> = audit.iter().filter(|r| r["stage"] == "arguments").collect();
    assert_eq!(refusals.len(), 4, "{audit:?}");
    assert!(
        refusals
            .iter()
            .all(|r| r["error"].as_str().unwrap().contains("(`path` rule)"))
    );
}
