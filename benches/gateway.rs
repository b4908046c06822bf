//! Benchmark: `tools/call echo` on the bundled demo server, directly and through the
//! gateway (read tier, intent, schema, Casbin, durable hash-chained audit), in one run;
//! plus a policy decision with 10,000 rules. Run with `cargo bench --bench gateway`.
//!
//! Both paths are real processes over stdio: client → `mcp-warden demo-tools`, and
//! client → `mcp-warden serve` → `mcp-warden demo-tools`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // bench code

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_warden::config::IdentityConfig;
use mcp_warden::identity::Caller;
use mcp_warden::manifest::Tier;
use mcp_warden::policy::Policy;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;

const EXE: &str = env!("CARGO_BIN_EXE_mcp-warden");
const SEQUENTIAL: usize = 2_000;
const CONCURRENT_TASKS: usize = 8;
const CONCURRENT_CALLS: usize = 8_000;

type Client = Arc<RunningService<RoleClient, ()>>;

struct Figures {
    p50: Duration,
    p99: Duration,
    calls_per_sec: f64,
}

async fn spawn(args: &[&str], dir: &Path) -> Client {
    let mut cmd = tokio::process::Command::new(EXE);
    cmd.args(args)
        .current_dir(dir)
        .env("MCP_WARDEN_LOG", "warn");
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Arc::new(().serve(transport).await.unwrap())
}

async fn call(client: &Client, name: &str, with_intent: bool) {
    let mut args = json!({"text": "hello"});
    if with_intent {
        args["intent"] = json!("measure the gateway");
    }
    let params = CallToolRequestParams::new(name.to_string())
        .with_arguments(args.as_object().unwrap().clone());
    let result = client.peer().call_tool(params).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
}

async fn measure(client: &Client, name: &'static str, with_intent: bool) -> Figures {
    for _ in 0..200 {
        call(client, name, with_intent).await;
    }
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let start = Instant::now();
        call(client, name, with_intent).await;
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let start = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_TASKS)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..CONCURRENT_CALLS / CONCURRENT_TASKS {
                    call(&client, name, with_intent).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    Figures {
        p50: latencies[SEQUENTIAL / 2],
        p99: latencies[SEQUENTIAL * 99 / 100],
        calls_per_sec: CONCURRENT_CALLS as f64 / elapsed.as_secs_f64(),
    }
}

/// Where the gateway's audit log goes: `MCP_WARDEN_BENCH_AUDIT_DIR` (e.g. a tmpfs, to
/// separate the cost of the disk's fsync from the gateway's own) or the bench's temp dir.
fn audit_path(dir: &Path) -> std::path::PathBuf {
    let base = std::env::var_os("MCP_WARDEN_BENCH_AUDIT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.to_path_buf());
    base.join(format!("audit-{}.jsonl", std::process::id()))
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = format!(
        "[gateway]\nmanifests = \"{repo}/tool-manifests\"\npolicy_model = \"{repo}/policies/model.conf\"\npolicy = \"{repo}/policies/policy.csv\"\naudit_log = \"{audit}\"\n\n[identity.stdio]\nagent = \"agent:desktop\"\non_behalf_of = \"user:alice\"\n\n[[upstream]]\nid = \"demo\"\ncommand = \"{EXE}\"\nargs = [\"demo-tools\"]\n",
        repo = repo.display(),
        audit = audit_path(dir).display(),
    );
    let path = dir.join("warden.toml");
    std::fs::write(&path, config).unwrap();
    path
}

async fn policy_decisions() -> (Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/model.conf");
    let mut rules = String::new();
    for i in 0..10_000 {
        rules.push_str(&format!("p, role:r{i}, srv{i}/*, read, allow\n"));
    }
    rules.push_str("g, agent:a, role:r9999\ng, user:u, role:r9999\n");
    let rules_path = dir.path().join("policy.csv");
    let policy = Policy::load(
        (&model, &std::fs::read_to_string(&model).unwrap()),
        (&rules_path, &rules),
    )
    .await
    .unwrap();
    let caller = Caller::from_config(
        &IdentityConfig {
            agent: "agent:a".into(),
            on_behalf_of: Some("user:u".into()),
        },
        "b",
    );
    let start = Instant::now();
    let first = policy.decide(&caller, "srv9999/tool", Tier::Read);
    let uncached = start.elapsed();
    assert_eq!(first.effect, mcp_warden::policy::Effect::Allow);
    let mut times: Vec<Duration> = (0..10_000)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(policy.decide(&caller, "srv9999/tool", Tier::Read));
            start.elapsed()
        })
        .collect();
    times.sort();
    (uncached, times[times.len() / 2])
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; there is nothing to list.
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let direct = spawn(&["demo-tools"], dir.path()).await;
    let gateway = spawn(
        &[
            "serve",
            "--transport",
            "stdio",
            "--config",
            config.to_str().unwrap(),
        ],
        dir.path(),
    )
    .await;
    let d = measure(&direct, "echo", false).await;
    let g = measure(&gateway, "demo_echo", true).await;
    let audit = audit_path(dir.path());
    let records = std::fs::read_to_string(&audit).unwrap().lines().count();
    let _ = std::fs::remove_file(&audit);
    println!(
        "tools/call echo, {SEQUENTIAL} sequential calls for latency, {CONCURRENT_CALLS} calls on {CONCURRENT_TASKS} concurrent tasks for throughput"
    );
    println!(
        "{:<10} {:>12} {:>12} {:>12}",
        "path", "p50", "p99", "calls/s"
    );
    println!(
        "{:<10} {:>12} {:>12} {:>12.0}",
        "direct",
        ms(d.p50),
        ms(d.p99),
        d.calls_per_sec
    );
    println!(
        "{:<10} {:>12} {:>12} {:>12.0}",
        "gateway",
        ms(g.p50),
        ms(g.p99),
        g.calls_per_sec
    );
    println!(
        "added p50 latency: {}; throughput ratio gateway/direct: {:.2}",
        ms(g.p50.saturating_sub(d.p50)),
        g.calls_per_sec / d.calls_per_sec
    );
    println!(
        "audit records written (attempt + outcome per call, fsynced) to {}: {records}",
        audit.display()
    );
    let (uncached, cached) = policy_decisions().await;
    println!(
        "policy decision, 10,000 rules, chain of 2: first (uncached) {}, repeated p50 {:.2} µs",
        ms(uncached),
        cached.as_secs_f64() * 1e6
    );
}
