//! Real third-party MCP servers behind the gateway, each with its shipped manifest (every
//! tool tiered and pinned): npm `@modelcontextprotocol/server-memory` and
//! `server-everything` (installed by `npm ci`), PyPI `mcp-server-time` and
//! `mcp-server-git` (installed into `.venv` by `.ci/run`). For each: the tools are listed,
//! none quarantined; an allowed call returns the server's real answer; a call policy does
//! not simply allow is refused, audited, and never changes the server's state.

use crate::common;

use std::path::{Path, PathBuf};

use common::{TestClient, repo, text};
use mcp_warden::config::Config;
use mcp_warden::gateway::State;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use serde_json::{Value, json};

/// Agents may read and write; `act` tools wait for an approver (none comes here).
const POLICY: &str = "p, role:assistant, */*, read, allow\n\
p, role:assistant, */*, transform, allow\n\
p, role:assistant, */*, act, approve\n\
g, agent:desktop, role:assistant\n\
g, user:alice, role:assistant\n";

fn installed(relative: &str, how: &str) -> PathBuf {
    let bin = repo().join(relative);
    assert!(
        bin.exists(),
        "{} is missing: {how} (.ci/run does)",
        bin.display()
    );
    bin
}

fn npm(name: &str) -> PathBuf {
    installed(&format!("node_modules/.bin/{name}"), "run `npm ci`")
}

fn pypi(name: &str) -> PathBuf {
    installed(
        &format!(".venv/bin/{name}"),
        "run `python3 -m venv .venv && .venv/bin/pip install -r requirements-test.txt`",
    )
}

struct Gateway {
    dir: tempfile::TempDir,
    client: RunningService<rmcp::RoleClient, TestClient>,
    state: std::sync::Arc<State>,
}

impl Gateway {
    /// A gateway with the shipped manifests in front of one upstream (`[[upstream]]` body).
    async fn start(upstream: impl FnOnce(&Path) -> String) -> Self {
        Self::with_roots(upstream, &[]).await
    }

    /// The same, with the shipped manifests' path roots replaced (see
    /// `common::shipped_manifests`).
    async fn with_roots(upstream: impl FnOnce(&Path) -> String, roots: &[(&str, &Path)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.csv"), POLICY).unwrap();
        let manifests = common::shipped_manifests(dir.path(), roots);
        let config = format!(
            "[gateway]\nmanifests = \"{manifests}\"\npolicy_model = \"{repo}/policies/model.conf\"\npolicy = \"policy.csv\"\naudit_log = \"audit.jsonl\"\n\n[approval]\ntimeout = \"1s\"\n\n[identity.stdio]\nagent = \"agent:desktop\"\non_behalf_of = \"user:alice\"\n\n[[upstream]]\n{}\n",
            upstream(dir.path()),
            repo = repo().display(),
            manifests = manifests.display(),
        );
        let path = dir.path().join("warden.toml");
        std::fs::write(&path, config).unwrap();
        let state = State::start(Config::load(&path).unwrap()).await.unwrap();
        let (client, _) = common::connect(&state).await;
        Self { dir, client, state }
    }

    async fn names(&self) -> Vec<String> {
        let tools = self.client.peer().list_all_tools().await.unwrap();
        tools.into_iter().map(|t| t.name.to_string()).collect()
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

    /// Assert a call was refused for want of approval and audited, with no attempt.
    async fn assert_held(&self, result: &CallToolResult, tool: &str) {
        assert_eq!(result.is_error, Some(true), "{result:?}");
        assert!(
            text(result).contains("expired after 1s without a decision"),
            "{}",
            text(result)
        );
        let audit = self.audit().await;
        assert!(
            !audit
                .iter()
                .any(|r| r["kind"] == "attempt" && r["tool"] == tool)
        );
        assert!(
            audit
                .iter()
                .any(|r| r["kind"] == "decision" && r["tool"] == tool)
        );
    }
}

fn manifest_tools(file: &str) -> usize {
    let text = std::fs::read_to_string(repo().join("tool-manifests").join(file)).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    manifest["tools"].as_table().unwrap().len()
}

#[tokio::test]
async fn server_memory_reads_and_writes_but_never_deletes_without_a_human() {
    let gw = Gateway::start(|dir| {
        format!(
            "id = \"memory\"\ncommand = \"{}\"\nenv = {{ MEMORY_FILE_PATH = \"{}\" }}",
            npm("mcp-server-memory").display(),
            dir.join("memory.jsonl").display()
        )
    })
    .await;
    assert_eq!(gw.names().await.len(), manifest_tools("memory.toml"));
    let created = gw
        .call(
            "memory_create_entities",
            json!({"entities": [{"name": "kettle", "entityType": "product", "observations": ["arrived broken"]}], "intent": "remember the complaint"}),
        )
        .await;
    assert_ne!(created.is_error, Some(true), "{created:?}");
    let found = gw
        .call("memory_search_nodes", json!({"query": "kettle"}))
        .await;
    assert!(text(&found).contains("arrived broken"), "{}", text(&found));
    let delete = gw
        .call(
            "memory_delete_entities",
            json!({"entityNames": ["kettle"], "intent": "tidy up"}),
        )
        .await;
    gw.assert_held(&delete, "delete_entities").await;
    let still = gw
        .call("memory_open_nodes", json!({"names": ["kettle"]}))
        .await;
    assert!(
        text(&still).contains("kettle"),
        "the server never saw the delete"
    );
}

#[tokio::test]
async fn server_everything_answers_through_the_gateway_and_keeps_its_environment_to_itself() {
    let gw = Gateway::start(|_| {
        format!(
            "id = \"everything\"\ncommand = \"{}\"",
            npm("mcp-server-everything").display()
        )
    })
    .await;
    let names = gw.names().await;
    assert_eq!(names.len(), manifest_tools("everything.toml"), "{names:?}");
    let echo = gw
        .call("everything_echo", json!({"message": "through the gateway"}))
        .await;
    assert!(
        text(&echo).contains("through the gateway"),
        "{}",
        text(&echo)
    );
    let sum = gw.call("everything_get-sum", json!({"a": 2, "b": 3})).await;
    assert!(text(&sum).contains('5'), "{}", text(&sum));
    let structured = gw
        .call(
            "everything_get-structured-content",
            json!({"location": "New York"}),
        )
        .await;
    assert!(
        structured.structured_content.is_some(),
        "structured content passes through: {structured:?}"
    );
    let links = gw
        .call("everything_get-resource-links", json!({"count": 2}))
        .await;
    let content = serde_json::to_value(&links.content).unwrap();
    let uris: Vec<String> = content
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "resource_link")
        .map(|c| c["uri"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(uris.len(), 2, "{content}");
    assert!(
        uris.iter().all(|u| u.starts_with("everything+")),
        "links are renamed: {uris:?}"
    );
    let read = gw
        .client
        .peer()
        .read_resource(rmcp::model::ReadResourceRequestParams::new(uris[0].clone()))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&read.contents).unwrap()[0]["uri"],
        uris[0].as_str(),
        "a renamed link reads through the gateway"
    );
    let env = gw
        .call("everything_get-env", json!({"intent": "debug the config"}))
        .await;
    gw.assert_held(&env, "get-env").await;
}

/// By default (`protocol = "auto"`) the gateway asks `server/discover` first, and this
/// server (the Python SDK's) speaks 2026-07-28 to it; with `protocol = "2025-11-25"` the
/// connection opens with `initialize`. Calls, the server's schema and the audit are the
/// same either way.
#[tokio::test]
async fn mcp_server_time_from_pypi_answers_through_the_gateway() {
    for (protocol, speaks) in [
        ("", "2026-07-28"),
        ("protocol = \"2025-11-25\"\n", "2025-11-25"),
    ] {
        time_server_through_the_gateway(protocol, speaks).await;
    }
}

async fn time_server_through_the_gateway(protocol: &'static str, speaks: &str) {
    let gw = Gateway::start(|_| {
        format!(
            "id = \"time\"\n{protocol}command = \"{}\"",
            pypi("mcp-server-time").display()
        )
    })
    .await;
    assert_eq!(gw.state.upstreams.speaks("time").as_deref(), Some(speaks));
    assert_eq!(
        gw.names().await,
        ["time_get_current_time", "time_convert_time"]
    );
    let now = gw
        .call("time_get_current_time", json!({"timezone": "Europe/Paris"}))
        .await;
    assert_ne!(now.is_error, Some(true), "{now:?}");
    assert!(text(&now).contains("Europe/Paris"), "{}", text(&now));
    let bad = gw.call("time_get_current_time", json!({})).await;
    assert_eq!(
        bad.is_error,
        Some(true),
        "the server's own schema is enforced by the gateway"
    );
    assert!(gw.audit().await.iter().any(|r| r["stage"] == "arguments"));
}

#[tokio::test]
async fn mcp_server_git_from_pypi_reads_the_repository_and_holds_a_reset() {
    let repo_dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(repo_dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    std::fs::write(repo_dir.path().join("a.txt"), "one").unwrap();
    git(&["add", "a.txt"]);
    git(&["commit", "-q", "-m", "first commit through the gateway"]);
    std::fs::write(repo_dir.path().join("b.txt"), "two").unwrap();
    git(&["add", "b.txt"]);
    let path = repo_dir.path().display().to_string();
    let gw = Gateway::with_roots(
        |_| {
            format!(
                "id = \"git\"\ncommand = \"{}\"\nargs = [\"--repository\", \"{path}\"]",
                pypi("mcp-server-git").display()
            )
        },
        &[("/srv/repo", repo_dir.path())],
    )
    .await;
    assert_eq!(gw.names().await.len(), manifest_tools("git.toml"));
    let log = gw.call("git_git_log", json!({"repo_path": path})).await;
    assert!(
        text(&log).contains("first commit through the gateway"),
        "{}",
        text(&log)
    );
    // Another repository on the same machine is out of bounds for the shipped rule.
    let elsewhere = gw
        .call("git_git_log", json!({"repo_path": format!("{path}/../..")}))
        .await;
    assert_eq!(elsewhere.is_error, Some(true), "{elsewhere:?}");
    assert!(
        text(&elsewhere).contains("(`path` rule)"),
        "{}",
        text(&elsewhere)
    );
    let reset = gw
        .call(
            "git_git_reset",
            json!({"repo_path": path, "intent": "start over"}),
        )
        .await;
    gw.assert_held(&reset, "git_reset").await;
    let staged = gw
        .call("git_git_diff_staged", json!({"repo_path": path}))
        .await;
    assert!(
        text(&staged).contains("b.txt"),
        "the staged file is still staged: {}",
        text(&staged)
    );
}
