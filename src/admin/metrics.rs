//! What operators and their load balancers read: `/metrics` (Prometheus text, behind a
//! bearer token when `[telemetry] metrics_token_sha256` is set), `/readyz` (policy in
//! force, audit log writable, every required upstream connected) and `/healthz`. Served
//! on the admin listener, and on `[listen] metrics` when that is set. Reads state; never
//! decides anything.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State as Extract;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use serde_json::{Value, json};

use super::Admin;
use crate::gateway::State;
use crate::telemetry::{Gauges, ServerLabels, SinkLabels, TransportLabels};

/// How long `/readyz` waits for an upstream that is down to be connected again.
const REACH: Duration = Duration::from_secs(2);

/// The operators' routes, for the admin listener and the metrics listener.
pub fn routes() -> Router<Arc<Admin>> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(ready))
        .route("/healthz", get(super::health))
}

async fn metrics(Extract(admin): Extract<Arc<Admin>>, headers: HeaderMap) -> Response {
    let state = &admin.state;
    let now = state.current();
    if let Some(expected) = &now.config.boot.telemetry.metrics_token_sha256
        && !bearer_matches(&headers, expected)
    {
        let mut r = super::problem(
            StatusCode::UNAUTHORIZED,
            "`/metrics` needs `Authorization: Bearer <token>` (the token whose SHA-256 is `[telemetry] metrics_token_sha256`)",
        );
        r.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        return r;
    }
    let pending = state
        .approvals
        .list(Some(crate::approval::Status::Pending))
        .await
        .map_or(-1, |p| p.len() as i64);
    let text = state.metrics.encode(|g| refresh(state, &now, g, pending));
    let mut r = text.into_response();
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    r
}

/// Whether the request's bearer token hashes to `expected`, as approvers' tokens are
/// checked (only digests are compared).
fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    super::auth::bearer(headers).is_some_and(|t| super::auth::token_hash(t) == expected)
}

/// The gauges read off the state at a scrape.
fn refresh(state: &State, now: &crate::gateway::Snapshot, g: &Gauges, pending: i64) {
    g.approvals_pending.set(pending);
    g.grants_active.set(state.grants.book().count() as i64);
    g.generation.set(now.generation as i64);
    g.kept_tasks.set(state.kept_tasks() as i64);
    g.audit_queue.set(state.audit.in_flight() as i64);
    g.audit_unchecked.set(state.audit.unchecked() as i64);
    let health = state.audit.health();
    g.audit_writable.set(i64::from(health.failing.is_none()));
    for transport in ["stdio", "http"] {
        g.sessions
            .get_or_create(&TransportLabels { transport })
            .set(state.sessions_over(transport) as i64);
    }
    g.upstream_up.clear();
    g.tools_quarantined.clear();
    for u in &now.config.boot.upstreams {
        let labels = ServerLabels {
            server: u.id.clone(),
        };
        let up = state.upstreams.up(&u.id);
        // Zero until the first one, for each configured upstream.
        let _ = state.metrics.upstream.restarts.get_or_create(&labels);
        let _ = state.metrics.catalog_refreshes.get_or_create(&labels);
        g.upstream_up.get_or_create(&labels).set(i64::from(up));
        let quarantined = now
            .catalog
            .tools()
            .filter(|t| t.server == u.id)
            .filter(|t| matches!(t.state, crate::catalog::ToolState::Quarantined { .. }))
            .count();
        g.tools_quarantined
            .get_or_create(&labels)
            .set(quarantined as i64);
    }
    for w in &health.witnesses {
        let labels = SinkLabels {
            sink: w.sink.clone(),
        };
        g.witness_queued.get_or_create(&labels).set(w.queued as i64);
        g.witness_dropped
            .get_or_create(&labels)
            .set(w.dropped as i64);
        g.witness_up
            .get_or_create(&labels)
            .set(i64::from(w.failing_since.is_none()));
    }
}

/// Ready: a policy is in force (always, once started: a failed reload keeps the last good
/// one), the audit log can be written, and every required upstream is connected (one
/// that is down is tried again first, as a call would). 503 with the reasons otherwise.
async fn ready(Extract(admin): Extract<Arc<Admin>>) -> Response {
    let state = &admin.state;
    let now = state.current();
    let mut problems: Vec<String> = Vec::new();
    if let Some(failing) = state.audit.health().failing {
        problems.push(format!(
            "the audit log cannot be written (since {}): {}",
            failing.since, failing.error
        ));
    }
    // Every upstream at once: one that hangs costs the probe 2 s, not 2 s each.
    let configured = &now.config.boot.upstreams;
    let reached = futures::future::join_all(configured.iter().map(|u| async move {
        state.upstreams.up(&u.id)
            || tokio::time::timeout(REACH, state.upstreams.reach(&u.id))
                .await
                .unwrap_or(false)
    }))
    .await;
    let mut upstreams = serde_json::Map::new();
    for (u, up) in configured.iter().zip(reached) {
        upstreams.insert(u.id.clone(), json!(if up { "up" } else { "down" }));
        if !up && u.required {
            problems.push(format!("upstream `{}` is not connected", u.id));
        }
    }
    let body = json!({
        "status": if problems.is_empty() { "ready" } else { "not ready" },
        "generation": now.generation,
        "replica": now.config.boot.replica,
        "upstreams": Value::Object(upstreams),
        "problems": problems,
    });
    let status = match problems.is_empty() {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::AUTHORIZATION;
    use sha2::{Digest, Sha256};

    #[test]
    fn only_the_token_with_the_configured_digest_reads_metrics() {
        let expected = hex::encode(Sha256::digest(b"scrape-me"));
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert!(bearer_matches(&with("Bearer scrape-me"), &expected));
        assert!(!bearer_matches(&with("Bearer scrape-m"), &expected));
        assert!(!bearer_matches(&with("Basic scrape-me"), &expected));
        assert!(!bearer_matches(&HeaderMap::new(), &expected));
    }
}
