//! The admin listener, where approvers work: the approvals page, its JSON API, sign-in,
//! and what operators read (`/healthz`, `/readyz`, `/metrics`, see `metrics`). Every request passes a `Host` check (DNS rebinding) and every change a
//! same-origin check; every API call needs an approver credential. It records decisions
//! through [`State::decide_approval`]; it never forwards a call itself.

mod api;
pub mod auth;
mod grants;
mod metrics;
mod reload;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State as Extract};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::gateway::State;
pub use auth::{Approvers, FreshToken};

/// What the admin handlers share.
pub struct Admin {
    pub state: Arc<State>,
    pub approvers: Approvers,
    /// `Host` values accepted.
    hosts: Vec<String>,
}

impl Admin {
    pub fn new(state: Arc<State>, approvers: Approvers) -> Arc<Self> {
        let mut hosts = crate::config::loopback_hosts();
        let now = state.current();
        if let Some(extra) = now.config.boot.http.as_ref() {
            hosts.extend(extra.allowed_hosts.iter().cloned());
        }
        if let Some(public) = &now.config.boot.approval.public_url {
            hosts.extend(host_of(public));
        }
        Arc::new(Self {
            state,
            approvers,
            hosts,
        })
    }
}

/// The approver a request is signed in as, and how the credential came. A handler that
/// takes one answers everyone else 401 before it runs.
pub struct Signed(pub String, pub auth::Presented);

impl axum::extract::FromRequestParts<Arc<Admin>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        admin: &Arc<Admin>,
    ) -> Result<Self, Response> {
        match admin.approvers.authenticate(&parts.headers) {
            Some((identity, presented)) => Ok(Signed(identity, presented)),
            None => Err(api::unauthorized()),
        }
    }
}

/// The page's address as approvers reach it, for links.
pub fn page_url(state: &State, bound: Option<SocketAddr>) -> Option<String> {
    let now = state.current();
    if let Some(public) = &now.config.boot.approval.public_url {
        return Some(public.clone());
    }
    bound
        .or(now.config.boot.admin)
        .map(|addr| format!("http://{addr}"))
}

/// Serve the admin listener until `shutdown` resolves.
pub async fn serve(
    admin: Arc<Admin>,
    listener: crate::listener::HttpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(admin))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Liveness and what an operator should look at: the audit log (refusing calls while it
/// cannot be written) and each witness (failing, or dropping lines). Always 200 while
/// the process answers: a witness that is down is not cured by a restart.
async fn health(Extract(admin): Extract<Arc<Admin>>) -> Response {
    let audit = admin.state.audit.health();
    let status = audit.status;
    Json(json!({"status": status, "audit": audit})).into_response()
}

pub fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/", get(api::page))
        .route("/app.js", get(api::script))
        .route("/app.css", get(api::style))
        .route("/login", post(api::login))
        .route("/logout", post(api::logout))
        .route("/me", get(api::me))
        .route("/approvals", get(api::list))
        .route("/approvals/{id}", get(api::show))
        .route("/approvals/{id}/{verdict}", post(api::decide))
        .route("/grants", get(grants::list).post(grants::create))
        .route("/grants/{id}/revoke", post(grants::revoke))
        .route("/tasks/{id}/end", post(grants::end_task))
        .route("/reload", post(reload::reload))
        .merge(metrics::routes())
        .layer(middleware::from_fn_with_state(admin.clone(), guard))
        .with_state(admin)
}

/// The metrics listener (`[listen] metrics`): `/metrics`, `/readyz` and `/healthz` only,
/// behind the same `Host` check.
pub fn operator_router(admin: Arc<Admin>) -> Router {
    metrics::routes()
        .layer(middleware::from_fn_with_state(admin.clone(), guard))
        .with_state(admin)
}

/// DNS-rebinding and cross-site guards, and headers that keep the page out of frames and
/// caches.
async fn guard(Extract(admin): Extract<Arc<Admin>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    if !host.is_some_and(|h| admin.allows_host(h)) {
        return problem(
            StatusCode::FORBIDDEN,
            "this `Host` is not allowed here (DNS-rebinding protection); add it to `[listen] allowed_hosts`",
        );
    }
    if request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.to_ascii_lowercase().contains("token"))
    }) {
        return problem(
            StatusCode::BAD_REQUEST,
            "credentials in the query string are refused: send `Authorization: Bearer <token>`",
        );
    }
    let origin = headers.get(ORIGIN).and_then(|h| h.to_str().ok());
    let changes = request.method() != Method::GET && request.method() != Method::HEAD;
    if changes && origin.is_some_and(|o| !host_of(o).is_some_and(|h| admin.allows_host(&h))) {
        return problem(
            StatusCode::FORBIDDEN,
            "cross-site requests are refused: decide on the approvals page itself",
        );
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

impl Admin {
    fn allows_host(&self, host: &str) -> bool {
        let name = strip_port(host);
        self.hosts.iter().any(|h| h == host || h == name)
    }
}

/// `host[:port]` of a URL (`scheme://host[:port]/…`).
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    Some(rest.split('/').next().unwrap_or(rest).to_string())
}

fn strip_port(host: &str) -> &str {
    if let Some(bracketed) = host.strip_prefix('[') {
        return bracketed.split_once(']').map(|(h, _)| h).unwrap_or(host);
    }
    host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
}

/// A JSON error body: `{"error": "…"}`.
pub(crate) fn problem(status: StatusCode, message: &str) -> Response {
    let mut r = (status, Json(json!({ "error": message }))).into_response();
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_without_their_port() {
        assert_eq!(strip_port("127.0.0.1:8788"), "127.0.0.1");
        assert_eq!(strip_port("[::1]:8788"), "::1");
        assert_eq!(strip_port("localhost"), "localhost");
        assert_eq!(
            host_of("http://evil.example:80/x").as_deref(),
            Some("evil.example:80")
        );
    }
}
