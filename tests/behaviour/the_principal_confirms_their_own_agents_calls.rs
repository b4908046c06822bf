//! Personal mode, with the shipped policy's `role:personal` (dana and her agent
//! `agent:laptop`): `act` calls wait for dana herself (`confirm_in_client`; refunds
//! `confirm`). Through the Python SDK's client, which launches the gateway over stdio and
//! answers its question (an elicitation; on 2026-07-28 the call's answer, and the reply
//! the call made again; on 2025-11-25 a request on the call's stream): yes runs the call
//! once, audited as `confirmed` in the client; no, decline and cancel refuse it; no
//! answer expires, and a yes after the expiry runs nothing; a `confirm` rule never asks
//! in the client. Without elicitation the call waits for the approvals page,
//! where dana confirms signed in as herself. A repeated or altered call needs a new
//! confirmation, and a rule that asks for approvers refuses dana as before.

use crate::common;

use std::sync::Arc;

use common::{EXE, Harness, Setup, first_pending, read_lines, repo, spawn_call, text, write_setup};
use mcp_warden::admin::auth::token_hash;
use mcp_warden::approval::{ApprovalError, Channel};
use serde_json::{Value, json};

common::on_both_stores!(
    over_streamable_http_the_question_belongs_to_its_call(
        flavor = "multi_thread",
        worker_threads = 2
    ),
    without_elicitation_the_principal_confirms_on_the_page_and_a_repeat_needs_a_new_confirmation,
    a_rule_that_asks_for_approvers_refuses_the_principal_as_before,
);
common::on_both_stores!(
    sync a_yes_in_the_client_runs_the_call_once_and_is_audited_as_confirmed_there,
    no_decline_and_cancel_in_the_client_refuse_the_call_and_the_upstream_never_sees_it,
    an_unanswered_question_expires_and_nothing_runs,
    a_yes_after_the_request_expired_runs_nothing,
    a_confirm_rule_never_asks_in_the_client,
);

const DANA: &str = "dana-secret-token";
const CAROL: &str = "carol-secret-token";

fn setup(timeout: &str) -> Setup {
    let approvers: String = [("user:dana", DANA), ("user:carol", CAROL)]
        .iter()
        .map(|(who, t)| {
            format!(
                "[[approver]]\nidentity = \"{who}\"\nsha256 = \"{}\"\n",
                token_hash(t)
            )
        })
        .collect();
    Setup {
        approval_timeout: timeout.into(),
        config_extra: approvers,
        ..Setup::as_agent("agent:laptop", Some("user:dana"))
    }
}

/// The intent hides a right-to-left override: the question must show it escaped.
fn message() -> Value {
    json!({"to": "bob@example.com", "body": "the report is ready", "intent": "tell bob the report\u{202e} is ready"})
}

/// What the Python client saw, and the gateway's directory, after it called `tool` and
/// answered the gateway's question with `answer` (see tests/clients/python_confirm.py).
fn python(answer: &str, tool: &str, args: &Value, timeout: &str) -> (Value, tempfile::TempDir) {
    python_in("auto", answer, tool, args, timeout)
}

/// [`python`] with the client in `mode` (`auto`: 2026-07-28; `legacy`: 2025-11-25).
fn python_in(
    mode: &str,
    answer: &str,
    tool: &str,
    args: &Value,
    timeout: &str,
) -> (Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_setup(dir.path(), &setup(timeout));
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "run `python3 -m venv .venv && .venv/bin/pip install -r requirements-test.txt` (.ci/run does)"
    );
    let out = std::process::Command::new(python)
        .arg(repo().join("tests/clients/python_confirm.py"))
        .args([
            answer,
            tool,
            &args.to_string(),
            EXE,
            "serve",
            "--transport",
            "stdio",
            "--config",
        ])
        .arg(&config)
        .env("MCP_WARDEN_TEST_MODE", mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (seen, dir)
}

/// The Python client over Streamable HTTP, to a gateway in this process.
async fn python_over_http(
    mode: &str,
    answer: &str,
    tool: &str,
    args: &Value,
) -> (Value, Arc<Harness>) {
    let h = Arc::new(Harness::with(setup("30s")).await);
    let url = common::serve_http(h.state.clone()).await;
    let (answer, tool, args) = (answer.to_string(), tool.to_string(), args.to_string());
    let mode = mode.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(repo().join(".venv/bin/python"))
            .arg(repo().join("tests/clients/python_confirm.py"))
            .args([&answer, &tool, &args, "http", &url])
            .env("MCP_WARDEN_TEST_MODE", mode)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    (seen, h)
}

/// The audit log once the gateway (a child of the client, gone now) wrote it.
fn audit(dir: &tempfile::TempDir) -> Vec<Value> {
    common::audit_records(&dir.path().join("audit.jsonl"))
}

fn upstream_calls(dir: &tempfile::TempDir) -> Vec<Value> {
    read_lines(&dir.path().join("calls.jsonl"))
}

fn events(audit: &[Value]) -> Vec<&str> {
    audit
        .iter()
        .filter(|r| r["kind"] == "approval")
        .map(|r| r["event"].as_str().unwrap())
        .collect()
}

fn a_yes_in_the_client_runs_the_call_once_and_is_audited_as_confirmed_there() {
    for mode in ["auto", "legacy"] {
        a_yes_in_the_client(mode);
    }
}

fn a_yes_in_the_client(mode: &str) {
    let (seen, dir) = python_in(mode, "yes", "demo_send_message", &message(), "30s");
    assert_eq!(seen["result"]["is_error"], false, "{mode}: {seen}");
    assert_eq!(seen["result"]["text"][0], "message sent to bob@example.com");
    // The question says who asks to run what, why and with what.
    let asked = seen["asked"].as_array().unwrap();
    assert_eq!(asked.len(), 1, "{seen}");
    let question = asked[0]["message"].as_str().unwrap();
    for part in [
        "agent:laptop",
        "demo/send_message",
        "`act`",
        "tell bob the report\\u{202E} is ready",
        "bob@example.com",
    ] {
        assert!(question.contains(part), "{part}: {question}");
    }
    assert!(!question.contains('\u{202e}'), "{question}");
    assert_eq!(upstream_calls(&dir).len(), 1);
    let audit = audit(&dir);
    assert_eq!(events(&audit), ["requested", "confirmed", "executed"]);
    let confirmed = audit.iter().find(|r| r["event"] == "confirmed").unwrap();
    assert_eq!(confirmed["actor"], "user:dana");
    assert_eq!(confirmed["approval"]["verdicts"][0]["confirmed"], "client");
    let attempt = audit.iter().find(|r| r["kind"] == "attempt").unwrap();
    assert_eq!(attempt["decision"], "confirm_in_client");
    assert_eq!(attempt["approval"]["confirmed_by"], "user:dana");
    assert_eq!(attempt["approval"]["channel"], "client");
    assert_eq!(attempt["approval"]["approvers"], json!([]));
}

/// Over Streamable HTTP the question belongs to the waiting call (a 2025-11-25 client gets
/// it on the call's own POST stream; a 2026-07-28 one as the call's answer, its reply with
/// the call made again), and the answer counts for that call.
async fn over_streamable_http_the_question_belongs_to_its_call() {
    for mode in ["legacy", "auto"] {
        let (seen, h) = python_over_http(mode, "yes", "demo_send_message", &message()).await;
        assert_eq!(seen["result"]["is_error"], false, "{mode}: {seen}");
        assert_eq!(seen["asked"].as_array().unwrap().len(), 1);
        assert_eq!(h.upstream_calls().len(), 1);
        let audit = h.audit().await;
        let attempt = audit.iter().find(|r| r["kind"] == "attempt").unwrap();
        assert_eq!(attempt["approval"]["channel"], "client");
        let (seen, h) = python_over_http(mode, "decline", "demo_send_message", &message()).await;
        assert_eq!(seen["result"]["is_error"], true, "{mode}: {seen}");
        assert!(h.upstream_calls().is_empty());
    }
}

fn no_decline_and_cancel_in_the_client_refuse_the_call_and_the_upstream_never_sees_it() {
    for (answer, said) in [
        ("no", "answered no in their client"),
        ("decline", "declined in their client"),
        ("cancel", "dismissed the question in their client"),
    ] {
        for mode in ["auto", "legacy"] {
            refused_in_the_client(mode, answer, said);
        }
    }
}

fn refused_in_the_client(mode: &str, answer: &str, said: &str) {
    {
        let (seen, dir) = python_in(mode, answer, "demo_send_message", &message(), "30s");
        assert_eq!(seen["result"]["is_error"], true, "{answer}: {seen}");
        let refusal = seen["result"]["text"][0].as_str().unwrap();
        assert!(
            refusal.contains("denied by `user:dana`") && refusal.contains(said),
            "{answer}: {refusal}"
        );
        assert!(upstream_calls(&dir).is_empty(), "{answer}");
        let audit = audit(&dir);
        assert_eq!(events(&audit), ["requested", "denied"], "{answer}");
        let denied = audit.iter().find(|r| r["event"] == "denied").unwrap();
        assert_eq!(denied["approval"]["verdicts"][0]["confirmed"], "client");
        assert!(!audit.iter().any(|r| r["kind"] == "attempt"));
    }
}

/// A 2025-11-25 client that never answers: the request expires while the question is
/// open, and the call is answered with that.
fn an_unanswered_question_expires_and_nothing_runs() {
    let (seen, dir) = python_in("legacy", "never", "demo_send_message", &message(), "2s");
    assert_eq!(seen["result"]["is_error"], true, "{seen}");
    let refusal = seen["result"]["text"][0].as_str().unwrap();
    assert!(refusal.contains("expired after 2s"), "{refusal}");
    assert_eq!(seen["asked"].as_array().unwrap().len(), 1);
    assert!(upstream_calls(&dir).is_empty());
    assert_eq!(events(&audit(&dir)), ["requested", "expired"]);
}

/// A 2026-07-28 client holds the question as long as it likes: a yes that comes back
/// after the request expired runs nothing, and is audited as a decision that came late.
fn a_yes_after_the_request_expired_runs_nothing() {
    let (seen, dir) = python("late", "demo_send_message", &message(), "2s");
    assert_eq!(seen["result"]["is_error"], true, "{seen}");
    let refusal = seen["result"]["text"][0].as_str().unwrap();
    assert!(refusal.contains("expired after 2s"), "{refusal}");
    assert_eq!(seen["asked"].as_array().unwrap().len(), 1);
    assert!(upstream_calls(&dir).is_empty());
    let audit = audit(&dir);
    assert!(!audit.iter().any(|r| r["kind"] == "attempt"));
    assert_eq!(events(&audit), ["requested", "refused-decision"]);
    let late = audit
        .iter()
        .find(|r| r["event"] == "refused-decision")
        .unwrap();
    assert_eq!(late["actor"], "user:dana", "{late}");
    assert!(
        late["error"].as_str().unwrap().contains("expired"),
        "{late}"
    );
}

/// Refunds are `confirm`: the page or CLI only, so the client is never asked, however
/// willing it is.
fn a_confirm_rule_never_asks_in_the_client() {
    let refund = json!({"order_id": "1001", "amount_cents": 500, "intent": "refund the order"});
    let (seen, dir) = python("yes", "demo_issue_refund", &refund, "2s");
    assert_eq!(seen["asked"], json!([]), "{seen}");
    assert_eq!(seen["result"]["is_error"], true);
    assert!(upstream_calls(&dir).is_empty());
}

async fn decide(url: &str, id: &str, token: &str, verdict: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{url}/approvals/{id}/{verdict}"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

async fn without_elicitation_the_principal_confirms_on_the_page_and_a_repeat_needs_a_new_confirmation()
 {
    let h = Arc::new(Harness::with(setup("30s")).await);
    let url = h.serve_admin().await;
    let call = spawn_call(&h, "demo_send_message", message());
    let request = first_pending(&h).await;
    assert_eq!(request.call.confirm.as_ref().unwrap().by, "user:dana");
    // Dana sees her agent's call on the page, marked as hers to confirm.
    let listed: Value = reqwest::Client::new()
        .get(format!("{url}/approvals?status=pending"))
        .bearer_auth(DANA)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["requests"][0]["yours_to_confirm"], true, "{listed}");
    assert!(
        listed["requests"][0].get("cannot_decide").is_none(),
        "{listed}"
    );
    let (status, body) = decide(&url, &request.id, DANA, "approve").await;
    assert_eq!(status, 200, "{body}");
    let result = call.await.unwrap();
    assert_ne!(result.is_error, Some(true), "{}", text(&result));
    let audit = h.audit().await;
    let confirmed = audit.iter().find(|r| r["event"] == "confirmed").unwrap();
    assert_eq!(
        confirmed["approval"]["verdicts"][0]["confirmed"],
        "approvals"
    );
    let attempt = audit.iter().find(|r| r["kind"] == "attempt").unwrap();
    assert_eq!(attempt["approval"]["channel"], "approvals");

    // The same call again is a new request, waiting for a new confirmation.
    let again = spawn_call(&h, "demo_send_message", message());
    let second = first_pending(&h).await;
    assert_ne!(second.id, request.id);
    // Dana refuses this one from the page.
    assert_eq!(decide(&url, &second.id, DANA, "deny").await.0, 200);
    assert_eq!(again.await.unwrap().is_error, Some(true));
    // Other arguments are another call: a request of their own.
    let mut altered = message();
    altered["to"] = json!("eve@example.com");
    let other = spawn_call(&h, "demo_send_message", altered);
    let third = first_pending(&h).await;
    assert!(![&request.id, &second.id].contains(&&third.id));
    assert_ne!(third.call.args_digest, request.call.args_digest);
    assert_eq!(decide(&url, &third.id, DANA, "deny").await.0, 200);
    assert_eq!(other.await.unwrap().is_error, Some(true));
    assert_eq!(h.upstream_calls().len(), 1);
}

async fn a_rule_that_asks_for_approvers_refuses_the_principal_as_before() {
    // The tool owner asks for an approver with a role: dana's `confirm_in_client` rule
    // does not make her one.
    let shipped = std::fs::read_to_string(repo().join("tool-manifests/demo.toml")).unwrap();
    let manifest = shipped.replace(
        "[tools.send_message]\n",
        "[tools.send_message]\napproval = { approvers = \"role:approver\" }\n",
    );
    assert_ne!(manifest, shipped);
    let h = Arc::new(
        Harness::with(Setup {
            manifest: Some(manifest),
            ..setup("30s")
        })
        .await,
    );
    let url = h.serve_admin().await;
    let call = spawn_call(&h, "demo_send_message", message());
    let request = first_pending(&h).await;
    assert_eq!(request.call.confirm, None);
    let (status, body) = decide(&url, &request.id, DANA, "approve").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("never be the requesting agent"),
        "{body}"
    );
    let refused = h
        .state
        .confirm(&request.id, "user:dana", true, None, Channel::Client)
        .await;
    assert!(
        matches!(refused, Err(ApprovalError::NotConfirmable { .. })),
        "{refused:?}"
    );
    assert!(h.upstream_calls().is_empty());
    // An approver approves it: an approval, not a confirmation.
    assert_eq!(decide(&url, &request.id, CAROL, "approve").await.0, 200);
    let result = call.await.unwrap();
    assert_ne!(result.is_error, Some(true), "{}", text(&result));
    let audit = h.audit().await;
    let attempt = audit.iter().find(|r| r["kind"] == "attempt").unwrap();
    assert_eq!(attempt["decision"], "approve");
    assert_eq!(attempt["approval"]["approvers"], json!(["user:carol"]));
    assert!(attempt["approval"].get("confirmed_by").is_none());
    assert!(events(&audit).contains(&"refused-decision"));
}
