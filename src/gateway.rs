//! The MCP server the client talks to: one [`Gateway`] per client session, wiring the
//! stages into `tools/list` (what this caller may use) and `tools/call` (the decision
//! pipeline in `call`, forwarding in `asks`, which also answers what the upstream asks
//! the caller on the way), prompts and completions (`prompts`), resources and their
//! subscriptions (`resources`, `subscriptions`) and upstream log entries (`logging`).
//! rmcp types are translated here and in `upstream`, nowhere else.

mod answer;
mod approve;
mod asks;
mod call;
mod confirm;
mod era;
mod grants;
mod inputs;
mod logging;
mod prompts;
mod refresh;
mod reload;
mod resources;
mod rounds;
mod state;
mod subscriptions;
mod tasks;

use crate::telemetry::trace::{self, CallSpan};
use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ResultType, ServerConfig,
    Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};

use crate::catalog::ToolState;
use crate::config::IdentityConfig;
use crate::identity::Caller;
use crate::policy::{Effect, object_of};
pub use grants::{GrantError, GrantRequest, MAX_GRANT, TaskEnded};
pub use reload::Reloaded;
pub use state::{Snapshot, StartError, State, load_rules, read_inputs};

/// Where a session's caller identity comes from.
#[derive(Debug, Clone)]
pub enum Listener {
    /// A client that launched the gateway: one session per process.
    Stdio { session: String },
    /// Streamable HTTP: the session id comes from each request.
    Http,
}

/// The MCP server handler for one client session.
#[derive(Clone)]
pub struct Gateway {
    state: Arc<State>,
    identity: IdentityConfig,
    listener: Listener,
}

impl Gateway {
    pub fn new(state: Arc<State>, identity: IdentityConfig, listener: Listener) -> Self {
        Self {
            state,
            identity,
            listener,
        }
    }

    /// The caller of a request: over stdio the configured identity; over HTTP the one
    /// its credential proved, or the configured identity when HTTP callers present none.
    fn caller(&self, now: &Snapshot, context: &RequestContext<RoleServer>) -> Caller {
        let parts = context.extensions.get::<axum::http::request::Parts>();
        let session = match &self.listener {
            Listener::Stdio { session } => Some(session.clone()),
            Listener::Http => parts
                .and_then(|p| p.headers.get("mcp-session-id"))
                .and_then(|v| v.to_str().ok())
                .map(|s| format!("http:{s}")),
        };
        let Some(session) = session else {
            // A 2026-07-28 request has no session: what its caller did before is kept
            // per chain, over an idle window (and per task when it declares one).
            let mut caller = self.caller_on(now, parts, String::new());
            caller.session = format!("http:chain:{}", caller.chain().join(">"));
            return caller;
        };
        self.caller_on(now, parts, session)
    }

    fn caller_on(
        &self,
        now: &Snapshot,
        parts: Option<&axum::http::request::Parts>,
        session: String,
    ) -> Caller {
        let verified = parts.and_then(|p| p.extensions.get::<crate::identity::Verified>());
        match (&self.listener, verified) {
            (Listener::Stdio { .. }, _) => Caller::from_config(&self.identity, session),
            (Listener::Http, Some(v)) => v.caller(session),
            (Listener::Http, None) if !now.config.authenticates() => {
                Caller::from_config(&self.identity, session)
            }
            // Unreachable behind the transport's check; fail closed if it ever is not:
            // a caller with no identity is denied everything.
            (Listener::Http, None) => Caller {
                principal: None,
                agents: Vec::new(),
                session,
                credential: None,
                task: None,
            },
        }
    }

    /// A request of `method` (for `target`: a tool, prompt or resource, or nothing)
    /// arrives: counted, its span started (the child of the caller's trace context in
    /// `_meta` or the HTTP headers; ended when the handler drops it), and its snapshot and
    /// caller taken.
    fn enter(
        &self,
        method: &'static str,
        target: &str,
        context: &RequestContext<RoleServer>,
    ) -> (Arc<Snapshot>, Caller, CallSpan) {
        let carried = trace::incoming(&context.meta.0.0, headers_of(context));
        self.enter_traced(method, target, context, &carried)
    }

    /// [`enter`](Self::enter) with the caller's trace context already read.
    fn enter_traced(
        &self,
        method: &'static str,
        target: &str,
        context: &RequestContext<RoleServer>,
        carried: &serde_json::Map<String, serde_json::Value>,
    ) -> (Arc<Snapshot>, Caller, CallSpan) {
        let span = CallSpan::start(method, target, carried);
        let started = std::time::Instant::now();
        self.state.metrics.request(method);
        let now = self.state.current();
        let caller = self.caller(&now, context);
        span.event("identity", Some(started.elapsed()));
        (now, caller, span)
    }

    /// A 2026-07-28 request's own log level (`_meta`): upstream log entries reach it
    /// while it runs, filtered as every subscriber's are.
    async fn request_logs(
        &self,
        context: &RequestContext<RoleServer>,
        caller: &Caller,
    ) -> Option<logging::RequestLogs> {
        let level = context.meta.log_level().filter(|_| era::modern(context))?;
        let peer = context.peer.clone();
        Some(
            self.state
                .logs_for_request(peer, caller.clone(), level)
                .await,
        )
    }

    /// Before a request with its own log level is answered: the log entries its upstream
    /// sent before its answer go out first; then the request's subscription ends.
    async fn settle(&self, logs: Option<logging::RequestLogs>) {
        if logs.is_some() {
            self.state.upstreams.settled().await;
        }
    }

    /// The tools this caller may call or request approval for, as clients see them.
    pub fn visible_tools(&self, now: &Snapshot, caller: &Caller) -> Vec<Tool> {
        now.catalog
            .tools()
            .filter(|t| t.state == ToolState::Ready)
            .filter(|t| {
                let decision = now.policy.decide(caller, &object_of(t), t.tier);
                decision.effect == Effect::Allow || decision.effect.waits()
            })
            .filter_map(|t| t.definition.clone())
            .collect()
    }
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(era::every_capability())
            .with_server_info(Implementation::new("mcp-warden", env!("CARGO_PKG_VERSION")))
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
            .with_instructions(
                "Every tool call is authorised and audited by mcp-warden. Give each call an `intent` \
                 argument: one sentence saying why you are making it. Some calls wait for a human approver.",
            )
    }

    /// What `initialize` declares: everything the gateway can serve, except tasks when no
    /// running upstream makes them.
    async fn initialize(
        &self,
        request: rmcp::model::InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::InitializeResult, ErrorData> {
        self.state.metrics.request("initialize");
        context.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        era::without_unoffered_tasks(&self.state, &mut result.capabilities).await;
        Ok(result)
    }

    /// Both eras on one endpoint: `initialize` and sessions up to 2025-11-25, and
    /// 2026-07-28's stateless requests (`server/discover`, metadata on every request).
    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2026_07_28))
    }

    /// What this caller may use here: never cached beyond the request, never shared.
    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::DiscoverResult, ErrorData> {
        let (now, caller, _span) = self.enter("server/discover", "", &context);
        let mut info = self.get_info();
        info.capabilities = era::capabilities_for(self, &self.state, &now, &caller).await;
        let mut found = rmcp::model::DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            info,
        );
        found.ttl_ms = 0;
        found.cache_scope = CacheScope::Private;
        Ok(found)
    }

    /// A tool's definition for checking `Mcp-Name`/`Mcp-Param-*` headers against the
    /// body (the call itself is decided as every call is).
    fn get_tool(&self, name: &str) -> Option<Tool> {
        let now = self.state.current();
        now.catalog.resolve(name).ok()?.definition.clone()
    }

    /// `tasks/get` on a task one of this caller's calls became.
    async fn get_task(
        &self,
        request: rmcp::model::GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetTaskResult, ErrorData> {
        let (_, caller, _span) = self.enter("tasks/get", "", &context);
        tasks::get(&self.state, &caller, &request.task_id, &context).await
    }

    /// `tasks/update`: answers to what this caller's task asked.
    async fn update_task(
        &self,
        request: rmcp::model::UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let (_, caller, _span) = self.enter("tasks/update", "", &context);
        let (id, responses) = (&request.task_id, request.input_responses);
        tasks::update(&self.state, &caller, id, responses, &context).await
    }

    /// `tasks/cancel` of this caller's task.
    async fn cancel_task(
        &self,
        request: rmcp::model::CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let (_, caller, _span) = self.enter("tasks/cancel", "", &context);
        tasks::cancel(&self.state, &caller, &request.task_id, &context).await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let (now, caller, _span) = self.enter("tools/list", "", &context);
        Ok(
            ListToolsResult::with_all_items(self.visible_tools(&now, &caller))
                .with_ttl_ms(0)
                .with_cache_scope(CacheScope::Private),
        )
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // One span a request, the caller's span its parent; its stages are its events.
        // Empty when spans are not exported.
        let meta = request.meta.as_ref().map_or(&context.meta.0.0, |m| &m.0.0);
        let carried = trace::incoming(meta, headers_of(&context));
        let (now, caller, span) =
            self.enter_traced("tools/call", &request.name, &context, &carried);
        let logs = self.request_logs(&context, &caller).await;
        let traced = call::Traced { span, carried };
        let answer = call::run(&self.state, &now, caller, request, context, traced).await;
        self.settle(logs).await;
        answer.map(|mut r| {
            // 2026-07-28 results say they are complete; rmcp drops it for older peers.
            if let CallToolResponse::Complete(done) = &mut r {
                done.result_type = Some(ResultType::COMPLETE);
            }
            r
        })
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let (now, caller, _span) = self.enter("prompts/list", "", &context);
        Ok(
            ListPromptsResult::with_all_items(prompts::list(&self.state, &now, &caller).await)
                .with_ttl_ms(0)
                .with_cache_scope(CacheScope::Private),
        )
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let (now, caller, _span) = self.enter("prompts/get", &request.name, &context);
        let logs = self.request_logs(&context, &caller).await;
        let answer = prompts::get(&self.state, &now, caller, request, &context).await;
        self.settle(logs).await;
        answer
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let (now, caller, _span) = self.enter("resources/list", "", &context);
        Ok(
            ListResourcesResult::with_all_items(resources::list(&self.state, &now, &caller).await)
                .with_ttl_ms(0)
                .with_cache_scope(CacheScope::Private),
        )
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let (now, caller, _span) = self.enter("resources/templates/list", "", &context);
        let templates = resources::templates(&self.state, &now, &caller).await;
        Ok(ListResourceTemplatesResult::with_all_items(templates)
            .with_ttl_ms(0)
            .with_cache_scope(CacheScope::Private))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let (now, caller, _span) = self.enter("resources/read", &request.uri, &context);
        let logs = self.request_logs(&context, &caller).await;
        let answer = resources::read(&self.state, &now, caller, request, &context).await;
        self.settle(logs).await;
        answer
    }

    async fn subscribe(
        &self,
        request: rmcp::model::SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let (_, caller, _span) = self.enter("resources/subscribe", &request.uri, &context);
        self.state
            .subscribe_resource(context.peer.clone(), caller, request)
            .await
    }

    async fn unsubscribe(
        &self,
        request: rmcp::model::UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let (_, caller, _span) = self.enter("resources/unsubscribe", &request.uri, &context);
        self.state.unsubscribe_resource(&caller, request).await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let (now, caller, _span) = self.enter("completion/complete", "", &context);
        let mut done = prompts::complete(&self.state, &now, caller, request).await?;
        done.result_type = Some(ResultType::COMPLETE);
        Ok(done)
    }

    #[allow(deprecated)] // logging is deprecated by SEP-2577 but clients still use it
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        // 2026-07-28 removed it: the level comes with each request.
        if era::modern(&context) {
            return Err(ErrorData::method_not_found::<
                rmcp::model::SetLevelRequestMethod,
            >());
        }
        let (_, caller, _span) = self.enter("logging/setLevel", "", &context);
        self.state
            .subscribe_logs(context.peer.clone(), caller, request.level)
            .await;
        Ok(())
    }

    /// What a 2026-07-28 `subscriptions/listen` may have (each resource is decided when
    /// the listen starts, with its caller known).
    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        Some(subscriptions::accepted(&self.state.current(), requested))
    }

    async fn listen(&self, context: rmcp::service::SubscriptionContext) -> Result<(), ErrorData> {
        let (_, caller, _span) = self.enter("subscriptions/listen", "", context.request_context());
        self.state.listen(caller, context).await
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let transport = match self.listener {
            Listener::Stdio { .. } => "stdio",
            Listener::Http => "http",
        };
        self.state.add_peer(context.peer, transport);
    }
}

/// Policy, then the audit record, for every request other than a tool call (prompts,
/// resources, completions, relayed server requests): an attested access, or the error the
/// caller gets (the refusal audited too).
async fn attest(
    state: &State,
    now: &Snapshot,
    access: crate::policy::Access,
) -> Result<crate::audit::AttestedAccess, ErrorData> {
    let permitted = match now.policy.authorize_access(access) {
        Ok(p) => p,
        Err(refused) => {
            if let Err(e) = state.audit.access_refused(&refused).await {
                tracing::error!(error = %e, "a refused request could not be audited");
            }
            let (object, kind) = (refused.access.object(), refused.access.kind);
            let message = refused.message;
            return Err(answer::Failure::Refused {
                message,
                object,
                kind,
            }
            .into());
        }
    };
    state
        .audit
        .access(permitted)
        .await
        .map_err(|(_, e)| answer::Failure::NotAudited(e).into())
}

/// The HTTP request's headers, when the request came over HTTP.
fn headers_of(context: &RequestContext<RoleServer>) -> Option<&axum::http::HeaderMap> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .map(|p| &p.headers)
}
