//! Tasks (the 2026-07-28 `io.modelcontextprotocol/tasks` extension) through the gateway,
//! against the conformance fixture's task tools. A call its upstream makes a task of is
//! known to its caller as `SERVER+ID`, and to nobody else: another caller's `tasks/get`,
//! `tasks/update` and `tasks/cancel` are refused as for an unknown task, never reach the
//! upstream, and are audited. What a task asks is decided and audited once per question;
//! a question policy refuses ends the task (cancelled upstream). The task's end is the
//! call's one outcome record. The extension is offered only when an upstream offers it.

use crate::common;
use crate::fixture;

use common::modern;
use serde_json::{Value, json};

/// A client that takes tasks and answers form elicitations.
fn takes_tasks() -> Value {
    json!({"elicitation": {"form": {}}, "extensions": {"io.modelcontextprotocol/tasks": {}}})
}

/// The fixture and a gateway in front of it, with two callers (see
/// [`common::TwoCallers`]).
struct Two(common::TwoCallers);

impl std::ops::Deref for Two {
    type Target = common::TwoCallers;
    fn deref(&self) -> &common::TwoCallers {
        &self.0
    }
}

impl Two {
    async fn start(policy: &str) -> Self {
        Self(common::two_callers(policy).await)
    }

    /// Send `method` with `params` as `who`, declaring tasks; the answer.
    async fn ask(&self, who: &str, id: u64, method: &str, mut params: Value) -> Value {
        params["_meta"] = modern::meta(takes_tasks());
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let name = params["taskId"].as_str().unwrap_or_default().to_string();
        let extra: Vec<(&str, &str)> = match name.is_empty() {
            true => vec![],
            false => vec![("mcp-name", name.as_str())],
        };
        modern::post(&self.url, &body, Some(who), &extra)
            .await
            .message
    }

    /// Call `tool` as `who`; the result.
    async fn call(&self, who: &str, tool: &str, args: Value) -> Value {
        let params = json!({"name": tool, "arguments": args});
        let answer = self.ask(who, 1, "tools/call", params).await;
        answer["result"].clone()
    }

    async fn get(&self, who: &str, task: &str) -> Value {
        self.ask(who, 2, "tasks/get", json!({"taskId": task})).await
    }

    /// Poll `tasks/get` as `who` until the task is no longer working.
    async fn settled(&self, who: &str, task: &str) -> Value {
        for _ in 0..100 {
            let got = self.get(who, task).await;
            if got["result"]["status"] != "working" {
                return got["result"].clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("task {task} still working");
    }

    /// The audit log as it is (access records are durable before the answer).
    fn records(&self) -> Vec<Value> {
        common::audit_records(&self.dir.path().join("audit.jsonl"))
    }

    /// The audit log, once it holds the call's outcome (an outcome is made durable by
    /// the next group commit, after the answer).
    fn audit(&self) -> Vec<Value> {
        let path = self.dir.path().join("audit.jsonl");
        for _ in 0..50 {
            let records = common::audit_records(&path);
            if records.iter().any(|r| r["kind"] == "outcome") {
                return records;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        common::audit_records(&path)
    }

    /// What the fixture heard of tasks: (method, its own task id).
    fn heard(&self) -> Vec<(String, String)> {
        self.fixture.task_requests.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_caller_cannot_see_update_or_cancel_a_task_and_its_tries_are_audited() {
    let t = Two::start("").await;
    let created = t
        .call(
            &t.one,
            "slow_compute",
            json!({"seconds": 30, "label": "long"}),
        )
        .await;
    assert_eq!(created["resultType"], "task", "{created}");
    let task = created["taskId"].as_str().unwrap().to_string();
    let own = task
        .strip_prefix("conformance+")
        .expect("namespaced by upstream");
    assert_eq!(t.get(&t.one, &task).await["result"]["status"], "working");
    assert!(
        t.heard()
            .contains(&("tasks/get".to_string(), own.to_string()))
    );
    // The gateway polls the task itself too (see the last test): what changes a task is
    // what must never reach the upstream from another caller.
    let changes = || -> Vec<_> {
        t.heard()
            .into_iter()
            .filter(|(method, _)| method != "tasks/get")
            .collect()
    };
    assert!(changes().is_empty());
    // And what a caller's client asks reaches the upstream as that caller's (its
    // capabilities, not the poll's): agent one's get is there, and stays the only one.
    let for_callers = || t.fixture.caller_task_requests.lock().unwrap().clone();
    assert_eq!(for_callers(), [("tasks/get".to_string(), own.to_string())]);

    // Agent two acts for the same user, with the same rights, and still may not.
    for (id, method, params) in [
        (3, "tasks/get", json!({"taskId": task})),
        (
            4,
            "tasks/update",
            json!({"taskId": task, "inputResponses": {}}),
        ),
        (5, "tasks/cancel", json!({"taskId": task})),
    ] {
        let answer = t.ask(&t.two, id, method, params).await;
        assert_eq!(answer["error"]["code"], -32602, "{method}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("unknown task"), "{message}");
    }
    assert!(
        changes().is_empty(),
        "the upstream heard nothing of agent two"
    );
    assert_eq!(
        for_callers(),
        [("tasks/get".to_string(), own.to_string())],
        "agent two's tasks/get never reached the upstream"
    );
    let refused: Vec<_> = t
        .records()
        .into_iter()
        .filter(|r| r["kind"] == "access" && r["decision"] == "deny")
        .collect();
    let methods: Vec<_> = refused.iter().map(|r| r["method"].clone()).collect();
    assert_eq!(
        methods,
        [
            json!("tasks/get"),
            json!("tasks/update"),
            json!("tasks/cancel")
        ]
    );
    for r in &refused {
        assert_eq!(
            (&r["agent"], &r["name"]),
            (&json!("agent:two"), &json!(task))
        );
    }
    // A made-up id of the same shape is just as unknown.
    let guessed = t.get(&t.one, "conformance+nothing-here").await;
    assert_eq!(guessed["error"]["code"], -32602, "{guessed}");

    // Its creator cancels it; the cancelled task is the call's one outcome.
    let ack = t
        .ask(&t.one, 6, "tasks/cancel", json!({"taskId": task}))
        .await;
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");
    let ended = t.settled(&t.one, &task).await;
    assert_eq!(ended["status"], "cancelled", "{ended}");
    t.get(&t.one, &task).await;
    let audit = t.audit();
    let attempt = audit.iter().find(|r| r["kind"] == "attempt").unwrap();
    let outcomes: Vec<_> = audit.iter().filter(|r| r["kind"] == "outcome").collect();
    assert_eq!(outcomes.len(), 1, "{outcomes:#?}");
    assert_eq!(outcomes[0]["call_id"], attempt["call_id"]);
    assert_eq!(outcomes[0]["outcome"], "unknown");
    assert_eq!(outcomes[0]["error"], "the task was cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_question_is_decided_once_and_its_result_is_the_calls_outcome() {
    let t = Two::start("").await;
    let created = t
        .call(&t.one, "confirm_delete", json!({"filename": "old.txt"}))
        .await;
    let task = created["taskId"].as_str().unwrap().to_string();
    let asked = t.settled(&t.one, &task).await;
    assert_eq!(asked["status"], "input_required", "{asked}");
    assert_eq!(
        asked["inputRequests"]["confirm"]["method"],
        "elicitation/create"
    );
    // Asked again on the next poll: decided (and audited) once.
    let again = t.get(&t.one, &task).await;
    assert_eq!(again["result"]["status"], "input_required");
    let answers = json!({"confirm": {"action": "accept", "content": {"confirm": true}}});
    let ack = t
        .ask(
            &t.one,
            7,
            "tasks/update",
            json!({"taskId": task, "inputResponses": answers}),
        )
        .await;
    assert_eq!(ack["result"]["resultType"], "complete", "{ack}");
    let done = t.settled(&t.one, &task).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["result"]["content"][0]["text"], "deleted old.txt");
    t.get(&t.one, &task).await;

    let audit = t.audit();
    let asked: Vec<_> = audit
        .iter()
        .filter(|r| r["kind"] == "access" && r["method"] == "elicitation/create")
        .collect();
    assert_eq!(asked.len(), 1, "{asked:#?}");
    assert_eq!(
        (&asked[0]["name"], &asked[0]["decision"]),
        (&json!("confirm_delete"), &json!("allow"))
    );
    let outcomes: Vec<_> = audit.iter().filter(|r| r["kind"] == "outcome").collect();
    assert_eq!(outcomes.len(), 1, "{outcomes:#?}");
    assert_eq!(outcomes[0]["outcome"], "ok");
    let result = done["result"].clone();
    assert_eq!(
        outcomes[0]["result_digest"],
        json!(mcp_warden::digest::canonical(&result))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_policy_refuses_ends_the_task_upstream_and_is_audited() {
    let t = Two::start("p, role:conformance, conformance/elicitation/confirm_delete, read, deny\n")
        .await;
    let created = t
        .call(&t.one, "confirm_delete", json!({"filename": "kept.txt"}))
        .await;
    let task = created["taskId"].as_str().unwrap().to_string();
    let own = task.strip_prefix("conformance+").unwrap().to_string();
    let ended = t.settled(&t.one, &task).await;
    assert_eq!(ended["status"], "failed", "{ended}");
    assert!(ended.get("inputRequests").is_none(), "{ended}");
    let message = ended["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("conformance/elicitation/confirm_delete"),
        "{message}"
    );
    assert!(
        t.heard().contains(&("tasks/cancel".to_string(), own)),
        "{:?}",
        t.heard()
    );
    let audit = t.audit();
    assert!(audit.iter().any(|r| r["kind"] == "access"
        && r["method"] == "elicitation/create"
        && r["decision"] == "deny"));
    let outcomes: Vec<_> = audit.iter().filter(|r| r["kind"] == "outcome").collect();
    assert_eq!(outcomes.len(), 1, "{outcomes:#?}");
    let error = outcomes[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("mcp-warden cancelled the task"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tasks_extension_is_offered_only_when_an_upstream_offers_it() {
    let discover = |url: String| async move {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover",
            "params": {"_meta": modern::meta(json!({}))}});
        modern::post(&url, &body, None, &[]).await.message
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let fixture_url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(fixture::serve(listener));
    let dir = tempfile::tempdir().unwrap();
    let state = common::fixture_gateway(dir.path(), &fixture_url, "").await;
    let found = discover(common::serve_http(state.clone()).await).await;
    let extensions = &found["result"]["capabilities"]["extensions"];
    assert!(
        extensions["io.modelcontextprotocol/tasks"].is_object(),
        "{found}"
    );
    // `initialize` says the same.
    let tasks_on_initialize = |state| async move {
        let (client, _events) = common::connect(&state).await;
        let info = client.peer_info().unwrap().clone();
        info.capabilities.supports_tasks()
    };
    assert!(tasks_on_initialize(state).await);

    // The bundled demo server makes no tasks.
    let (_dir, url, state) = common::http_gateway(&common::Setup::default()).await;
    assert!(!tasks_on_initialize(state).await);
    let found = discover(url).await;
    assert!(found["result"]["capabilities"].is_object(), "{found}");
    assert!(
        found["result"]["capabilities"]["extensions"].is_null(),
        "{found}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_end_is_audited_even_when_its_caller_never_asks_again() {
    let t = Two::start("").await;
    let created = t
        .call(
            &t.one,
            "slow_compute",
            json!({"seconds": 0.3, "label": "quiet"}),
        )
        .await;
    assert_eq!(created["resultType"], "task", "{created}");
    let task = created["taskId"].as_str().unwrap().to_string();
    // Nobody asks: the gateway follows the task itself.
    let audit = t.audit();
    let outcomes: Vec<_> = audit.iter().filter(|r| r["kind"] == "outcome").collect();
    assert_eq!(outcomes.len(), 1, "{audit:#?}");
    assert_eq!(outcomes[0]["outcome"], "ok");
    // The result its caller gets afterwards is the one audited, and is not audited twice.
    let got = t.get(&t.one, &task).await;
    assert_eq!(got["result"]["status"], "completed", "{got}");
    assert_eq!(
        outcomes[0]["result_digest"],
        json!(mcp_warden::digest::canonical(&got["result"]["result"]))
    );
    let again = t.records();
    assert_eq!(again.iter().filter(|r| r["kind"] == "outcome").count(), 1);
}
