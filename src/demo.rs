//! The bundled demo tool server (`mcp-warden demo-tools`): an ordinary MCP server with
//! tools of every tier, so the gateway runs with nothing else installed. It knows nothing
//! of the gateway. `--call-log FILE` appends every call it receives to a file, which lets
//! tests prove a refused call never reached it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    CompletionInfo, ContentBlock, GetPromptRequestParams, GetPromptResponse, Implementation,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig, ServerNotification, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};

mod prompts;
mod resources;

/// The demo server's state: notes, sent messages, and whether the extra tool is shown.
#[derive(Clone, Default)]
pub struct DemoTools {
    notes: Arc<Mutex<BTreeMap<String, String>>>,
    extra: Arc<Mutex<bool>>,
    call_log: Option<Arc<Mutex<std::fs::File>>>,
    /// Never announce tool-list changes.
    quiet: bool,
    /// Open 2026-07-28 `subscriptions/listen` requests, told of changes as they happen.
    listens: Arc<Mutex<Vec<rmcp::service::SubscriptionSink>>>,
}

impl DemoTools {
    pub fn new(call_log: Option<PathBuf>) -> std::io::Result<Self> {
        let log = match call_log {
            Some(p) => Some(Arc::new(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ))),
            None => None,
        };
        let mut notes = BTreeMap::new();
        notes.insert(
            "welcome".to_string(),
            "Notes live in memory while the demo server runs.".to_string(),
        );
        notes.insert(
            "plan".to_string(),
            "Refund order 1001 once the customer confirms.".to_string(),
        );
        Ok(Self {
            notes: Arc::new(Mutex::new(notes)),
            extra: Arc::default(),
            call_log: log,
            quiet: false,
            listens: Arc::default(),
        })
    }

    /// Tell every open listen of `change` (each takes only what it asked for).
    async fn tell_listens(&self, change: ServerNotification) {
        let sinks = self.listens.lock().map(|l| l.clone()).unwrap_or_default();
        for sink in sinks {
            let _ = sink.send(change.clone()).await;
        }
    }

    fn log(&self, event: Value) {
        if let Some(Ok(mut f)) = self.call_log.as_ref().map(|l| l.lock()) {
            let _ = writeln!(f, "{event}");
        }
    }

    fn tools(&self) -> Vec<Tool> {
        let mut defs = vec![
            tool(
                "list_notes",
                "List the titles of all notes.",
                json!({}),
                &[],
                json!({"readOnlyHint": true}),
            ),
            tool(
                "read_note",
                "Read one note by title.",
                json!({"title": {"type": "string"}}),
                &["title"],
                json!({"readOnlyHint": true}),
            ),
            tool(
                "echo",
                "Return the text it is given.",
                json!({"text": {"type": "string"}}),
                &["text"],
                json!({"readOnlyHint": true}),
            ),
            tool(
                "slow_count",
                "Count to `steps`, one step every `delay_ms`, reporting progress.",
                json!({"steps": {"type": "integer", "minimum": 1, "maximum": 100}, "delay_ms": {"type": "integer", "minimum": 0, "maximum": 10000}}),
                &["steps"],
                json!({"readOnlyHint": true}),
            ),
            tool(
                "write_note",
                "Create or replace a note.",
                json!({"title": {"type": "string"}, "body": {"type": "string"}}),
                &["title", "body"],
                json!({"readOnlyHint": false, "destructiveHint": false}),
            ),
            tool(
                "toggle_extra",
                "Show or hide the `extra` tool (the server then reports that its tool list changed).",
                json!({}),
                &[],
                json!({"readOnlyHint": false}),
            ),
            tool(
                "send_message",
                "Send a message to someone outside the workspace.",
                json!({"to": {"type": "string"}, "body": {"type": "string"}}),
                &["to", "body"],
                json!({"destructiveHint": true, "openWorldHint": true}),
            ),
            tool(
                "issue_refund",
                "Refund an order to the customer's card.",
                json!({"order_id": {"type": "string"}, "amount_cents": {"type": "integer", "minimum": 1}}),
                &["order_id", "amount_cents"],
                json!({"destructiveHint": true, "openWorldHint": true}),
            ),
        ];
        if self.extra.lock().map(|e| *e).unwrap_or(false) {
            defs.push(tool(
                "extra",
                "A tool that appears only after toggle_extra.",
                json!({}),
                &[],
                json!({"readOnlyHint": true}),
            ));
        }
        defs
    }

    async fn run(
        &self,
        name: &str,
        args: &Map<String, Value>,
        context: &RequestContext<RoleServer>,
    ) -> Result<String, String> {
        let text = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(format!("`{k}` is required"))
        };
        match name {
            "list_notes" => Ok(self
                .notes
                .lock()
                .map(|n| n.keys().cloned().collect::<Vec<_>>().join("\n"))
                .unwrap_or_default()),
            "read_note" => {
                let title = text("title")?;
                self.notes
                    .lock()
                    .ok()
                    .and_then(|n| n.get(&title).cloned())
                    .ok_or(format!("no note `{title}`"))
            }
            "echo" => {
                let said = text("text")?;
                log_entry(context, json!({"echoed": said})).await;
                Ok(said)
            }
            "slow_count" => slow_count(args, context).await,
            "write_note" => {
                let (title, body) = (text("title")?, text("body")?);
                if let Ok(mut n) = self.notes.lock() {
                    n.insert(title.clone(), body);
                }
                let updated =
                    rmcp::model::ResourceUpdatedNotificationParam::new(format!("note://{title}"));
                let change = ServerNotification::ResourceUpdatedNotification(
                    rmcp::model::ResourceUpdatedNotification::new(updated.clone()),
                );
                self.tell_listens(change).await;
                if !modern(context) {
                    let _ = context.peer.notify_resource_updated(updated).await;
                }
                Ok(format!("saved `{title}`"))
            }
            "toggle_extra" => {
                let shown = self
                    .extra
                    .lock()
                    .map(|mut e| {
                        *e = !*e;
                        *e
                    })
                    .unwrap_or(false);
                if !self.quiet {
                    let changed =
                        ServerNotification::ToolListChangedNotification(Default::default());
                    self.tell_listens(changed).await;
                    if !modern(context) {
                        let _ = context.peer.notify_tool_list_changed().await;
                    }
                }
                Ok(format!(
                    "extra tool {}",
                    if shown { "shown" } else { "hidden" }
                ))
            }
            "send_message" => Ok(format!("message sent to {}", text("to")?)),
            "issue_refund" => {
                let cents = args
                    .get("amount_cents")
                    .and_then(Value::as_i64)
                    .ok_or("`amount_cents` is required")?;
                Ok(format!(
                    "refunded {}.{:02} for order {}",
                    cents / 100,
                    cents % 100,
                    text("order_id")?
                ))
            }
            "extra" => Ok("extra ran".into()),
            other => Err(format!("unknown tool `{other}`")),
        }
    }
}

async fn slow_count(
    args: &Map<String, Value>,
    context: &RequestContext<RoleServer>,
) -> Result<String, String> {
    let steps = args.get("steps").and_then(Value::as_u64).unwrap_or(1);
    let delay = Duration::from_millis(args.get("delay_ms").and_then(Value::as_u64).unwrap_or(100));
    let token = context.meta.get_progress_token();
    for step in 1..=steps {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = context.ct.cancelled() => return Err(format!("cancelled at step {step}")),
        }
        if let Some(token) = &token {
            let note =
                ProgressNotificationParam::new(token.clone(), step as f64).with_total(steps as f64);
            let _ = context.peer.notify_progress(note).await;
        }
    }
    Ok(format!("counted to {steps}"))
}

fn tool(
    name: &'static str,
    description: &'static str,
    properties: Value,
    required: &[&str],
    annotations: Value,
) -> Tool {
    let definition = json!({
        "name": name,
        "description": description,
        "inputSchema": {"type": "object", "properties": properties, "required": required, "additionalProperties": false},
        "annotations": annotations,
    });
    serde_json::from_value(definition)
        .unwrap_or_else(|_| Tool::new(name, description, Arc::new(Map::new())))
}

/// Over HTTP, the headers this server received (so tests can see what a gateway passed on).
fn received_headers(context: &RequestContext<RoleServer>) -> Option<Value> {
    let parts = context.extensions.get::<axum::http::request::Parts>()?;
    let headers: Map<String, Value> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), Value::String(v.to_str().ok()?.to_string()))))
        .collect();
    Some(Value::Object(headers))
}

/// Whether the request speaks 2026-07-28 or later: its client hears of changes only on a
/// listen.
fn modern(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| !v.has_initialize())
}

/// Send the client one `info` log entry (logger `demo-tools`).
#[allow(deprecated)] // logging is deprecated by SEP-2577 but clients still use it
async fn log_entry(context: &RequestContext<RoleServer>, data: Value) {
    let entry =
        rmcp::model::LoggingMessageNotificationParam::new(rmcp::model::LoggingLevel::Info, data)
            .with_logger("demo-tools");
    let _ = context.peer.notify_logging_message(entry).await;
}

impl ServerHandler for DemoTools {
    #[allow(deprecated)] // logging is deprecated by SEP-2577 but clients still use it
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_prompts()
                .enable_completions()
                .enable_logging()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
        .with_server_info(Implementation::new(
            "mcp-warden-demo-tools",
            env!("CARGO_PKG_VERSION"),
        ))
    }

    async fn list_prompts(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(prompts::list()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        self.log(json!({"prompt": request.name, "args": args}));
        let notes = self.notes.lock().map(|n| n.clone()).unwrap_or_default();
        prompts::get(&request.name, &args, &notes).map(GetPromptResponse::from)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.log(json!({"complete": request.argument.name, "value": request.argument.value}));
        let notes = self.notes.lock().map(|n| n.clone()).unwrap_or_default();
        let titles = notes
            .keys()
            .filter(|t| t.starts_with(&request.argument.value))
            .cloned()
            .collect();
        let completion = CompletionInfo::new(titles)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        Ok(CompleteResult::new(completion))
    }

    #[allow(deprecated)] // logging is deprecated by SEP-2577 but clients still use it
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.log(json!({"set_level": request.level}));
        Ok(())
    }

    async fn list_resources(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let notes = self.notes.lock().map(|n| n.clone()).unwrap_or_default();
        Ok(ListResourcesResult::with_all_items(resources::list(&notes)))
    }

    async fn list_resource_templates(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn subscribe(
        &self,
        request: rmcp::model::SubscribeRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.log(json!({"subscribe": request.uri}));
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: rmcp::model::UnsubscribeRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.log(json!({"unsubscribe": request.uri}));
        Ok(())
    }

    /// A 2026-07-28 client listens instead of subscribing: it gets what it asks for.
    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, context: rmcp::service::SubscriptionContext) -> Result<(), ErrorData> {
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        for uri in &uris {
            self.log(json!({"subscribe": uri}));
        }
        let sink = context.sink().clone();
        if let Ok(mut listens) = self.listens.lock() {
            listens.push(sink.clone());
        }
        context.cancelled().await;
        if let Ok(mut listens) = self.listens.lock() {
            listens.retain(|s| s.id() != sink.id());
        }
        for uri in &uris {
            self.log(json!({"unsubscribe": uri}));
        }
        Ok(())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.log(json!({"resource": request.uri}));
        let notes = self.notes.lock().map(|n| n.clone()).unwrap_or_default();
        resources::read(&request.uri, &notes).map(ReadResourceResponse::from)
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // The trace context the call came with (`_meta`), for tests of what a gateway
        // passes on.
        let meta = request.meta.as_ref().map_or(&context.meta.0.0, |m| &m.0.0);
        let trace: Map<String, Value> = ["traceparent", "tracestate"]
            .iter()
            .filter_map(|k| meta.get(*k).map(|v| (k.to_string(), v.clone())))
            .collect();
        let args = request.arguments.unwrap_or_default();
        let mut event = match received_headers(&context) {
            Some(headers) => json!({"tool": request.name, "args": args, "headers": headers}),
            None => json!({"tool": request.name, "args": args}),
        };
        if let (false, Value::Object(fields)) = (trace.is_empty(), &mut event) {
            fields.insert("trace".into(), Value::Object(trace));
        }
        self.log(event);
        if !self.tools().iter().any(|t| t.name == request.name) {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        }
        let outcome = self.run(&request.name, &args, &context).await;
        if context.ct.is_cancelled() {
            self.log(json!({"cancelled": request.name}));
        }
        let result = match outcome {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(text) => CallToolResult::error(vec![ContentBlock::text(text)]),
        };
        Ok(result.into())
    }
}

/// Serve the demo tools over stdio, or over Streamable HTTP at `/mcp` when `http` is set.
pub async fn serve(
    call_log: Option<PathBuf>,
    http: Option<std::net::SocketAddr>,
    quiet: bool,
) -> std::io::Result<()> {
    let mut tools = DemoTools::new(call_log)?;
    tools.quiet = quiet;
    match http {
        None => {
            let started = match crate::transport::stdio_pipes() {
                Some(pipes) => tools.serve(pipes).await,
                None => tools.serve(rmcp::transport::stdio()).await,
            };
            let running = started.map_err(std::io::Error::other)?;
            running.waiting().await.map_err(std::io::Error::other)?;
        }
        Some(addr) => {
            use rmcp::transport::streamable_http_server::{
                StreamableHttpServerConfig, StreamableHttpService,
                session::local::LocalSessionManager,
            };
            let service = StreamableHttpService::new(
                move || Ok(tools.clone()),
                Arc::new(LocalSessionManager::default()),
                StreamableHttpServerConfig::default(),
            );
            let listener = crate::listener::HttpListener::bind(addr).await?;
            eprintln!("demo tools at http://{}/mcp", listener.local_addr()?);
            axum::serve(listener, axum::Router::new().nest_service("/mcp", service)).await?;
        }
    }
    Ok(())
}
