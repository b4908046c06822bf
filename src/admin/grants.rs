//! The grants part of the admin API: an approver lists grants (those on tools it may
//! approve, and its own), makes one (`POST /grants`), or revokes one
//! (`POST /grants/ID/revoke`). The rules a grant must keep are checked by the gateway.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Admin, Signed, problem};
use crate::gateway::{GrantError, GrantRequest};

pub async fn list(Extract(admin): Extract<Arc<Admin>>, Signed(approver, _): Signed) -> Response {
    admin.state.sweep_grants().await;
    match admin.state.grants.list().await {
        Ok(grants) => {
            let now = admin.state.current();
            let visible: Vec<_> = grants
                .into_iter()
                .filter(|g| g.by == approver || now.policy.may_approve(&approver, &g.tools))
                .collect();
            Json(json!({ "approver": approver, "grants": visible })).into_response()
        }
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

pub async fn create(
    Extract(admin): Extract<Arc<Admin>>,
    Signed(approver, _): Signed,
    Json(request): Json<GrantRequest>,
) -> Response {
    match admin.state.grant(&approver, request).await {
        Ok(g) => (StatusCode::CREATED, Json(g)).into_response(),
        Err(e) => failure(&e),
    }
}

pub async fn revoke(
    Extract(admin): Extract<Arc<Admin>>,
    Signed(approver, _): Signed,
    Path(id): Path<String>,
) -> Response {
    match admin.state.revoke_grant(&approver, &id).await {
        Ok(g) => Json(g).into_response(),
        Err(e) => failure(&e),
    }
}

/// `POST /tasks/ID/end`: end a task and the grants bound to it.
pub async fn end_task(
    Extract(admin): Extract<Arc<Admin>>,
    Signed(approver, _): Signed,
    Path(id): Path<String>,
) -> Response {
    match admin.state.end_task(&approver, &id).await {
        Ok(ended) => Json(ended).into_response(),
        Err(e) => failure(&e),
    }
}

fn failure(e: &GrantError) -> Response {
    let status = match e {
        GrantError::Invalid(_) => StatusCode::BAD_REQUEST,
        GrantError::NotPermitted(_) => StatusCode::FORBIDDEN,
        GrantError::Unknown(_) => StatusCode::NOT_FOUND,
        GrantError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    problem(status, &e.to_string())
}
