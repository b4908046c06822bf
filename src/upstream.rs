//! Connections to the tool servers the gateway fronts: child processes over stdio and
//! Streamable HTTP servers, each an rmcp client. Forwards attested calls (and only those:
//! [`Upstreams::forward`] takes an [`Attested`]; prompts and resources take an
//! [`crate::audit::AttestedAccess`]), relays progress back to the caller and cancellation
//! to the upstream, hands the upstream's own requests (sampling, elicitation, roots) to the call
//! that caused them as [`Ask`]s, reports list changes, resource updates and log entries as
//! [`UpstreamEvent`]s, and reconnects a dead upstream on the next use. Knows nothing of
//! policy.

mod asks;
mod client;
mod logging;
mod progress;
mod prompts;
mod resources;
mod tasks;
mod traced;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelledNotificationParam, ClientRequest, ErrorCode,
    ProgressToken, Request, ServerCapabilities, ServerNotification, ServerResult,
};
use rmcp::service::{PeerRequestOptions, RunningService, ServiceError};
use rmcp::{Peer, RoleClient, RoleServer};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::audit::Attested;
use crate::config::{UpstreamConfig, UpstreamTransport};
use asks::Askers;
pub use asks::{Ask, AskKind, AskRoute, question_of, request_of};
use client::UpstreamClient;
use progress::{CallProgress, ProgressRelay};
pub use tasks::TaskOp;

/// What upstreams tell the gateway on their own.
#[derive(Debug)]
pub enum UpstreamEvent {
    /// `notifications/tools/list_changed` from this upstream.
    ToolsChanged(String),
    /// `notifications/resources/list_changed` or `prompts/list_changed`.
    ListsChanged(String),
    /// `notifications/resources/updated` for this upstream's URI.
    ResourceUpdated(String, String),
    /// A `notifications/message` log entry from this upstream.
    #[allow(deprecated)] // logging is deprecated by SEP-2577 but real servers still send it
    Log(String, rmcp::model::LoggingMessageNotificationParam),
    /// Answered once every event before it has been handled (see [`Upstreams::settled`]).
    Settled(tokio::sync::oneshot::Sender<()>),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error(
        "upstream `{server}` is unavailable: {reason}; try again later or ask the operator to check it"
    )]
    Unavailable { server: String, reason: String },
    #[error("upstream `{server}` did not answer within {secs}s")]
    Timeout { server: String, secs: u64 },
    #[error("the call was cancelled by the caller")]
    Cancelled,
    /// The upstream answered with a JSON-RPC error: its code is passed on to the caller
    /// (a missing prompt argument stays "invalid params", a missing resource "resource not
    /// found"); nothing else of it is.
    #[error("upstream `{server}` refused the call: {message}")]
    Refused {
        server: String,
        code: ErrorCode,
        message: String,
    },
    /// The upstream needs a capability this caller did not declare (`-32021`): passed
    /// on whole, so the caller can learn which.
    #[error("upstream `{server}` needs a client capability the caller did not declare: {message}")]
    NeedsCapability {
        server: String,
        message: String,
        data: Option<Value>,
    },
}

/// Where a forwarded call came from, so progress can be relayed and cancellation noticed.
pub struct Downstream {
    pub peer: Option<Peer<RoleServer>>,
    pub progress_token: Option<ProgressToken>,
    pub cancelled: CancellationToken,
    /// Where the upstream's requests to the client go while the call runs; `None`
    /// refuses them.
    pub asks: Option<AskRoute>,
    /// What the caller can be asked (sampling, elicitation, roots): a 2026-07-28
    /// upstream, whose every request says what the client can do, is told exactly that
    /// for this call (a shared 2025-11-25 connection is offered sampling and elicitation
    /// whoever calls, and never roots).
    pub offers: Offers,
    /// The log level the caller's 2026-07-28 request named, passed on to a 2026-07-28
    /// upstream (whose entries then reach that request).
    #[allow(deprecated)] // logging is deprecated by SEP-2577 but clients still use it
    pub log_level: Option<rmcp::model::LoggingLevel>,
}

/// One round of a request an upstream may answer with questions: the caller's answers
/// to the last round's, with the upstream's own state from it, and what the caller can be
/// asked.
#[derive(Debug, Clone, Default)]
pub struct Round {
    pub answers: Option<rmcp::model::InputResponses>,
    pub state: Option<String>,
    pub offers: Offers,
}

/// An answer of an unexpected kind to `method`.
fn unexpected(server: &str, method: &str) -> UpstreamError {
    UpstreamError::Refused {
        server: server.into(),
        code: ErrorCode::INTERNAL_ERROR,
        message: format!("unexpected answer to {method}"),
    }
}

/// What a caller can be asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offers {
    pub sampling: bool,
    pub elicitation: bool,
    pub roots: bool,
    /// It takes a task for an answer (the `io.modelcontextprotocol/tasks` extension).
    pub tasks: bool,
}

type Service = RunningService<RoleClient, UpstreamClient>;

/// Whether a connection speaks 2026-07-28 or later (it was opened with
/// `server/discover`).
fn modern(service: &Service) -> bool {
    service
        .peer()
        .peer_info()
        .is_some_and(|i| !i.protocol_version.has_initialize())
}

/// The most rounds of questions one call may take (a 2026-07-28 upstream's
/// `InputRequiredResult`s).
const MAX_ROUNDS: usize = 10;

struct Connection {
    config: UpstreamConfig,
    /// Held across a reconnect, so that the calls that find the connection down start
    /// one child process (or one HTTP session), not one each.
    #[expect(
        clippy::disallowed_types,
        reason = "one reconnect at a time, across the awaits of starting the upstream"
    )]
    service: tokio::sync::Mutex<Option<Arc<Service>>>,
    #[expect(
        clippy::disallowed_types,
        reason = "read and set within the reconnect sequence that `service` serializes"
    )]
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    /// Progress tokens are the connection's own, so each connection has its own routes.
    relay: Arc<ProgressRelay>,
}

/// Where one round of a call goes, and the trace context it carries.
#[derive(Clone, Copy)]
struct Sent<'a> {
    server: &'a str,
    service: &'a Service,
    trace: &'a serde_json::Map<String, Value>,
}

/// All upstream connections.
pub struct Upstreams {
    connections: HashMap<String, Arc<Connection>>,
    askers: Arc<Askers>,
    events: mpsc::UnboundedSender<UpstreamEvent>,
    timeout: Duration,
    /// The `subscriptions/listen` held open on 2026-07-28 upstreams, one per subscribed
    /// (server, URI): ending its task ends the listen.
    listens: std::sync::Mutex<HashMap<(String, String), tokio::task::AbortHandle>>,
    /// Restarts and round trips, for `/metrics`.
    metrics: crate::telemetry::UpstreamMetrics,
}

impl Upstreams {
    /// Prepare connections (nothing is started until [`Self::connect_all`] or first use).
    /// Tool-list changes and log entries from upstreams arrive on `events`.
    pub fn new(
        configs: &[UpstreamConfig],
        timeout: Duration,
        events: mpsc::UnboundedSender<UpstreamEvent>,
    ) -> Self {
        let connections = configs
            .iter()
            .map(|c| {
                let conn = Connection {
                    config: c.clone(),
                    service: Default::default(),
                    last_attempt: Default::default(),
                    relay: Arc::default(),
                };
                (c.id.clone(), Arc::new(conn))
            })
            .collect();
        Self {
            connections,
            askers: Arc::default(),
            events,
            timeout,
            listens: Default::default(),
            metrics: Default::default(),
        }
    }

    /// What the connections report (restarts, round trips).
    pub fn metrics(&self) -> crate::telemetry::UpstreamMetrics {
        self.metrics.clone()
    }

    /// Whether `server` is connected now (a connection being made is not yet).
    pub fn up(&self, server: &str) -> bool {
        let Some(conn) = self.connections.get(server) else {
            return false;
        };
        conn.service.try_lock().is_ok_and(|slot| {
            slot.as_ref()
                .is_some_and(|s| !s.peer().is_transport_closed())
        })
    }

    /// Connect to `server` if it is not connected (at most one attempt a second), as a
    /// call would; whether it is connected after.
    pub async fn reach(&self, server: &str) -> bool {
        self.service(server).await.is_ok()
    }

    /// Whether an upstream is required for readiness.
    pub fn required(&self, server: &str) -> bool {
        self.connections
            .get(server)
            .is_some_and(|c| c.config.required)
    }

    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.connections.keys()
    }

    /// The live tool definitions of one upstream, as JSON.
    pub async fn list_tools(&self, server: &str) -> Result<Vec<Value>, UpstreamError> {
        let service = self.service(server).await?;
        let tools = service
            .peer()
            .list_all_tools()
            .await
            .map_err(|e| unavailable(server, &e))?;
        Ok(tools
            .iter()
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect())
    }

    /// Forward an attested call and wait for its result (or, for a caller that takes
    /// tasks, the task the upstream made of it), relaying its progress (all of it, in
    /// order, before the result) and cancellation.
    pub async fn forward(
        &self,
        attested: &Attested,
        downstream: Downstream,
    ) -> Result<CallToolResponse, UpstreamError> {
        let call = attested.permitted().call();
        let server = call.tool.server.as_str();
        let service = self.service(server).await?;
        // The upstream stage's span, until the answer: its context is what the upstream
        // gets as its parent.
        let mut stage = call.span.stage("upstream");
        stage.attribute("server", server);
        let trace = stage.outgoing(&call.trace);
        // Registered before the call goes out, so no request it causes can miss it.
        let asker = downstream
            .asks
            .clone()
            .map(|route| self.askers.register(server, route));
        // A 2026-07-28 upstream asks by answering with what it needs: the caller is asked
        // (as it would be by a request), and the call made again with the answers.
        let mut answered = None;
        for _ in 0..MAX_ROUNDS {
            let mut params = CallToolRequestParams::new(call.tool.tool.clone())
                .with_arguments(call.args.clone());
            if let Some((answers, state)) = answered.take() {
                params = params.with_input_responses(answers);
                params.request_state = state;
            }
            let sent = Sent {
                server,
                service: &service,
                trace: &trace,
            };
            let response = self
                .send_call(sent, params, &downstream, asker.as_ref())
                .await?;
            match response {
                Ok(ServerResult::InputRequiredResult(asked)) => {
                    let route = downstream.asks.as_ref();
                    let answers = asks::answer_all(server, route, &asked).await?;
                    answered = Some((answers, asked.request_state));
                }
                other => return self.answer(server, other),
            }
        }
        Err(UpstreamError::Refused {
            server: server.into(),
            code: ErrorCode::INTERNAL_ERROR,
            message: format!("it asked for input more than {MAX_ROUNDS} times for one call"),
        })
    }

    /// Send one round of a call and wait for its answer, relaying progress to the caller
    /// and cancellation to the upstream.
    async fn send_call(
        &self,
        sent: Sent<'_>,
        params: CallToolRequestParams,
        downstream: &Downstream,
        asker: Option<&asks::AskerGuard>,
    ) -> Result<Result<ServerResult, ServiceError>, UpstreamError> {
        let Sent {
            server,
            service,
            trace,
        } = sent;
        let mut request = Request::new(params);
        let relay = self.connections.get(server).map(|c| &c.relay);
        let caller = downstream
            .peer
            .clone()
            .zip(downstream.progress_token.clone());
        let mut progress = CallProgress::open(relay, caller, &mut request);
        let request = ClientRequest::CallToolRequest(request);
        let mut options = PeerRequestOptions::with_timeout(self.timeout);
        let mut meta = match modern(service) {
            true => {
                let mut meta = client::offering(downstream.offers);
                if let Some(level) = downstream.log_level {
                    meta.set_log_level(level);
                }
                Some(meta)
            }
            false => None,
        };
        if !trace.is_empty() {
            let meta = meta.get_or_insert_with(rmcp::model::RequestMetaObject::new);
            for (k, v) in trace {
                meta.0.0.insert(k.clone(), v.clone());
            }
        }
        if let Some(meta) = meta {
            options = options.with_meta(meta);
        }
        let started = Instant::now();
        let handle = service
            .peer()
            .send_request_with_option(request, options)
            .await
            .map_err(|e| unavailable(server, &e))?;
        let (id, peer) = (handle.id.clone(), handle.peer.clone());
        // A request that comes on this call's own stream is this call's.
        if let Some(asker) = asker {
            asker.bind(id.clone());
        }
        let response = handle.await_response();
        tokio::pin!(response);
        let response = loop {
            tokio::select! {
                Some(note) = progress.next() => progress.relay(note).await,
                response = &mut response => break response,
                () = downstream.cancelled.cancelled() => {
                    let note = CancelledNotificationParam::new(Some(id), Some("cancelled by the caller".into()));
                    let _ = peer.notify_cancelled(note).await;
                    return Err(UpstreamError::Cancelled);
                }
            }
        };
        progress.drain().await;
        self.metrics.answered(server, started.elapsed());
        Ok(response)
    }

    /// Send one request to `server` and wait for its answer; a 2026-07-28 upstream is told
    /// what this caller can be asked (and whether it takes tasks).
    pub async fn once(
        &self,
        server: &str,
        request: ClientRequest,
        offers: Offers,
    ) -> Result<ServerResult, UpstreamError> {
        let service = self.service(server).await?;
        let mut options = PeerRequestOptions::with_timeout(self.timeout);
        if modern(&service) {
            options = options.with_meta(client::offering(offers));
        }
        let handle = service
            .peer()
            .send_request_with_option(request, options)
            .await
            .map_err(|e| unavailable(server, &e))?;
        handle.await_response().await.map_err(|e| failed(server, e))
    }

    fn answer(
        &self,
        server: &str,
        response: Result<ServerResult, ServiceError>,
    ) -> Result<CallToolResponse, UpstreamError> {
        match response {
            Ok(ServerResult::CallToolResult(result)) => Ok(CallToolResponse::Complete(result)),
            Ok(ServerResult::CreateTaskResult(task)) => Ok(CallToolResponse::Task(task)),
            Ok(_) => Err(UpstreamError::Refused {
                server: server.into(),
                code: ErrorCode::INTERNAL_ERROR,
                message: "unexpected answer to tools/call".into(),
            }),
            Err(e) => Err(failed(server, e)),
        }
    }

    /// Once every event upstreams sent before now has been handled: a log entry read
    /// before a call's answer has then been relayed.
    pub async fn settled(&self) {
        let (done, settled) = tokio::sync::oneshot::channel();
        if self.events.send(UpstreamEvent::Settled(done)).is_ok() {
            let _ = settled.await;
        }
    }

    /// The protocol revision the running connection to `server` speaks (`None` when it
    /// is not running, or busy reconnecting).
    pub fn speaks(&self, server: &str) -> Option<String> {
        let conn = self.connections.get(server)?;
        let running = conn.service.try_lock().ok()?.clone()?;
        let info = running.peer().peer_info()?;
        Some(info.protocol_version.to_string())
    }

    /// The capabilities the running upstreams declared (none is started for this).
    pub async fn declared(&self) -> Vec<ServerCapabilities> {
        let mut all = Vec::new();
        for conn in self.connections.values() {
            let running = conn.service.lock().await.clone();
            if let Some(info) = running.as_ref().and_then(|s| s.peer().peer_info()) {
                all.push(info.capabilities.clone());
            }
        }
        all
    }

    /// The running connection to `server` if it declares the capability `offers` looks
    /// for; `None` when it does not (asking would only get "method not found").
    async fn offering(
        &self,
        server: &str,
        offers: impl Fn(&ServerCapabilities) -> bool,
    ) -> Result<Option<Arc<Service>>, UpstreamError> {
        let service = self.service(server).await?;
        let declared = service
            .peer()
            .peer_info()
            .is_some_and(|info| offers(&info.capabilities));
        Ok(declared.then_some(service))
    }

    /// The running connection to `server`, (re)connecting if it is not running; at most
    /// one attempt a second.
    async fn service(&self, server: &str) -> Result<Arc<Service>, UpstreamError> {
        let conn = self
            .connections
            .get(server)
            .ok_or_else(|| UpstreamError::Unavailable {
                server: server.into(),
                reason: "not configured".into(),
            })?;
        let mut slot = conn.service.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.peer().is_transport_closed()) {
            return Ok(s.clone());
        }
        let lost = slot.is_some();
        let mut last = conn.last_attempt.lock().await;
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return Err(UpstreamError::Unavailable {
                server: server.into(),
                reason: "it stopped; reconnecting".into(),
            });
        }
        *last = Some(Instant::now());
        let handler = UpstreamClient::new(server, self.askers.clone(), self.events.clone());
        let service = Arc::new(
            client::connect(&conn.config, handler, conn.relay.clone())
                .await
                .map_err(|reason| UpstreamError::Unavailable {
                    server: server.into(),
                    reason,
                })?,
        );
        // A 2026-07-28 server tells of its list changes only on a listen.
        if modern(&service) {
            self.listen_for_changes(server, &service);
        }
        *slot = Some(service.clone());
        if lost {
            let labels = crate::telemetry::ServerLabels {
                server: server.to_string(),
            };
            self.metrics.restarts.get_or_create(&labels).inc();
        }
        Ok(service)
    }

    /// Hold a `subscriptions/listen` open on a 2026-07-28 upstream for its tool, prompt
    /// and resource list changes, reported as any upstream's are; it ends with the
    /// connection.
    fn listen_for_changes(&self, server: &str, service: &Arc<Service>) {
        let filter = rmcp::model::SubscriptionFilter::builder()
            .tools_list_changed()
            .prompts_list_changed()
            .resources_list_changed()
            .build();
        let (peer, events, id) = (
            service.peer().clone(),
            self.events.clone(),
            server.to_string(),
        );
        tokio::spawn(async move {
            let mut listening = match peer.listen(filter).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(server = %id, error = %e, "the upstream refused a listen for its list changes; its catalog is refreshed every relist_interval only");
                    return;
                }
            };
            while let Ok(Some(note)) = listening.next().await {
                let event = match note {
                    ServerNotification::ToolListChangedNotification(_) => {
                        UpstreamEvent::ToolsChanged(id.clone())
                    }
                    ServerNotification::PromptListChangedNotification(_)
                    | ServerNotification::ResourceListChangedNotification(_) => {
                        UpstreamEvent::ListsChanged(id.clone())
                    }
                    _ => continue,
                };
                if events.send(event).is_err() {
                    return;
                }
            }
        });
    }

    /// Stop every upstream (child processes are killed).
    pub async fn shutdown(&self) {
        for conn in self.connections.values() {
            if let Some(service) = conn.service.lock().await.take() {
                service.cancellation_token().cancel();
            }
        }
    }
}

/// Start one upstream, list its tools and stop it (for tool owners' tooling): the live
/// definitions, or why there are none within `limit`.
pub async fn live_tools(config: &UpstreamConfig, limit: Duration) -> Result<Vec<Value>, String> {
    let (tx, _rx) = mpsc::unbounded_channel();
    let upstreams = Upstreams::new(std::slice::from_ref(config), limit, tx);
    let listed = tokio::time::timeout(limit, upstreams.list_tools(&config.id)).await;
    upstreams.shutdown().await;
    match listed {
        Ok(Ok(live)) => Ok(live),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "upstream `{}` did not list its tools within {}s",
            config.id,
            limit.as_secs()
        )),
    }
}

/// A request the upstream did not answer with a result: its own refusal, a timeout, or
/// the connection failing.
fn failed(server: &str, e: ServiceError) -> UpstreamError {
    match e {
        ServiceError::McpError(e) if e.code == ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY => {
            UpstreamError::NeedsCapability {
                server: server.into(),
                message: e.message.to_string(),
                data: e.data,
            }
        }
        ServiceError::McpError(e) => UpstreamError::Refused {
            server: server.into(),
            code: e.code,
            message: e.message.to_string(),
        },
        ServiceError::Timeout { timeout } => UpstreamError::Timeout {
            server: server.into(),
            secs: timeout.as_secs(),
        },
        e => unavailable(server, &e),
    }
}

fn unavailable(server: &str, e: &dyn std::fmt::Display) -> UpstreamError {
    UpstreamError::Unavailable {
        server: server.into(),
        reason: e.to_string(),
    }
}

/// A short description of an upstream for banners and `check`.
pub fn describe(config: &UpstreamConfig) -> String {
    match &config.transport {
        UpstreamTransport::Stdio { command, args, .. } => format!("{} {}", command, args.join(" ")),
        UpstreamTransport::Http { url, .. } => url.clone(),
    }
}
