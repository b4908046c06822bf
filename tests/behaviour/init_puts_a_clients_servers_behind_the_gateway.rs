//! `mcp-warden init --from` on the config files of Claude Desktop, Claude Code, Cursor and
//! VS Code, each naming real servers (the bundled demo server, npm server-filesystem and
//! server-memory, PyPI mcp-server-time), one server that cannot start, and a credential in
//! `env`. For each: every server that starts gets an upstream and a manifest, the broken
//! one is reported and left out, the credential is only in the 0600 env file, `check`
//! passes on what was written, and the Python SDK's client calls tools through it. Then:
//! nothing is overwritten without `--force`, `--write-client-config` rewrites the
//! client's file after a backup, and the README's personal-mode walk-through: the user
//! confirms their own agent's `act` call with the approver token init printed once.

use crate::common;

use std::path::{Path, PathBuf};

use common::{EXE, read_lines, repo, run_exe_async};
use mcp_warden::admin::auth::token_hash;
use serde_json::{Value, json};

const SECRET: &str = "sk-ant-init0test0credential0never0in0clear";
/// The gateway-held header a Streamable HTTP server's entry carries.
const HEADER_SECRET: &str = "Bearer header0credential0never0in0clear";

fn installed(relative: &str) -> String {
    let path = repo().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `npm ci` and `.venv/bin/pip install -r requirements-test.txt` (.ci/run does)",
        path.display()
    );
    path.display().to_string()
}

/// The servers every client's file names, as `(name, entry)`; `data` is the directory
/// server-filesystem may use.
fn servers(data: &Path) -> Vec<(&'static str, Value)> {
    vec![
        (
            "demo",
            json!({"command": EXE, "args": ["demo-tools"], "env": {"DEMO_API_KEY": SECRET}}),
        ),
        (
            "File System",
            json!({"command": installed("node_modules/.bin/mcp-server-filesystem"), "args": [data]}),
        ),
        (
            "memory",
            json!({"command": installed("node_modules/.bin/mcp-server-memory")}),
        ),
        (
            "time",
            json!({"command": installed(".venv/bin/mcp-server-time")}),
        ),
        ("broken", json!({"command": "/nonexistent/mcp-server"})),
    ]
}

/// A client's config file as that client writes it; `http` is a Streamable HTTP
/// server's URL for the clients whose file can name one.
fn client_file(dir: &Path, client: &str, data: &Path, http: &str) -> PathBuf {
    let mut list = serde_json::Map::new();
    let remote = json!({"url": http, "headers": {"Authorization": HEADER_SECRET}});
    match client {
        "claude-code" | "vscode" => {
            let mut remote = remote;
            remote["type"] = json!("http");
            list.insert("remote".into(), remote);
        }
        "cursor" => {
            list.insert("remote".into(), remote);
        }
        _ => {}
    }
    for (name, mut entry) in servers(data) {
        match client {
            // Claude Code names the transport and takes `${VAR:-default}`.
            "claude-code" => {
                entry["type"] = json!("stdio");
                if name == "time" {
                    entry["env"] = json!({"TZ": "${MCP_WARDEN_TEST_TZ:-UTC}"});
                }
            }
            // VS Code names the transport too.
            "vscode" => entry["type"] = json!("stdio"),
            _ => {}
        }
        list.insert(name.to_string(), entry);
    }
    let (path, text) = match client {
        "claude-desktop" => (
            dir.join("claude_desktop_config.json"),
            serde_json::to_string_pretty(
                &json!({"mcpServers": list, "globalShortcut": "Ctrl+Space"}),
            )
            .unwrap(),
        ),
        "claude-code" => (
            dir.join(".mcp.json"),
            serde_json::to_string_pretty(&json!({ "mcpServers": list })).unwrap(),
        ),
        "cursor" => (
            dir.join(".cursor/mcp.json"),
            serde_json::to_string_pretty(&json!({ "mcpServers": list })).unwrap(),
        ),
        // VS Code's file has comments and trailing commas.
        "vscode" => {
            let body = serde_json::to_string_pretty(&json!({ "servers": list })).unwrap();
            let text = format!(
                "// VS Code MCP servers\n{}",
                body.replacen("\"servers\": {", "\"servers\": { /* mine */", 1)
                    .replacen("\n}", ",\n}", 1)
            );
            (dir.join(".vscode/mcp.json"), text)
        }
        other => panic!("{other}"),
    };
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// The approver token init printed (the line after the one that announces it).
fn printed_token(out: &str) -> String {
    let mut lines = out.lines();
    lines
        .find(|l| l.starts_with("your approver token"))
        .and_then(|_| lines.next())
        .map(|l| l.trim().to_string())
        .filter(|t| t.starts_with("mwa_"))
        .unwrap_or_else(|| panic!("no approver token printed: {out}"))
}

async fn init(from: &Path, dir: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "init",
        "--from",
        from.to_str().unwrap(),
        "--dir",
        dir.to_str().unwrap(),
        "--user",
        "alice",
    ];
    args.extend_from_slice(extra);
    run_exe_async(&args).await
}

/// Every file under `dir`, with its text (binary files skipped).
fn texts(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(texts(&path));
        } else if let Ok(text) = std::fs::read_to_string(&path) {
            out.push((path, text));
        }
    }
    out
}

/// Move the written admin listener to a free port, so gateways of tests running at once
/// do not take each other's.
fn free_admin_port(config: &Path) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains("127.0.0.1:8788"));
    std::fs::write(
        config,
        text.replace("127.0.0.1:8788", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
}

/// The Python SDK's client over stdio, launching the gateway on `config` as the client's
/// new entry says, with one more call (`extra`).
fn python_client(config: &Path, extra: Value) -> Value {
    let python = repo().join(".venv/bin/python");
    let out = std::process::Command::new(python)
        .arg(repo().join("tests/clients/python_client.py"))
        .args(["stdio", EXE, "serve", "--config", config.to_str().unwrap()])
        .env("MCP_WARDEN_TEST_CALL", extra.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn check_written(client: &str) {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("note.txt"), "hello from the data dir").unwrap();
    let (_http_server, url) = common::demo_over_http(&home.path().join("http-calls.jsonl"));
    let from = client_file(home.path(), client, &data, &url);
    let http = client != "claude-desktop";
    let dir = home.path().join("governed");
    let (ok, out) = init(&from, &dir, &[]).await;
    assert!(ok, "{client}: {out}");

    // Every server that starts has an upstream and a manifest; the broken one is named
    // with why, and left out (commented).
    let config = std::fs::read_to_string(dir.join("warden.toml")).unwrap();
    let ids = ["demo", "file-system", "memory", "time"];
    for id in ids.iter().chain(http.then_some(&"remote")) {
        assert!(
            dir.join(format!("tool-manifests/{id}.toml")).exists(),
            "{client}: {id}: {out}"
        );
        assert!(config.contains(&format!("\nid = \"{id}\"")), "{config}");
    }
    assert!(!dir.join("tool-manifests/broken.toml").exists());
    assert!(
        out.contains("`broken` did not start") && out.contains("/nonexistent/mcp-server"),
        "{out}"
    );
    assert!(config.contains("# id = \"broken\""), "{config}");
    assert!(config.contains("agent:") && config.contains("user:alice"));

    // The credentials are only in the env file, which only its owner may read.
    for (path, text) in texts(&dir) {
        let secrets = path.ends_with("secrets.env");
        assert_eq!(text.contains(SECRET), secrets, "{}", path.display());
        assert_eq!(
            text.contains(HEADER_SECRET),
            secrets && http,
            "{}",
            path.display()
        );
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("secrets.env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(out.contains("env `DEMO_API_KEY`"), "{out}");
    // The user's approver token is printed once; only its hash is written.
    let token = printed_token(&out);
    assert!(config.contains(&token_hash(&token)), "{config}");
    for (path, text) in texts(&dir) {
        assert!(!text.contains(&token), "{}", path.display());
    }

    // `check` passes on what init wrote, upstreams started and compared with their pins.
    let config_path = dir.join("warden.toml");
    let (ok, checked) = run_exe_async(&["check", "--config", config_path.to_str().unwrap()]).await;
    assert!(ok && checked.contains("0 error(s)"), "{client}: {checked}");
    assert!(!checked.contains("others may read"), "{checked}");
    // Loosened, the file of credentials is pointed at.
    let secrets = dir.join("secrets.env");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, loose) = run_exe_async(&[
        "check",
        "--offline",
        "--config",
        config_path.to_str().unwrap(),
    ])
    .await;
    assert!(
        loose.contains("others may read this file of credentials"),
        "{loose}"
    );
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The client's new entry launches the gateway on the written config (its admin
    // listener moved off the written port: the tests of each client run at once).
    free_admin_port(&config_path);
    assert!(
        out.contains(&format!("\"{}\"", config_path.display())),
        "{out}"
    );
    let read = json!({"name": "file-system_read_text_file", "arguments": {
        "path": data.join("note.txt"), "intent": "read the note"}});
    let seen = tokio::task::spawn_blocking(move || python_client(&config_path, read))
        .await
        .unwrap();
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let remote = http.then_some("remote_echo");
    for tool in [
        "demo_echo",
        "file-system_read_text_file",
        "memory_read_graph",
        "time_get_current_time",
    ]
    .into_iter()
    .chain(remote)
    {
        assert!(tools.contains(&tool), "{client}: {tool} not in {tools:?}");
    }
    assert_eq!(seen["allowed"]["text"][0], "from the python sdk", "{seen}");
    assert_eq!(seen["refused"]["is_error"], true);
    assert_eq!(seen["extra"]["is_error"], false, "{seen}");
    assert!(
        seen["extra"]["text"][0]
            .as_str()
            .unwrap()
            .contains("hello from the data dir"),
        "{seen}"
    );
    let audit = read_lines(&dir.join(".mcp-warden/audit.jsonl"));
    assert!(
        audit.iter().any(|r| r["kind"] == "attempt"
            && r["server"] == "file-system"
            && r["tool"] == "read_text_file"
            && r["agent"] == format!("agent:{client}")),
        "{client}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_desktop_servers_are_put_behind_the_gateway() {
    check_written("claude-desktop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_servers_are_put_behind_the_gateway() {
    check_written("claude-code").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_servers_are_put_behind_the_gateway() {
    check_written("cursor").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vs_code_servers_are_put_behind_the_gateway() {
    check_written("vscode").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_overwritten_without_force_and_the_client_file_is_rewritten_after_a_backup() {
    let home = tempfile::tempdir().unwrap();
    let from = home.path().join("claude_desktop_config.json");
    let original = json!({"mcpServers": {
        "demo": {"command": EXE, "args": ["demo-tools"]},
        "broken": {"command": "/nonexistent/mcp-server"},
    }, "globalShortcut": "Ctrl+Space"});
    std::fs::write(&from, original.to_string()).unwrap();
    let dir = home.path().join("governed");
    assert!(init(&from, &dir, &[]).await.0);

    // A second run names what exists and changes nothing.
    let policy = dir.join("policies/policy.csv");
    std::fs::write(&policy, "# mine\n").unwrap();
    let (ok, out) = init(&from, &dir, &[]).await;
    assert!(!ok);
    assert!(
        out.contains("--force") && out.contains("policy.csv"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), "# mine\n");

    // With --force it writes again, and rewrites the client's file after a backup.
    let (ok, out) = init(&from, &dir, &["--force", "--write-client-config"]).await;
    assert!(ok, "{out}");
    assert_ne!(std::fs::read_to_string(&policy).unwrap(), "# mine\n");
    let rewritten: Value = serde_json::from_str(&std::fs::read_to_string(&from).unwrap()).unwrap();
    let list = rewritten["mcpServers"].as_object().unwrap();
    let names: Vec<&str> = list.keys().map(String::as_str).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&"mcp-warden") && names.contains(&"broken"));
    assert_eq!(rewritten["globalShortcut"], "Ctrl+Space");
    let entry = &list["mcp-warden"];
    assert_eq!(entry["command"], EXE);
    assert_eq!(
        entry["args"],
        json!(["serve", "--config", dir.join("warden.toml")])
    );
    let backups: Vec<PathBuf> = std::fs::read_dir(home.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".before-mcp-warden-"))
        .collect();
    assert_eq!(backups.len(), 1);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&backups[0]).unwrap()).unwrap();
    assert_eq!(saved, original);
}

#[tokio::test]
async fn a_file_with_no_usable_server_says_why_and_writes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let from = home.path().join("mcp.json");
    std::fs::write(
        &from,
        r#"{"servers": {"old": {"type": "sse", "url": "http://127.0.0.1:1/sse"},
            "asks": {"command": "x", "env": {"KEY": "${input:api-key}"}}}}"#,
    )
    .unwrap();
    let dir = home.path().join("governed");
    let (ok, out) = init(&from, &dir, &[]).await;
    assert!(!ok);
    assert!(
        out.contains("old: uses the old HTTP+SSE transport"),
        "{out}"
    );
    assert!(out.contains("asks: uses `${input:api-key}`"), "{out}");
    assert!(!dir.exists());
}

/// The README's personal-mode walk-through: after init, the agent's `act` call waits
/// until the user confirms it with the CLI and the token init printed; the call then
/// runs once, audited as confirmed by the user on the approvals channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_init_the_user_confirms_their_own_agents_act_call_with_the_cli() {
    let home = tempfile::tempdir().unwrap();
    let from = home.path().join("claude_desktop_config.json");
    let list = json!({"mcpServers": {"demo": {"command": EXE, "args": ["demo-tools"]}}});
    std::fs::write(&from, list.to_string()).unwrap();
    let dir = home.path().join("governed");
    let (ok, out) = init(&from, &dir, &[]).await;
    assert!(ok, "{out}");
    let token = printed_token(&out);
    let config = dir.join("warden.toml");
    free_admin_port(&config);

    let python = repo().join(".venv/bin/python");
    let args = json!({"to": "bob@example.com", "body": "hi", "intent": "say hi to bob"});
    let mut client = std::process::Command::new(python);
    client
        .arg(repo().join("tests/clients/python_confirm.py"))
        .args([
            "none",
            "demo_send_message",
            &args.to_string(),
            EXE,
            "serve",
            "--config",
        ])
        .arg(&config);
    let waiting = tokio::task::spawn_blocking(move || client.output().unwrap());
    let approvals = |args: Vec<String>| {
        let (config, token) = (config.clone(), token.clone());
        async move {
            let out = tokio::process::Command::new(EXE)
                .arg("approvals")
                .arg("--config")
                .arg(&config)
                .args(args)
                .env("MCP_WARDEN_APPROVER_TOKEN", token)
                .output()
                .await
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).to_string(),
            )
        }
    };
    let mut id = None;
    for _ in 0..200 {
        let (_, listed) = approvals(vec!["list".into()]).await;
        if let Some(line) = listed.lines().find(|l| l.contains("demo/send_message")) {
            assert!(line.contains("yours to confirm"), "{line}");
            id = line.split_whitespace().next().map(String::from);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let id = id.expect("the call never waited for a confirmation");
    let (ok, said) = approvals(vec!["approve".into(), id]).await;
    assert!(ok, "{said}");
    let out = waiting.await.unwrap();
    let seen: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(seen["result"]["is_error"], false, "{seen}");
    assert_eq!(seen["result"]["text"][0], "message sent to bob@example.com");
    let audit = read_lines(&dir.join(".mcp-warden/audit.jsonl"));
    let attempt = audit.iter().find(|r| r["kind"] == "attempt").unwrap();
    assert_eq!(attempt["decision"], "confirm");
    assert_eq!(attempt["approval"]["confirmed_by"], "user:alice");
    assert_eq!(attempt["approval"]["channel"], "approvals");
}
