//! Flow rules hold across replicas: what a session read through one replica is in the
//! state database before the caller has the answer, and another replica serving the same
//! session (its sealed id) or the same 2026-07-28 chain reads it there before deciding.
//! A note read through replica A, then a message sent through replica B, is refused by
//! the shipped flow (made `deny` here): B's upstream never sees it, and B's audit record
//! names the flow, the label and the replica-A read it came from. Another session is not
//! touched. With the database stopped, a call a flow could apply to is refused (what other
//! replicas saw is unknown), audited and not forwarded; a call no flow can apply to runs,
//! but a result with labelled data that cannot be recorded is withheld from the caller;
//! when the database is back, the label read before is still there.

use crate::common;
use crate::common::postgres::Cluster;

use std::sync::Arc;

use common::{Setup, modern, open_session, post_mcp};
use mcp_warden::gateway::State;
use serde_json::{Value, json};

const KEY: &str = "6d63702d77617264656e2073657373696f6e206b657920666f72207465737473";

/// The shipped flow, refusing at once instead of asking an approver.
fn flows() -> String {
    std::fs::read_to_string(common::repo().join("policies/flows.toml"))
        .unwrap()
        .replace("effect = \"approve\"", "effect = \"deny\"")
}

/// A replica on database `url`: `agent:ops-bot` for `user:alice` (policy lets it send
/// messages and read notes), the shared session key, the flow in place.
async fn replica(url: &str) -> (tempfile::TempDir, String, Arc<State>) {
    let setup = Setup {
        config_extra: format!("[store]\nurl = \"{url}\"\nsession_key = \"{KEY}\"\n"),
        ..Setup::as_agent("agent:ops-bot", Some("user:alice"))
    };
    let (dir, mcp, state) = common::http_gateway(&setup).await;
    std::fs::write(dir.path().join("policies/flows.toml"), flows()).unwrap();
    state.reload("test").await.unwrap();
    assert!(state.current().policy.has_flows());
    (dir, mcp, state)
}

fn call(id: u64, name: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
}

fn read_note() -> Value {
    json!({"title": "plan", "intent": "read the plan"})
}

fn message(body: &str) -> Value {
    json!({"to": "bob@example.com", "body": body, "intent": "send bob the plan"})
}

/// The tool result's text, and whether it is an error.
fn outcome(answer: &Value) -> (String, bool) {
    let result = &answer["result"];
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    (text.to_string(), result["isError"] == json!(true))
}

/// The messages `dir`'s upstream was asked to send (their bodies).
fn sent(dir: &tempfile::TempDir) -> Vec<String> {
    common::read_lines(&dir.path().join("calls.jsonl"))
        .iter()
        .filter(|c| c["tool"] == "send_message")
        .filter_map(|c| c["args"]["body"].as_str().map(String::from))
        .collect()
}

async fn audit(state: &State) -> Vec<Value> {
    state.audit.flush().await.unwrap();
    common::audit_records(&state.current().config.boot.audit_log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_note_read_on_one_replica_stops_a_message_on_another() {
    let url = common::postgres::database();
    let (dir_a, a, _state_a) = replica(&url).await;
    let (dir_b, b, state_b) = replica(&url).await;
    let session = open_session(&a).await;

    // Nothing read yet: B sends.
    let (_, _, first) = post_mcp(
        &b,
        Some(&session),
        call(1, "demo_send_message", message("one")),
    )
    .await;
    assert_eq!(
        outcome(&first),
        ("message sent to bob@example.com".into(), false),
        "{first}"
    );
    // A note read through A.
    let (_, _, read) = post_mcp(&a, Some(&session), call(2, "demo_read_note", read_note())).await;
    assert!(!outcome(&read).1, "{read}");
    // B refuses the next message: the label came from A.
    let (_, _, refused) = post_mcp(
        &b,
        Some(&session),
        call(3, "demo_send_message", message("two")),
    )
    .await;
    let (why, is_error) = outcome(&refused);
    assert!(is_error, "{refused}");
    assert!(
        why.contains("this session read `internal` via `demo/read_note`")
            && why.contains("flow `internal-out`"),
        "{why}"
    );
    assert_eq!(
        sent(&dir_b),
        ["one"],
        "B's upstream never saw the second message"
    );
    assert!(sent(&dir_a).is_empty());
    let records = audit(&state_b).await;
    let decision = records
        .iter()
        .find(|r| r["kind"] == "decision" && r["tool"] == "send_message" && r["decision"] == "deny")
        .expect("B audited the refusal");
    assert_eq!(decision["flow"]["flow"], "internal-out", "{decision}");
    assert_eq!(decision["flow"]["label"], "internal", "{decision}");
    assert_eq!(decision["flow"]["via"], "demo/read_note", "{decision}");

    // Another session through B is not touched.
    let other = open_session(&b).await;
    let (_, _, fresh) = post_mcp(
        &b,
        Some(&other),
        call(4, "demo_send_message", message("three")),
    )
    .await;
    assert!(!outcome(&fresh).1, "{fresh}");
    assert_eq!(sent(&dir_b), ["one", "three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chain_that_read_on_one_replica_is_stopped_on_another_without_a_session() {
    let url = common::postgres::database();
    let (_dir_a, a, _) = replica(&url).await;
    let (dir_b, b, _) = replica(&url).await;
    let modern_call = |id, name: &str, arguments: Value| {
        modern::call(id, name, json!({"arguments": arguments}), json!({}))
    };
    let first = modern::post(
        &b,
        &modern_call(1, "demo_send_message", message("one")),
        None,
        &[],
    )
    .await;
    assert!(!outcome(&first.message).1, "{}", first.message);
    let read = modern::post(
        &a,
        &modern_call(2, "demo_read_note", read_note()),
        None,
        &[],
    )
    .await;
    assert!(!outcome(&read.message).1, "{}", read.message);
    let refused = modern::post(
        &b,
        &modern_call(3, "demo_send_message", message("two")),
        None,
        &[],
    )
    .await;
    let (why, is_error) = outcome(&refused.message);
    assert!(
        is_error && why.contains("flow `internal-out`"),
        "{}",
        refused.message
    );
    assert_eq!(sent(&dir_b), ["one"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_database_stopped_what_a_flow_could_stop_is_refused_and_the_label_survives() {
    let cluster = Cluster::start();
    let url = cluster.database();
    let (dir_a, a, state_a) = replica(&url).await;
    let (dir_b, b, _) = replica(&url).await;
    let session = open_session(&a).await;
    let (_, _, read) = post_mcp(&a, Some(&session), call(1, "demo_read_note", read_note())).await;
    assert!(!outcome(&read).1, "{read}");

    let fresh = open_session(&b).await;
    cluster.stop();
    // No flow and no label: an echo needs nothing from the database.
    let (_, _, echoed) = post_mcp(
        &a,
        Some(&session),
        call(2, "demo_echo", json!({"text": "still here"})),
    )
    .await;
    assert_eq!(outcome(&echoed), ("still here".into(), false), "{echoed}");
    // A note read in a session that holds no label yet runs, but that the session now
    // holds one cannot be recorded for the other replicas: the result is withheld, and
    // the outcome record says so. (The first session's label is recorded already.)
    let (_, _, withheld) = post_mcp(&a, Some(&fresh), call(4, "demo_read_note", read_note())).await;
    let (why, is_error) = outcome(&withheld);
    assert!(
        is_error && why.contains("the result was withheld"),
        "{withheld}"
    );
    let records = audit(&state_a).await;
    let last_read = records
        .iter()
        .rfind(|r| r["kind"] == "outcome" && r["tool"] == "read_note")
        .unwrap();
    assert_eq!(last_read["outcome"], "withheld", "{last_read}");
    assert!(last_read["result_digest"].is_string() && last_read["error"].is_string());
    // A message might be stopped by a label another replica saw: refused, not forwarded.
    let (_, _, refused) = post_mcp(
        &a,
        Some(&session),
        call(3, "demo_send_message", message("down")),
    )
    .await;
    let (why, is_error) = outcome(&refused);
    assert!(is_error, "{refused}");
    assert!(
        why.contains("what this session has done could not be read") && why.contains("try again"),
        "{why}"
    );
    assert!(sent(&dir_a).is_empty(), "not forwarded");
    let records = audit(&state_a).await;
    assert!(
        records.iter().any(|r| r["kind"] == "decision"
            && r["requested"] == "demo_send_message"
            && r["error"]
                .as_str()
                .is_some_and(|e| e.contains("could not be read"))),
        "the refusal is audited: {records:#?}"
    );

    cluster.serve();
    // Back: the label read before the outage still stops the message, on either replica.
    let mut answer = Value::Null;
    for id in 10..60 {
        let (_, _, a_try) = post_mcp(
            &b,
            Some(&session),
            call(id, "demo_send_message", message("after")),
        )
        .await;
        answer = a_try;
        if !outcome(&answer).0.contains("could not be read") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (why, is_error) = outcome(&answer);
    assert!(is_error && why.contains("flow `internal-out`"), "{answer}");
    // The withheld read's label, which A could not write then, is written with A's next
    // call in that session (an echo, which brings no label of its own): B then knows it.
    let (_, _, echoed) = post_mcp(
        &a,
        Some(&fresh),
        call(70, "demo_echo", json!({"text": "back"})),
    )
    .await;
    assert_eq!(outcome(&echoed), ("back".into(), false), "{echoed}");
    let (_, _, held_back) = post_mcp(
        &b,
        Some(&fresh),
        call(71, "demo_send_message", message("fresh")),
    )
    .await;
    let (why, is_error) = outcome(&held_back);
    assert!(
        is_error && why.contains("flow `internal-out`"),
        "{held_back}"
    );
    assert!(sent(&dir_a).is_empty() && sent(&dir_b).is_empty());
}
