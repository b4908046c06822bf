//! Benchmark: `tools/call echo` on the bundled demo server, directly and through the
//! gateway (read tier, intent, schema, Casbin, durable hash-chained audit), in one run;
//! the same through a gateway that also exports every audit record to a syslog witness
//! (a receiver in this process, over TCP); the same with ten flow rules and session
//! budgets evaluated on every call; the same exporting every call's trace over OTLP to a
//! receiver in this process; the cost of the metrics a call updates; policy decisions
//! with 10,000 rules (cold and cached); and the gateway's resident memory
//! on the embedded defaults, idle and with 1,000 open sessions over HTTP (it binds the
//! defaults' ports, 8787 and 8788). Run with `cargo bench --bench gateway`.
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
/// Rounds: a multiple of the number of paths, so that, taking turns, each path is measured
/// equally often in every position of a round (with fewer, one path is never measured right
/// after another, and the order's drift favours some); twice over, because one round's
/// figures vary by more than the options cost.
const ROUNDS: usize = 12;

/// A client of one target, and the target's process (whose CPU time is read).
#[derive(Clone)]
struct Client {
    service: Arc<RunningService<RoleClient, ()>>,
    pid: u32,
}

impl std::ops::Deref for Client {
    type Target = RunningService<RoleClient, ()>;
    fn deref(&self) -> &Self::Target {
        &self.service
    }
}

/// The CPU time process `pid`'s threads have used so far, to the nanosecond: the sum of
/// the scheduler's own count over its threads (`/proc/PID/task/*/schedstat`). Its threads
/// (the runtime's, the audit writer's) live through a measurement.
fn cpu_of(pid: u32) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default();
    let running: u64 = tasks
        .iter()
        .filter_map(|t| std::fs::read_to_string(t.join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(running)
}

struct Figures {
    p50: Duration,
    p99: Duration,
    calls_per_sec: f64,
    /// The target process's own CPU time per call in the concurrent phase.
    cpu_per_call: Duration,
}

async fn spawn(args: &[&str], dir: &Path) -> Client {
    spawn_with(args, dir, &[]).await
}

async fn spawn_with(args: &[&str], dir: &Path, envs: &[(&str, &str)]) -> Client {
    let mut cmd = tokio::process::Command::new(EXE);
    cmd.args(args)
        .current_dir(dir)
        .env("MCP_WARDEN_LOG", "warn")
        .envs(envs.iter().copied());
    let (transport, _stderr) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = transport.id().unwrap_or(0);
    Client {
        service: Arc::new(().serve(transport).await.unwrap()),
        pid,
    }
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
    let cpu = cpu_of(client.pid);
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
    let cpu = cpu_of(client.pid).saturating_sub(cpu);
    Figures {
        p50: latencies[SEQUENTIAL / 2],
        p99: latencies[SEQUENTIAL * 99 / 100],
        calls_per_sec: CONCURRENT_CALLS as f64 / elapsed.as_secs_f64(),
        cpu_per_call: cpu / CONCURRENT_CALLS as u32,
    }
}

/// Each figure's median over rounds (p50 and p99 from the round with the median p50).
fn median(mut rounds: Vec<Figures>) -> Figures {
    let mut rates: Vec<f64> = rounds.iter().map(|f| f.calls_per_sec).collect();
    rates.sort_by(f64::total_cmp);
    let mut cpu: Vec<Duration> = rounds.iter().map(|f| f.cpu_per_call).collect();
    cpu.sort();
    rounds.sort_by_key(|f| f.p50);
    let mid = rounds.swap_remove(rounds.len() / 2);
    Figures {
        calls_per_sec: rates[rates.len() / 2],
        cpu_per_call: cpu[cpu.len() / 2],
        ..mid
    }
}

/// Where the gateway's audit log goes: `MCP_WARDEN_BENCH_AUDIT_DIR` (e.g. a tmpfs, to
/// separate the cost of the disk's synchronous writes from the gateway's own) or the
/// bench's temp dir.
fn audit_path(dir: &Path, name: &str) -> std::path::PathBuf {
    let base = std::env::var_os("MCP_WARDEN_BENCH_AUDIT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.to_path_buf());
    base.join(format!("audit-{name}-{}.jsonl", std::process::id()))
}

/// A gateway's config named `name`, with `extra` appended.
fn write_config(dir: &Path, name: &str, extra: &str) -> std::path::PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = format!(
        "[gateway]\nmanifests = \"{repo}/tool-manifests\"\npolicy_model = \"{repo}/policies/model.conf\"\npolicy = \"{repo}/policies/policy.csv\"\naudit_log = \"{audit}\"\naudit_key = \"{key}\"\n\n[identity.stdio]\nagent = \"agent:desktop\"\non_behalf_of = \"user:alice\"\n\n[[upstream]]\nid = \"demo\"\ncommand = \"{EXE}\"\nargs = [\"demo-tools\"]\n{extra}",
        repo = repo.display(),
        audit = audit_path(dir, name).display(),
        key = dir.join("audit-signing.key").display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    path
}

/// 10,000 rules, one role each, and `IDENTITIES` callers (agent and user) with one role
/// each: every caller's first decision is cold.
async fn ten_thousand_rules() -> Policy {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/model.conf");
    let mut rules = String::new();
    for i in 0..10_000 {
        rules.push_str(&format!("p, role:r{i}, srv{i}/*, read, allow\n"));
    }
    for j in 0..IDENTITIES {
        let role = (j * 7919) % 10_000;
        rules.push_str(&format!(
            "g, agent:a{j}, role:r{role}\ng, user:u{j}, role:r{role}\n"
        ));
    }
    rules.push_str("g, agent:a, role:r9999\ng, user:u, role:r9999\n");
    Policy::load(
        (&model, &std::fs::read_to_string(&model).unwrap()),
        (&dir.path().join("policy.csv"), &rules),
    )
    .await
    .unwrap()
}

const IDENTITIES: usize = 1_000;

fn caller(agent: String, user: String) -> Caller {
    let identity = IdentityConfig {
        agent,
        on_behalf_of: Some(user),
    };
    Caller::from_config(&identity, "b")
}

/// Cold decisions (p50, p99: each caller's first, on its own tool) and a repeated one (p50).
async fn policy_decisions() -> (Duration, Duration, Duration) {
    let policy = ten_thousand_rules().await;
    let mut cold: Vec<Duration> = (0..IDENTITIES)
        .map(|j| {
            let c = caller(format!("agent:a{j}"), format!("user:u{j}"));
            let object = format!("srv{}/tool", (j * 7919) % 10_000);
            let start = Instant::now();
            let d = policy.decide(&c, &object, Tier::Read);
            let took = start.elapsed();
            assert_eq!(d.effect, mcp_warden::policy::Effect::Allow);
            took
        })
        .collect();
    cold.sort();
    let c = caller("agent:a".into(), "user:u".into());
    policy.decide(&c, "srv9999/tool", Tier::Read);
    let mut times: Vec<Duration> = (0..10_000)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(policy.decide(&c, "srv9999/tool", Tier::Read));
            start.elapsed()
        })
        .collect();
    times.sort();
    (
        cold[cold.len() / 2],
        cold[cold.len() * 99 / 100],
        times[times.len() / 2],
    )
}

/// Resident memory of a process, from /proc (kB).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `mcp-warden serve` on the embedded defaults (the shipped manifests and policy, the
/// bundled demo tools, the audit log on disk), in a fresh directory.
fn serve_embedded_defaults(dir: &Path) -> std::process::Child {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["tool-manifests", "policies"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for entry in std::fs::read_dir(repo.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(sub).join(path.file_name().unwrap())).unwrap();
        }
    }
    std::process::Command::new(EXE)
        .args(["serve", "--transport", "http"])
        .current_dir(dir)
        .env("MCP_WARDEN_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

const MCP: &str = "http://127.0.0.1:8787/mcp";

/// POST one JSON-RPC message in a session; the answer's body.
async fn post(
    http: &reqwest::Client,
    session: Option<&str>,
    body: serde_json::Value,
) -> (Option<String>, String) {
    let mut request = http
        .post(MCP)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25");
    if let Some(s) = session {
        request = request.header("mcp-session-id", s);
    }
    let response = request.body(body.to_string()).send().await.unwrap();
    let id = response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    (id, response.text().await.unwrap())
}

async fn open_session(http: &reqwest::Client) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}});
    let (id, _) = post(http, None, init).await;
    let id = id.unwrap();
    post(
        http,
        Some(&id),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    id
}

async fn echo_in(http: &reqwest::Client, session: &str, n: u64) -> bool {
    let call = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {
        "name": "demo_echo", "arguments": {"text": "hi"}}});
    let (_, body) = post(http, Some(session), call).await;
    body.contains("\"result\"") && !body.contains("\"isError\":true")
}

struct Memory {
    idle_kb: u64,
    sessions_kb: u64,
    calls: u64,
    failed: u64,
}

/// Idle resident memory on the embedded defaults, then with `SESSIONS` sessions open and
/// 8 of them calling for 5 s.
async fn session_memory() -> Memory {
    const SESSIONS: usize = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let mut child = serve_embedded_defaults(dir.path());
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get("http://127.0.0.1:8787/healthz")
            .send()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = open_session(&http).await;
    assert!(echo_in(&http, &first, 1).await, "the gateway answers");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_kb = rss_kb(child.id());
    let mut sessions = vec![first];
    for _ in 1..SESSIONS {
        sessions.push(open_session(&http).await);
    }
    let stop = Instant::now() + Duration::from_secs(5);
    let callers: Vec<_> = sessions[..8]
        .iter()
        .cloned()
        .map(|s| {
            let http = http.clone();
            tokio::spawn(async move {
                let (mut calls, mut failed) = (0, 0);
                while Instant::now() < stop {
                    calls += 1;
                    if !echo_in(&http, &s, calls).await {
                        failed += 1;
                    }
                }
                (calls, failed)
            })
        })
        .collect();
    let mut peak_kb = 0;
    while Instant::now() < stop {
        peak_kb = peak_kb.max(rss_kb(child.id()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut calls, mut failed) = (0, 0);
    for c in callers {
        let (n, f) = c.await.unwrap();
        calls += n;
        failed += f;
    }
    // Every session is still open: the last one made answers too.
    failed += u64::from(!echo_in(&http, sessions.last().unwrap(), 1).await);
    let _ = child.kill();
    let _ = child.wait();
    Memory {
        idle_kb,
        sessions_kb: peak_kb,
        calls,
        failed,
    }
}

/// A syslog receiver on loopback that reads octet-counted frames and counts them: the
/// witness's far end, doing as little as a receiver can.
fn syslog_receiver() -> (u16, Arc<std::sync::atomic::AtomicU64>) {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let frames = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = frames.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let (mut stream, counted) = (stream.unwrap(), counted.clone());
            std::thread::spawn(move || {
                let (mut buf, mut chunk) = (Vec::new(), vec![0u8; 64 * 1024]);
                while let Ok(n) = stream.read(&mut chunk) {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    // Whole frames (`LEN SP MESSAGE`) counted, then dropped at once.
                    let mut at = 0;
                    while let Some(space) = buf[at..].iter().position(|b| *b == b' ') {
                        let len: usize = std::str::from_utf8(&buf[at..at + space])
                            .unwrap()
                            .parse()
                            .unwrap();
                        if buf.len() < at + space + 1 + len {
                            break;
                        }
                        at += space + 1 + len;
                        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    buf.drain(..at);
                }
            });
        }
    });
    (port, frames)
}

/// Wait until the audit log at `path` holds `expected` records (outcome records are
/// written with the next group commit, at most 20 ms later when no other record comes);
/// how many it holds.
async fn records_in(path: &Path, expected: usize) -> usize {
    let mut records = 0;
    for _ in 0..100 {
        records = std::fs::read_to_string(path).unwrap().lines().count();
        if records >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    records
}

/// An OTLP/HTTP receiver in this process, as light as a receiver can be while the paths
/// are measured: it keeps each request's body, decoded only afterwards (a collector runs
/// elsewhere; here it shares the two cores). Its port, and the bodies.
async fn otlp_receiver() -> (u16, Arc<std::sync::Mutex<Vec<axum::body::Bytes>>>) {
    let bodies: Arc<std::sync::Mutex<Vec<axum::body::Bytes>>> = Arc::default();
    let kept = bodies.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body);
                [("content-type", "application/x-protobuf")]
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, bodies)
}

/// The spans in the bodies an OTLP receiver kept.
fn spans_in(bodies: &std::sync::Mutex<Vec<axum::body::Bytes>>) -> u64 {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let bodies = bodies.lock().unwrap();
    bodies
        .iter()
        .map(|b| {
            let request = ExportTraceServiceRequest::decode(b.clone()).unwrap();
            request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len() as u64)
                .sum::<u64>()
        })
        .sum()
}

/// What the metrics cost a `tools/call`: the counters and histograms one call updates
/// (its method, its decision, its upstream round trip, its outcome and duration), timed
/// in this process over many calls.
fn metrics_per_call() -> Duration {
    use mcp_warden::telemetry::{CallLabels, Metrics};
    const N: u32 = 200_000;
    let m = Metrics::default();
    let start = Instant::now();
    for _ in 0..N {
        m.request("tools/call");
        m.decision_seconds.observe(0.000_01);
        m.upstream.answered("demo", Duration::from_micros(100));
        let labels = CallLabels {
            server: "demo".into(),
            gen_ai_tool_name: "demo_echo".into(),
            tier: "read",
            outcome: "ok",
            stage: "",
        };
        m.call(labels, Duration::from_micros(300));
    }
    start.elapsed() / N
}

/// What a traced call's span costs the gateway: the span started, its six stage events,
/// its context passed on, and at its end queued, encoded and sent over OTLP/HTTP by this
/// process's exporter (to a receiver of its own), timed over many calls until the last
/// span is sent. The spans the receiver got, and the time per span.
async fn traces_per_call() -> (u64, Duration) {
    use mcp_warden::telemetry::trace::{self, CallSpan};
    const N: u32 = 100_000;
    let (port, bodies) = otlp_receiver().await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut otlp = trace::Otlp::from(Some(&endpoint)).unwrap().unwrap();
    otlp.queue = N as usize + 1;
    let exporter = trace::start(&otlp).unwrap();
    let carried = trace::incoming(&serde_json::Map::new(), None);
    let start = Instant::now();
    for _ in 0..N {
        let span = CallSpan::start("tools/call", "demo_echo", &carried);
        span.event("identity", Some(Duration::from_micros(2)));
        span.event("policy", Some(Duration::from_micros(1)));
        drop(span.stage("audit.attempt"));
        let mut upstream = span.stage("upstream");
        upstream.attribute("server", "demo");
        std::hint::black_box(upstream.outgoing(&carried));
        drop(upstream);
        span.event("audit.outcome", None);
        std::hint::black_box(span.trace_id(&carried));
    }
    exporter.shutdown().await;
    let took = start.elapsed();
    (spans_in(&bodies), took / N)
}

fn row(name: &str, f: &Figures) {
    println!(
        "{:<10} {:>12} {:>12} {:>12.0}",
        name,
        ms(f.p50),
        ms(f.p99),
        f.calls_per_sec
    );
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
    let (port, frames) = syslog_receiver();
    let config = write_config(dir.path(), "gateway", "");
    let exported = write_config(
        dir.path(),
        "exported",
        &format!("\n[[witness]]\nsyslog = \"tcp://127.0.0.1:{port}\"\nrecords = \"all\"\n"),
    );
    // Ten flow rules and budgets, every one evaluated on every call.
    let flowed = write_config(dir.path(), "flowed", "");
    let flows = dir.path().join("flows.toml");
    let mut rules = String::new();
    for i in 0..8 {
        let to = match i % 2 {
            0 => "to = \"egress\"".to_string(),
            _ => format!("tools = \"srv{i}/*\""),
        };
        rules.push_str(&format!(
            "[[flow]]\nname = \"f{i}\"\nfrom = [\"label{i}\", \"pii\"]\n{to}\neffect = \"approve\"\n\n"
        ));
    }
    rules.push_str("[[budget]]\nname = \"acts\"\nact_calls = 1000\neffect = \"approve\"\n\n[[budget]]\nname = \"labels\"\nlabels = 100\neffect = \"deny\"\n");
    std::fs::write(&flows, rules).unwrap();
    let text = std::fs::read_to_string(&flowed).unwrap();
    let line = format!("[gateway]\nflows = \"{}\"\n", flows.display());
    std::fs::write(&flowed, text.replacen("[gateway]\n", &line, 1)).unwrap();
    let serve = |config: &Path| {
        let config = config.to_str().unwrap().to_string();
        let dir = dir.path().to_path_buf();
        async move {
            spawn(
                &["serve", "--transport", "stdio", "--config", &config],
                &dir,
            )
            .await
        }
    };
    // Every call's trace (a span a call, an event a stage) exported over OTLP/HTTP to a
    // receiver in this process, with a queue large enough that none is dropped; and the
    // same sampling a tenth of the calls that come without a trace context (the standard
    // variables; a caller's sampled `traceparent` is always followed).
    let (otlp_port, spans) = otlp_receiver().await;
    let tracing_gateway = |name: &'static str, sampler: &'static [(&'static str, &'static str)]| {
        let config = write_config(
            dir.path(),
            name,
            &format!("\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:{otlp_port}\"\n"),
        );
        let dir = dir.path().to_path_buf();
        async move {
            let mut envs = vec![
                ("OTEL_BSP_SCHEDULE_DELAY", "200"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "262144"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8192"),
            ];
            envs.extend_from_slice(sampler);
            let config = config.to_str().unwrap().to_string();
            spawn_with(
                &["serve", "--transport", "stdio", "--config", &config],
                &dir,
                &envs,
            )
            .await
        }
    };
    let direct = spawn(&["demo-tools"], dir.path()).await;
    let gateway = serve(&config).await;
    let with_export = serve(&exported).await;
    let with_flows = serve(&flowed).await;
    let with_traces = tracing_gateway("traced", &[]).await;
    let with_sampled = tracing_gateway(
        "sampled",
        &[
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.1"),
        ],
    )
    .await;
    // The three paths take turns, in a different order each round, so that neither
    // warming up nor the machine's drift favours one: each row is the median of its rounds.
    let paths = [
        (&direct, "echo", false),
        (&gateway, "demo_echo", true),
        (&with_export, "demo_echo", true),
        (&with_flows, "demo_echo", true),
        (&with_traces, "demo_echo", true),
        (&with_sampled, "demo_echo", true),
    ];
    let mut rounds: [Vec<Figures>; 6] = Default::default();
    for round in 0..ROUNDS {
        for turn in 0..paths.len() {
            let i = (turn + round) % paths.len();
            let (client, tool, intent) = paths[i];
            rounds[i].push(measure(client, tool, intent).await);
        }
    }
    // Each option against the gateway measured in the same round (the machine's state
    // shared), the median of those ratios: steadier than a ratio of two medians.
    let paired = |option: usize, of: fn(&Figures) -> f64| {
        let mut ratios: Vec<f64> = (0..ROUNDS)
            .map(|r| (of(&rounds[option][r]) / of(&rounds[1][r]) - 1.0) * 100.0)
            .collect();
        ratios.sort_by(f64::total_cmp);
        (ratios[ROUNDS / 2 - 1] + ratios[ROUNDS / 2]) / 2.0
    };
    let rate = |f: &Figures| f.calls_per_sec;
    let cpu_of = |f: &Figures| f.cpu_per_call.as_secs_f64();
    let pairs = [2, 3, 4, 5].map(|i| (paired(i, rate), paired(i, cpu_of)));
    let [d, g, x, f, t, sampled] = rounds.map(median);
    let expected = ROUNDS * 2 * (200 + SEQUENTIAL + CONCURRENT_CALLS);
    let audit = audit_path(dir.path(), "gateway");
    let records = records_in(&audit, expected).await;
    let _ = std::fs::remove_file(&audit);
    drop(gateway);
    let exported_log = audit_path(dir.path(), "exported");
    let exported_records = records_in(&exported_log, expected).await;
    let mut received = 0;
    for _ in 0..200 {
        received = frames.load(std::sync::atomic::Ordering::Relaxed);
        if received >= exported_records as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = std::fs::remove_file(&exported_log);
    println!(
        "tools/call echo, {SEQUENTIAL} sequential calls for latency, {CONCURRENT_CALLS} calls on {CONCURRENT_TASKS} concurrent tasks for throughput; median of {ROUNDS} interleaved rounds"
    );
    println!(
        "{:<10} {:>12} {:>12} {:>12}",
        "path", "p50", "p99", "calls/s"
    );
    row("direct", &d);
    row("gateway", &g);
    row("+export", &x);
    row("+flows", &f);
    row("+traces", &t);
    row("+traces/10", &sampled);
    println!(
        "+flows: 8 flow rules and 2 session budgets evaluated on every call; p50 {:+.3} ms, calls/s {:+.1} % against gateway",
        (f.p50.as_secs_f64() - g.p50.as_secs_f64()) * 1000.0,
        (f.calls_per_sec / g.calls_per_sec - 1.0) * 100.0
    );
    println!(
        "added p50 latency: {}; throughput ratio gateway/direct: {:.2}",
        ms(g.p50.saturating_sub(d.p50)),
        g.calls_per_sec / d.calls_per_sec
    );
    println!(
        "audit records written (attempt + outcome per call, durable, signed checkpoints every second) to {}: {records}",
        audit.display()
    );
    println!(
        "+export: every record also sent to a syslog witness over TCP ({received} of {exported_records} received); p50 {:+.3} ms, calls/s {:+.1} % against gateway",
        (x.p50.as_secs_f64() - g.p50.as_secs_f64()) * 1000.0,
        (x.calls_per_sec / g.calls_per_sec - 1.0) * 100.0
    );
    let traced_calls = ROUNDS * (200 + SEQUENTIAL + CONCURRENT_CALLS);
    let mut exported_spans = 0;
    for _ in 0..300 {
        exported_spans = spans_in(&spans);
        if exported_spans >= traced_calls as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "+traces: every call one trace (its span, an event a stage) exported over OTLP/HTTP ({exported_spans} spans received for its {traced_calls} calls and the sampled row's); p50 {:+.3} ms, calls/s {:+.1} % against gateway",
        (t.p50.as_secs_f64() - g.p50.as_secs_f64()) * 1000.0,
        (t.calls_per_sec / g.calls_per_sec - 1.0) * 100.0
    );
    println!(
        "+traces/10: the same, a tenth of the calls (those without a trace context) sampled; p50 {:+.3} ms, calls/s {:+.1} % against gateway",
        (sampled.p50.as_secs_f64() - g.p50.as_secs_f64()) * 1000.0,
        (sampled.calls_per_sec / g.calls_per_sec - 1.0) * 100.0
    );
    // The gateway's own CPU per call: what each option costs it, apart from the receivers
    // and the client that share the machine with it in this bench.
    let cpu = |f: &Figures| f.cpu_per_call.as_secs_f64() * 1e6;
    let share =
        |f: &Figures| (f.cpu_per_call.as_secs_f64() / g.cpu_per_call.as_secs_f64() - 1.0) * 100.0;
    println!(
        "gateway CPU per call (its own process, all threads, median of rounds): gateway {:.1} µs; +export {:.1} µs ({:+.1} %); +flows {:.1} µs ({:+.1} %); +traces {:.1} µs ({:+.1} %); +traces/10 {:.1} µs ({:+.1} %)",
        cpu(&g),
        cpu(&x),
        share(&x),
        cpu(&f),
        share(&f),
        cpu(&t),
        share(&t),
        cpu(&sampled),
        share(&sampled)
    );
    let [px, pf, pt, ps] = pairs;
    println!(
        "paired with the gateway in each round (median of {ROUNDS} rounds), calls/s and gateway CPU per call: +export {:+.1} % / {:+.1} %; +flows {:+.1} % / {:+.1} %; +traces {:+.1} % / {:+.1} %; +traces/10 {:+.1} % / {:+.1} %",
        px.0, px.1, pf.0, pf.1, pt.0, pt.1, ps.0, ps.1
    );
    let per_call = metrics_per_call();
    println!(
        "metrics: {:.2} µs of counters and histograms per call (in every gateway row), {:.1} % of a gateway call at its calls/s",
        per_call.as_secs_f64() * 1e6,
        per_call.as_secs_f64() * g.calls_per_sec * 100.0
    );
    let (sent, per_span) = traces_per_call().await;
    println!(
        "traces: {:.2} µs per traced call for its span (started, six events, context passed on, queued, encoded and sent: {sent} spans received), {:.1} % of a gateway call at its calls/s",
        per_span.as_secs_f64() * 1e6,
        per_span.as_secs_f64() * g.calls_per_sec * 100.0
    );
    let (cold_p50, cold_p99, cached) = policy_decisions().await;
    println!(
        "policy decision, 10,000 rules, chain of 2: cold (each of {IDENTITIES} callers' first) p50 {} p99 {}, repeated p50 {:.2} µs",
        ms(cold_p50),
        ms(cold_p99),
        cached.as_secs_f64() * 1e6
    );
    let m = session_memory().await;
    println!(
        "resident memory, embedded defaults over HTTP: idle {:.1} MB; 1,000 sessions with 8 calling for 5 s: {:.1} MB ({} calls, {} failed)",
        m.idle_kb as f64 / 1024.0,
        m.sessions_kb as f64 / 1024.0,
        m.calls,
        m.failed
    );
}
