//! Replicas that share `[store] session_key` serve each other's 2025-11-25 sessions: the
//! session id a client is given is sealed (it carries the session, the client's
//! `initialize` and the caller, no secret), so a request that a load balancer sends to
//! another replica is served there, the handshake replayed from the id. A replica with
//! another key, a changed id, or a session its client ended answer 404, so the client
//! opens a new session; the id does not show what it carries. On a shared PostgreSQL store
//! a session its client ends on one replica is ended on all: the replicas up at the time
//! hear it at once, and one started later finds it in the database.

use crate::common;

use common::{Setup, post_mcp as post};
use serde_json::{Value, json};

const KEY: &str = "6d63702d77617264656e2073657373696f6e206b657920666f72207465737473";
const OTHER: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn with_key(key: &str) -> Setup {
    Setup {
        config_extra: format!("[store]\nsession_key = \"{key}\"\n"),
        ..Setup::default()
    }
}

fn call(id: u64, text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "demo_echo", "arguments": {"text": text}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_on_one_replica_is_served_by_another_with_the_same_key() {
    let (dir_a, a, _) = common::http_gateway(&with_key(KEY)).await;
    let (dir_b, b, _) = common::http_gateway(&with_key(KEY)).await;
    let (_dir_c, c, _) = common::http_gateway(&with_key(OTHER)).await;

    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {"roots": {}},
        "clientInfo": {"name": "replica-test-client", "version": "1"}}});
    let (status, id, answer) = post(&a, None, init).await;
    assert_eq!(status, 200, "{answer}");
    let id = id.expect("a session id");
    assert!(
        !id.contains("replica-test-client") && !id.contains("agent:"),
        "the id shows nothing of what it carries: {id}"
    );
    let (status, _, _) = post(
        &a,
        Some(&id),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert!(status < 300);

    // Each replica serves the session, and forwards to its own upstream.
    let (status, _, on_a) = post(&a, Some(&id), call(1, "on a")).await;
    assert_eq!(status, 200, "{on_a}");
    let (status, _, on_b) = post(&b, Some(&id), call(2, "on b")).await;
    assert_eq!(status, 200, "{on_b}");
    assert_eq!(on_b["result"]["content"][0]["text"], "on b", "{on_b}");
    let echoed = |dir: &tempfile::TempDir| -> Vec<String> {
        common::read_lines(&dir.path().join("calls.jsonl"))
            .iter()
            .filter_map(|c| c["args"]["text"].as_str().map(String::from))
            .collect()
    };
    assert_eq!(echoed(&dir_a), ["on a"]);
    assert_eq!(echoed(&dir_b), ["on b"]);
    let (status, _, _) = post(&b, Some(&id), call(3, "again on b")).await;
    assert_eq!(status, 200);

    // Another key does not open it; nor does a changed id: 404, a new session is needed.
    let (status, _, refused) = post(&c, Some(&id), call(4, "on c")).await;
    assert_eq!(status, 404, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("initialize again")
    );
    let mut bent = id.clone().into_bytes();
    let at = bent.len() / 2;
    bent[at] = if bent[at] == b'A' { b'B' } else { b'A' };
    let bent = String::from_utf8(bent).unwrap();
    assert_eq!(post(&b, Some(&bent), call(5, "bent")).await.0, 404);
    assert!(!echoed(&dir_b).iter().any(|t| t == "on c" || t == "bent"));

    // Ended on one replica: gone there.
    assert_eq!(common::end_session(&b, &id).await, 200);
    assert_eq!(post(&b, Some(&id), call(6, "after")).await.0, 404);
}

/// Replicas on one PostgreSQL database, sharing `KEY`.
fn on_database(url: &str) -> Setup {
    Setup {
        config_extra: format!("[store]\nurl = \"{url}\"\nsession_key = \"{KEY}\"\n"),
        ..Setup::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_on_one_replica_is_ended_on_every_replica() {
    let url = common::postgres::database();
    let (_dir_a, a, _) = common::http_gateway(&on_database(&url)).await;
    let (_dir_b, b, _) = common::http_gateway(&on_database(&url)).await;
    let id = common::open_session(&a).await;
    assert_eq!(post(&b, Some(&id), call(1, "on b")).await.0, 200);
    assert_eq!(common::end_session(&a, &id).await, 200);
    // Replica b, up all along, heard it.
    let mut status = 0;
    for n in 0..40 {
        status = post(&b, Some(&id), call(10 + n, "after")).await.0;
        if status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 404, "ended on b too");
    // A replica that starts only now finds the ending in the database.
    let (dir_c, c, _) = common::http_gateway(&on_database(&url)).await;
    assert_eq!(post(&c, Some(&id), call(99, "on c")).await.0, 404);
    assert!(common::read_lines(&dir_c.path().join("calls.jsonl")).is_empty());
}

/// With the database down, a replica meeting a session for the first time cannot ask
/// whether another replica ended it: it serves the session (those that were up heard any
/// ending as it happened).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_a_replica_still_serves_a_session_it_meets_first() {
    let cluster = common::postgres::Cluster::start();
    let url = cluster.database();
    let (_dir_a, a, _) = common::http_gateway(&on_database(&url)).await;
    let (dir_b, b, _) = common::http_gateway(&on_database(&url)).await;
    let id = common::open_session(&a).await;
    cluster.stop();
    let (status, _, answer) = post(&b, Some(&id), call(1, "while down")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["result"]["content"][0]["text"], "while down",
        "{answer}"
    );
    assert_eq!(
        common::read_lines(&dir_b.path().join("calls.jsonl")).len(),
        1
    );
    cluster.serve();
}
