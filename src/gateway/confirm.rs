//! Personal mode: the principal confirms (or refuses) their own agent's call. On the
//! approvals page, CLI or API, signed in with their own approver credential (see
//! [`State::decide_approval`]); or, where the policy rule is `confirm_in_client`, as an
//! elicitation in their own MCP client, sent on the waiting call's own request, so the
//! answer belongs to that call. Either is recorded as the principal's confirmation, with
//! its channel, and audited as `confirmed`, never as `approved`.
//!
//! A 2026-07-28 client cannot be sent a request: it is asked by answering the call with
//! an `InputRequiredResult` (the question, and a `requestState` sealed for this caller
//! and this exact call that names the approval request), and its answer comes with the
//! identical call made again, carrying that state back. A state this gateway did not
//! seal for that call, or one already used, is refused before anything else happens.

use rmcp::RoleServer;
use rmcp::model::{
    ClientResult, ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction,
    ElicitationSchema, InputRequest, InputRequiredResult, InputResponses, ServerRequest,
};
use rmcp::service::RequestContext;
use serde_json::{Value, json};

use super::State;
use crate::approval::{ApprovalError, Channel, Request, Verdict, now_ms};
use crate::escape::visible;
use crate::seal::SealError;

/// The key of the question in `inputRequests` and of its answer in `inputResponses`.
const QUESTION: &str = "confirm";
/// How long after its request expired a question's state is still opened.
const LATE_MS: u64 = 10 * 60 * 1000;

/// The principal's answer in their client: confirm or not, and in what words.
pub struct Answer {
    pub confirm: bool,
    pub comment: &'static str,
}

/// Whether this call's request may be confirmed in the caller's client, and the client
/// can be asked (it declared form elicitation).
pub fn can_ask(request: &Request, context: &RequestContext<RoleServer>) -> Option<String> {
    let by = request.call.confirm.as_ref()?.by.clone();
    // A declared `elicitation` capability with neither mode named means form. A
    // 2026-07-28 client declares its capabilities on each request.
    let form = context.client_capabilities().is_some_and(|c| {
        c.elicitation
            .as_ref()
            .is_some_and(|e| e.form.is_some() || e.url.is_none())
    });
    let asks = request.confirmable_by(&by, Channel::Client) && form;
    asks.then_some(by)
}

/// A 2026-07-28 client's answer to the question about an approval request, with the
/// request its state named.
pub struct Confirmation {
    pub approval: String,
    pub answer: Option<Answer>,
}

/// The principal's answer among a retry's `inputResponses`, if it gave one.
pub fn answer_in(responses: Option<&InputResponses>) -> Option<Answer> {
    responses
        .and_then(|r| r.get(QUESTION))
        .and_then(|v| serde_json::from_value::<ElicitResult>(v.clone()).ok())
        .map(answer_of)
}

/// The question for a 2026-07-28 client: an `InputRequiredResult` whose state names
/// `request` and is sealed for this call.
pub fn rounds(
    state: &State,
    binding: &str,
    request: &Request,
) -> Result<InputRequiredResult, SealError> {
    let question = elicitation(request).ok_or(SealError::Sealing("no question".into()))?;
    // Good a while past the request's expiry, so that a late answer is told the request
    // expired (and is audited as a decision that came late), not that its state did.
    let until = request.expires.saturating_add(LATE_MS);
    let named = super::rounds::Carried::Approval(request.id.clone());
    let sealed = super::rounds::seal(state, binding, &named, until)?;
    let asks = [(QUESTION.to_string(), InputRequest::Elicitation(question))];
    Ok(InputRequiredResult::new(
        Some(asks.into_iter().collect()),
        Some(sealed),
    ))
}

/// The question as an elicitation: confirm, yes or no.
fn elicitation(request: &Request) -> Option<ElicitRequest> {
    let schema = json!({
        "type": "object",
        "properties": {"confirm": {
            "type": "boolean",
            "title": "Run this call",
            "description": "Yes runs it once, exactly as shown; no refuses it",
        }},
        "required": ["confirm"],
    });
    let requested_schema: ElicitationSchema = serde_json::from_value(schema).ok()?;
    let params = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: question(request),
        requested_schema,
    };
    Some(ElicitRequest::new(params))
}

/// Ask the principal in their client; `None` when the client could not be asked (the
/// call then waits for the approvals page, as without elicitation).
pub async fn ask(request: &Request, context: &RequestContext<RoleServer>) -> Option<Answer> {
    let asked = ServerRequest::ElicitRequest(elicitation(request)?);
    let result = match context.peer.send_request(asked).await {
        Ok(ClientResult::ElicitResult(r)) => r,
        Ok(other) => {
            tracing::warn!(approval = %request.id, answer = ?other, "the client answered the question with something else; the call waits for the approvals page");
            return None;
        }
        Err(e) => {
            tracing::warn!(approval = %request.id, error = %e, "cannot ask the user in their client; the call waits for the approvals page");
            return None;
        }
    };
    Some(answer_of(result))
}

/// What the principal's answer means: only an accepted `confirm: true` is a yes.
fn answer_of(result: ElicitResult) -> Answer {
    let yes = result
        .content
        .as_ref()
        .and_then(|c| c.get("confirm"))
        .and_then(Value::as_bool);
    match (result.action, yes) {
        (ElicitationAction::Accept, Some(true)) => Answer {
            confirm: true,
            comment: "confirmed in their client",
        },
        (ElicitationAction::Accept, _) => Answer {
            confirm: false,
            comment: "answered no in their client",
        },
        (ElicitationAction::Decline, _) => Answer {
            confirm: false,
            comment: "declined in their client",
        },
        (ElicitationAction::Cancel, _) => Answer {
            confirm: false,
            comment: "dismissed the question in their client",
        },
        // An action this version does not know: never a yes.
        (_, _) => Answer {
            confirm: false,
            comment: "gave an answer the gateway does not know in their client",
        },
    }
}

/// What the principal is asked: who asks to run what, why, with which arguments. All
/// of it comes from the agent, so all of it is escaped.
fn question(request: &Request) -> String {
    let call = &request.call;
    let args = serde_json::to_string_pretty(&call.args_display).unwrap_or_default();
    let intent = call.intent.as_deref().unwrap_or("(none given)");
    let task = match &call.task {
        Some(t) => format!(
            "\nFor the task: {} {}",
            visible(&t.id),
            visible(t.objective.as_deref().unwrap_or(""))
        ),
        None => String::new(),
    };
    format!(
        "mcp-warden: your agent `{agent}` asks to run `{server}/{tool}` (tier `{tier}`).\n\n\
         Why, in the agent's words: {intent}{task}\n\nArguments:\n{args}\n\n\
         Run it only if you asked for this. Your answer is good for this one call \
         (request {id}).",
        agent = visible(&call.agent),
        server = visible(&call.server),
        tool = visible(&call.tool),
        tier = visible(&call.tier),
        intent = visible(intent),
        args = visible(&args),
        id = request.id,
    )
}

impl State {
    /// The principal's own decision on their agent's call, through `channel`: recorded
    /// if the request allows it there, and audited (`confirmed`, `denied`, or
    /// `refused-decision` with why) either way.
    pub async fn confirm(
        &self,
        id: &str,
        principal: &str,
        confirm: bool,
        comment: Option<String>,
        channel: Channel,
    ) -> Result<Request, ApprovalError> {
        let verdict = Verdict {
            approver: principal.to_string(),
            approve: confirm,
            comment,
            at: now_ms(),
            confirmed: Some(channel),
        };
        let result = self.approvals.decide(id, verdict, false, now_ms()).await;
        let (record, event, error) = match &result {
            Ok(r) if confirm => (r.clone(), "confirmed", None),
            Ok(r) => (r.clone(), "denied", None),
            Err(e) => (
                self.approvals.get(id).await?,
                "refused-decision",
                Some(e.to_string()),
            ),
        };
        self.audit
            .approval(&record, event, Some(principal), error.as_deref())
            .await
            .map_err(|e| ApprovalError::Store(e.to_string()))?;
        result
    }
}
