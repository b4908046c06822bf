//! The gateway's rmcp client toward one upstream: starting the transport (child process
//! with its stderr logged, or Streamable HTTP with gateway-held headers), and the handler
//! that reports list changes, updates and log entries, and hands the
//! upstream's own requests (sampling, elicitation, roots) to the call that caused them.
// Sampling, roots and logging are deprecated by SEP-2577, but real servers still use them.
#![allow(deprecated)]

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rmcp::ErrorData;
use rmcp::model::LoggingMessageNotificationParam;
use rmcp::model::{
    ClientConfig, ClientResult, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, Implementation, ListRootsResult, ProtocolVersion, Request,
    ServerRequest,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, NotificationContext, RequestContext, RunningService,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::UpstreamEvent;
use super::asks::{Askers, Unasked};
use super::progress::{Ordered, ProgressRelay};
use crate::config::{UpstreamConfig, UpstreamProtocol, UpstreamTransport};

pub struct UpstreamClient {
    server: String,
    askers: Arc<Askers>,
    events: mpsc::UnboundedSender<UpstreamEvent>,
}

impl UpstreamClient {
    pub fn new(
        server: &str,
        askers: Arc<Askers>,
        events: mpsc::UnboundedSender<UpstreamEvent>,
    ) -> Self {
        Self {
            server: server.to_string(),
            askers,
            events,
        }
    }

    /// Put one of the upstream's requests to the calling client; `pick` takes the answer
    /// the request expects out of the client's reply.
    async fn ask<T>(
        &self,
        request: ServerRequest,
        context: &RequestContext<RoleClient>,
        pick: impl FnOnce(ClientResult) -> Option<T>,
    ) -> Result<T, ErrorData> {
        // Over Streamable HTTP, rmcp says which of our requests' streams it came on.
        let origin = context
            .extensions
            .get::<rmcp::service::InboundStreamOrigin>()
            .cloned();
        let answer = self.askers.ask(&self.server, request, origin).await?;
        pick(answer).ok_or_else(|| Unasked::WrongResult.into())
    }
}

impl ClientHandler for UpstreamClient {
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let request = ServerRequest::CreateMessageRequest(Request::new(params));
        self.ask(request, &context, |r| match r {
            ClientResult::CreateMessageResult(m) => Some(*m),
            _ => None,
        })
        .await
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let request = ServerRequest::ElicitRequest(Request::new(params));
        self.ask(request, &context, |r| match r {
            ClientResult::ElicitResult(e) => Some(e),
            _ => None,
        })
        .await
    }

    async fn list_roots(
        &self,
        context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        let request = ServerRequest::ListRootsRequest(Default::default());
        self.ask(request, &context, |r| match r {
            ClientResult::ListRootsResult(l) => Some(l),
            _ => None,
        })
        .await
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        tracing::info!(server = %self.server, "upstream tool list changed");
        let _ = self
            .events
            .send(UpstreamEvent::ToolsChanged(self.server.clone()));
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let event = UpstreamEvent::ResourceUpdated(self.server.clone(), params.uri);
        let _ = self.events.send(event);
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self
            .events
            .send(UpstreamEvent::ListsChanged(self.server.clone()));
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self
            .events
            .send(UpstreamEvent::ListsChanged(self.server.clone()));
    }

    /// Log entries are handed on by the transport as they are read (see `Ordered`), so
    /// that one sent before a call's answer is relayed before it.
    async fn on_logging_message(
        &self,
        _params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
    }

    /// Sampling and (form) elicitation are offered, and relayed to the caller when it
    /// offers them too (see [`capabilities`]). Roots are not: a connection shared by every client cannot carry
    /// one client's roots, and an upstream that cached them would show them to the next
    /// client or widen the scope its operator gave it.
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            capabilities(),
            Implementation::new("mcp-warden", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }
}

/// Start the transport and run the MCP handshake.
pub async fn connect(
    config: &UpstreamConfig,
    handler: UpstreamClient,
    relay: Arc<ProgressRelay>,
) -> Result<RunningService<RoleClient, UpstreamClient>, String> {
    match &config.transport {
        UpstreamTransport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).envs(env).kill_on_drop(true);
            if let Some(dir) = cwd {
                cmd.current_dir(dir);
            }
            let (transport, stderr) = TokioChildProcess::builder(cmd)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start `{command}`: {e}"))?;
            if let Some(stderr) = stderr {
                log_stderr(config.id.clone(), stderr);
            }
            let transport = Ordered::new(transport, relay, &config.id, handler.events.clone());
            handler
                .serve_with_lifecycle(transport, lifecycle(config))
                .await
                .map_err(|e| e.to_string())
        }
        UpstreamTransport::Http { url, headers } => {
            let mut custom = HashMap::new();
            for (name, value) in headers {
                let name = HeaderName::try_from(name.as_str())
                    .map_err(|e| format!("header `{name}`: {e}"))?;
                let value = HeaderValue::try_from(value.as_str())
                    .map_err(|e| format!("header `{name}`: {e}"))?;
                custom.insert(name, value);
            }
            let transport = StreamableHttpClientTransport::with_client(
                super::traced::Traced::new()?,
                StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(custom),
            );
            let transport = Ordered::new(transport, relay, &config.id, handler.events.clone());
            handler
                .serve_with_lifecycle(transport, lifecycle(config))
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// What the gateway offers an upstream on its connection: sampling and elicitation (put
/// to the caller only if it offers them too). Never roots: a connection shared by every
/// client cannot carry one client's roots.
fn capabilities() -> rmcp::model::ClientCapabilities {
    serde_json::from_value(serde_json::json!({"sampling": {}, "elicitation": {}}))
        .unwrap_or_default()
}

/// The `_meta` of a 2026-07-28 request made for a caller that offers `offers`: the
/// upstream asks only what this caller can answer.
pub fn offering(offers: super::Offers) -> rmcp::model::RequestMetaObject {
    let mut offered = serde_json::Map::new();
    for (name, yes) in [
        ("sampling", offers.sampling),
        ("elicitation", offers.elicitation),
        ("roots", offers.roots),
    ] {
        if yes {
            offered.insert(name.into(), serde_json::json!({}));
        }
    }
    if offers.tasks {
        let tasks = serde_json::json!({ rmcp::model::TASKS_EXTENSION_ID: {} });
        offered.insert("extensions".into(), tasks);
    }
    let capabilities =
        serde_json::from_value(serde_json::Value::Object(offered)).unwrap_or_default();
    let mut meta = rmcp::model::RequestMetaObject::default();
    meta.set_client_capabilities(capabilities);
    meta
}

/// How the connection opens: `server/discover` first, falling back to `initialize` at
/// 2025-11-25 for a server that does not know it (or `initialize` only, as configured).
fn lifecycle(config: &UpstreamConfig) -> ClientLifecycleMode {
    match config.protocol {
        UpstreamProtocol::Auto => ClientLifecycleMode::Auto {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            legacy_version: Some(ProtocolVersion::V_2025_11_25),
        },
        UpstreamProtocol::Initialize => ClientLifecycleMode::Initialize,
    }
}

/// Log a child's stderr line by line (never onto the gateway's stdout).
fn log_stderr(server: String, stderr: tokio::process::ChildStderr) {
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            tracing::info!(server = %server, "{line}");
        }
    });
}
