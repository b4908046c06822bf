//! Two gateways on one PostgreSQL database, as two replicas: a call parked on one is
//! released the moment an approver decides on the other, and runs once; a grant given on
//! one allows the very next call on the other, and a revocation there refuses it. With
//! the database stopped, a read call that needs nothing from it still runs, while calls
//! that need it (a grant, an approval) are refused with an error that says why, audited,
//! and never reach the upstream; when the database is back, they work again with nothing
//! restarted. A rate limit counts the calls of every replica together. A request nobody
//! decides expires (on the real clock, a short timeout) and a later decision on the other
//! replica changes nothing.

use crate::common;
use crate::common::postgres::Cluster;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Harness, STORE, Setup, text};
use mcp_warden::admin::auth::token_hash;
use serde_json::{Value, json};

const CAROL: &str = "carol-approves-on-every-replica";
/// The shipped policy, and: the desktop assistant may write notes only under a grant.
const EXTRA: &str = "p, role:approver, demo/*, approve, allow\ng, user:carol, role:approver\n";

fn setup() -> Setup {
    let shipped = std::fs::read_to_string(common::repo().join("policies/policy.csv")).unwrap();
    Setup {
        approval_timeout: "30s".into(),
        policy: Some(format!(
            "{}\n{EXTRA}",
            shipped.replace("p, role:assistant, demo/*, transform, allow", "")
        )),
        // Reading notes is counted (generously).
        config_extra: format!(
            "[[approver]]\nidentity = \"user:carol\"\nsha256 = \"{}\"\n\n[[limit]]\nwho = \"agent:*\"\ntools = \"demo/read_note\"\ncalls = 1000\nper = \"1h\"\n",
            token_hash(CAROL)
        ),
        ..Setup::default()
    }
}

/// Two replicas on the database `url`, each with its admin API.
async fn replicas(url: &str) -> [(Arc<Harness>, String); 2] {
    let mut out = Vec::new();
    for _ in 0..2 {
        let h = STORE.scope(url.to_string(), Harness::with(setup())).await;
        let admin = h.serve_admin().await;
        out.push((Arc::new(h), admin));
    }
    let [a, b]: [(Arc<Harness>, String); 2] = out.try_into().ok().unwrap();
    [a, b]
}

async fn post(url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(CAROL)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn refund() -> Value {
    json!({"order_id": "1001", "amount_cents": 1200, "intent": "refund the damaged order"})
}

fn note() -> Value {
    json!({"title": "t", "body": "b", "intent": "save the meeting notes"})
}

fn grant() -> Value {
    json!({"to": "agent:desktop", "on_behalf_of": "user:alice", "tools": "demo/write_note",
           "tier": "transform", "ttl": "30m", "reason": "notes for the offsite"})
}

fn count(h: &Harness, tool: &str) -> usize {
    h.upstream_calls()
        .iter()
        .filter(|c| c["tool"] == tool)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_parked_on_one_replica_runs_once_when_approved_on_the_other() {
    let url = common::postgres::database();
    let [(a, _), (b, admin_b)] = replicas(&url).await;
    let waiting = common::spawn_call(&a, "demo_issue_refund", refund());
    // The request, as replica b sees it.
    let id = common::first_listed(&admin_b, CAROL)
        .await
        .expect("replica b lists the request parked on a");
    let decided = Instant::now();
    let (status, body) = post(&format!("{admin_b}/approvals/{id}/approve"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let result = waiting.await.unwrap();
    let took = decided.elapsed();
    assert_eq!(text(&result), "refunded 12.00 for order 1001");
    assert!(
        took < Duration::from_secs(1),
        "released within a second: {took:?}"
    );
    assert_eq!(count(&a, "issue_refund"), 1, "ran once, on a");
    assert_eq!(count(&b, "issue_refund"), 0);
    // The identical call again, on b: the approval is spent.
    let again = b.call("demo_issue_refund", refund());
    let again = tokio::time::timeout(Duration::from_millis(500), again).await;
    assert!(
        again.is_err(),
        "b parks a new request instead of using the spent approval"
    );
    assert_eq!(count(&b, "issue_refund"), 0);
    let attempt = a
        .audit()
        .await
        .into_iter()
        .find(|r| r["kind"] == "attempt" && r["tool"] == "issue_refund")
        .unwrap();
    assert_eq!(attempt["approval"]["id"], json!(id), "{attempt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_grant_given_or_revoked_on_one_replica_holds_for_the_next_call_on_the_other() {
    let url = common::postgres::database();
    let [(_a, admin_a), (b, _)] = replicas(&url).await;
    let before = b.call("demo_write_note", note()).await.unwrap();
    assert_eq!(
        before.is_error,
        Some(true),
        "no grant yet: {}",
        text(&before)
    );

    let (status, created) = post(&format!("{admin_a}/grants"), grant()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    // At once, on the other replica.
    let allowed = b.call("demo_write_note", note()).await.unwrap();
    assert_eq!(text(&allowed), "saved `t`");

    let (status, body) = post(&format!("{admin_a}/grants/{id}/revoke"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let refused = b.call("demo_write_note", note()).await.unwrap();
    assert_eq!(refused.is_error, Some(true), "{}", text(&refused));
    assert_eq!(
        count(&b, "write_note"),
        1,
        "only the granted call reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_database_stopped_reads_run_and_what_needs_it_is_refused_until_it_returns() {
    let cluster = Cluster::start();
    let url = cluster.database();
    let [(a, admin_a), _] = replicas(&url).await;
    let (status, created) = post(&format!("{admin_a}/grants"), grant()).await;
    assert_eq!(status, 201, "{created}");

    cluster.stop();
    let read = a
        .call("demo_echo", json!({"text": "still here"}))
        .await
        .unwrap();
    assert_eq!(
        text(&read),
        "still here",
        "a read needs nothing from the database"
    );
    let granted = a.call("demo_write_note", note()).await.unwrap();
    assert_eq!(granted.is_error, Some(true));
    assert!(
        text(&granted).contains("could not be confirmed"),
        "{}",
        text(&granted)
    );
    let parked = a.call("demo_issue_refund", refund()).await.unwrap();
    assert_eq!(parked.is_error, Some(true));
    assert!(
        text(&parked).contains("state database"),
        "{}",
        text(&parked)
    );
    let counted = a
        .call("demo_read_note", json!({"title": "plan"}))
        .await
        .unwrap();
    assert_eq!(counted.is_error, Some(true));
    assert!(
        text(&counted).contains("could not be checked"),
        "{}",
        text(&counted)
    );
    assert_eq!(
        count(&a, "write_note") + count(&a, "issue_refund") + count(&a, "read_note"),
        0,
        "neither was forwarded"
    );
    let audit = a.audit().await;
    let refusals: Vec<&Value> = audit
        .iter()
        .filter(|r| r["kind"] == "decision" && r["decision"] == "deny")
        .collect();
    assert!(
        refusals.iter().any(|r| r["requested"] == "demo_write_note"
            && r["error"]
                .as_str()
                .is_some_and(|e| e.contains("could not be confirmed"))),
        "{refusals:#?}"
    );

    cluster.serve();
    let mut back = None;
    for _ in 0..50 {
        let r = a.call("demo_write_note", note()).await.unwrap();
        if r.is_error != Some(true) {
            back = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let back = back.expect("the granted call works again once the database is back");
    assert_eq!(text(&back), "saved `t`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_on_one_replica_is_announced_and_every_replica_reloads_its_own_files() {
    let url = common::postgres::database();
    let [(a, _), (b, admin_b)] = replicas(&url).await;
    let echo = json!({"text": "before"});
    assert_eq!(
        text(&b.call("demo_echo", echo.clone()).await.unwrap()),
        "before"
    );
    // The same change reaches both replicas' files (as a config rollout does); only a is
    // told to reload.
    for h in [&a, &b] {
        let policy = h.dir.path().join("policies/policy.csv");
        let rules = std::fs::read_to_string(&policy).unwrap();
        std::fs::write(
            &policy,
            format!("{rules}\np, role:assistant, demo/echo, read, deny\n"),
        )
        .unwrap();
    }
    a.state.reload("signal").await.unwrap();
    let mut generation = 1;
    for _ in 0..100 {
        generation = b.state.current().generation;
        if generation == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(generation, 2, "b reloaded when a announced its reload");
    let refused = b.call("demo_echo", json!({"text": "after"})).await.unwrap();
    assert_eq!(
        refused.is_error,
        Some(true),
        "b decides with its new policy"
    );
    let ready: Value = reqwest::get(format!("{admin_b}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["generation"], 2, "{ready}");
    let reload = b
        .audit()
        .await
        .into_iter()
        .find(|r| r["kind"] == "reload")
        .expect("b audits the reload");
    assert!(
        reload["by"].as_str().unwrap().starts_with("replica "),
        "{reload}"
    );
    // a's own reload was not done twice (it ignores its own announcement).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.state.current().generation, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rate_limit_counts_the_calls_of_every_replica_together() {
    let url = common::postgres::database();
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut setup = setup();
        setup.config_extra.push_str(
            "\n[[limit]]\nwho = \"agent:*\"\ntools = \"demo/echo\"\ncalls = 4\nper = \"1h\"\n",
        );
        replicas.push(STORE.scope(url.clone(), Harness::with(setup)).await);
    }
    let mut answered = 0;
    for i in 0..8 {
        let h = &replicas[i % 2];
        let r = h
            .call("demo_echo", json!({"text": format!("call {i}")}))
            .await
            .unwrap();
        if r.is_error != Some(true) {
            answered += 1;
        } else {
            assert!(text(&r).contains("rate limit"), "{}", text(&r));
        }
    }
    assert_eq!(answered, 4, "four calls an hour, not four a replica");
    let forwarded: usize = replicas.iter().map(|h| count(h, "echo")).sum();
    assert_eq!(forwarded, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undecided_request_expires_and_a_late_decision_on_the_other_replica_changes_nothing() {
    let url = common::postgres::database();
    let short = || Setup {
        approval_timeout: "2s".into(),
        ..setup()
    };
    let a = STORE.scope(url.clone(), Harness::with(short())).await;
    let b = STORE.scope(url.clone(), Harness::with(short())).await;
    let started = Instant::now();
    let result = a.call("demo_issue_refund", refund()).await.unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    assert_eq!(result.is_error, Some(true));
    assert!(
        text(&result).contains("expired after 2s without a decision; the call was not made"),
        "{}",
        text(&result)
    );
    // The other replica sees it expired, and a decision there is refused.
    let request = b.state.approvals.list(None).await.unwrap().pop().unwrap();
    assert_eq!(request.status, mcp_warden::approval::Status::Expired);
    let late = b
        .state
        .decide_approval(&request.id, "user:carol", true, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            late,
            mcp_warden::approval::ApprovalError::Closed {
                status: "expired",
                ..
            }
        ),
        "{late}"
    );
    assert_eq!(count(&a, "issue_refund") + count(&b, "issue_refund"), 0);
    let events = async |h: &Harness| -> Vec<String> {
        h.audit()
            .await
            .iter()
            .filter(|r| r["kind"] == "approval")
            .map(|r| r["event"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(events(&a).await, ["requested", "expired"]);
    assert_eq!(events(&b).await, ["refused-decision"]);
}
