//! Requests an upstream puts to the client during a call (sampling, elicitation, roots) reach
//! the client whose call caused them, untouched, and nobody else: not a client that did
//! not offer the capability, not when policy refuses it for that tool. Over Streamable
//! HTTP a request that comes on a call's own stream goes to that call's client while
//! other clients have calls in flight too; over stdio nothing says whose it is, and with
//! calls from two clients in flight it is refused.
//! Each refusal reaches the upstream as an error and is audited when policy made it.
//! The fixture is ours (tests/conformance/fixture.rs); the last test uses npm
//! `server-everything`, a third-party server that asks the client itself.
#![allow(deprecated)] // sampling is deprecated by SEP-2577 but still relayed

use crate::common;
use crate::fixture;

use std::sync::{Arc, Mutex};

use common::{connect_as, text};
use mcp_warden::gateway::State;
use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig,
    CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult,
    Implementation,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::{ClientHandler, ErrorData, RoleClient};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// A client that may offer sampling and elicitation, and records what it is asked.
#[derive(Clone, Default)]
struct Asked {
    offers: bool,
    asked: Arc<Mutex<Vec<Value>>>,
    /// When set, an elicitation waits for this before it is answered.
    hold: Option<Arc<Notify>>,
    reached: Arc<Notify>,
}

impl Asked {
    fn offering() -> Self {
        Self {
            offers: true,
            ..Self::default()
        }
    }

    fn asked(&self) -> Vec<Value> {
        self.asked.lock().unwrap().clone()
    }
}

impl ClientHandler for Asked {
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _c: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        self.asked
            .lock()
            .unwrap()
            .push(serde_json::to_value(&params).unwrap());
        Ok(serde_json::from_value(json!({
            "role": "assistant", "model": "test-model", "stopReason": "endTurn",
            "content": {"type": "text", "text": "a model's answer"}
        }))
        .unwrap())
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _c: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.asked
            .lock()
            .unwrap()
            .push(serde_json::to_value(&params).unwrap());
        self.reached.notify_one();
        if let Some(hold) = &self.hold {
            hold.notified().await;
        }
        Ok(serde_json::from_value(json!({
            "action": "accept", "content": {"name": "Ann", "username": "ann", "email": "ann@example.com"}
        }))
        .unwrap())
    }

    async fn list_roots(
        &self,
        _c: RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ListRootsResult, ErrorData> {
        self.asked.lock().unwrap().push(json!("roots/list"));
        Ok(
            serde_json::from_value(json!({"roots": [{"uri": "file:///home/ann/project"}]}))
                .unwrap(),
        )
    }

    fn get_info(&self) -> ClientConfig {
        let capabilities: ClientCapabilities = match self.offers {
            true => serde_json::from_value(json!({"sampling": {}, "elicitation": {}, "roots": {}}))
                .unwrap(),
            false => ClientCapabilities::default(),
        };
        ClientConfig::new(capabilities, Implementation::new("asked", "1.0.0"))
    }
}

/// The fixture over HTTP and a gateway in front of it with `policy` added, connected with
/// `initialize` (a 2026-07-28 upstream asks by results, never by requests: see
/// `both_protocol_eras_on_one_endpoint`).
async fn start(policy: &str) -> (tempfile::TempDir, Arc<State>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(fixture::serve(listener));
    let dir = tempfile::tempdir().unwrap();
    let legacy = "protocol = \"2025-11-25\"";
    let state = common::fixture_gateway_with(dir.path(), &url, policy, legacy).await;
    (dir, state)
}

async fn call(
    client: &RunningService<RoleClient, Asked>,
    tool: &str,
    args: Value,
) -> CallToolResult {
    let args = args.as_object().cloned().unwrap_or_default();
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
    client.peer().call_tool(params).await.unwrap()
}

fn relayed(dir: &tempfile::TempDir, method: &str) -> Vec<Value> {
    common::audit_records(&dir.path().join("audit.jsonl"))
        .into_iter()
        .filter(|r| r["kind"] == "access" && r["method"] == method)
        .collect()
}

#[tokio::test]
async fn sampling_reaches_the_caller_untouched_and_is_audited() {
    let (dir, state) = start("").await;
    let asked = Asked::offering();
    let client = connect_as(&state, asked.clone()).await;
    let result = call(&client, "test_sampling", json!({"prompt": "name a colour"})).await;
    assert_eq!(text(&result), "LLM response: a model's answer");
    let seen = asked.asked();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["messages"][0]["content"]["text"], "name a colour");
    assert_eq!(seen[0]["maxTokens"], 100);
    let records = relayed(&dir, "sampling/createMessage");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["server"], "conformance");
    assert_eq!(records[0]["name"], "test_sampling");
    assert_eq!(records[0]["decision"], "allow");
    assert!(records[0]["args_digest"].is_string());
}

#[tokio::test]
async fn a_client_that_does_not_offer_sampling_is_not_asked() {
    let (dir, state) = start("").await;
    let asked = Asked::default();
    let client = connect_as(&state, asked.clone()).await;
    let result = call(&client, "test_sampling", json!({"prompt": "name a colour"})).await;
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let message = text(&result);
    assert!(
        message.contains("the calling client does not support sampling/createMessage"),
        "{message}"
    );
    assert!(asked.asked().is_empty());
    assert!(relayed(&dir, "sampling/createMessage").is_empty());
}

#[tokio::test]
async fn policy_refuses_sampling_for_a_tool_and_the_refusal_is_audited() {
    let (dir, state) = start("p, role:conformance, conformance/sampling/*, read, deny").await;
    let asked = Asked::offering();
    let client = connect_as(&state, asked.clone()).await;
    let result = call(&client, "test_sampling", json!({"prompt": "name a colour"})).await;
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert!(asked.asked().is_empty(), "the client must not be asked");
    let records = relayed(&dir, "sampling/createMessage");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["decision"], "deny");
    assert_eq!(records[0]["name"], "test_sampling");
    assert!(
        text(&result).contains(records[0]["error"].as_str().unwrap()),
        "the caller is told why: {} / {}",
        text(&result),
        records[0]["error"]
    );
    // Elicitation by another tool is still allowed.
    let result = call(
        &client,
        "test_elicitation",
        json!({"message": "who are you?"}),
    )
    .await;
    assert!(text(&result).contains("action=accept"), "{result:?}");
}

/// Client B's call, held while B is asked something, and client A's call made meanwhile.
struct Two {
    /// Lets B answer.
    hold: Arc<Notify>,
    waiting: Asked,
    b_call: tokio::task::JoinHandle<rmcp::model::CallToolResult>,
    other: Asked,
    /// A's result.
    result: rmcp::model::CallToolResult,
}

/// B calls `b` and is held once asked; then A calls `a`.
async fn while_b_is_asked(
    state: &Arc<State>,
    (b_tool, b_args): (&'static str, serde_json::Value),
    (a_tool, a_args): (&'static str, serde_json::Value),
) -> Two {
    let hold = Arc::new(Notify::new());
    let waiting = Asked {
        hold: Some(hold.clone()),
        ..Asked::offering()
    };
    let b = Arc::new(connect_as(state, waiting.clone()).await);
    let b_call = tokio::spawn(async move { call(&b, b_tool, b_args).await });
    waiting.reached.notified().await;
    let other = Asked::offering();
    let a = connect_as(state, other.clone()).await;
    let result = call(&a, a_tool, a_args).await;
    Two {
        hold,
        waiting,
        b_call,
        other,
        result,
    }
}

/// The fixture over Streamable HTTP: B's elicitation is held open while A's call asks
/// for sampling; each request came on its own call's stream, so each goes to its own
/// caller.
#[tokio::test]
async fn two_clients_with_calls_in_flight_each_get_their_own_calls_requests() {
    let (dir, state) = start("").await;
    let b_args = json!({"message": "who are you?"});
    let a_args = json!({"prompt": "whose request is this?"});
    let two = while_b_is_asked(
        &state,
        ("test_elicitation", b_args),
        ("test_sampling", a_args),
    );
    let Two {
        hold,
        waiting,
        b_call,
        other,
        result,
    } = two.await;
    assert_eq!(
        text(&result),
        "LLM response: a model's answer",
        "{result:?}"
    );
    let seen = other.asked();
    assert_eq!(seen.len(), 1, "A is asked its own: {seen:?}");
    assert_eq!(
        seen[0]["messages"][0]["content"]["text"],
        "whose request is this?"
    );
    let held = waiting.asked();
    assert_eq!(held.len(), 1, "B sees only its own: {held:?}");
    assert_eq!(held[0]["message"], "who are you?");

    hold.notify_one();
    let b_result = b_call.await.unwrap();
    assert!(text(&b_result).contains("action=accept"), "{b_result:?}");
    assert!(text(&b_result).contains("ann@example.com"), "{b_result:?}");
    assert_eq!(relayed(&dir, "sampling/createMessage").len(), 1);
    assert_eq!(relayed(&dir, "elicitation/create").len(), 1);
}

/// Over stdio a request carries nothing that says which call it is for: with calls from
/// two clients in flight, it is put to neither.
#[tokio::test]
async fn over_stdio_requests_are_refused_while_two_clients_have_calls_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::everything_gateway(&dir).await;
    let b_tool = ("everything_trigger-elicitation-request", json!({}));
    let a_args = json!({"prompt": "whose request is this?"});
    let a_tool = ("everything_trigger-sampling-request", a_args);
    let Two {
        hold,
        waiting,
        b_call,
        other,
        result,
    } = while_b_is_asked(&state, b_tool, a_tool).await;
    assert_eq!(result.is_error, Some(true), "{result:?}");
    assert!(
        text(&result).contains("several clients"),
        "{}",
        text(&result)
    );
    assert!(other.asked().is_empty(), "A must not be asked");
    assert_eq!(waiting.asked().len(), 1, "B must only see its own request");
    assert!(relayed(&dir, "sampling/createMessage").is_empty());

    hold.notify_one();
    let b_result = b_call.await.unwrap();
    assert!(text(&b_result).contains("Ann"), "{b_result:?}");
}

#[tokio::test]
async fn server_everything_asks_the_calling_client_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::everything_gateway(&dir).await;
    let asked = Asked::offering();
    let client = connect_as(&state, asked.clone()).await;

    let sampled = call(
        &client,
        "everything_trigger-sampling-request",
        json!({"prompt": "hello"}),
    )
    .await;
    assert!(text(&sampled).contains("a model's answer"), "{sampled:?}");
    let elicited = call(&client, "everything_trigger-elicitation-request", json!({})).await;
    assert!(text(&elicited).contains("Ann"), "{elicited:?}");
    let seen = asked.asked();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0]["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("hello")
    );
    assert!(
        seen[1]["requestedSchema"]["properties"]["name"].is_object(),
        "{seen:?}"
    );
    assert_eq!(relayed(&dir, "sampling/createMessage").len(), 1);
    assert_eq!(relayed(&dir, "elicitation/create").len(), 1);
}

#[tokio::test]
async fn a_call_cancelled_while_its_client_is_asked_ends_without_the_answer() {
    let (dir, state) = start("").await;
    let hold = Arc::new(Notify::new());
    let waiting = Asked {
        hold: Some(hold.clone()),
        ..Asked::offering()
    };
    let client = connect_as(&state, waiting.clone()).await;
    let args = json!({"message": "who are you?"})
        .as_object()
        .cloned()
        .unwrap();
    let request = rmcp::model::ClientRequest::CallToolRequest(rmcp::model::Request::new(
        CallToolRequestParams::new("test_elicitation").with_arguments(args),
    ));
    let handle = client
        .peer()
        .send_request_with_option(request, rmcp::service::PeerRequestOptions::no_options())
        .await
        .unwrap();
    waiting.reached.notified().await;
    handle.cancel(Some("changed my mind".into())).await.unwrap();
    // The elicitation is never answered; the call must end and be audited anyway.
    let mut outcome = None;
    for _ in 0..250 {
        outcome = common::audit_records(&dir.path().join("audit.jsonl"))
            .into_iter()
            .find(|r| r["kind"] == "outcome");
        if outcome.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let outcome = outcome.expect("the cancelled call's outcome is audited");
    assert_eq!(outcome["outcome"], "unknown");
    assert!(
        outcome["error"].as_str().unwrap().contains("cancelled"),
        "{outcome}"
    );
}

#[tokio::test]
async fn roots_asked_during_a_call_go_only_to_a_caller_that_offers_them() {
    let (dir, state) = start("").await;
    let asked = Asked::offering();
    let client = connect_as(&state, asked.clone()).await;
    let result = call(&client, "list_client_roots", json!({})).await;
    assert_eq!(text(&result), "roots: file:///home/ann/project");
    assert_eq!(asked.asked(), [json!("roots/list")]);
    let records = relayed(&dir, "roots/list");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (&records[0]["name"], &records[0]["decision"]),
        (&json!("list_client_roots"), &json!("allow"))
    );

    let silent = Asked::default();
    let other = connect_as(&state, silent.clone()).await;
    let refused = call(&other, "list_client_roots", json!({})).await;
    assert_eq!(refused.is_error, Some(true), "{refused:?}");
    assert!(
        text(&refused).contains("does not support roots/list"),
        "{}",
        text(&refused)
    );
    assert!(silent.asked().is_empty());
}

/// What the Python SDK's client (PyPI `mcp` 2.x, in `mode`) saw calling `tool` over
/// Streamable HTTP while answering what it was asked (tests/clients/python_asked.py).
fn python_asked(mode: &str, url: &str, tool: &str, args: &Value) -> Value {
    let out = std::process::Command::new(common::repo().join(".venv/bin/python"))
        .arg(common::repo().join("tests/clients/python_asked.py"))
        .args([mode, url, tool, &args.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
}

/// A 2026-07-28 client cannot be sent a request: what a (2025-11-25) upstream asks it
/// during a call comes back as the call's answer, in rounds, and the client's reply
/// reaches the upstream, which finishes the call. Each question is decided and audited
/// as for any caller, and the call has one attempt and one outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_client_is_asked_by_the_calls_answer_and_its_reply_reaches_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let state = common::everything_gateway(&dir).await;
    let url = common::serve_http(state.clone()).await;
    for (tool, args, method, expect) in [
        (
            "everything_trigger-sampling-request",
            json!({"prompt": "hello"}),
            "sampling/createMessage",
            "a model's answer",
        ),
        (
            "everything_trigger-elicitation-request",
            json!({}),
            "elicitation/create",
            "Ann",
        ),
    ] {
        let (u, a) = (url.clone(), args.clone());
        let seen = tokio::task::spawn_blocking(move || python_asked("auto", &u, tool, &a))
            .await
            .unwrap();
        assert_eq!(seen["protocol_version"], "2026-07-28", "{seen}");
        assert_eq!(seen["result"]["is_error"], false, "{tool}: {seen}");
        let text = seen["result"]["text"].to_string();
        assert!(text.contains(expect), "{tool}: {seen}");
        let asked = seen["asked"].as_array().unwrap();
        assert_eq!(asked.len(), 1, "{tool}: {seen}");
        assert_eq!(asked[0]["method"], method);
    }
    state.audit.flush().await.unwrap();
    assert_eq!(relayed(&dir, "sampling/createMessage").len(), 1);
    assert_eq!(relayed(&dir, "elicitation/create").len(), 1);
    let audit = common::audit_records(&dir.path().join("audit.jsonl"));
    let count = |kind: &str| audit.iter().filter(|r| r["kind"] == kind).count();
    assert_eq!((count("attempt"), count("outcome")), (2, 2), "{audit:#?}");
    for outcome in audit.iter().filter(|r| r["kind"] == "outcome") {
        assert_eq!(outcome["outcome"], "ok", "{outcome}");
        assert!(outcome["result_digest"].is_string(), "{outcome}");
    }
}
