//! The conformance fixture: an MCP server over Streamable HTTP with the tools, resources
//! and prompts that the server scenarios of npm `@modelcontextprotocol/conformance` call
//! (`test_simple_text`, `test://static-text`, `test_simple_prompt`, …). It knows nothing
//! of the gateway; the conformance test runs the suite against it directly and through
//! the gateway, and `cargo run --example conformance-fixture` serves it on its own.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities,
    CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResponse,
    GetPromptResult, Implementation, InputRequest, InputRequiredResult, InputResponses,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProtocolVersion, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Request, ServerCapabilities, ServerConfig,
    ServerRequest,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

#[path = "tasks.rs"]
mod tasks;

/// A 1×1 red PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// Eight samples of silence as an 8-bit mono WAV.
const WAV: &str = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

#[derive(Clone, Default)]
pub struct Fixture {
    /// Speak only this protocol revision (by default, every one rmcp knows).
    pub only: Option<ProtocolVersion>,
    /// The protocol revision of each tool call's session, in order.
    pub seen: Arc<Mutex<Vec<String>>>,
    /// Hold the next `prompts/list`: say so on the first, wait for the second.
    pub hold_prompt_list: Option<Hold>,
    /// The tasks the tasks tools run (shared by every session and request).
    pub tasks: Arc<rmcp::task_manager::TaskManager>,
    /// Each `tasks/*` request received: its method and task id, in order.
    pub task_requests: Arc<Mutex<Vec<(String, String)>>>,
    /// Those of them made for a client that can answer elicitations (a caller's own,
    /// not a gateway's poll, which declares nothing but tasks).
    pub caller_task_requests: Arc<Mutex<Vec<(String, String)>>>,
    /// The `requestState` each get of the prompt (or read of the resource) that asks
    /// first came with, in order.
    pub prompt_states: Arc<Mutex<Vec<Option<String>>>>,
    /// The keys of the answers each of them came with, in order.
    pub prompt_answer_keys: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Fixture {
    fn heard(&self, method: &str, task: &str, cx: &RequestContext<RoleServer>) {
        let heard = (method.to_string(), task.to_string());
        if cx
            .client_capabilities()
            .is_some_and(|c| c.elicitation.is_some())
            && let Ok(mut caller) = self.caller_task_requests.lock()
        {
            caller.push(heard.clone());
        }
        if let Ok(mut all) = self.task_requests.lock() {
            all.push(heard);
        }
    }

    /// A get of the prompt (or read of the resource) that asks first.
    fn asked_first(&self, state: Option<&String>, answers: Option<&InputResponses>) {
        if let Ok(mut states) = self.prompt_states.lock() {
            states.push(state.cloned());
        }
        if let Ok(mut keys) = self.prompt_answer_keys.lock() {
            keys.push(
                answers
                    .map(|a| a.keys().cloned().collect())
                    .unwrap_or_default(),
            );
        }
    }
}

/// A request held in the middle: `entered` is notified when it arrives, and it goes on
/// once `release` is; only the first request is held.
#[derive(Clone, Default)]
pub struct Hold {
    pub entered: Arc<tokio::sync::Notify>,
    pub release: Arc<tokio::sync::Notify>,
    pub used: Arc<std::sync::atomic::AtomicBool>,
}

impl Hold {
    async fn pass(&self) {
        if !self.used.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
    }
}

/// Serve the fixture at `/mcp` on `listener` until the process ends.
#[allow(dead_code)] // not every test that includes the fixture uses it
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    serve_as(listener, Fixture::default()).await
}

/// Serve `fixture` at `/mcp` on `listener` until the process ends.
pub async fn serve_as(listener: tokio::net::TcpListener, fixture: Fixture) -> std::io::Result<()> {
    let service = StreamableHttpService::new(
        move || Ok(fixture.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    // Nagle off, as the gateway's own listeners have it: a kept-alive client stalls otherwise.
    let listener = mcp_warden::listener::HttpListener::from(listener);
    axum::serve(listener, axum::Router::new().nest_service("/mcp", service)).await
}

fn from<T: DeserializeOwned>(value: Value) -> Result<T, ErrorData> {
    serde_json::from_value(value).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

fn text(s: &str) -> Value {
    json!({"type": "text", "text": s})
}

fn no_arguments(name: &str, description: &str) -> Value {
    json!({"name": name, "description": description, "inputSchema": {"type": "object", "properties": {}}})
}

fn tools() -> Value {
    json!([
        no_arguments("test_simple_text", "Returns simple text content"),
        no_arguments("test_image_content", "Returns image content"),
        no_arguments("test_audio_content", "Returns audio content"),
        no_arguments("test_embedded_resource", "Returns an embedded resource"),
        no_arguments("test_multiple_content_types", "Returns text, image and resource content"),
        no_arguments("test_tool_with_logging", "Sends three log entries while it runs"),
        no_arguments("test_error_handling", "Always fails"),
        no_arguments("test_tool_with_progress", "Reports progress while it runs"),
        no_arguments("test_reconnection", "Answers after a short pause"),
        {"name": "test_sampling", "description": "Asks the client's model to answer a prompt",
         "inputSchema": {"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]}},
        {"name": "test_elicitation", "description": "Asks the client's user for input",
         "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}},
        no_arguments("test_elicitation_sep1034_defaults", "Elicitation with default values"),
        no_arguments("list_client_roots", "Asks the client for its roots (not a suite scenario)"),
        no_arguments("test_elicitation_sep1330_enums", "Elicitation with every enum form"),
        no_arguments("test_input_required_result_elicitation", "Asks the client's user for their name"),
        no_arguments("test_input_required_result_sampling", "Asks the client's model a question"),
        no_arguments("test_input_required_result_list_roots", "Asks the client for its roots"),
        no_arguments("test_input_required_result_request_state", "Asks to confirm, keeping a requestState"),
        no_arguments("test_input_required_result_multiple_inputs", "Asks three questions at once"),
        no_arguments("test_input_required_result_multi_round", "Asks in two rounds"),
        no_arguments("test_input_required_result_tampered_state", "Asks to confirm, with a signed requestState"),
        no_arguments("test_input_required_result_capabilities", "Asks only what the client declared"),
        no_arguments("test_missing_capability", "Needs a client that offers sampling"),
        no_arguments("test_streaming_elicitation", "Reports progress on the call's own stream"),
        no_arguments("test_logging_tool", "Logs only when the request names a log level"),
        {"name": "test_custom_header", "description": "A tool whose region travels as the Mcp-Param-Region header too",
         "inputSchema": {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
            "required": ["region"]}},
        {"name": "json_schema_2020_12_tool", "description": "Tool with JSON Schema 2020-12 features",
         "inputSchema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
            "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
            "additionalProperties": false}},
    ])
}

fn sep1034_schema() -> Value {
    json!({"type": "object", "properties": {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": true},
    }})
}

fn sep1330_schema() -> Value {
    json!({"type": "object", "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {"type": "string", "oneOf": [
            {"const": "value1", "title": "First Option"},
            {"const": "value2", "title": "Second Option"},
            {"const": "value3", "title": "Third Option"}]},
        "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"]},
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        "titledMulti": {"type": "array", "items": {"anyOf": [
            {"const": "value1", "title": "First Choice"},
            {"const": "value2", "title": "Second Choice"},
            {"const": "value3", "title": "Third Choice"}]}},
    }})
}

impl Fixture {
    async fn run(
        &self,
        name: &str,
        args: &Map<String, Value>,
        answers: Option<&InputResponses>,
        state: Option<&str>,
        cx: &RequestContext<RoleServer>,
    ) -> Result<Value, Stop> {
        let arg = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default();
        let content = match name {
            "test_simple_text" => json!([text("This is a simple text response for testing.")]),
            "test_image_content" => {
                json!([{"type": "image", "data": PNG, "mimeType": "image/png"}])
            }
            "test_audio_content" => {
                json!([{"type": "audio", "data": WAV, "mimeType": "audio/wav"}])
            }
            "test_embedded_resource" => json!([{"type": "resource", "resource": {
                "uri": "test://embedded-resource", "mimeType": "text/plain",
                "text": "This is an embedded resource content."}}]),
            "test_multiple_content_types" => json!([
                text("Multiple content types test:"),
                {"type": "image", "data": PNG, "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "test://mixed-content-resource",
                    "mimeType": "application/json", "text": "{\"test\":\"data\",\"value\":123}"}}]),
            "test_tool_with_logging" => json!([text(&log_three(cx).await)]),
            "test_error_handling" => {
                return Ok(json!({"isError": true, "content": [
                    text("This tool intentionally returns an error for testing")]}));
            }
            "test_tool_with_progress" => json!([text(&progress(cx).await)]),
            "test_reconnection" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                json!([text("Reconnection test completed")])
            }
            "test_sampling" => json!([text(&sample(cx, answers, arg("prompt")).await?)]),
            "test_elicitation" => {
                let schema = json!({"type": "object", "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"}},
                    "required": ["username", "email"]});
                let answer = elicit(cx, answers, arg("message"), schema).await?;
                json!([text(&elicited("User response", &answer))])
            }
            "test_elicitation_sep1034_defaults" => {
                let message = "Please review and update the form fields with defaults";
                let answer = elicit(cx, answers, message, sep1034_schema()).await?;
                json!([text(&elicited("Elicitation completed", &answer))])
            }
            "test_elicitation_sep1330_enums" => {
                let message = "Please select options from the enum fields";
                let answer = elicit(cx, answers, message, sep1330_schema()).await?;
                json!([text(&elicited("Elicitation completed", &answer))])
            }
            "list_client_roots" => json!([text(&roots(cx, answers, "roots").await?)]),
            // The 2026-07-28 suite's multi-round-trip tools (they ask an older client by
            // a request, as the tools above do).
            "test_input_required_result_elicitation" => {
                let schema = json!({"type": "object", "properties": {"name": {"type": "string"}},
                    "required": ["name"]});
                let params = json!({"mode": "form", "message": "What is your name?", "requestedSchema": schema});
                let answer = ask(cx, answers, "user_name", elicitation(params)?).await?;
                let name = answer
                    .pointer("/content/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                json!([text(&format!("Hello, {name}!"))])
            }
            "test_input_required_result_sampling" => {
                let said = sampled(
                    cx,
                    answers,
                    "sample_request",
                    "What is the capital of France?",
                )
                .await?;
                json!([text(&format!("Sampling result: {said}"))])
            }
            "test_input_required_result_capabilities" => {
                json!([text(&by_capabilities(cx, answers)?)])
            }
            "test_missing_capability" => {
                if cx
                    .client_capabilities()
                    .is_none_or(|c| c.sampling.is_none())
                {
                    let missing = ErrorData::new(
                        rmcp::model::ErrorCode(-32021),
                        "MissingRequiredClientCapabilityError",
                        Some(json!({"requiredCapabilities": {"sampling": {}}})),
                    );
                    return Err(missing.into());
                }
                json!([text("Success")])
            }
            // Two of the stateless scenario's diagnostics: a notification on the call's
            // own stream (never a request of the server's own), and a log entry only
            // when the request names a log level.
            "test_streaming_elicitation" => {
                if let Some(token) = cx.meta.get_progress_token() {
                    let note = ProgressNotificationParam::new(token, 50.0).with_total(100.0);
                    let _ = cx.peer.notify_progress(note).await;
                }
                json!([text("Streaming complete")])
            }
            #[allow(deprecated)] // logging is deprecated by SEP-2577 but the suite tests it
            "test_custom_header" => json!([text(&format!("region: {}", arg("region")))]),
            "test_logging_tool" => {
                log_if_asked(cx).await;
                json!([text("Logging evaluated")])
            }
            "test_input_required_result_tampered_state" => {
                json!([text(&tamper_checked(answers, state)?)])
            }
            "test_input_required_result_request_state"
            | "test_input_required_result_multiple_inputs"
            | "test_input_required_result_multi_round" => {
                json!([text(&rounds(name, answers, state)?)])
            }
            "test_input_required_result_list_roots" => {
                let request = ServerRequest::ListRootsRequest(Default::default());
                let answer = ask(cx, answers, "roots_request", request).await?;
                let n = answer
                    .get("roots")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                json!([text(&format!("Found {n} root(s)"))])
            }
            "json_schema_2020_12_tool" => {
                json!([text(&format!("received {}", Value::Object(args.clone())))])
            }
            other => {
                return Err(
                    ErrorData::invalid_params(format!("unknown tool `{other}`"), None).into(),
                );
            }
        };
        Ok(json!({"content": content}))
    }
}

/// Why a tool stopped before its result: an error, or, for a 2026-07-28 caller, a
/// question (`key`) the caller answers by making the call again.
enum Stop {
    Error(ErrorData),
    Asks(String, Box<InputRequest>),
    /// Several questions at once, and the state to bring back with the answers.
    Round(InputRequiredResult),
}

impl From<ErrorData> for Stop {
    fn from(e: ErrorData) -> Self {
        Stop::Error(e)
    }
}

/// Ask the caller `request`: a 2026-07-28 caller by the call's answer (its reply is in
/// `answers` under `key` when it made the call again), an older one by a request.
#[allow(deprecated)] // sampling and roots are deprecated by SEP-2577 but the suite tests them
async fn ask(
    cx: &RequestContext<RoleServer>,
    answers: Option<&InputResponses>,
    key: &str,
    request: ServerRequest,
) -> Result<Value, Stop> {
    let (offered, what): (fn(&ClientCapabilities) -> bool, &str) = match &request {
        ServerRequest::CreateMessageRequest(_) => (|c| c.sampling.is_some(), "sampling"),
        ServerRequest::ElicitRequest(_) => (|c| c.elicitation.is_some(), "elicitation"),
        _ => (|c| c.roots.is_some(), "roots"),
    };
    let modern = cx.protocol_version().is_some_and(|v| !v.has_initialize());
    // An older client is asked for its roots whatever it declared (as the fixture always
    // did); everything else only when the client (on 2026-07-28, this request) offers it.
    let checked = modern || what != "roots";
    if checked && !cx.client_capabilities().is_some_and(|c| offered(&c)) {
        let message = format!("the client does not support {what}");
        return Err(ErrorData::invalid_request(message, None).into());
    }
    if modern {
        if let Some(answer) = answers.and_then(|a| a.get(key)) {
            return Ok(answer.clone());
        }
        let question = match request {
            ServerRequest::CreateMessageRequest(r) => InputRequest::CreateMessage(r),
            ServerRequest::ElicitRequest(r) => InputRequest::Elicitation(r),
            ServerRequest::ListRootsRequest(r) => InputRequest::ListRoots(r),
            _ => return Err(ErrorData::internal_error("not a question", None).into()),
        };
        return Err(Stop::Asks(key.to_string(), Box::new(question)));
    }
    let answer = cx
        .peer
        .send_request(request)
        .await
        .map_err(|e| ErrorData::internal_error(format!("{what} failed: {e}"), None))?;
    Ok(serde_json::to_value(&answer).unwrap_or_default())
}

/// The 2026-07-28 suite's tools that ask several questions, or ask in several rounds,
/// keeping what they need in their `requestState` (2026-07-28 callers only).
fn rounds(
    name: &str,
    answers: Option<&InputResponses>,
    state: Option<&str>,
) -> Result<String, Stop> {
    let state: Value = state
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null);
    let answer = |key: &str, path: &str| {
        answers
            .and_then(|a| a.get(key))
            .and_then(|a| a.pointer(path))
            .cloned()
    };
    let form = |message: &str, field: &str, kind: &str| {
        json!({"method": "elicitation/create", "params": {"mode": "form", "message": message,
            "requestedSchema": {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}}})
    };
    let ask = |questions: Value, state: Value| -> Stop {
        let round = json!({"resultType": "input_required", "inputRequests": questions,
            "requestState": state.to_string()});
        match from::<InputRequiredResult>(round) {
            Ok(round) => Stop::Round(round),
            Err(e) => Stop::Error(e),
        }
    };
    let nonce = uuid::Uuid::new_v4().to_string();
    match name {
        "test_input_required_result_request_state" => {
            if state.get("kind") == Some(&json!("request-state"))
                && answer("confirm", "/content/ok") == Some(json!(true))
            {
                return Ok("state-ok: requestState validated".into());
            }
            let questions = json!({"confirm": form("Please confirm", "ok", "boolean")});
            Err(ask(
                questions,
                json!({"kind": "request-state", "nonce": nonce}),
            ))
        }
        "test_input_required_result_multiple_inputs" => {
            let name = answer("user_name", "/content/name");
            let greeting = answer("greeting", "/content/text");
            let roots = answer("client_roots", "/roots");
            if let (Some(name), Some(greeting), Some(roots)) = (name, greeting, roots)
                && state.get("kind") == Some(&json!("multiple-inputs"))
            {
                let n = roots.as_array().map_or(0, Vec::len);
                let (name, greeting) = (
                    name.as_str().unwrap_or("?"),
                    greeting.as_str().unwrap_or("?"),
                );
                return Ok(format!("Name: {name}; Greeting: {greeting}; Roots: {n}"));
            }
            let questions = json!({
                "user_name": form("What is your name?", "name", "string"),
                "greeting": {"method": "sampling/createMessage", "params": {"messages": [
                    {"role": "user", "content": {"type": "text", "text": "Generate a greeting"}}], "maxTokens": 50}},
                "client_roots": {"method": "roots/list", "params": {}},
            });
            Err(ask(
                questions,
                json!({"kind": "multiple-inputs", "nonce": nonce}),
            ))
        }
        _ => match state.get("round").and_then(Value::as_u64) {
            Some(1) if answer("step1", "/content/name").is_some() => {
                let name = answer("step1", "/content/name").unwrap_or_default();
                let questions = json!({"step2": form("Step 2: What is your favorite color?", "color", "string")});
                Err(ask(
                    questions,
                    json!({"round": 2, "name": name, "nonce": nonce}),
                ))
            }
            Some(2) if answer("step2", "/content/color").is_some() => {
                let name = state
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("friend");
                let color = answer("step2", "/content/color").unwrap_or_default();
                Ok(format!(
                    "Multi-round complete for {name} who likes {}",
                    color.as_str().unwrap_or("?")
                ))
            }
            _ => {
                let questions =
                    json!({"step1": form("Step 1: What is your name?", "name", "string")});
                Err(ask(questions, json!({"round": 1, "nonce": nonce})))
            }
        },
    }
}

/// Asks only what this request's client declared it can answer.
fn by_capabilities(
    cx: &RequestContext<RoleServer>,
    answers: Option<&InputResponses>,
) -> Result<String, Stop> {
    if let Some(answers) = answers.filter(|a| !a.is_empty()) {
        let keys: Vec<&str> = answers.keys().map(String::as_str).collect();
        return Ok(format!("capabilities-ok: received {}", keys.join(",")));
    }
    let caps = cx.client_capabilities().unwrap_or_default();
    let mut questions = serde_json::Map::new();
    if caps.elicitation.is_some() {
        questions.insert(
            "elicit_input".into(),
            json!({"method": "elicitation/create", "params": {
            "mode": "form", "message": "Elicitation input", "requestedSchema": {"type": "object",
            "properties": {"value": {"type": "string"}}, "required": ["value"]}}}),
        );
    }
    #[allow(deprecated)] // sampling is deprecated by SEP-2577 but the suite tests it
    if caps.sampling.is_some() {
        questions.insert(
            "sample_input".into(),
            json!({"method": "sampling/createMessage", "params": {
            "messages": [{"role": "user", "content": {"type": "text", "text": "Sample request"}}],
            "maxTokens": 50}}),
        );
    }
    if questions.is_empty() {
        return Ok("No supported capabilities declared".into());
    }
    let round = json!({"resultType": "input_required", "inputRequests": questions});
    Err(from::<InputRequiredResult>(round).map_or_else(Stop::Error, Stop::Round))
}

/// The state of the tampering scenario, signed: `<payload>.<sha256(key, payload)>`.
fn signed(payload: &str) -> String {
    use sha2::Digest;
    let mac = sha2::Sha256::digest(format!("conformance-fixture-key|{payload}"));
    format!("{payload}.{}", hex::encode(mac))
}

/// The tampering scenario: a state that does not verify is an error (the scenario's
/// only acceptable answer); a verified one with an answer is done; else the question.
fn tamper_checked(answers: Option<&InputResponses>, state: Option<&str>) -> Result<String, Stop> {
    if let Some(state) = state {
        let verified = state
            .rsplit_once('.')
            .filter(|(payload, _)| signed(payload) == state)
            .map(|(payload, _)| payload);
        let Some(payload) = verified else {
            let refused = ErrorData::invalid_params("requestState integrity check failed", None);
            return Err(refused.into());
        };
        if payload.starts_with("tamper-test:") && answers.is_some_and(|a| a.contains_key("confirm"))
        {
            return Ok("integrity-ok: state verified".into());
        }
    }
    let round = json!({"resultType": "input_required", "inputRequests": {"confirm": {
        "method": "elicitation/create", "params": {"mode": "form", "message": "Please confirm",
        "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}}}},
        "requestState": signed(&format!("tamper-test:{}", uuid::Uuid::new_v4()))});
    Err(from::<InputRequiredResult>(round).map_or_else(Stop::Error, Stop::Round))
}

fn elicitation(params: Value) -> Result<ServerRequest, ErrorData> {
    Ok(ServerRequest::ElicitRequest(Request::new(from(params)?)))
}

/// One log entry, only when the request names a log level.
#[allow(deprecated)] // logging is deprecated by SEP-2577 but the suite still tests it
async fn log_if_asked(cx: &RequestContext<RoleServer>) {
    if let Some(level) = cx.meta.log_level() {
        let entry = rmcp::model::LoggingMessageNotificationParam::new(
            level,
            json!("Diagnostic trace logging activated"),
        );
        let _ = cx.peer.notify_logging_message(entry).await;
    }
}

#[allow(deprecated)] // logging is deprecated by SEP-2577 but the suite still tests it
async fn log_three(cx: &RequestContext<RoleServer>) -> String {
    let steps = [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ];
    for (i, message) in steps.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let entry = rmcp::model::LoggingMessageNotificationParam::new(
            rmcp::model::LoggingLevel::Info,
            json!(message),
        )
        .with_logger("conformance-fixture");
        let _ = cx.peer.notify_logging_message(entry).await;
    }
    "Tool with logging executed successfully".into()
}

async fn progress(cx: &RequestContext<RoleServer>) -> String {
    let token = cx.meta.get_progress_token();
    for (i, done) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(token) = &token {
            let note = ProgressNotificationParam::new(token.clone(), done).with_total(100.0);
            let _ = cx.peer.notify_progress(note).await;
        }
    }
    "Tool with progress executed successfully".into()
}

async fn sample(
    cx: &RequestContext<RoleServer>,
    answers: Option<&InputResponses>,
    prompt: &str,
) -> Result<String, Stop> {
    Ok(format!(
        "LLM response: {}",
        sampled(cx, answers, "sampling", prompt).await?
    ))
}

/// Ask the caller's model to answer `prompt`: what it said.
#[allow(deprecated)] // sampling is deprecated by SEP-2577 but the suite still tests it
async fn sampled(
    cx: &RequestContext<RoleServer>,
    answers: Option<&InputResponses>,
    key: &str,
    prompt: &str,
) -> Result<String, Stop> {
    let params =
        from(json!({"messages": [{"role": "user", "content": text(prompt)}], "maxTokens": 100}))?;
    let request = ServerRequest::CreateMessageRequest(Request::new(params));
    let answer = ask(cx, answers, key, request).await?;
    let said = answer.get("content").cloned().unwrap_or_default();
    Ok(said
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| said.to_string()))
}

async fn roots(
    cx: &RequestContext<RoleServer>,
    answers: Option<&InputResponses>,
    key: &str,
) -> Result<String, Stop> {
    let request = ServerRequest::ListRootsRequest(Default::default());
    let listed = ask(cx, answers, key, request).await?;
    let uris: Vec<&str> = listed
        .get("roots")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(|r| r.get("uri")?.as_str()).collect())
        .unwrap_or_default();
    Ok(format!("roots: {}", uris.join(", ")))
}

async fn elicit(
    cx: &RequestContext<RoleServer>,
    answers: Option<&InputResponses>,
    message: &str,
    schema: Value,
) -> Result<Value, Stop> {
    let params = json!({"mode": "form", "message": message, "requestedSchema": schema});
    ask(cx, answers, "elicitation", elicitation(params)?).await
}

/// What an elicitation's answer says, as the suite expects to read it.
fn elicited(label: &str, answer: &Value) -> String {
    format!(
        "{label}: action={}, content={}",
        answer.get("action").and_then(Value::as_str).unwrap_or("?"),
        answer.get("content").cloned().unwrap_or(Value::Null)
    )
}

fn resources() -> Value {
    json!([
        {"uri": "test://static-text", "name": "static-text", "description": "A static text resource", "mimeType": "text/plain"},
        {"uri": "test://static-binary", "name": "static-binary", "description": "A static binary resource", "mimeType": "image/png"},
        {"uri": "test://watched-resource", "name": "watched-resource", "description": "A resource to subscribe to", "mimeType": "text/plain"},
    ])
}

fn read(uri: &str) -> Result<Value, ErrorData> {
    let content = match uri {
        "test://static-text" => json!({"uri": uri, "mimeType": "text/plain",
            "text": "This is the content of the static text resource."}),
        "test://static-binary" => json!({"uri": uri, "mimeType": "image/png", "blob": PNG}),
        "test://watched-resource" => {
            json!({"uri": uri, "mimeType": "text/plain", "text": "Watched resource content"})
        }
        _ => {
            let id = uri
                .strip_prefix("test://template/")
                .and_then(|rest| rest.strip_suffix("/data"))
                .ok_or_else(|| {
                    ErrorData::resource_not_found(format!("no resource `{uri}`"), None)
                })?;
            let data =
                json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
            json!({"uri": uri, "mimeType": "application/json", "text": data.to_string()})
        }
    };
    Ok(json!({"contents": [content]}))
}

fn prompts() -> Value {
    let arg = |name: &str, description: &str| json!({"name": name, "description": description, "required": true});
    json!([
        {"name": "test_simple_prompt", "description": "A prompt without arguments"},
        {"name": "test_prompt_with_arguments", "description": "A prompt with two arguments",
         "arguments": [arg("arg1", "First test argument"), arg("arg2", "Second test argument")]},
        {"name": "test_prompt_with_embedded_resource", "description": "A prompt that embeds a resource",
         "arguments": [arg("resourceUri", "URI of the resource to embed")]},
        {"name": "test_prompt_with_image", "description": "A prompt with an image"},
        {"name": "test_input_required_result_prompt", "description": "Asks for context before it is given (2026-07-28 callers)"},
    ])
}

fn prompt(name: &str, args: &Map<String, Value>) -> Result<Value, ErrorData> {
    let arg = |k: &str| {
        args.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let user = |content: Value| json!({"role": "user", "content": content});
    let messages = match name {
        "test_simple_prompt" => json!([user(text("This is a simple prompt for testing."))]),
        "test_prompt_with_arguments" => json!([user(text(&format!(
            "Prompt with arguments: arg1='{}', arg2='{}'",
            arg("arg1"),
            arg("arg2")
        )))]),
        "test_prompt_with_embedded_resource" => json!([
            user(
                json!({"type": "resource", "resource": {"uri": arg("resourceUri"),
                "mimeType": "text/plain", "text": "Embedded resource content for testing."}})
            ),
            user(text("Please process the embedded resource above."))
        ]),
        "test_prompt_with_image" => json!([
            user(json!({"type": "image", "data": PNG, "mimeType": "image/png"})),
            user(text("Please analyze the image above."))
        ]),
        other => {
            return Err(ErrorData::invalid_params(
                format!("unknown prompt `{other}`"),
                None,
            ));
        }
    };
    Ok(json!({"messages": messages}))
}

/// The state the prompt that asks first keeps between its rounds.
pub const PROMPT_STATE: &str = "fixture-prompt-state";

/// The prompt that asks its caller for context first (by the answer: a 2026-07-28
/// caller), keeping a state of its own, then uses the answer.
fn context_prompt(
    answers: Option<&InputResponses>,
    state: Option<&str>,
) -> Result<GetPromptResponse, ErrorData> {
    let text = match asked_context(answers, state)? {
        Ok(text) => text,
        Err(asks) => return Ok(GetPromptResponse::InputRequired(asks)),
    };
    let mut result: GetPromptResult =
        from(json!({"messages": [{"role": "user", "content": {"type": "text", "text": text}}]}))?;
    result.result_type = Some(rmcp::model::ResultType::COMPLETE);
    Ok(result.into())
}

/// The resource that asks its reader for context first, as the prompt does (it is not
/// listed: the suite's scenarios do not know it).
pub const ASKING_RESOURCE: &str = "test://asks-first";

fn context_resource(
    answers: Option<&InputResponses>,
    state: Option<&str>,
) -> Result<ReadResourceResponse, ErrorData> {
    let text = match asked_context(answers, state)? {
        Ok(text) => text,
        Err(asks) => return Ok(ReadResourceResponse::InputRequired(asks)),
    };
    let mut result: ReadResourceResult = from(json!({"contents": [
        {"uri": ASKING_RESOURCE, "mimeType": "text/plain", "text": text}]}))?;
    result.result_type = Some(rmcp::model::ResultType::COMPLETE);
    Ok(result.into())
}

/// The text made of the context the caller gave, or the question for it.
fn asked_context(
    answers: Option<&InputResponses>,
    state: Option<&str>,
) -> Result<Result<String, InputRequiredResult>, ErrorData> {
    let answer = answers.and_then(|a| a.get("user_context"));
    let answer = answer.filter(|_| state == Some(PROMPT_STATE));
    let Some(answer) = answer else {
        let question: InputRequest = from(json!({"method": "elicitation/create", "params": {
            "mode": "form", "message": "What context should the prompt use?",
            "requestedSchema": {"type": "object", "properties": {"context": {"type": "string"}},
                "required": ["context"]}}}))?;
        let asks = [("user_context".to_string(), question)]
            .into_iter()
            .collect();
        return Ok(Err(InputRequiredResult::new(
            Some(asks),
            Some(PROMPT_STATE.into()),
        )));
    };
    let context = answer.pointer("/content/context").and_then(Value::as_str);
    Ok(Ok(format!(
        "Use this context: {}",
        context.unwrap_or("none")
    )))
}

impl ServerHandler for Fixture {
    #[allow(deprecated)] // logging is deprecated by SEP-2577 but the suite still tests it
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_completions()
                .enable_logging()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new("conformance-fixture", "1.0.0"))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        match &self.only {
            Some(v) => Cow::Owned(vec![v.clone()]),
            None => Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS),
        }
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut all: Vec<Value> = from(tools())?;
        all.extend(tasks::tools());
        Ok(ListToolsResult::with_all_items(from(Value::Array(all))?))
    }

    /// A tool's definition, for rmcp to check `Mcp-Name` and `Mcp-Param-*` headers.
    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        let mut all: Vec<Value> = from(tools()).ok()?;
        all.extend(tasks::tools());
        let all: Vec<rmcp::model::Tool> = from(Value::Array(all)).ok()?;
        all.into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        if let (Some(info), Ok(mut seen)) = (cx.peer.peer_info(), self.seen.lock()) {
            seen.push(info.protocol_version.to_string());
        }
        let answers = request.input_responses.as_ref();
        if let Some(answer) = tasks::call(&self.tasks, &request.name, &args, answers, &cx).await {
            return answer;
        }
        let state = request.request_state.as_deref();
        match self.run(&request.name, &args, answers, state, &cx).await {
            Ok(value) => {
                let mut result: CallToolResult = from(value)?;
                // 2026-07-28 results say they are complete (rmcp drops it for older clients).
                result.result_type = Some(rmcp::model::ResultType::COMPLETE);
                Ok(result.into())
            }
            Err(Stop::Error(e)) => Err(e),
            Err(Stop::Asks(key, question)) => Ok(CallToolResponse::InputRequired(
                InputRequiredResult::new(Some([(key, *question)].into_iter().collect()), None),
            )),
            Err(Stop::Round(round)) => Ok(CallToolResponse::InputRequired(round)),
        }
    }

    async fn list_resources(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(from(resources())?))
    }

    async fn list_resource_templates(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let templates = json!([{"uriTemplate": "test://template/{id}/data", "name": "template",
            "description": "A resource template with one parameter", "mimeType": "application/json"}]);
        Ok(ListResourceTemplatesResult::with_all_items(from(
            templates,
        )?))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if request.uri == ASKING_RESOURCE {
            self.asked_first(
                request.request_state.as_ref(),
                request.input_responses.as_ref(),
            );
            let state = request.request_state.as_deref();
            return context_resource(request.input_responses.as_ref(), state);
        }
        let mut result: ReadResourceResult = from(read(&request.uri)?)?;
        // 2026-07-28 results say they are complete (rmcp drops it for older clients).
        result.result_type = Some(rmcp::model::ResultType::COMPLETE);
        Ok(result.into())
    }

    async fn subscribe(
        &self,
        _r: rmcp::model::SubscribeRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    async fn unsubscribe(
        &self,
        _r: rmcp::model::UnsubscribeRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    /// A 2026-07-28 `subscriptions/listen` takes what it asks for (held open until
    /// cancelled; the fixture's resources never change).
    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn list_prompts(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        if let Some(hold) = &self.hold_prompt_list {
            hold.pass().await;
        }
        Ok(ListPromptsResult::with_all_items(from(prompts())?))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name == "test_input_required_result_prompt" {
            self.asked_first(
                request.request_state.as_ref(),
                request.input_responses.as_ref(),
            );
            let state = request.request_state.as_deref();
            return context_prompt(request.input_responses.as_ref(), state);
        }
        let args = request.arguments.unwrap_or_default();
        let result: GetPromptResult = from(prompt(&request.name, &args)?)?;
        Ok(result.into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let typed = request.argument.value;
        let values: Vec<&str> = ["paris", "park", "party"]
            .into_iter()
            .filter(|v| v.starts_with(&typed))
            .collect();
        from(json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}))
    }

    async fn get_task(
        &self,
        request: rmcp::model::GetTaskParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetTaskResult, ErrorData> {
        self.heard("tasks/get", &request.task_id, &cx);
        let task = self.tasks.get_task(&request.task_id)?;
        Ok(rmcp::model::GetTaskResult::new(task))
    }

    async fn update_task(
        &self,
        request: rmcp::model::UpdateTaskParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.heard("tasks/update", &request.task_id, &cx);
        self.tasks
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: rmcp::model::CancelTaskParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.heard("tasks/cancel", &request.task_id, &cx);
        self.tasks.cancel_task(&request.task_id)
    }

    #[allow(deprecated)] // logging is deprecated by SEP-2577 but the suite still tests it
    async fn set_level(
        &self,
        _r: rmcp::model::SetLevelRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }
}
