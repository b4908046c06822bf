//! The command line: `serve`, `check`, `audit verify`, `demo-tools`. Parses arguments,
//! runs the matching command and turns its result into an exit code; all diagnostics go
//! to stderr (stdout is the MCP channel under `serve` over stdio).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::gateway::{Gateway, Listener, State};
use crate::identity::Caller;
use crate::problem;
use crate::{check, demo, init, transport, upstream};

mod approvals;
mod call;
mod explain;
mod grants;
mod manifests;

#[derive(Debug, Parser)]
#[command(
    name = "mcp-warden",
    version,
    about = "An MCP gateway that authorises every tool call and proves afterwards what happened",
    long_about = "mcp-warden sits between an LLM client and the MCP tool servers it uses. Every tools/call \
is checked (tool known and unchanged, intent stated, arguments valid, Casbin policy allows the agent \
and everyone it acts for), written to a hash-chained audit log, and only then forwarded.",
    after_help = "First run:\n  mcp-warden serve                 run on the embedded defaults (demo tools) at http://127.0.0.1:8787/mcp\n  mcp-warden check --config warden.toml   find every problem in a configuration\n  mcp-warden audit verify          check the audit log's hash chain\n\nIn an MCP client's config, use `mcp-warden serve --config /path/to/warden.toml` as the stdio command."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: over stdio when a client launched it, over HTTP at [listen] http.
    #[command(
        after_help = "With no --config, the embedded defaults front the bundled demo tools, using \
tool-manifests/ and policies/ in the working directory.\n\n--transport auto (the default) serves stdio when stdin is not a terminal (a client launched the \
gateway) and HTTP when it is (you ran it by hand)."
    )]
    Serve {
        /// The gateway configuration (warden.toml); default: the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Which transports to serve.
        #[arg(long, value_enum, default_value_t = TransportChoice::Auto)]
        transport: TransportChoice,
        /// How log lines are written to stderr: readable text, or one JSON object a line
        /// for log pipelines.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Put the MCP servers of a client's config behind the gateway: write a warden.toml,
    /// a manifest per server (from its live tools), a starter policy, and print the one
    /// entry that replaces them in the client's config.
    #[command(
        after_help = "Reads Claude Desktop's claude_desktop_config.json, Claude Code's .mcp.json or ~/.claude.json, \
Cursor's mcp.json (`mcpServers`) and VS Code's mcp.json (`servers`). Every value of a server's `env` and \
`headers` (and any argument that looks like a credential) goes to secrets.env (0600), referred to as ${NAME}.\n\n\
Example:\n  mcp-warden init --from ~/Library/Application\\ Support/Claude/claude_desktop_config.json"
    )]
    Init {
        /// The client's config file.
        #[arg(long)]
        from: PathBuf,
        /// The directory to write into (created).
        #[arg(long, default_value = "mcp-warden")]
        dir: PathBuf,
        /// Replace files that exist.
        #[arg(long)]
        force: bool,
        /// Rewrite the client's config to use the gateway (the original is saved beside it).
        #[arg(long)]
        write_client_config: bool,
        /// The user your agent acts for (default: $USER).
        #[arg(long)]
        user: Option<String>,
    },
    /// Check the configuration, manifests and policy, and compare manifests with the
    /// upstreams' live tools; print every problem with its file and line.
    Check {
        /// The gateway configuration (warden.toml); default: the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Do not start or contact upstreams.
        #[arg(long)]
        offline: bool,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Decide approval requests through the admin API (as an approver).
    #[command(
        after_help = "Authenticates with $MCP_WARDEN_APPROVER_TOKEN, --token-file, or the token the running \
gateway generated for --as IDENTITY (or for its only approver without a configured token)."
    )]
    Approvals {
        #[command(flatten)]
        connection: approvals::Connection,
        #[command(subcommand)]
        command: approvals::ApprovalsCommand,
    },
    /// Try a running gateway as an MCP client (Streamable HTTP): list the tools you may
    /// use, or call one and wait for its result.
    #[command(
        after_help = "When the gateway asks callers to authenticate, put your token or API key in $MCP_WARDEN_TOKEN."
    )]
    Call {
        /// The gateway's MCP endpoint.
        #[arg(long, default_value = "http://127.0.0.1:8787/mcp")]
        url: String,
        /// The tool to call; without it, list the tools.
        tool: Option<String>,
        /// The arguments, a JSON object (include `intent` for transform and act tools).
        args: Option<String>,
    },
    /// Just-in-time grants through the admin API (as an approver).
    Grant {
        #[command(flatten)]
        connection: approvals::Connection,
        #[command(subcommand)]
        command: grants::GrantCommand,
    },
    /// Tasks: end one, and the grants bound to it (through the admin API, as an approver).
    Task {
        #[command(flatten)]
        connection: approvals::Connection,
        #[command(subcommand)]
        command: grants::TaskCommand,
    },
    /// Make the running gateway read its policy, manifests and config again (through the
    /// admin API, as an approver). A reload that finds any error changes nothing.
    #[command(
        after_help = "The same as sending the gateway SIGHUP, but it prints what happened: the new generation \
and any warnings, or every error. Authenticates like `approvals`."
    )]
    Reload {
        #[command(flatten)]
        connection: approvals::Connection,
    },
    /// Ask the policy: what it decides for a caller and a tool, and why.
    Policy {
        /// The gateway configuration; default: the embedded defaults.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Tooling for tool owners: write a manifest skeleton, update pins.
    Manifest {
        /// The gateway configuration; default: the embedded defaults.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: manifests::ManifestCommand,
    },
    /// Make credentials for HTTP callers.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run the bundled demo tool server (stdio, or Streamable HTTP with --http).
    DemoTools {
        /// Append every call received to this file (one JSON object per line).
        #[arg(long)]
        call_log: Option<PathBuf>,
        /// Serve Streamable HTTP at this address instead of stdio.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Never announce tool-list changes (a server that changes silently).
        #[arg(long)]
        quiet: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// The decision for one caller and tool, each identity's verdict and rule, and for a
    /// refusal the row that would allow it.
    Explain(explain::Explain),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make an API key for an agent: prints the key (once) and the `[[identity.api_keys]]`
    /// lines, with its hash, to paste into warden.toml.
    New {
        /// The agent the key is, e.g. `agent:helpdesk`.
        #[arg(long)]
        agent: String,
        /// The principal the agent always acts for with this key, e.g. `user:alice`.
        #[arg(long)]
        on_behalf_of: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the audit log as one readable line a record (agent text escaped).
    Show {
        /// The log, or a directory of replicas' logs (every `*.jsonl` in it, merged by
        /// time); default: the configured audit log.
        file: Option<PathBuf>,
        /// The configuration whose audit log to show; default: the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Only the last N records (of those the conditions select).
        #[arg(long)]
        last: Option<usize>,
        /// Print the selected records as they are in the log, one JSON object a line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        query: Box<crate::audit::query::Query>,
    },
    /// Check the hash chain of an audit log and name the first bad line; with `--key`,
    /// also every signed checkpoint in it.
    Verify {
        /// The log, or a directory of replicas' logs (every `*.jsonl` in it, each checked
        /// on its own); default: the configured audit log.
        file: Option<PathBuf>,
        /// The configuration whose audit log to check; default: the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The public key the gateway's checkpoints must be signed with (`ed25519:…`, as
        /// `mcp-warden audit key` and the gateway's banner print it).
        #[arg(long)]
        key: Option<String>,
        /// What a witness received: its file, a collector's export of the HEC events (JSON
        /// lines), or a syslog server's file; or `store` (the witness table in the
        /// configuration's `[store] url`) or a `postgres://` URL, which checks each log of a
        /// directory against its replica's lines. The log must hold each line at its place.
        #[arg(long)]
        witness: Option<PathBuf>,
    },
    /// Print the public key that signs the audit log's checkpoints (made if there is none).
    Key {
        /// The configuration whose key to print; default: the embedded defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TransportChoice {
    Auto,
    Stdio,
    Http,
    Both,
}

/// Where `serve` exports spans, read before anything runs: the config's
/// `[telemetry] otlp_endpoint` or the standard `OTEL_*` variables (`Err` names a setting
/// that cannot be honoured). A config that does not load exports nothing here; `serve`
/// then reports why.
pub fn span_export(cli: &Cli) -> Result<Option<crate::telemetry::trace::Otlp>, String> {
    let Command::Serve { config, .. } = &cli.command else {
        return Ok(None);
    };
    let endpoint = load_config(config.as_deref())
        .ok()
        .and_then(|c| c.boot.telemetry.otlp_endpoint);
    crate::telemetry::trace::Otlp::from(endpoint.as_deref())
}

fn load_config(path: Option<&Path>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => Config::embedded(Path::new(".")).map_err(|e| e.to_string()),
    }
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve {
            config, transport, ..
        } => serve(config.as_deref(), transport).await,
        Command::Check { config, offline } => run_check(config.as_deref(), offline).await,
        Command::Init {
            from,
            dir,
            force,
            write_client_config,
            user,
        } => {
            let options = init::Options {
                from,
                dir,
                force,
                write_client_config,
                user,
            };
            init::run(&options)
                .await
                .map(|report| init::print(&report, &options))
        }
        Command::Audit {
            command:
                AuditCommand::Verify {
                    file,
                    config,
                    key,
                    witness,
                },
        } => verify(file, config.as_deref(), key.as_deref(), witness.as_deref()).await,
        Command::Audit {
            command: AuditCommand::Key { config },
        } => audit_key(config.as_deref()),
        Command::Audit {
            command:
                AuditCommand::Show {
                    file,
                    config,
                    last,
                    json,
                    query,
                },
        } => show(file, config.as_deref(), last, json, &query),
        Command::Approvals {
            connection,
            command,
        } => match load_config(connection.config.as_deref()) {
            Ok(config) => approvals::run(command, connection, config).await,
            Err(e) => Err(e),
        },
        Command::Call { url, tool, args } => call::run(&url, tool, args).await,
        Command::Reload { connection } => match load_config(connection.config.as_deref()) {
            Ok(config) => reload(&connection, &config).await,
            Err(e) => Err(e),
        },
        Command::Grant {
            connection,
            command,
        } => match load_config(connection.config.as_deref()) {
            Ok(config) => grants::run(command, connection, config).await,
            Err(e) => Err(e),
        },
        Command::Task {
            connection,
            command,
        } => match load_config(connection.config.as_deref()) {
            Ok(config) => grants::run_task(command, connection, config).await,
            Err(e) => Err(e),
        },
        Command::Policy {
            config,
            command: PolicyCommand::Explain(e),
        } => match load_config(config.as_deref()) {
            Ok(config) => explain::run(e, config).await,
            Err(e) => Err(e),
        },
        Command::Manifest { config, command } => match load_config(config.as_deref()) {
            Ok(config) => manifests::run(command, config).await,
            Err(e) => Err(e),
        },
        Command::Keys {
            command:
                KeysCommand::New {
                    agent,
                    on_behalf_of,
                },
        } => new_api_key(&agent, on_behalf_of.as_deref()),
        Command::DemoTools {
            call_log,
            http,
            quiet,
        } => demo::serve(call_log, http, quiet)
            .await
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// `mcp-warden reload`: ask the running gateway to reload, and say what happened.
async fn reload(connection: &approvals::Connection, config: &Config) -> Result<(), String> {
    let client = approvals::Client::connect(connection, config)?;
    let done = client.send("POST", "/reload", None).await?;
    let warnings = done.get("warnings").and_then(|w| w.as_array());
    for w in warnings.into_iter().flatten() {
        eprintln!(
            "warning: {}",
            crate::escape::visible(w.as_str().unwrap_or_default())
        );
    }
    println!(
        "reloaded: generation {} is in force",
        done.get("generation")
            .and_then(|g| g.as_u64())
            .unwrap_or_default()
    );
    Ok(())
}

fn new_api_key(agent: &str, on_behalf_of: Option<&str>) -> Result<(), String> {
    if let Some(bad) = std::iter::once(agent)
        .chain(on_behalf_of)
        .find(|n| !crate::config::valid_identity_name(n))
    {
        return Err(format!(
            "`{bad}` must look like `kind:name`, e.g. `agent:helpdesk`"
        ));
    }
    let (key, hash) = crate::identity::new_api_key();
    eprintln!("Give this key to {agent} (it is shown once; keep it secret):");
    println!("{key}");
    let principal = on_behalf_of
        .map(|p| format!("on_behalf_of = \"{p}\"\n"))
        .unwrap_or_default();
    eprintln!(
        "\nAdd to warden.toml:\n\n[[identity.api_keys]]\nagent = \"{agent}\"\n{principal}sha256 = \"{hash}\"\n\nThe agent sends it as `Authorization: Bearer <key>`."
    );
    Ok(())
}

async fn serve(config: Option<&Path>, choice: TransportChoice) -> Result<(), String> {
    let config = load_config(config)?;
    let (stdio, http) = match choice {
        TransportChoice::Auto if std::io::stdin().is_terminal() => (false, true),
        TransportChoice::Auto | TransportChoice::Stdio => (true, false),
        TransportChoice::Http => (false, true),
        TransportChoice::Both => (true, true),
    };
    let listen = match (http, &config.boot.http) {
        (true, Some(l)) => Some(l.addr),
        (true, None) if !stdio => return Err("nothing to serve: stdin is a terminal and the config has no `[listen] http`; add one, or let an MCP client launch `mcp-warden serve` over stdio".into()),
        _ => None,
    };
    let state = State::start(config)
        .await
        .map_err(|e| format!("cannot start:\n{e}"))?;
    let listener = match listen {
        Some(addr) => Some(
            crate::listener::HttpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?,
        ),
        None => None,
    };
    banner(&state, listener.as_ref());
    reload_on_hangup(&state);
    let admin = start_admin(&state).await?;
    let metrics = start_metrics(&state).await?;
    if listener.is_some() {
        eprintln!("Point an MCP client at the endpoint above; Ctrl-C stops.");
    }
    let result = run_transports(state.clone(), stdio, listener).await;
    for listener in admin.into_iter().chain(metrics) {
        listener.abort();
    }
    state.upstreams.shutdown().await;
    // Outcome records are queued without waiting for their sync: write them out, and a
    // signed checkpoint over them.
    if let Err(e) = state.audit.close().await {
        tracing::error!(error = %e, "the audit log could not be flushed at shutdown");
    }
    result
}

/// On SIGHUP: reload policy, manifests and config (what happened goes to the log and the
/// audit log; a reload that fails changes nothing).
fn reload_on_hangup(state: &Arc<State>) {
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let mut hangup = match hangup {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: reload with `mcp-warden reload`");
            return;
        }
    };
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let Some(state) = weak.upgrade() else { return };
            match state.reload("signal").await {
                Ok(done) => eprintln!("reloaded on SIGHUP: generation {}", done.generation),
                Err(problems) => eprintln!(
                    "reload on SIGHUP refused, nothing changed:\n{}",
                    problem::render(&problems)
                ),
            }
        }
    });
}

/// On SIGINT or SIGTERM: tell calls waiting for approval that the gateway is stopping
/// (their requests stay pending), give them a moment to answer, then stop the transports.
fn stop_on_signal(state: Arc<State>) -> tokio_util::sync::CancellationToken {
    let stop = tokio_util::sync::CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminate => {}
        }
        eprintln!("stopping: calls waiting for approval are told to retry once approved");
        state.stop_waiting();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        token.cancel();
    });
    stop
}

async fn run_transports(
    state: Arc<State>,
    stdio: bool,
    listener: Option<crate::listener::HttpListener>,
) -> Result<(), String> {
    let stop = stop_on_signal(state.clone());
    let ctrl_c = || stop.clone().cancelled_owned();
    let http = listener.map(|l| tokio::spawn(transport::serve_http(state.clone(), l, ctrl_c())));
    if stdio {
        transport::serve_stdio(state, ctrl_c())
            .await
            .map_err(|e| e.to_string())?;
        if let Some(h) = &http {
            h.abort();
        }
        return Ok(());
    }
    match http {
        Some(h) => h
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

/// Start the admin listener when configured, and say how approvers sign in.
async fn start_admin(state: &Arc<State>) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    let now = state.current();
    let Some(addr) = now.config.boot.admin else {
        return Ok(None);
    };
    let (approvers, fresh) = crate::admin::Approvers::from_config(&now.config)
        .map_err(|e| format!("cannot write approver tokens: {e}"))?;
    let listener = crate::listener::HttpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (admin): {e}"))?;
    let bound = listener.local_addr().ok();
    let page = crate::admin::page_url(state, bound).unwrap_or_default();
    state.set_page_url(page.clone());
    eprintln!("  approvals page: {page}/");
    for t in &fresh {
        eprintln!(
            "    sign in as `{}`: {page}/#token={} (token also in {})",
            t.identity,
            t.token,
            t.file.display()
        );
    }
    if now.config.boot.approval.approvers.is_empty() {
        eprintln!("    no `[[approver]]` is configured, so nobody can sign in to decide");
    }
    let admin = crate::admin::Admin::new(state.clone(), approvers);
    Ok(Some(tokio::spawn(async move {
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        if let Err(e) = crate::admin::serve(admin, listener, stop).await {
            tracing::error!(error = %e, "the admin listener stopped");
        }
    })))
}

/// The metrics listener (`[listen] metrics`), when there is one.
async fn start_metrics(state: &Arc<State>) -> Result<Option<tokio::task::JoinHandle<()>>, String> {
    let Some(addr) = state.current().config.boot.metrics else {
        return Ok(None);
    };
    let listener = crate::listener::HttpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (metrics): {e}"))?;
    let bound = listener.local_addr().map_or(addr, |a| a);
    eprintln!("  metrics: http://{bound}/metrics (and /readyz, /healthz)");
    let admin = crate::admin::Admin::new(state.clone(), Default::default());
    let router = crate::admin::operator_router(admin);
    Ok(Some(tokio::spawn(async move {
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    })))
}

/// A line for the person running the gateway, on stderr, with any credential in it (an
/// upstream's command line may hold one) masked, as in the log.
macro_rules! tell {
    ($($arg:tt)*) => {
        eprintln!("{}", crate::secrets::scrub_str(&format!($($arg)*)))
    };
}

/// Tell a person where to connect and what the gateway fronts (stderr: never stdout).
fn banner(state: &Arc<State>, listener: Option<&crate::listener::HttpListener>) {
    let now = state.current();
    let config = &now.config;
    tell!(
        "mcp-warden {} ({})",
        env!("CARGO_PKG_VERSION"),
        config.source.display()
    );
    if let Some(addr) = listener.and_then(|l| l.local_addr().ok()) {
        tell!("  MCP endpoint (Streamable HTTP): http://{addr}/mcp");
    }
    tell!("  audit log: {}", config.boot.audit_log.display());
    if let Some(key) = state.audit.public_key() {
        tell!(
            "  audit signing key: {key} (check the log with `mcp-warden audit verify --key {key}`)"
        );
    }
    let catalog = &now.catalog;
    for u in &config.boot.upstreams {
        let tools: Vec<_> = catalog.tools().filter(|t| t.server == u.id).collect();
        let speaks = state
            .upstreams
            .speaks(&u.id)
            .map(|v| format!(", MCP {v}"))
            .unwrap_or_default();
        tell!(
            "  upstream `{}` ({}): {} tools{speaks}",
            u.id,
            upstream::describe(u),
            tools.len()
        );
        for t in tools {
            tell!("    {:<28} {}", t.name, t.tier);
        }
    }
    let identity = if listener.is_some() {
        &config.live.http_identity
    } else {
        &config.live.stdio_identity
    };
    let caller = Caller::from_config(identity, "banner");
    let gateway = Gateway::new(state.clone(), identity.clone(), Listener::Http);
    let visible = gateway.visible_tools(&now, &caller);
    tell!(
        "  caller `{}` (for `{}`) may use {} of them; every call is audited",
        identity.agent,
        identity.on_behalf_of.as_deref().unwrap_or("nobody"),
        visible.len()
    );
    tell!(
        "  reload policy, manifests and config: `mcp-warden reload` or SIGHUP{}",
        if config.boot.watch {
            " (and on every saved change)"
        } else {
            ""
        }
    );
}

async fn run_check(config: Option<&Path>, offline: bool) -> Result<(), String> {
    let config = load_config(config)?;
    let problems = check::run(&config, offline).await;
    let errors = problems.iter().filter(|p| p.is_error()).count();
    if !problems.is_empty() {
        eprintln!("{}", problem::render(&problems));
    }
    let warnings = problems.iter().filter(|p| p.is_warning()).count();
    let summary = format!("{errors} error(s), {warnings} warning(s)");
    if errors > 0 {
        return Err(summary);
    }
    eprintln!("{summary}: `{}` is ready to serve", config.source.display());
    Ok(())
}

fn show(
    file: Option<PathBuf>,
    config: Option<&Path>,
    last: Option<usize>,
    json: bool,
    query: &crate::audit::query::Query,
) -> Result<(), String> {
    let path = match file {
        Some(f) => f,
        None => load_config(config)?.boot.audit_log,
    };
    let logs = logs_at(&path)?;
    let mut texts = Vec::new();
    for log in &logs {
        let text = std::fs::read_to_string(log)
            .map_err(|e| format!("cannot read `{}`: {e}", log.display()))?;
        texts.push(text);
    }
    // Every line of every log: (log, line number, line, record).
    let mut selected: Vec<(usize, usize, &str, Option<serde_json::Value>)> = texts
        .iter()
        .enumerate()
        .flat_map(|(f, text)| {
            text.lines()
                .enumerate()
                .map(move |(n, line)| (f, n, line, serde_json::from_str(line).ok()))
        })
        .filter(|(_, _, _, record)| record.as_ref().is_none_or(|r| query.matches(r)))
        .collect();
    // Several replicas' logs: one story, merged by time (each log's own order kept).
    if logs.len() > 1 {
        selected.sort_by_key(|(f, n, _, record)| (record.as_ref().and_then(record_time), *f, *n));
    }
    let skip = last.map_or(0, |n| selected.len().saturating_sub(n));
    for (f, n, line, record) in selected.iter().skip(skip) {
        let from = match logs.len() {
            1 => String::new(),
            _ => format!(
                "[{}] ",
                logs.get(*f).map(|l| log_name(l)).unwrap_or_default()
            ),
        };
        match record {
            // The line as written, so a reader can hash it again.
            Some(_) if json => println!("{line}"),
            Some(record) => println!("{from}{}", crate::audit::describe(record)),
            None => println!("{from}line {}: not a record", n + 1),
        }
    }
    Ok(())
}

/// When a record was written.
fn record_time(record: &serde_json::Value) -> Option<std::time::SystemTime> {
    let ts = record.get("ts")?.as_str()?;
    humantime::parse_rfc3339_weak(ts).ok()
}

/// The logs at `path`: the file, or every `*.jsonl` file of the directory (the logs of
/// several replicas), in name order.
fn logs_at(path: &Path) -> Result<Vec<PathBuf>, String> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| format!("cannot read the directory `{}`: {e}", path.display()))?;
    let mut logs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    logs.sort();
    if logs.is_empty() {
        return Err(format!(
            "`{}` holds no audit log (no `*.jsonl` file)",
            path.display()
        ));
    }
    Ok(logs)
}

fn log_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What a log is checked against: a witness's file, or its replica's lines in the witness
/// table of a database.
enum Against<'a> {
    File(&'a Path),
    Database { lines: Vec<u8>, replica: String },
}

/// The database `--witness` names: `store` (the configuration's `[store] url`) or a
/// PostgreSQL URL; `None` for a file.
fn witness_database(
    witness: Option<&Path>,
    config: Option<&Path>,
) -> Result<Option<String>, String> {
    let Some(named) = witness.map(|w| w.to_string_lossy().into_owned()) else {
        return Ok(None);
    };
    match named.as_str() {
        "store" => load_config(config)?.boot.store.url.map(Some).ok_or_else(|| {
            "`--witness store` reads the witness table of `[store] url`, and this configuration has none: give `--config`, or the database's `postgres://` URL".to_string()
        }),
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Some(named))
        }
        _ => Ok(None),
    }
}

/// The replica a log is from: its first record's `replica` (empty for a gateway that is
/// not one).
fn replica_of(log: &Path) -> String {
    let first = std::fs::File::open(log).ok().and_then(|f| {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(f), &mut line).ok()?;
        serde_json::from_str::<serde_json::Value>(&line).ok()
    });
    first
        .and_then(|r| r.get("replica").and_then(|v| v.as_str()).map(String::from))
        .unwrap_or_default()
}

async fn verify(
    file: Option<PathBuf>,
    config: Option<&Path>,
    key: Option<&str>,
    witness: Option<&Path>,
) -> Result<(), String> {
    let path = match file {
        Some(f) => f,
        None => load_config(config)?.boot.audit_log,
    };
    let logs = logs_at(&path)?;
    let database = witness_database(witness, config)?;
    let table = match &database {
        Some(url) => Some(
            crate::store::WitnessTable::connect(url)
                .await
                .map_err(|e| format!("the witness database: {e}"))?,
        ),
        None => None,
    };
    if logs.len() > 1 && witness.is_some() && table.is_none() {
        return Err(format!(
            "`--witness` checks one log against what its witness received: name the log, not the directory `{}`",
            path.display()
        ));
    }
    let key = key
        .map(crate::audit::checkpoint::public_key)
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut failed = Vec::new();
    for log in &logs {
        let against = match (&table, witness) {
            (Some(table), _) => {
                let replica = replica_of(log);
                let lines = table
                    .lines(&replica)
                    .await
                    .map_err(|e| format!("the witness database: {e}"))?;
                Some(Against::Database { lines, replica })
            }
            (None, Some(file)) => Some(Against::File(file)),
            (None, None) => None,
        };
        match verify_one(log, key.as_ref(), against) {
            Ok(()) => {}
            Err(e) => {
                println!("{e}");
                failed.push(log_name(log));
            }
        }
    }
    match failed.is_empty() {
        true if logs.len() > 1 => {
            println!("all {} logs intact", logs.len());
            Ok(())
        }
        true => Ok(()),
        false => Err(format!(
            "{} of {} logs failed: {}",
            failed.len(),
            logs.len(),
            failed.join(", ")
        )),
    }
}

fn verify_one(
    path: &Path,
    key: Option<&ed25519_dalek::VerifyingKey>,
    witness: Option<Against<'_>>,
) -> Result<(), String> {
    let v = crate::audit::verify_with(path, key).map_err(|e| format!("{}: {e}", path.display()))?;
    println!(
        "{}: {} records, hash chain intact; {} of them with arguments matching their digest",
        path.display(),
        v.records,
        v.args_checked
    );
    if let Some((line, ts)) = &v.last_checkpoint {
        println!(
            "{} checkpoints signed by the key; the last, at record {line} ({ts}), vouches for everything before it; the {} records after it are proven only by a witness",
            v.checkpoints,
            v.records - line
        );
    }
    if let Some(witness) = witness {
        let (proved, name) = match &witness {
            Against::File(file) => (
                crate::audit::verify_witness(path, file),
                file.display().to_string(),
            ),
            Against::Database { lines, replica } => (
                crate::audit::verify_witnessed(path, lines),
                match replica.is_empty() {
                    true => "the state database".to_string(),
                    false => format!("the state database (for replica {replica})"),
                },
            ),
        };
        let proved = proved.map_err(|e| format!("{} against {name}: {e}", path.display()))?;
        println!(
            "the log holds all {} checkpoints and {} other records {name} received, in place: it vouches for the first {} records",
            proved.checkpoints, proved.records, proved.covered
        );
    }
    Ok(())
}

fn audit_key(config: Option<&Path>) -> Result<(), String> {
    let config = load_config(config)?;
    let signer = crate::audit::checkpoint::Signer::load_or_create(&config.boot.audit_key)
        .map_err(|e| e.to_string())?;
    println!("{}", signer.public());
    eprintln!("(private key: {})", config.boot.audit_key.display());
    Ok(())
}
