//! `POST /reload` on the admin API: an approver asks the gateway to read its policy,
//! manifests and config again. The answer says what took effect, or every error (and
//! then nothing changed). The reload itself, and its audit record, is the gateway's.

use std::sync::Arc;

use axum::Json;
use axum::extract::State as Extract;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{Admin, Signed, problem};
use crate::problem::Problem;

pub async fn reload(Extract(admin): Extract<Arc<Admin>>, Signed(approver, _): Signed) -> Response {
    match admin.state.reload(&format!("admin:{approver}")).await {
        Ok(done) => Json(json!({
            "generation": done.generation,
            "warnings": done.warnings,
        }))
        .into_response(),
        Err(problems) => {
            let errors: Vec<String> = problems
                .iter()
                .filter(|p| p.is_error())
                .map(Problem::located)
                .collect();
            let message = format!(
                "reload refused, nothing changed ({} error(s)):\n{}",
                errors.len(),
                errors.join("\n")
            );
            problem(StatusCode::UNPROCESSABLE_ENTITY, &message)
        }
    }
}
