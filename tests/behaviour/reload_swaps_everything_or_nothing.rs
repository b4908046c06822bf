//! Reloading policy, manifests and config while agents work: a valid reload takes effect
//! for the next call and is audited; a reload that hits any of casbin-rs' traps (a line
//! with an unknown rule type, a row with the wrong number of fields, a policy that would
//! be emptied by a failed load) or any other error changes nothing, so what was allowed
//! stays allowed and what was denied stays denied; calls in flight finish, and none is
//! lost, however many reloads happen under them.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, Setup, text};
use serde_json::{Value, json};

/// Reads are allowed; nothing grants `transform`, so `write_note` is denied.
const READS_ONLY: &str = "p, role:assistant, demo/*, read, allow\n\
                          g, agent:desktop, role:assistant\n\
                          g, user:alice, role:assistant\n";
const AND_WRITES: &str = "p, role:assistant, demo/*, transform, allow\n";

async fn gateway() -> Harness {
    Harness::with(Setup {
        policy: Some(READS_ONLY.into()),
        ..Setup::default()
    })
    .await
}

fn policy_file(h: &Harness) -> std::path::PathBuf {
    h.dir.path().join("policies/policy.csv")
}

async fn echo(h: &Harness) -> String {
    let r = h
        .call(
            "demo_echo",
            json!({"text": "still here", "intent": "check reads"}),
        )
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "reads stay allowed: {r:?}");
    text(&r)
}

async fn write_note(h: &Harness) -> rmcp::model::CallToolResult {
    let args = json!({"title": "plan", "body": "x", "intent": "save the plan"});
    h.call("demo_write_note", args).await.unwrap()
}

/// `write_note` is refused by policy and never reaches the upstream.
async fn assert_write_denied(h: &Harness) {
    let r = write_note(h).await;
    assert_eq!(r.is_error, Some(true), "writes stay denied: {r:?}");
    assert_eq!(h.audit().await.last().unwrap()["stage"], "policy");
    assert!(
        !h.upstream_calls().iter().any(|c| c["tool"] == "write_note"),
        "a denied write never reaches the upstream"
    );
}

/// Reload, expecting a refusal; its errors, located.
async fn reload_errors(h: &Harness) -> Vec<String> {
    let problems = h.state.reload("test").await.unwrap_err();
    problems
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.located())
        .collect()
}

async fn reload_records(h: &Harness) -> Vec<Value> {
    h.audit()
        .await
        .into_iter()
        .filter(|r| r["kind"] == "reload")
        .collect()
}

#[tokio::test]
async fn a_valid_reload_applies_to_the_next_call_and_is_audited() {
    let h = gateway().await;
    assert_write_denied(&h).await;
    std::fs::write(policy_file(&h), format!("{READS_ONLY}{AND_WRITES}")).unwrap();
    let done = h.state.reload("test").await.unwrap();
    assert_eq!(done.generation, 2);
    let r = write_note(&h).await;
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let records = reload_records(&h).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"], "ok");
    assert_eq!(records[0]["by"], "test");
    assert_eq!(records[0]["generation"], 2);
    let policy_digest = &records[0]["inputs"][policy_file(&h).display().to_string()];
    assert!(
        policy_digest.as_str().unwrap().starts_with("sha256:"),
        "{records:?}"
    );
    assert_eq!(echo(&h).await, "still here");
}

/// Write `broken` as the policy, reload, and check nothing changed: the error names
/// `expected`, the refusal is audited, reads still work and writes are still denied.
async fn refused_reload_changes_nothing(broken: Option<&str>, expected: &str) {
    let h = gateway().await;
    assert_eq!(echo(&h).await, "still here");
    match broken {
        Some(text) => std::fs::write(policy_file(&h), text).unwrap(),
        None => std::fs::remove_file(policy_file(&h)).unwrap(),
    }
    let errors = reload_errors(&h).await;
    assert!(
        errors.iter().any(|e| e.contains(expected)),
        "{errors:?} should mention {expected}"
    );
    assert_eq!(h.state.current().generation, 1, "nothing was swapped in");
    let records = reload_records(&h).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"], "refused");
    assert_eq!(records[0]["errors"], json!(errors));
    assert_eq!(echo(&h).await, "still here");
    assert_write_denied(&h).await;
}

#[tokio::test]
async fn a_line_with_an_unknown_rule_type_refuses_the_reload() {
    // casbin's file adapter would drop the `pp` line silently and load the rest.
    let broken = format!("{READS_ONLY}{AND_WRITES}pp, role:assistant, demo/*, read, deny\n");
    refused_reload_changes_nothing(Some(&broken), "policy.csv:5: unknown rule type `pp`").await;
}

#[tokio::test]
async fn a_row_with_the_wrong_number_of_fields_refuses_the_reload() {
    // casbin would load it, and then every check would return an error.
    let broken = format!("{READS_ONLY}{AND_WRITES}p, role:assistant, demo/echo, read\n");
    refused_reload_changes_nothing(Some(&broken), "policy.csv:5: `p` rows need 4 fields").await;
}

#[tokio::test]
async fn a_policy_that_cannot_be_read_or_is_empty_leaves_the_old_one_in_force() {
    // casbin's load_policy clears the running policy before it reads the new one: a
    // failed or empty read must not leave the gateway with no rules at all.
    refused_reload_changes_nothing(None, "cannot read").await;
    refused_reload_changes_nothing(Some(""), "has no `p` rules at all").await;
    refused_reload_changes_nothing(Some(&AND_WRITES.replace("p,", "p;")), "policy.csv:1").await;
}

/// A model Casbin reads but cannot evaluate (a matcher calling a function it does not
/// have, or no matcher at all) would deny every call: the reload is refused on the
/// model's line, and `check` calls the same files not ready to serve.
#[tokio::test]
async fn a_model_casbin_cannot_evaluate_refuses_the_reload() {
    let model = std::fs::read_to_string(common::repo().join("policies/model.conf")).unwrap();
    let matchers = model
        .lines()
        .position(|l| l.starts_with("[matchers]"))
        .unwrap()
        + 1;
    for broken in [
        model.replace("keyMatch(", "keyMatch7("),
        model[..model.find("[matchers]").unwrap()].to_string(),
    ] {
        let h = gateway().await;
        let model_file = h.dir.path().join("policies/model.conf");
        std::fs::write(&model_file, &broken).unwrap();
        let errors = reload_errors(&h).await;
        assert!(
            errors.iter().any(|e| e.contains("model.conf")),
            "{errors:?}"
        );
        assert_eq!(h.state.current().generation, 1, "nothing was swapped in");
        assert_eq!(echo(&h).await, "still here");
        assert_write_denied(&h).await;
        let config = h.dir.path().join("warden.toml");
        let (ok, report) =
            common::run_exe_async(&["check", "--offline", "--config", config.to_str().unwrap()])
                .await;
        assert!(!ok && !report.contains("ready to serve"), "{report}");
        if broken.contains("keyMatch7") {
            assert!(
                errors.iter().any(|e| e.contains(&format!(
                    "model.conf:{matchers}: the model cannot decide a request"
                ))),
                "{errors:?}"
            );
        }
    }
}

#[tokio::test]
async fn every_error_in_every_file_is_reported_together() {
    let h = gateway().await;
    let broken = format!("{READS_ONLY}{AND_WRITES}p, role:assistant, demo/echo, read\n");
    std::fs::write(policy_file(&h), broken).unwrap();
    let manifest = h.dir.path().join("tool-manifests/demo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen("tier = \"read\"", "tier = \"reed\"", 1),
    )
    .unwrap();
    let errors = reload_errors(&h).await;
    assert!(
        errors.iter().any(|e| e.contains("policy.csv:5")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("demo.toml")), "{errors:?}");
    // And with the config broken as well, all three files' errors are reported.
    let config = h.dir.path().join("warden.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("[gateway]\n", "[gateway]\nwatsch = 1\n", 1),
    )
    .unwrap();
    let errors = reload_errors(&h).await;
    assert!(errors.iter().any(|e| e.contains("watsch")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("policy.csv:5")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("demo.toml")), "{errors:?}");
    assert_eq!(echo(&h).await, "still here");
    assert_write_denied(&h).await;
}

fn slow(steps: u64) -> Value {
    json!({"steps": steps, "delay_ms": 100, "intent": "count slowly"})
}

async fn records_of(h: &Harness, kind: &str) -> usize {
    h.audit()
        .await
        .iter()
        .filter(|r| r["kind"] == kind && r["tool"] == "slow_count")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_calls_under_repeated_reloads_all_complete_and_are_audited() {
    let h = Arc::new(gateway().await);
    let calls: Vec<_> = (0..20)
        .map(|_| common::spawn_call(&h, "demo_slow_count", slow(3)))
        .collect();
    for n in 0..6 {
        let policy = match n % 2 {
            0 => format!("{READS_ONLY}{AND_WRITES}"),
            _ => READS_ONLY.to_string(),
        };
        std::fs::write(policy_file(&h), policy).unwrap();
        h.state.reload("test").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for call in calls {
        assert_eq!(text(&call.await.unwrap()), "counted to 3");
    }
    let received = h
        .upstream_calls()
        .iter()
        .filter(|c| c["tool"] == "slow_count")
        .count();
    assert_eq!(received, 20);
    assert_eq!(records_of(&h, "attempt").await, 20);
    assert_eq!(records_of(&h, "outcome").await, 20);
    assert_eq!(h.state.current().generation, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_finish_under_the_policy_they_started_with() {
    let h = Arc::new(gateway().await);
    let calls: Vec<_> = (0..5)
        .map(|_| common::spawn_call(&h, "demo_slow_count", slow(5)))
        .collect();
    for _ in 0..100 {
        if h.upstream_calls().len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.upstream_calls().len(), 5, "all five are upstream");
    // The new policy allows nothing to anyone.
    std::fs::write(policy_file(&h), "p, role:nobody, demo/*, read, allow\n").unwrap();
    h.state.reload("test").await.unwrap();
    for call in calls {
        assert_eq!(text(&call.await.unwrap()), "counted to 5");
    }
    let r = h
        .call("demo_echo", json!({"text": "x", "intent": "after"}))
        .await
        .unwrap();
    assert_eq!(
        r.is_error,
        Some(true),
        "the next call is decided by the new policy"
    );
    assert_eq!(h.audit().await.last().unwrap()["stage"], "policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_never_outlives_a_reload_that_now_refuses_the_call() {
    let h = Arc::new(
        Harness::with(Setup {
            approval_timeout: "30s".into(),
            ..Setup::default()
        })
        .await,
    );
    let args =
        json!({"order_id": "1001", "amount_cents": 1200, "intent": "refund the damaged order"});
    let waiting = common::spawn_call(&h, "demo_issue_refund", args);
    let id = common::first_pending(&h).await.id;
    let shipped = std::fs::read_to_string(policy_file(&h)).unwrap();
    std::fs::write(
        policy_file(&h),
        format!("{shipped}p, role:assistant, demo/issue_refund, act, deny\n"),
    )
    .unwrap();
    h.state.reload("test").await.unwrap();
    h.state
        .decide_approval(&id, "user:carol", true, None)
        .await
        .unwrap();
    let result = waiting.await.unwrap();
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert!(
        text(&result).contains("the policy was reloaded while this call waited"),
        "{}",
        text(&result)
    );
    assert!(h.upstream_calls().is_empty(), "never forwarded");
    assert_eq!(h.audit().await.last().unwrap()["stage"], "policy");
}
