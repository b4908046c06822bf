//! Serving the gateway to clients: over stdio (a client launched `mcp-warden serve`) and
//! over Streamable HTTP at `/mcp`, with `Host`/`Origin` checks against DNS rebinding and,
//! when the configuration asks for it, caller authentication (`auth`), its sessions
//! (`sessions`) and answers that go out in one write when they are quick (`coalesce`).
//! Each takes a shutdown future so tests can run and stop them.

mod auth;
mod coalesce;
mod jsonrpc;
mod refusals;
mod sealed;
mod sessions;
mod stdio;

use std::future::Future;
use std::sync::Arc;

use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::os::fd::AsFd;

use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;

use crate::gateway::{Gateway, Listener, State};
use crate::listener::HttpListener;

/// Check one JSON-RPC message from a client as both transports do before the MCP
/// service sees it: Err is the JSON-RPC error code and message it would be answered
/// with. (Public for the fuzz target of the message edge.)
pub fn check_message(message: &[u8]) -> Result<(), (i64, String)> {
    jsonrpc::check(message)
        .map(drop)
        .map_err(|r| (r.code, r.message))
}

/// The largest request body accepted over HTTP.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Serve one client on stdin/stdout until it disconnects or `shutdown` resolves.
pub async fn serve_stdio(
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let session = format!("stdio:{}", uuid::Uuid::new_v4());
    let identity = state.current().config.live.stdio_identity.clone();
    let gateway = Gateway::new(
        state.clone(),
        identity.clone(),
        Listener::Stdio {
            session: session.clone(),
        },
    );
    let refusals = refusals::Refusals::new(state.audit.clone());
    let started = match stdio_pipes() {
        Some(pipes) => {
            let edge = stdio::StdioEdge::new(pipes, refusals, session, identity);
            gateway.serve(edge).await
        }
        None => {
            let edge = stdio::StdioEdge::new(rmcp::transport::stdio(), refusals, session, identity);
            gateway.serve(edge).await
        }
    };
    let service = started.map_err(|e| std::io::Error::other(e.to_string()))?;
    let ct = service.cancellation_token();
    tokio::select! {
        r = service.waiting() => { r.map_err(|e| std::io::Error::other(e.to_string()))?; }
        () = shutdown => ct.cancel(),
    }
    Ok(())
}

/// When stdin and stdout are pipes (a client launched the gateway), read and write them
/// through the event loop instead of tokio's stdio, which hands every read and write to a
/// blocking thread. `None` for terminals and files.
pub fn stdio_pipes() -> Option<(pipe::Receiver, pipe::Sender)> {
    let stdin = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    Some((
        pipe::Receiver::from_owned_fd(stdin).ok()?,
        pipe::Sender::from_owned_fd(stdout).ok()?,
    ))
}

/// Serve Streamable HTTP at `/mcp` on `listener` until `shutdown` resolves.
pub async fn serve_http(
    state: Arc<State>,
    listener: HttpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ct = CancellationToken::new();
    let router = router(state, ct.clone());
    let stop = ct.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop.cancel();
        })
        .await
}

/// A session ended by the client's `DELETE` is answered `200 OK` (rmcp says `202
/// Accepted`, which SDK clients report as a failed termination: the session is gone
/// when the answer leaves, nothing was merely accepted).
async fn session_closed(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let delete = request.method() == axum::http::Method::DELETE;
    let mut response = next.run(request).await;
    if delete && response.status() == axum::http::StatusCode::ACCEPTED {
        *response.status_mut() = axum::http::StatusCode::OK;
    }
    response
}

fn router(state: Arc<State>, ct: CancellationToken) -> axum::Router {
    let now = state.current();
    // Never empty: rmcp treats an empty list as "any host".
    let hosts = now
        .config
        .boot
        .http
        .as_ref()
        .map(|h| h.allowed_hosts.clone())
        .unwrap_or_else(crate::config::loopback_hosts);
    let mut origins: Vec<String> = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]
        .map(String::from)
        .to_vec();
    if let Some(http) = &now.config.boot.http {
        origins.extend(http.allowed_origins.iter().cloned());
    }
    let sealed = sealed::SealedSessions::shared(state.session_sealer.clone(), &state.store);
    let mut config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(origins)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        .with_cancellation_token(ct);
    config.session_store = Some(sealed.clone());
    let identity = now.config.live.http_identity.clone();
    let refused = refusals::Refusals::new(state.audit.clone());
    let auth = auth::HttpAuth::new(state.clone(), refused.clone());
    let gateway_state = state.clone();
    let service = StreamableHttpService::new(
        move || {
            Ok(Gateway::new(
                gateway_state.clone(),
                identity.clone(),
                Listener::Http,
            ))
        },
        // What a session has done (labels, budgets) goes with it.
        Arc::new(sessions::Sessions::with_on_close({
            let state = state.clone();
            sessions::OnClose(Box::new(move |id| {
                state.sessions.end(&format!("http:{id}"))
            }))
        })),
        config,
    );
    // One copy of rmcp's service behind an `Arc`: axum clones the service it routes to for
    // every request (once per middleware layer), and rmcp's clone copies its configuration.
    let service = Arc::new(service);
    let service = axum::routing::any(move |request: axum::extract::Request| {
        let service = service.clone();
        async move { service.handle(request).await }
    });
    let mcp = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn_with_state(
            jsonrpc::Edge::new(refused),
            jsonrpc::strict,
        ))
        .layer(axum::middleware::from_fn(coalesce::coalesce))
        .layer(axum::middleware::from_fn(session_closed))
        .layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            sealed,
            sealed::seal_ids,
        ));
    let mut router = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .merge(mcp);
    if now.config.live.auth.is_some() {
        let metadata = axum::routing::get(auth::metadata);
        router = router
            .route("/.well-known/oauth-protected-resource", metadata.clone())
            .route("/.well-known/oauth-protected-resource/{*path}", metadata);
    }
    router.with_state(auth)
}
