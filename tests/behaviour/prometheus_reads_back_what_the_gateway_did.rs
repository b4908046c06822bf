//! A real Prometheus server (Debian's `prometheus`, started here with a scrape config
//! that points at the gateway's admin listener and presents the metrics token) scrapes
//! `/metrics` after a scripted set of calls: allowed, refused at the catalog, integrity,
//! intent, arguments and limits stages, denied by policy, approved, expired. The values read back through
//! Prometheus's query API are the calls made, the audit records written and the
//! upstream's state; a scrape without the token is refused.

use crate::common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Harness, Setup};
use serde_json::{Value, json};

const PROMETHEUS: &str = "/usr/bin/prometheus";
const TOKEN: &str = "scrape-token-for-the-test";

struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Prometheus scraping `target` (`host:port`) every second with the test's token.
fn prometheus(dir: &Path, target: &str) -> Prometheus {
    let token = dir.join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: warden\n    authorization:\n      credentials_file: {}\n    static_configs:\n      - targets: ['{target}']\n",
            token.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {PROMETHEUS} ({e}): `apt-get install prometheus` (.ci/run does)")
        });
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// The instant-query URL of `expr`.
fn query_url(p: &Prometheus, expr: &str) -> String {
    let encoded: String = expr
        .bytes()
        .map(|b| match b.is_ascii_alphanumeric() {
            true => (b as char).to_string(),
            false => format!("%{b:02X}"),
        })
        .collect();
    format!("{}/api/v1/query?query={encoded}", p.url)
}

/// An instant query's series: labels and value.
async fn query(p: &Prometheus, expr: &str) -> Vec<(Value, f64)> {
    let body: Value = reqwest::Client::new()
        .get(query_url(p, expr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "success", "{expr}: {body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let v = s["value"][1].as_str().unwrap().parse::<f64>().unwrap();
            (s["metric"].clone(), v)
        })
        .collect()
}

/// The one value of `expr` (0 when it has no series).
async fn value(p: &Prometheus, expr: &str) -> f64 {
    let series = query(p, expr).await;
    assert!(series.len() <= 1, "{expr}: {series:?}");
    series.first().map_or(0.0, |(_, v)| *v)
}

/// Wait (bounded) until Prometheus holds a scrape of the gateway taken after `after`.
async fn scraped_after(p: &Prometheus, after: f64) {
    for _ in 0..300 {
        let reached = reqwest::Client::new()
            .get(query_url(p, "timestamp(up{job=\"warden\"} == 1)"))
            .send()
            .await;
        if let Ok(r) = reached
            && let Ok(body) = r.json::<Value>().await
            && let Some(ts) = body["data"]["result"][0]["value"][1].as_str()
            && ts.parse::<f64>().unwrap() > after
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("Prometheus never scraped the gateway successfully");
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The shipped demo manifest with `slow_count`'s pin changed: that tool is quarantined.
fn manifest_with_a_stale_pin() -> String {
    let shipped = std::fs::read_to_string(common::repo().join("tool-manifests/demo.toml")).unwrap();
    let mut out = String::new();
    let mut in_slow_count = false;
    for line in shipped.lines() {
        if line.starts_with('[') {
            in_slow_count = line == "[tools.slow_count]";
        }
        match in_slow_count && line.starts_with("pin =") {
            true => out.push_str(&format!("pin = \"sha256:{}\"", "ab".repeat(32))),
            false => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[tokio::test]
async fn prometheus_scrapes_the_calls_decisions_approvals_and_audit_the_gateway_made() {
    let policy = std::fs::read_to_string(common::repo().join("policies/policy.csv")).unwrap()
        + "\np, role:assistant, demo/list_notes, read, deny\n";
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(TOKEN.as_bytes()));
    let h = Arc::new(
        Harness::with(Setup {
            policy: Some(policy),
            manifest: Some(manifest_with_a_stale_pin()),
            approval_timeout: "2s".into(),
            config_extra: format!(
                "[telemetry]\nmetrics_token_sha256 = \"{hash}\"\n\n[[limit]]\nwho = \"agent:*\"\ntools = \"demo/read_note\"\ncalls = 1\nper = \"1h\"\n"
            ),
            ..Setup::default()
        })
        .await,
    );
    let admin = h.serve_admin().await;

    // Without the token, `/metrics` is refused (and says what to send).
    let refused = reqwest::get(format!("{admin}/metrics")).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Authorization: Bearer")
    );

    for n in 0..3 {
        let ok = h
            .call("demo_echo", json!({"text": format!("hi {n}")}))
            .await;
        assert_ne!(ok.unwrap().is_error, Some(true));
    }
    assert!(
        h.call("demo_nope", json!({})).await.is_err(),
        "unknown tool"
    );
    let r = h
        .call("demo_write_note", json!({"title": "t", "body": "b"}))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true), "no intent");
    let r = h
        .call("demo_read_note", json!({"title": "x".repeat(65)}))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true), "arguments");
    let r = h.call("demo_list_notes", json!({})).await.unwrap();
    assert_eq!(r.is_error, Some(true), "denied by policy");
    let r = h.call("demo_slow_count", json!({"n": 1})).await.unwrap();
    assert_eq!(r.is_error, Some(true), "quarantined");
    let r = h
        .call("demo_read_note", json!({"title": "welcome"}))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "within the limit: {r:?}");
    let r = h
        .call("demo_read_note", json!({"title": "welcome"}))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true), "over the limit");
    let refund = |amount: u64| json!({"order_id": "7", "amount_cents": amount, "intent": "refund a broken order"});
    let waiting = common::spawn_call(&h, "demo_issue_refund", refund(100));
    let id = common::first_pending(&h).await.id;
    h.state
        .decide_approval(&id, "user:carol", true, None)
        .await
        .unwrap();
    assert_ne!(waiting.await.unwrap().is_error, Some(true), "approved");
    let expired = h.call("demo_issue_refund", refund(200)).await.unwrap();
    assert_eq!(expired.is_error, Some(true), "expired");

    // Every record written, the last checkpoint included (at most a second after the
    // last record), before the scrape that is read.
    let records = h.audit().await.len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lines = std::fs::read_to_string(h.audit_path())
        .unwrap()
        .lines()
        .count();
    assert!(lines > records, "a checkpoint follows the records");
    let done = now_secs();

    let dir = tempfile::tempdir().unwrap();
    let p = prometheus(dir.path(), admin.trim_start_matches("http://"));
    scraped_after(&p, done).await;

    let calls = |labels: &str| format!("mcp_warden_tool_calls_total{{{labels}}}");
    let expected = [
        (
            calls("gen_ai_tool_name=\"demo_echo\",outcome=\"ok\",tier=\"read\""),
            3.0,
        ),
        (
            calls(
                "server=\"unknown\",gen_ai_tool_name=\"unknown\",outcome=\"refused\",stage=\"catalog\"",
            ),
            1.0,
        ),
        (
            calls(
                "gen_ai_tool_name=\"demo_write_note\",tier=\"transform\",outcome=\"refused\",stage=\"intent\"",
            ),
            1.0,
        ),
        (
            calls("gen_ai_tool_name=\"demo_read_note\",outcome=\"refused\",stage=\"arguments\""),
            1.0,
        ),
        (
            calls("gen_ai_tool_name=\"demo_list_notes\",outcome=\"refused\",stage=\"policy\""),
            1.0,
        ),
        (
            calls("gen_ai_tool_name=\"demo_slow_count\",outcome=\"refused\",stage=\"integrity\""),
            1.0,
        ),
        (
            calls("gen_ai_tool_name=\"demo_read_note\",outcome=\"ok\""),
            1.0,
        ),
        (
            calls("gen_ai_tool_name=\"demo_read_note\",outcome=\"refused\",stage=\"limits\""),
            1.0,
        ),
        (
            calls("gen_ai_tool_name=\"demo_issue_refund\",tier=\"act\",outcome=\"ok\""),
            1.0,
        ),
        (
            calls("gen_ai_tool_name=\"demo_issue_refund\",outcome=\"refused\",stage=\"policy\""),
            1.0,
        ),
        ("sum(mcp_warden_tool_calls_total)".into(), 12.0),
        (
            "mcp_warden_requests_total{mcp_method_name=\"tools/call\"}".into(),
            12.0,
        ),
        (
            "mcp_warden_approvals_total{result=\"approved\"}".into(),
            1.0,
        ),
        ("mcp_warden_approvals_total{result=\"expired\"}".into(), 1.0),
        ("mcp_warden_approval_wait_seconds_count".into(), 2.0),
        ("mcp_warden_approvals_pending".into(), 0.0),
        // Policy asked for echo ×3, list_notes, read_note once and both refunds; the
        // stages before it refused the others.
        (
            "mcp_warden_policy_decision_duration_seconds_count".into(),
            7.0,
        ),
        (
            "mcp_warden_upstream_duration_seconds_count{server=\"demo\"}".into(),
            5.0,
        ),
        (
            "sum(mcp_warden_tool_call_duration_seconds_count)".into(),
            12.0,
        ),
        ("mcp_warden_audit_records_total".into(), lines as f64),
        ("mcp_warden_audit_write_failures_total".into(), 0.0),
        // The last checkpoint covers every record.
        ("mcp_warden_audit_unchecked_records".into(), 0.0),
        ("mcp_warden_audit_writable".into(), 1.0),
        ("mcp_warden_upstream_up{server=\"demo\"}".into(), 1.0),
        ("mcp_warden_tools_quarantined{server=\"demo\"}".into(), 1.0),
        ("mcp_warden_reload_generation".into(), 1.0),
        ("mcp_warden_sessions{transport=\"stdio\"}".into(), 1.0),
    ];
    let mut wrong = Vec::new();
    for (expr, want) in &expected {
        let got = value(&p, expr).await;
        if got != *want {
            wrong.push(format!("{expr}: {got}, expected {want}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // A made-up tool name never becomes a label.
    let series = query(
        &p,
        "mcp_warden_tool_calls_total{gen_ai_tool_name=\"demo_nope\"}",
    )
    .await;
    assert!(series.is_empty(), "{series:?}");
    // Each sync is observed once per group commit, its records per batch add up.
    let batched = value(&p, "mcp_warden_audit_batch_records_sum").await;
    assert_eq!(batched, lines as f64);
}
