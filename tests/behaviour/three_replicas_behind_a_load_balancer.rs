//! Three `mcp-warden serve` processes on one PostgreSQL database behind a real load
//! balancer (Debian's HAProxy, round robin, health-checked on `/healthz`), driven by an
//! rmcp client and the Python SDK's client through it. Sessions go wherever the balancer
//! sends each request (their ids are sealed under the shared `session_key`). An act call
//! parked on one replica is approved through another's admin API and runs once; a grant
//! given on one replica holds on all, and its revocation too; every replica keeps its
//! own audit chain, which `audit verify` checks as a directory. A call parked on a replica
//! that is then killed stays pending; once approved, the client's identical retry runs it
//! once on another replica. With the database stopped under load, read calls go on and a
//! call that needs it is refused and never forwarded; once it is back, such calls work again.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{EXE, Setup};
use mcp_warden::admin::auth::token_hash;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

const CAROL: &str = "carol-approves-behind-the-balancer";
const KEY: &str = "3c1f0e6a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e";
const EXTRA_POLICY: &str =
    "p, role:approver, demo/*, approve, allow\ng, user:carol, role:approver\n";

/// One replica: its process, its own directory (config, demo upstream's call log) and its
/// admin API.
pub struct Replica {
    pub child: tokio::process::Child,
    pub admin: String,
    pub dir: tempfile::TempDir,
}

/// The three replicas, the balancer in front of them, and the directory of their logs.
pub struct Fleet {
    pub replicas: Vec<Replica>,
    pub url: String,
    pub logs: tempfile::TempDir,
    _balancer: tokio::process::Child,
    _config: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A replica named `name` on the database `store`, its log in `logs`.
async fn replica(name: &str, store: &str, logs: &Path) -> (Replica, String) {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(common::repo().join("policies/policy.csv")).unwrap();
    let setup = Setup {
        approval_timeout: "60s".into(),
        policy: Some(format!(
            "{}\n{EXTRA_POLICY}",
            shipped.replace("p, role:assistant, demo/*, transform, allow", "")
        )),
        config_extra: format!(
            "[listen]\nhttp = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n[store]\nurl = \"{store}\"\nsession_key = \"{KEY}\"\n\n[[approver]]\nidentity = \"user:carol\"\nsha256 = \"{}\"\n",
            token_hash(CAROL)
        ),
        ..Setup::default()
    };
    let path = common::replica_config(dir.path(), logs, name, &setup);
    let (child, endpoint, admin, _) = common::serve_exe_with(&path, &[], &[]).await;
    (Replica { child, admin, dir }, endpoint)
}

/// HAProxy's configuration: round robin over `servers` (`host:port`), each checked on
/// `/healthz` every 200 ms; a connection refused is tried on another server.
fn balancer_config(port: u16, servers: &[String]) -> String {
    let mut text = format!(
        "global\n  maxconn 512\n\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\n  retries 2\n  option redispatch\n\nfrontend mcp\n  bind 127.0.0.1:{port}\n  default_backend gateways\n\nbackend gateways\n  balance roundrobin\n  option httpchk GET /healthz\n  http-check expect status 200\n"
    );
    for (i, server) in servers.iter().enumerate() {
        text.push_str(&format!(
            "  server gw{} {server} check inter 200ms fall 1 rise 1\n",
            i + 1
        ));
    }
    text
}

impl Fleet {
    /// Three replicas on a new database of the tests' shared cluster.
    pub async fn start() -> Self {
        Self::on(&common::postgres::database()).await
    }

    /// Three replicas on the database `store`.
    pub async fn on(store: &str) -> Self {
        let logs = tempfile::tempdir().unwrap();
        let mut replicas = Vec::new();
        let mut servers = Vec::new();
        for i in 1..=3 {
            let (r, endpoint) = replica(&format!("gw-{i}"), store, logs.path()).await;
            let host = endpoint
                .trim_start_matches("http://")
                .trim_end_matches("/mcp")
                .to_string();
            servers.push(host);
            replicas.push(r);
        }
        let config = tempfile::tempdir().unwrap();
        let port = free_port();
        let cfg = config.path().join("haproxy.cfg");
        std::fs::write(&cfg, balancer_config(port, &servers)).unwrap();
        let balancer = tokio::process::Command::new(haproxy())
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/mcp");
        let health = format!("http://127.0.0.1:{port}/healthz");
        for _ in 0..100 {
            if reqwest::get(&health).await.is_ok_and(|r| r.status() == 200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Every server checked up once.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Self {
            replicas,
            url,
            logs,
            _balancer: balancer,
            _config: config,
        }
    }

    /// The calls replica `i`'s upstream received.
    pub fn upstream_calls(&self, i: usize) -> Vec<Value> {
        common::read_lines(&self.replicas[i].dir.path().join("calls.jsonl"))
    }

    pub fn log(&self, i: usize) -> PathBuf {
        self.logs.path().join(format!("audit-gw-{}.jsonl", i + 1))
    }
}

fn haproxy() -> PathBuf {
    [
        "/usr/sbin/haproxy",
        "/usr/local/sbin/haproxy",
        "/usr/bin/haproxy",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("HAProxy is not installed: apt-get install haproxy (.ci/run does)")
}

async fn client(url: &str) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    ().serve(rmcp::transport::StreamableHttpClientTransport::from_uri(
        url.to_string(),
    ))
    .await
    .unwrap()
}

fn params(name: &str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_string()).with_arguments(args.as_object().cloned().unwrap())
}

async fn admin(method: reqwest::Method, url: String, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(CAROL)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn verify_all(logs: &Path) -> String {
    let out = std::process::Command::new(EXE)
        .args(["audit", "verify"])
        .arg(logs)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_is_served_by_every_replica_and_a_parked_call_is_approved_on_another() {
    let fleet = Fleet::start().await;
    let c = client(&fleet.url).await;
    // Six calls in one session: the balancer spreads them over the three replicas.
    for i in 0..6 {
        let r = c
            .peer()
            .call_tool(params("demo_echo", json!({"text": format!("call {i}")})))
            .await
            .unwrap();
        assert_eq!(common::text(&r), format!("call {i}"));
    }
    let served: Vec<usize> = (0..3).map(|i| fleet.upstream_calls(i).len()).collect();
    assert!(
        served.iter().all(|n| *n >= 1),
        "every replica served the session: {served:?}"
    );
    assert_eq!(served.iter().sum::<usize>(), 6);

    // An act call: parked on whichever replica the balancer chose.
    let peer = c.peer().clone();
    let waiting = tokio::spawn(async move {
        peer.call_tool(params(
            "demo_issue_refund",
            json!({"order_id": "7", "amount_cents": 900, "intent": "refund the broken order"}),
        ))
        .await
    });
    let parked = parked_on(&fleet).await;
    let id = approve_through(&fleet, (parked + 1) % 3).await;
    let result = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the parked call is released")
        .unwrap()
        .unwrap();
    assert_eq!(common::text(&result), "refunded 9.00 for order 7");
    let refunds: Vec<usize> = (0..3)
        .map(|i| {
            fleet
                .upstream_calls(i)
                .iter()
                .filter(|c| c["tool"] == "issue_refund")
                .count()
        })
        .collect();
    assert_eq!(refunds.iter().sum::<usize>(), 1, "ran once: {refunds:?}");
    assert_eq!(refunds[parked], 1, "on the replica it was parked on");
    let attempt = common::read_lines(&fleet.log(parked))
        .into_iter()
        .find(|r| r["kind"] == "attempt" && r["tool"] == "issue_refund")
        .expect("its attempt record, in its replica's log");
    assert_eq!(attempt["approval"]["id"], json!(id));
    assert_eq!(attempt["replica"], json!(format!("gw-{}", parked + 1)));
    drop(c);
    let said = verify_all(fleet.logs.path());
    assert!(said.contains("all 3 logs intact"), "{said}");
    // Each replica says which it is, and its generation.
    for (i, r) in fleet.replicas.iter().enumerate() {
        let ready: Value = reqwest::get(format!("{}/readyz", r.admin))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(ready["replica"], json!(format!("gw-{}", i + 1)), "{ready}");
        assert_eq!(ready["generation"], 1, "{ready}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grant_on_one_replica_holds_on_every_replica_and_so_does_its_revocation() {
    let fleet = Fleet::start().await;
    let c = client(&fleet.url).await;
    let note = |i: usize| {
        params(
            "demo_write_note",
            json!({"title": format!("n{i}"), "body": "b", "intent": "keep the notes"}),
        )
    };
    let refused = c.peer().call_tool(note(0)).await.unwrap();
    assert_eq!(refused.is_error, Some(true), "{}", common::text(&refused));
    let (status, created) = admin(
        reqwest::Method::POST,
        format!("{}/grants", fleet.replicas[2].admin),
        json!({"to": "agent:desktop", "on_behalf_of": "user:alice", "tools": "demo/write_note",
               "tier": "transform", "ttl": "30m", "reason": "the offsite notes"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    for i in 1..=3 {
        let r = c.peer().call_tool(note(i)).await.unwrap();
        assert_eq!(common::text(&r), format!("saved `n{i}`"));
    }
    let writes = |fleet: &Fleet| -> Vec<usize> {
        (0..3)
            .map(|i| {
                fleet
                    .upstream_calls(i)
                    .iter()
                    .filter(|c| c["tool"] == "write_note")
                    .count()
            })
            .collect()
    };
    assert_eq!(writes(&fleet), [1, 1, 1], "each replica honoured the grant");
    let id = created["id"].as_str().unwrap();
    let (status, body) = admin(
        reqwest::Method::POST,
        format!("{}/grants/{id}/revoke", fleet.replicas[2].admin),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for i in 4..=6 {
        let r = c.peer().call_tool(note(i)).await.unwrap();
        assert_eq!(
            r.is_error,
            Some(true),
            "revoked everywhere: {}",
            common::text(&r)
        );
    }
    assert_eq!(writes(&fleet), [1, 1, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_client_works_through_the_balancer_in_both_eras() {
    let fleet = Fleet::start().await;
    let python = common::repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "run `python3 -m venv .venv && .venv/bin/pip install -r requirements-test.txt` (.ci/run does)"
    );
    for mode in ["legacy", "auto"] {
        let out = tokio::process::Command::new(&python)
            .arg(common::repo().join("tests/clients/python_client.py"))
            .args(["http", &fleet.url])
            .env("MCP_WARDEN_TEST_MODE", mode)
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            seen["allowed"]["text"][0], "from the python sdk",
            "{mode}: {seen}"
        );
        assert_eq!(seen["refused"]["is_error"], true, "{mode}: {seen}");
    }
    let echoes: usize = (0..3)
        .map(|i| {
            fleet
                .upstream_calls(i)
                .iter()
                .filter(|c| c["tool"] == "echo")
                .count()
        })
        .sum();
    assert_eq!(echoes, 2);
}

/// `text` echoed through the balancer, again on a fresh session (as a client does) while
/// the balancer answers with an error; the answer, and how many tries it took.
async fn echo_until_answered(
    url: &str,
    session: &mut Option<rmcp::service::RunningService<rmcp::RoleClient, ()>>,
    text: &str,
) -> (String, usize) {
    for tries in 1..=20 {
        if session.is_none() {
            let opened = ()
                .serve(rmcp::transport::StreamableHttpClientTransport::from_uri(
                    url.to_string(),
                ))
                .await;
            match opened {
                Ok(c) => *session = Some(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(c) = session.as_ref() else { continue };
        let answered = tokio::time::timeout(
            Duration::from_secs(5),
            c.peer()
                .call_tool(params("demo_echo", json!({"text": text}))),
        )
        .await;
        match answered {
            Ok(Ok(r)) if r.is_error != Some(true) => return (common::text(&r), tries),
            _ => {
                *session = None;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    panic!("`{text}` was never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_a_replica_under_load_loses_no_attempt_record_and_no_chain() {
    const CALLERS: usize = 8;
    const CALLS: usize = 40;
    let mut fleet = Fleet::start().await;
    let url = fleet.url.clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (url, done) = (url.clone(), done.clone());
            tokio::spawn(async move {
                let mut session = None;
                let mut retried = 0;
                for j in 0..CALLS {
                    let text = format!("c{i}-{j}");
                    let (answer, tries) = echo_until_answered(&url, &mut session, &text).await;
                    assert_eq!(answer, text, "each call gets its own answer");
                    retried += tries - 1;
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                retried
            })
        })
        .collect();
    // A quarter of the way, the second replica dies without a chance to flush anything.
    while done.load(std::sync::atomic::Ordering::SeqCst) < CALLERS * CALLS / 4 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    fleet.replicas[1].child.start_kill().unwrap();
    fleet.replicas[1].child.wait().await.unwrap();
    let at_kill = done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        at_kill < CALLERS * CALLS,
        "calls were still running when it died"
    );
    let mut retried = 0;
    for c in callers {
        retried += c.await.unwrap();
    }

    // Every call the upstreams received (once, or again after a retry) was forwarded by
    // a replica that had written its attempt record first, in its own chain.
    let mut executed = std::collections::HashMap::<String, usize>::new();
    for i in 0..3 {
        let attempts: std::collections::HashSet<String> = common::read_lines(&fleet.log(i))
            .iter()
            .filter(|r| r["kind"] == "attempt" && r["tool"] == "echo")
            .filter_map(|r| r["args"]["text"].as_str().map(String::from))
            .collect();
        for call in fleet.upstream_calls(i) {
            let text = call["args"]["text"].as_str().unwrap().to_string();
            assert!(
                attempts.contains(&text),
                "gw-{}: `{text}` reached the upstream without an attempt record",
                i + 1
            );
            *executed.entry(text).or_default() += 1;
        }
    }
    for i in 0..CALLERS {
        for j in 0..CALLS {
            assert!(
                executed.contains_key(&format!("c{i}-{j}")),
                "c{i}-{j} never ran"
            );
        }
    }
    let served_by_the_dead = fleet.upstream_calls(1).len();
    assert!(
        served_by_the_dead > 0,
        "the killed replica had served calls"
    );
    let again = executed.values().filter(|n| **n > 1).count();
    assert!(
        again <= retried,
        "a call runs twice only when its answer was lost and it was retried ({again} > {retried})"
    );
    let said = verify_all(fleet.logs.path());
    assert!(said.contains("all 3 logs intact"), "{said}");
}

/// How many times `tool` ran on each replica's upstream.
fn ran(fleet: &Fleet, tool: &str) -> Vec<usize> {
    (0..3)
        .map(|i| {
            fleet
                .upstream_calls(i)
                .iter()
                .filter(|c| c["tool"] == tool)
                .count()
        })
        .collect()
}

/// The replica whose log holds an approval request, once one does.
async fn parked_on(fleet: &Fleet) -> usize {
    for _ in 0..400 {
        let found = (0..3).find(|i| {
            common::read_lines(&fleet.log(*i))
                .iter()
                .any(|r| r["kind"] == "approval" && r["event"] == "requested")
        });
        if let Some(i) = found {
            return i;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no replica parked the call");
}

/// Approve the one pending request, listed and decided through replica `on`'s admin API:
/// its id.
async fn approve_through(fleet: &Fleet, on: usize) -> String {
    let admin_url = &fleet.replicas[on].admin;
    let (status, listed) = admin(
        reqwest::Method::GET,
        format!("{admin_url}/approvals?status=pending"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    let id = listed["requests"][0]["id"]
        .as_str()
        .expect("a pending request, in the database every replica reads")
        .to_string();
    let (status, body) = admin(
        reqwest::Method::POST,
        format!("{admin_url}/approvals/{id}/approve"),
        json!({"comment": "checked"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    id
}

/// `call` made through the balancer on a fresh session each time until a replica answers
/// it (not a transport failure): the answer.
async fn until_answered(url: &str, call: CallToolRequestParams) -> rmcp::model::CallToolResult {
    for _ in 0..40 {
        let opened = ()
            .serve(rmcp::transport::StreamableHttpClientTransport::from_uri(
                url.to_string(),
            ))
            .await;
        if let Ok(c) = opened {
            let answered =
                tokio::time::timeout(Duration::from_secs(5), c.peer().call_tool(call.clone()))
                    .await;
            if let Ok(Ok(result)) = answered {
                return result;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_parked_on_a_replica_killed_meanwhile_runs_once_when_retried_after_approval() {
    let mut fleet = Fleet::start().await;
    let refund = || {
        params(
            "demo_issue_refund",
            json!({"order_id": "8", "amount_cents": 800, "intent": "refund the late order"}),
        )
    };
    let c = client(&fleet.url).await;
    let peer = c.peer().clone();
    let first = tokio::spawn(async move { peer.call_tool(refund()).await });
    let parked = parked_on(&fleet).await;
    // The replica holding the call dies; its client gives up on that call (its stream
    // cannot be resumed elsewhere) and will make it again.
    fleet.replicas[parked].child.start_kill().unwrap();
    fleet.replicas[parked].child.wait().await.unwrap();
    first.abort();
    drop(c);

    // The request is still pending, and an approver decides on another replica.
    let id = approve_through(&fleet, (parked + 1) % 3).await;

    // The client's identical retry lands on a live replica and runs, once.
    let retried = until_answered(&fleet.url, refund()).await;
    assert_eq!(common::text(&retried), "refunded 8.00 for order 8");
    let runs = ran(&fleet, "issue_refund");
    assert_eq!(runs.iter().sum::<usize>(), 1, "ran once: {runs:?}");
    assert_eq!(runs[parked], 0, "not on the dead replica");
    let ran_on = runs.iter().position(|n| *n == 1).unwrap();
    let attempt = common::read_lines(&fleet.log(ran_on))
        .into_iter()
        .find(|r| r["kind"] == "attempt" && r["tool"] == "issue_refund")
        .expect("the attempt record, in the log of the replica that ran it");
    assert_eq!(attempt["approval"]["id"], json!(id));
    // The approval is spent: the same call again waits for a new decision.
    let again = tokio::time::timeout(
        Duration::from_millis(800),
        until_answered(&fleet.url, refund()),
    )
    .await;
    assert!(again.is_err(), "a second run needs a new approval");
    assert_eq!(ran(&fleet, "issue_refund").iter().sum::<usize>(), 1);
    let said = verify_all(fleet.logs.path());
    assert!(said.contains("all 3 logs intact"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_database_stopped_under_load_reads_go_on_and_what_needs_it_is_refused() {
    const CALLERS: usize = 8;
    let cluster = common::postgres::Cluster::start();
    let fleet = Fleet::on(&cluster.database()).await;
    let url = fleet.url.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let c = client(&url).await;
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let text = format!("c{i}-{answered}");
                    let r = c
                        .peer()
                        .call_tool(params("demo_echo", json!({"text": text})))
                        .await
                        .unwrap();
                    assert_eq!(
                        common::text(&r),
                        text,
                        "a read needs nothing from the database"
                    );
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // An act call needs the database (its approval request): refused, said why, not run.
    let c = client(&fleet.url).await;
    let refund = params(
        "demo_issue_refund",
        json!({"order_id": "9", "amount_cents": 900, "intent": "refund during the outage"}),
    );
    let refused = c.peer().call_tool(refund.clone()).await.unwrap();
    assert_eq!(refused.is_error, Some(true));
    assert!(
        common::text(&refused).contains("state database"),
        "{}",
        common::text(&refused)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.serve();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut answered = 0;
    for c in callers {
        answered += c.await.unwrap();
    }
    assert!(answered >= CALLERS, "reads ran throughout: {answered}");
    assert_eq!(ran(&fleet, "issue_refund"), [0, 0, 0], "never forwarded");

    // Back: the same call parks for an approver again, as it should.
    let peer = c.peer().clone();
    let waiting = tokio::spawn(async move { peer.call_tool(refund).await });
    let parked = parked_on(&fleet).await;
    approve_through(&fleet, (parked + 2) % 3).await;
    let result = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(common::text(&result), "refunded 9.00 for order 9");
    assert_eq!(ran(&fleet, "issue_refund").iter().sum::<usize>(), 1);
    let said = verify_all(fleet.logs.path());
    assert!(said.contains("all 3 logs intact"), "{said}");
}
