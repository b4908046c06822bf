//! The fixture's tasks (the `io.modelcontextprotocol/tasks` extension of 2026-07-28): the
//! tools the suite's `tasks-*` scenarios call. A task-supporting tool called by a request
//! that declares the extension runs as a task (rmcp's `TaskManager` keeps it and answers
//! `tasks/get`, `tasks/update` and `tasks/cancel`); called without it, an optional one
//! runs to its result at once and a required one is refused with -32021.

use std::time::Duration;

use rmcp::model::{
    CallToolResponse, CallToolResult, ClientCapabilities, CreateTaskResult, InputRequest,
    InputResponses, ResultType,
};
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskContext, TaskExit, TaskFuture, TaskManager, TaskOptions};
use rmcp::{ErrorData, RoleServer};
use serde_json::{Map, Value, json};

/// How a tool runs when the caller can take a task.
#[derive(Clone, Copy, PartialEq)]
enum Support {
    /// As a task when the caller declared the extension; at once otherwise.
    Optional,
    /// Only as a task: a caller without the extension is refused (-32021).
    Required,
}

/// The definitions of the tasks tools, for `tools/list`.
pub fn tools() -> Vec<Value> {
    let object = |properties: Value| json!({"type": "object", "properties": properties});
    vec![
        json!({"name": "greet", "description": "Says hello at once (never a task)",
            "inputSchema": object(json!({"name": {"type": "string"}}))}),
        json!({"name": "slow_compute", "description": "Works for `seconds`, as a task when it can",
            "inputSchema": object(json!({"seconds": {"type": "number"}, "label": {"type": "string"}}))}),
        json!({"name": "failing_job", "description": "A task whose tool fails",
            "inputSchema": object(json!({}))}),
        json!({"name": "protocol_error_job", "description": "A task that fails with a protocol error",
            "inputSchema": object(json!({}))}),
        json!({"name": "confirm_delete", "description": "A task that asks to confirm before it deletes",
            "inputSchema": object(json!({"filename": {"type": "string"}}))}),
        json!({"name": "multi_input", "description": "A task that asks two questions at once",
            "inputSchema": object(json!({}))}),
        json!({"name": "test_tool_with_task", "description": "Asks a name by the call's answer, then works on as a task",
            "inputSchema": object(json!({}))}),
    ]
}

fn support(name: &str) -> Option<Support> {
    match name {
        "slow_compute" | "protocol_error_job" | "confirm_delete" | "multi_input" => {
            Some(Support::Optional)
        }
        "failing_job" | "test_tool_with_task" => Some(Support::Required),
        _ => None,
    }
}

fn text(s: &str) -> CallToolResult {
    let mut result = CallToolResult::success(vec![rmcp::model::ContentBlock::text(s)]);
    result.result_type = Some(ResultType::COMPLETE);
    result
}

fn needs_tasks() -> ErrorData {
    let mut capabilities = ClientCapabilities::default();
    capabilities.extensions = Some(
        [(rmcp::model::TASKS_EXTENSION_ID.to_string(), Map::new())]
            .into_iter()
            .collect(),
    );
    ErrorData::missing_required_client_capability(capabilities)
}

/// A tasks tool's answer, or `None` when `name` is not one.
pub async fn call(
    tasks: &TaskManager,
    name: &str,
    args: &Map<String, Value>,
    answers: Option<&InputResponses>,
    cx: &RequestContext<RoleServer>,
) -> Option<Result<CallToolResponse, ErrorData>> {
    let arg = |k: &str| {
        args.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if name == "greet" {
        return Some(Ok(text(&format!("Hello, {}!", arg("name"))).into()));
    }
    let support = support(name)?;
    let declared = cx.client_capabilities().is_some_and(|c| c.supports_tasks());
    if !declared {
        return Some(match (support, name) {
            (Support::Optional, "slow_compute") => {
                let seconds = args.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
                tokio::time::sleep(Duration::from_secs_f64(seconds.clamp(0.0, 60.0))).await;
                Ok(text(&format!("computed {} after {seconds}s", arg("label"))).into())
            }
            (Support::Optional, "protocol_error_job") => {
                Err(ErrorData::internal_error("the job crashed", None))
            }
            _ => Err(needs_tasks()),
        });
    }
    // Gathers a name by the call's own answer first, then works on as a task.
    let mut named = String::new();
    if name == "test_tool_with_task" {
        let answer = answers.and_then(|a| a.get("user_name"));
        let Some(answer) = answer else {
            let question: InputRequest = match serde_json::from_value(json!({
                "method": "elicitation/create", "params": {"mode": "form",
                    "message": "What is your name?", "requestedSchema": {"type": "object",
                    "properties": {"name": {"type": "string"}}, "required": ["name"]}}}))
            {
                Ok(q) => q,
                Err(e) => return Some(Err(ErrorData::internal_error(e.to_string(), None))),
            };
            let round = rmcp::model::InputRequiredResult::new(
                Some([("user_name".to_string(), question)].into_iter().collect()),
                None,
            );
            return Some(Ok(CallToolResponse::InputRequired(round)));
        };
        named = answer
            .pointer("/content/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
    }
    let (name, args) = (name.to_string(), args.clone());
    let options = TaskOptions::new()
        .with_ttl_ms(300_000)
        .with_poll_interval_ms(200);
    let task = tasks.spawn(options, move |cx| run(name, args, named, cx));
    Some(Ok(CallToolResponse::Task(CreateTaskResult::new(task))))
}

fn run(name: String, args: Map<String, Value>, named: String, cx: TaskContext) -> TaskFuture {
    Box::pin(async move {
        let arg = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match name.as_str() {
            "slow_compute" => {
                let seconds = args.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
                let work = tokio::time::sleep(Duration::from_secs_f64(seconds.clamp(0.0, 600.0)));
                tokio::select! {
                    () = work => Ok(text(&format!("computed {} after {seconds}s", arg("label")))),
                    () = cx.cancelled() => Err(TaskExit::Cancelled),
                }
            }
            "failing_job" => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mut failed = text("the job failed: nothing to work on");
                failed.is_error = Some(true);
                Ok(failed)
            }
            "protocol_error_job" => Err(TaskExit::Error(ErrorData::internal_error(
                "the job crashed",
                None,
            ))),
            "confirm_delete" => {
                let file = arg("filename");
                let answer = cx
                    .request_input(
                        "confirm",
                        question(&format!("Delete {file}?"), "confirm", "boolean")?,
                    )
                    .await?;
                let yes = answer.pointer("/content/confirm") == Some(&Value::Bool(true));
                Ok(text(&match yes {
                    true => format!("deleted {file}"),
                    false => format!("kept {file}"),
                }))
            }
            "multi_input" => {
                let name = cx.request_input("name", question("Your name?", "name", "string")?);
                let sure = cx.request_input("confirm", question("Sure?", "confirm", "boolean")?);
                let (name, sure) = tokio::try_join!(name, sure)?;
                Ok(text(&format!(
                    "name: {}, confirm: {}",
                    name.pointer("/content/name")
                        .cloned()
                        .unwrap_or(Value::Null),
                    sure.pointer("/content/confirm")
                        .cloned()
                        .unwrap_or(Value::Null)
                )))
            }
            "test_tool_with_task" => Ok(text(&format!("Hello, {named}! (from a task)"))),
            other => Err(TaskExit::Error(ErrorData::invalid_params(
                format!("unknown task tool `{other}`"),
                None,
            ))),
        }
    })
}

/// A one-field form.
fn question(message: &str, field: &str, kind: &str) -> Result<InputRequest, TaskExit> {
    serde_json::from_value(
        json!({"method": "elicitation/create", "params": {"mode": "form",
        "message": message, "requestedSchema": {"type": "object",
        "properties": {field: {"type": kind}}, "required": [field]}}}),
    )
    .map_err(|e| TaskExit::Error(ErrorData::internal_error(e.to_string(), None)))
}
