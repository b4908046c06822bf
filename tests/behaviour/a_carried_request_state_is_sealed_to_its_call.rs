//! A 2026-07-28 client in personal mode is asked to confirm by the answer to its call
//! (an `InputRequiredResult`: the question and a `requestState`), and answers by making
//! the call again with that state. The state is sealed by the gateway and bound to the
//! caller's chain and the exact call: changed, presented by another caller, with other
//! arguments, or a second time, it is refused (a JSON-RPC error, `-32602`) at the
//! `state` stage before anything is decided; the upstream never sees the call, and the
//! audit says why. The genuine answer runs the call once, audited as confirmed in the
//! client. The same holds for
//! the state of a call whose upstream asked the caller something: one round, once.

use crate::common;

use common::{Setup, modern, read_lines};
use serde_json::{Value, json};

/// Dana's agent `agent:laptop` (personal mode: `act` is `confirm_in_client`) and
/// `agent:helper`, also for dana, each with an API key.
fn setup(helper_hash: &str, laptop_hash: &str) -> Setup {
    Setup {
        approval_timeout: "60s".into(),
        config_extra: format!(
            "[[identity.api_keys]]\nagent = \"agent:laptop\"\non_behalf_of = \"user:dana\"\nsha256 = \"{laptop_hash}\"\n\n\
             [[identity.api_keys]]\nagent = \"agent:helper\"\non_behalf_of = \"user:dana\"\nsha256 = \"{helper_hash}\"\n"
        ),
        ..Setup::as_agent("agent:laptop", Some("user:dana"))
    }
}

fn message(body: &str) -> Value {
    json!({"to": "bob@example.com", "body": body, "intent": "tell bob"})
}

/// A client that can answer form elicitations.
fn asks() -> Value {
    json!({"elicitation": {"form": {}}})
}

fn yes() -> Value {
    json!({"confirm": {"action": "accept", "content": {"confirm": true}}})
}

fn send(id: u64, body: &str, state: Option<&str>) -> Value {
    let mut params = json!({"arguments": message(body)});
    if let Some(s) = state {
        params["requestState"] = json!(s);
        params["inputResponses"] = yes();
    }
    modern::call(id, "demo_send_message", params, asks())
}

/// The message of the JSON-RPC error a call with a state that is not its own gets
/// (`-32602`: the request cannot be used).
fn refusal(answer: &Value) -> String {
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    answer["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_foreign_or_replayed_state_is_refused_and_the_genuine_answer_runs_once() {
    let (helper_key, helper_hash) = mcp_warden::identity::new_api_key();
    let (laptop_key, laptop_hash) = mcp_warden::identity::new_api_key();
    let (dir, url, state) = common::http_gateway(&setup(&helper_hash, &laptop_hash)).await;
    let laptop = Some(laptop_key.as_str());

    // Round one: the question, and the state to bring back.
    let asked = modern::post(&url, &send(1, "the report", None), laptop, &[]).await;
    let result = &asked.message["result"];
    assert_eq!(result["resultType"], "input_required", "{}", asked.message);
    let question = &result["inputRequests"]["confirm"];
    assert_eq!(question["method"], "elicitation/create", "{question}");
    assert!(
        question["params"]["message"]
            .as_str()
            .unwrap()
            .contains("demo/send_message"),
        "{question}"
    );
    let sealed = result["requestState"].as_str().unwrap().to_string();

    // Changed in one character.
    let mut bent: Vec<char> = sealed.chars().collect();
    let at = bent.len() / 2;
    bent[at] = if bent[at] == 'A' { 'B' } else { 'A' };
    let bent: String = bent.into_iter().collect();
    let answer = modern::post(&url, &send(2, "the report", Some(&bent)), laptop, &[]).await;
    assert!(
        refusal(&answer.message).contains("requestState"),
        "{}",
        answer.message
    );

    // Presented by another caller (another agent of the same user).
    let helper = Some(helper_key.as_str());
    let answer = modern::post(&url, &send(3, "the report", Some(&sealed)), helper, &[]).await;
    assert!(
        refusal(&answer.message).contains("requestState"),
        "{}",
        answer.message
    );

    // For other arguments.
    let answer = modern::post(&url, &send(4, "something else", Some(&sealed)), laptop, &[]).await;
    assert!(
        refusal(&answer.message).contains("requestState"),
        "{}",
        answer.message
    );

    // Nothing of that reached the upstream, and each was audited at the `state` stage.
    let calls = dir.path().join("calls.jsonl");
    assert!(read_lines(&calls).is_empty());
    state.audit.flush().await.unwrap();
    let audit = read_lines(&dir.path().join("audit.jsonl"));
    let at_state: Vec<&Value> = audit
        .iter()
        .filter(|r| r["kind"] == "decision" && r["stage"] == "state")
        .collect();
    assert_eq!(at_state.len(), 3, "{audit:#?}");
    assert!(at_state.iter().all(|r| r["decision"] == "deny"));
    assert_eq!(at_state[1]["agent"], "agent:helper");

    // The genuine answer: the call runs, once.
    let answer = modern::post(&url, &send(5, "the report", Some(&sealed)), laptop, &[]).await;
    assert_eq!(
        answer.message["result"]["isError"], false,
        "{}",
        answer.message
    );
    assert_eq!(read_lines(&calls).len(), 1);
    state.audit.flush().await.unwrap();
    let audit = read_lines(&dir.path().join("audit.jsonl"));
    let confirmed = audit
        .iter()
        .find(|r| r["kind"] == "approval" && r["event"] == "confirmed")
        .unwrap();
    assert_eq!(confirmed["actor"], "user:dana", "{confirmed}");
    let attempt = audit.iter().find(|r| r["kind"] == "attempt").unwrap();
    assert_eq!(attempt["approval"]["channel"], "client", "{attempt}");

    // The same state again: refused, and the upstream still saw one call.
    let answer = modern::post(&url, &send(6, "the report", Some(&sealed)), laptop, &[]).await;
    let told = refusal(&answer.message);
    assert!(told.contains("already used"), "{told}");
    assert_eq!(read_lines(&calls).len(), 1);
}

/// An answer without the state it belongs to is no answer: the client is asked again
/// and nothing runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_its_state_is_asked_again() {
    let (_, helper_hash) = mcp_warden::identity::new_api_key();
    let (laptop_key, laptop_hash) = mcp_warden::identity::new_api_key();
    let (dir, url, _state) = common::http_gateway(&setup(&helper_hash, &laptop_hash)).await;
    let params = json!({"arguments": message("the report"), "inputResponses": yes()});
    let body = modern::call(1, "demo_send_message", params, asks());
    let answer = modern::post(&url, &body, Some(&laptop_key), &[]).await;
    assert_eq!(
        answer.message["result"]["resultType"], "input_required",
        "{}",
        answer.message
    );
    assert!(read_lines(&dir.path().join("calls.jsonl")).is_empty());
}

/// The state of a call whose upstream asked the caller (npm `server-everything` over
/// stdio asks for an elicitation): changed, it is refused and the upstream's question
/// stays open; the genuine answer reaches the upstream and the call ends with one
/// attempt and one outcome; the same state again is refused and nothing is answered
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_of_a_call_whose_upstream_asked_is_good_for_one_round() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::everything_gateway(&dir).await;
    let url = common::serve_http(state.clone()).await;
    let tool = "everything_trigger-elicitation-request";
    let round = |id: u64, sealed: Option<&str>| {
        let mut params = json!({"arguments": {}});
        if let Some(s) = sealed {
            params["requestState"] = json!(s);
            params["inputResponses"] = json!({"upstream": {"action": "accept",
                "content": {"name": "Ann", "email": "ann@example.com", "age": 30, "color": "blue"}}});
        }
        modern::call(id, tool, params, asks())
    };
    let asked = modern::post(&url, &round(1, None), None, &[]).await;
    let result = &asked.message["result"];
    assert_eq!(result["resultType"], "input_required", "{}", asked.message);
    assert_eq!(
        result["inputRequests"]["upstream"]["method"],
        "elicitation/create"
    );
    let sealed = result["requestState"].as_str().unwrap().to_string();

    let mut bent: Vec<char> = sealed.chars().collect();
    let at = bent.len() - 3;
    bent[at] = if bent[at] == 'A' { 'B' } else { 'A' };
    let bent: String = bent.into_iter().collect();
    let answer = modern::post(&url, &round(2, Some(&bent)), None, &[]).await;
    assert!(
        refusal(&answer.message).contains("requestState"),
        "{}",
        answer.message
    );

    let answer = modern::post(&url, &round(3, Some(&sealed)), None, &[]).await;
    let done = &answer.message["result"];
    assert_eq!(done["resultType"], "complete", "{}", answer.message);
    assert_ne!(done["isError"], true, "{}", answer.message);
    assert!(done["content"].to_string().contains("Name: Ann"), "{done}");

    let answer = modern::post(&url, &round(4, Some(&sealed)), None, &[]).await;
    assert!(
        refusal(&answer.message).contains("already used"),
        "{}",
        answer.message
    );

    state.audit.flush().await.unwrap();
    let audit = common::audit_records(&dir.path().join("audit.jsonl"));
    let count = |kind: &str| audit.iter().filter(|r| r["kind"] == kind).count();
    assert_eq!((count("attempt"), count("outcome")), (1, 1), "{audit:#?}");
    let at_state = audit
        .iter()
        .filter(|r| r["kind"] == "decision" && r["stage"] == "state")
        .count();
    assert_eq!(at_state, 2, "{audit:#?}");
}

/// A caller that does not come back within the call timeout: the parked call is let go
/// (its outcome is audited: no result), and an answer brought back afterwards runs
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_call_whose_caller_never_comes_back_is_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::everything_gateway_with(&dir, "call_timeout = \"1s\"\n").await;
    let url = common::serve_http(state.clone()).await;
    let body = modern::call(
        1,
        "everything_trigger-elicitation-request",
        json!({"arguments": {}}),
        asks(),
    );
    let asked = modern::post(&url, &body, None, &[]).await;
    let sealed = asked.message["result"]["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", asked.message))
        .to_string();
    // The call's outcome is written once it is let go.
    let audit_path = dir.path().join("audit.jsonl");
    let mut outcome = None;
    for _ in 0..200 {
        state.audit.flush().await.unwrap();
        outcome = common::audit_records(&audit_path)
            .into_iter()
            .find(|r| r["kind"] == "outcome");
        if outcome.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let outcome = outcome.expect("the let-go call's outcome is audited");
    assert_ne!(outcome["outcome"], "ok", "{outcome}");
    // An answer that comes now runs nothing: its state has expired with the call, or the
    // round is gone ("has ended"), or, if it is still being let go, the call's answer is
    // the failure already audited.
    let late = modern::call(
        10,
        "everything_trigger-elicitation-request",
        json!({"arguments": {}, "requestState": sealed,
            "inputResponses": {"upstream": {"action": "accept", "content": {"name": "late"}}}}),
        asks(),
    );
    let answer = modern::post(&url, &late, None, &[]).await.message;
    let ended = answer["error"]["code"] == -32602
        && answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("has ended") || m.contains("expired"));
    assert!(ended || answer["result"]["isError"] == true, "{answer}");
    state.audit.flush().await.unwrap();
    let outcomes = common::audit_records(&audit_path)
        .into_iter()
        .filter(|r| r["kind"] == "outcome")
        .count();
    assert_eq!(outcomes, 1, "the call ended once");
}

/// A 2026-07-28 upstream's own `requestState` never reaches the caller: the caller gets
/// the gateway's sealed state, and the upstream gets its own back with the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstreams_own_state_stays_in_the_gateway() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fixture_url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(crate::fixture::serve(listener));
    let dir = tempfile::tempdir().unwrap();
    let state =
        common::fixture_gateway_with(dir.path(), &fixture_url, "", "protocol = \"auto\"").await;
    let url = common::serve_http(state).await;
    let tool = "test_input_required_result_request_state";
    let first = modern::call(1, tool, json!({"arguments": {}}), asks());
    let asked = modern::post(&url, &first, None, &[]).await;
    let result = &asked.message["result"];
    let sealed = result["requestState"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(sealed.starts_with("mw1."), "{result}");
    assert!(
        !asked.message.to_string().contains("request-state"),
        "{result}"
    );
    assert_eq!(
        result["inputRequests"]["confirm"]["method"],
        "elicitation/create"
    );
    let answer = json!({"arguments": {}, "requestState": sealed,
        "inputResponses": {"confirm": {"action": "accept", "content": {"ok": true}}}});
    let second = modern::post(&url, &modern::call(2, tool, answer, asks()), None, &[]).await;
    assert_eq!(
        second.message["result"]["content"][0]["text"], "state-ok: requestState validated",
        "{}",
        second.message
    );
}
