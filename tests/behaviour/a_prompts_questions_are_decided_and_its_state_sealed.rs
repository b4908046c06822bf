//! A 2026-07-28 upstream may answer `prompts/get` (or `resources/read`) with questions
//! first. Through the gateway each question is decided and audited; a 2026-07-28 caller
//! gets them under the gateway's own sealed `requestState` (the upstream's state never
//! reaches it, yet comes back to the upstream), good for one round, for this caller and
//! this request only: changed, replayed or another caller's, it is refused (`-32602`),
//! audited, and the upstream never sees the request. An older caller is asked by a
//! request and gets the prompt. Against the conformance fixture's prompt that asks.
#![allow(deprecated)] // elicitation through the legacy request path

use crate::common;
use crate::fixture;

use common::modern;
use rmcp::model::{ElicitRequestParams, ElicitResult, GetPromptRequestParams};
use rmcp::service::RequestContext;
use rmcp::{ClientHandler, ErrorData, RoleClient};
use serde_json::{Value, json};

const PROMPT: &str = "test_input_required_result_prompt";

/// The fixture and a gateway in front of it (`policy` added), with two callers.
struct Setup(common::TwoCallers);

impl std::ops::Deref for Setup {
    type Target = common::TwoCallers;
    fn deref(&self) -> &common::TwoCallers {
        &self.0
    }
}

async fn start(policy: &str) -> Setup {
    Setup(common::two_callers(policy).await)
}

impl Setup {
    /// `prompts/get` of the prompt as `who`, with `more` params (answers, state).
    async fn get(&self, who: &str, more: Value) -> Value {
        let mut params =
            json!({"name": PROMPT, "_meta": modern::meta(json!({"elicitation": {"form": {}}}))});
        for (k, v) in more.as_object().unwrap() {
            params[k] = v.clone();
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": params});
        modern::post(&self.url, &body, Some(who), &[("mcp-name", PROMPT)])
            .await
            .message
    }

    fn states(&self) -> Vec<Option<String>> {
        self.fixture.prompt_states.lock().unwrap().clone()
    }

    fn records(&self, method: &str) -> Vec<Value> {
        common::audit_records(&self.dir.path().join("audit.jsonl"))
            .into_iter()
            .filter(|r| r["kind"] == "access" && r["method"] == method)
            .collect()
    }
}

fn answered(state: &str) -> Value {
    json!({"requestState": state,
        "inputResponses": {"user_context": {"action": "accept", "content": {"context": "the quarterly numbers"}}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_state_is_good_once_for_its_caller_and_the_upstreams_own_stays_inside() {
    let s = start("").await;
    let asked = s.get(&s.one, json!({})).await;
    let result = &asked["result"];
    assert_eq!(result["resultType"], "input_required", "{asked}");
    assert_eq!(
        result["inputRequests"]["user_context"]["method"],
        "elicitation/create"
    );
    let sealed = result["requestState"].as_str().unwrap().to_string();
    assert!(!sealed.contains(fixture::PROMPT_STATE), "{sealed}");
    assert_eq!(s.states(), [None]);
    let decided = s.records("elicitation/create");
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(
        (&decided[0]["name"], &decided[0]["decision"]),
        (&json!(PROMPT), &json!("allow"))
    );

    // Changed, or presented by another agent of the same user: refused, never forwarded.
    let mut changed = sealed.clone();
    let last = changed.pop().unwrap();
    changed.push(if last == 'A' { 'B' } else { 'A' });
    for (who, state) in [(&s.one, &changed), (&s.two, &sealed)] {
        let refused = s.get(who, answered(state)).await;
        assert_eq!(refused["error"]["code"], -32602, "{refused}");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.contains("requestState"), "{message}");
    }
    assert_eq!(s.states(), [None], "the upstream saw neither");
    let denied: Vec<_> = s
        .records("prompts/get")
        .into_iter()
        .filter(|r| r["decision"] == "deny")
        .collect();
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert_eq!(denied[1]["agent"], "agent:two");

    // The genuine answer: the upstream gets its own state back, and the prompt comes.
    // An answer to a question nobody asked does not go on.
    let mut genuine = answered(&sealed);
    genuine["inputResponses"]["not_asked"] = json!({"action": "accept", "content": {}});
    let got = s.get(&s.one, genuine).await;
    let text = &got["result"]["messages"][0]["content"]["text"];
    assert_eq!(text, "Use this context: the quarterly numbers", "{got}");
    assert_eq!(s.states(), [None, Some(fixture::PROMPT_STATE.to_string())]);
    let keys = s.fixture.prompt_answer_keys.lock().unwrap().clone();
    assert_eq!(keys, [vec![], vec!["user_context".to_string()]]);

    // Once only.
    let replayed = s.get(&s.one, answered(&sealed)).await;
    assert_eq!(replayed["error"]["code"], -32602, "{replayed}");
    let message = replayed["error"]["message"].as_str().unwrap();
    assert!(message.contains("already used"), "{message}");
    assert_eq!(s.states().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_policy_refuses_is_never_put_to_the_caller() {
    let s = start(&format!(
        "p, role:conformance, conformance/elicitation/{PROMPT}, read, deny\n"
    ))
    .await;
    let refused = s.get(&s.one, json!({})).await;
    assert!(refused["result"].is_null(), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("conformance/elicitation/{PROMPT}")),
        "{message}"
    );
    let decided = s.records("elicitation/create");
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0]["decision"], "deny");
}

/// An older client answering form elicitations.
#[derive(Clone, Default)]
struct Older {
    asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ClientHandler for Older {
    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _c: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let asked = serde_json::to_value(&params).unwrap();
        let message = asked["message"].as_str().unwrap_or_default().to_string();
        self.asked.lock().unwrap().push(message);
        Ok(serde_json::from_value(
            json!({"action": "accept", "content": {"context": "asked by request"}}),
        )
        .unwrap())
    }

    fn get_info(&self) -> rmcp::model::ClientConfig {
        let capabilities = serde_json::from_value(json!({"elicitation": {}})).unwrap();
        rmcp::model::ClientConfig::new(capabilities, rmcp::model::Implementation::new("older", "1"))
            .with_protocol_version(rmcp::model::ProtocolVersion::V_2025_11_25)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_caller_is_asked_by_a_request_and_gets_the_prompt() {
    let s = start("").await;
    let older = Older::default();
    let client = common::connect_as(&s.state, older.clone()).await;
    let got = client
        .peer()
        .get_prompt(GetPromptRequestParams::new(PROMPT))
        .await
        .unwrap();
    let text = serde_json::to_value(&got.messages[0].content).unwrap();
    assert_eq!(text["text"], "Use this context: asked by request");
    assert_eq!(
        *older.asked.lock().unwrap(),
        ["What context should the prompt use?"]
    );
    assert_eq!(s.states(), [None, Some(fixture::PROMPT_STATE.to_string())]);
    assert_eq!(s.records("elicitation/create").len(), 1);
}

/// A resource read asks the same way (by the answer, under the gateway's state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_read_asks_the_same_way() {
    let s = start("").await;
    let read = |more: Value| {
        let mut params = json!({"uri": fixture::ASKING_RESOURCE,
            "_meta": modern::meta(json!({"elicitation": {"form": {}}}))});
        for (k, v) in more.as_object().unwrap() {
            params[k] = v.clone();
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": params});
        let (url, key) = (s.url.clone(), s.one.clone());
        async move {
            modern::post(
                &url,
                &body,
                Some(&key),
                &[("mcp-name", fixture::ASKING_RESOURCE)],
            )
            .await
            .message
        }
    };
    let asked = read(json!({})).await;
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked}");
    let sealed = asked["result"]["requestState"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!sealed.contains(fixture::PROMPT_STATE));
    let decided = s.records("elicitation/create");
    assert_eq!(decided[0]["name"], fixture::ASKING_RESOURCE);
    let got = read(answered(&sealed)).await;
    assert_eq!(
        got["result"]["contents"][0]["text"], "Use this context: the quarterly numbers",
        "{got}"
    );
    assert_eq!(s.states(), [None, Some(fixture::PROMPT_STATE.to_string())]);
}
