//! The approvers' JSON API and the page's assets: list and show the requests an approver
//! may decide, approve or deny one with an optional comment, sign in and out. Requests an
//! approver has no `approve` permission for are not shown to them.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Extract};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::{COOKIE_NAME, Presented};
use super::{Admin, Signed, problem};
use crate::approval::{ApprovalError, Channel, Request, Status, Verdict, now_ms};

/// The longest comment an approver may leave.
const MAX_COMMENT: usize = 2000;

pub async fn page() -> Html<&'static str> {
    Html(include_str!("page/index.html"))
}

pub async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("page/app.js"),
    )
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("page/app.css"))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, kind)], body).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    token: String,
}

/// Exchange a token for the page's cookie (HttpOnly, SameSite=Strict).
pub async fn login(Extract(admin): Extract<Arc<Admin>>, Json(login): Json<Login>) -> Response {
    let Some(identity) = admin.approvers.identify(login.token.trim()) else {
        return unauthorized();
    };
    let secure = admin
        .state
        .current()
        .config
        .boot
        .approval
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    let cookie = format!(
        "{COOKIE_NAME}={}; HttpOnly; SameSite=Strict; Path=/{}",
        login.token.trim(),
        if secure { "; Secure" } else { "" }
    );
    let mut r = Json(json!({ "identity": identity })).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

pub async fn logout() -> Response {
    let cookie = format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

pub async fn me(Signed(identity, _): Signed) -> Response {
    Json(json!({ "identity": identity })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// `pending` (default), `all`, or one status.
    status: Option<String>,
}

pub async fn list(
    Extract(admin): Extract<Arc<Admin>>,
    Signed(approver, _): Signed,
    Query(filter): Query<Filter>,
) -> Response {
    let status = match filter.status.as_deref().unwrap_or("pending") {
        "all" => None,
        s => match Status::parse(s) {
            Some(st) => Some(st),
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "`status` must be `pending`, `approved`, `denied`, `expired`, `executed` or `all`",
                );
            }
        },
    };
    admin.state.expire_approvals().await;
    match admin.state.approvals.list(status).await {
        Ok(requests) => {
            let views: Vec<View> = requests
                .iter()
                .filter(|r| may_see(&admin, &approver, r))
                .map(|r| View::of(r, &approver))
                .collect();
            Json(json!({ "approver": approver, "requests": views })).into_response()
        }
        Err(e) => failure(&e),
    }
}

pub async fn show(
    Extract(admin): Extract<Arc<Admin>>,
    Signed(approver, _): Signed,
    Path(id): Path<String>,
) -> Response {
    admin.state.expire_approvals().await;
    match admin.state.approvals.get(&id).await {
        Ok(r) if may_see(&admin, &approver, &r) => Json(View::of(&r, &approver)).into_response(),
        Ok(r) => failure(&ApprovalError::NotPermitted {
            approver,
            object: format!("{}/{}", r.call.server, r.call.tool),
        }),
        Err(e) => failure(&e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Decision {
    comment: Option<String>,
}

pub async fn decide(
    Extract(admin): Extract<Arc<Admin>>,
    Signed(approver, presented): Signed,
    headers: HeaderMap,
    Path((id, verdict)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let approve = match verdict.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return problem(StatusCode::NOT_FOUND, "decide with `approve` or `deny`"),
    };
    let decision = match decision_body(&headers, presented, &body) {
        Ok(d) => d,
        Err((status, message)) => return problem(status, &message),
    };
    match admin
        .state
        .decide_approval(&id, &approver, approve, decision.comment)
        .await
    {
        Ok(r) => Json(View::of(&r, &approver)).into_response(),
        Err(e) => failure(&e),
    }
}

/// The optional `{"comment": …}` body. The page (cookie) must send JSON, which a form on
/// another site cannot.
fn decision_body(
    headers: &HeaderMap,
    presented: Presented,
    body: &[u8],
) -> Result<Decision, (StatusCode, String)> {
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if presented == Presented::Cookie && !json {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the decision as `application/json`".into(),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    let d: Decision = serde_json::from_slice(body).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("the body must be `{{\"comment\": \"…\"}}` or empty: {e}"),
        )
    })?;
    if d.comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT)
    {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("the comment is longer than {MAX_COMMENT} characters"),
        ));
    }
    Ok(d)
}

fn may_see(admin: &Admin, approver: &str, r: &Request) -> bool {
    let object = format!("{}/{}", r.call.server, r.call.tool);
    admin.state.may_approve(approver, &object, r)
}

pub(super) fn unauthorized() -> Response {
    let mut r = problem(
        StatusCode::UNAUTHORIZED,
        "sign in with your approver token: `Authorization: Bearer <token>`",
    );
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"mcp-warden approvals\""),
    );
    r
}

fn failure(e: &ApprovalError) -> Response {
    let status = match e {
        ApprovalError::NotFound(_) => StatusCode::NOT_FOUND,
        ApprovalError::SeparationOfDuties { .. }
        | ApprovalError::NotConfirmable { .. }
        | ApprovalError::NotPermitted { .. }
        | ApprovalError::NotInRole { .. } => StatusCode::FORBIDDEN,
        ApprovalError::AlreadyDecided { .. } | ApprovalError::Closed { .. } => StatusCode::CONFLICT,
        ApprovalError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    problem(status, &e.to_string())
}

/// A request as an approver sees it.
#[derive(Serialize)]
struct View<'a> {
    id: &'a str,
    status: Status,
    agent: &'a str,
    /// The principal the agent acts for, when there is one.
    on_behalf_of: Option<&'a str>,
    /// Principal first, acting agent last.
    chain: &'a [String],
    intent: Option<&'a str>,
    /// Why it waits, when a flow rule asked for the approval (what the session read).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    /// The task the call is for (id and objective), when it declared one.
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<&'a crate::identity::Task>,
    server: &'a str,
    tool: &'a str,
    tier: &'a str,
    /// Redacted values are replaced by a marker.
    arguments: &'a Value,
    args_digest: &'a str,
    quorum: u32,
    approved_by: Vec<&'a str>,
    verdicts: &'a [Verdict],
    created: u64,
    expires: u64,
    time_left_ms: u64,
    /// Why this approver cannot decide it, if they cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    cannot_decide: Option<&'static str>,
    /// The one asking is the principal of the call, who confirms their own agent's call
    /// (recorded as `confirmed`, not as an approval).
    yours_to_confirm: bool,
    /// Who confirmed it, and where, once someone did.
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmed_by: Option<&'a str>,
}

impl<'a> View<'a> {
    fn of(r: &'a Request, approver: &str) -> Self {
        let chain = &r.call.chain;
        let yours_to_confirm = r.confirmable_by(approver, Channel::Approvals);
        let cannot_decide = if r.status != Status::Pending {
            Some("this request is closed")
        } else if chain.iter().any(|c| c == approver) && !yours_to_confirm {
            Some("you are the requester or act in its delegation chain")
        } else if r.verdicts.iter().any(|v| v.approver == approver) {
            Some("you have already decided this request")
        } else {
            None
        };
        Self {
            id: &r.id,
            status: r.status,
            agent: &r.call.agent,
            on_behalf_of: chain
                .first()
                .filter(|_| chain.len() > 1)
                .map(String::as_str),
            chain,
            intent: r.call.intent.as_deref(),
            reason: r.call.reason.as_deref(),
            task: r.call.task.as_ref(),
            server: &r.call.server,
            tool: &r.call.tool,
            tier: &r.call.tier,
            arguments: &r.call.args_display,
            args_digest: &r.call.args_digest,
            quorum: r.call.quorum,
            approved_by: r.approvers(),
            verdicts: &r.verdicts,
            created: r.created,
            expires: r.expires,
            time_left_ms: r.expires.saturating_sub(now_ms()),
            cannot_decide,
            yours_to_confirm,
            confirmed_by: r.confirmation().map(|(who, _)| who),
        }
    }
}
