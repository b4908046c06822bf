//! The `tools/call` pipeline: catalog → integrity → intent → arguments → limits → policy → audit
//! "attempt" → upstream → audit "outcome". Every refusal is audited and answered in
//! [`reply`], the one place that turns a refusal into an MCP answer.

use std::sync::Arc;
use std::time::Instant;

use rmcp::model::{CallToolRequestParams, CallToolResponse, CallToolResult, InputRequiredResult};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Map, Value};

use super::answer::{self, Failure};
use super::approve::Waited;
use super::confirm::Confirmation;
use super::{Snapshot, State};
use crate::arguments::ArgumentsError;
use crate::audit::{Attested, AuditError, Outcome, Refusal, Stage};
use crate::catalog::{CatalogError, ToolRef, ToolState};
use crate::digest;
use crate::identity::Caller;
use crate::intent::{self, IntentError};
use crate::limits::Limited;
use crate::policy::{Call, Decision, Permitted, Refused};
use crate::telemetry::CallLabels;
use crate::telemetry::trace::CallSpan;
use crate::upstream::UpstreamError;

/// Why a call was not made (or did not finish).
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error(transparent)]
    Unknown(#[from] CatalogError),
    /// A tool whose definition no longer matches its pin (the message says what changed
    /// and how the owner re-pins).
    #[error("{0}")]
    Quarantined(String),
    #[error("`{tool}` cannot be called: {reason}; ask the tool owner to fix its schema")]
    Unusable { tool: String, reason: String },
    #[error(transparent)]
    Task(#[from] crate::identity::task::TaskError),
    #[error(transparent)]
    Intent(#[from] IntentError),
    #[error(transparent)]
    Arguments(#[from] ArgumentsError),
    #[error(transparent)]
    Limited(#[from] Limited),
    /// A 2026-07-28 client's `requestState` that this gateway did not seal for this call,
    /// or already took.
    #[error("{0}; make the call again without `requestState` and `inputResponses`")]
    State(#[from] crate::seal::SealError),
    /// The round a state names is over: the call was let go for want of an answer.
    #[error(
        "the call this answer belongs to has ended (it waited longer than the call timeout for an answer); make the call again without `requestState` and `inputResponses`"
    )]
    Ended,
    #[error("{0}")]
    Denied(String),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl CallError {
    fn stage(&self) -> Stage {
        match self {
            CallError::Unknown(_) => Stage::Catalog,
            CallError::Quarantined(_) | CallError::Unusable { .. } => Stage::Integrity,
            CallError::Task(_) => Stage::Task,
            CallError::Intent(_) => Stage::Intent,
            CallError::Arguments(_) => Stage::Arguments,
            CallError::Limited(_) => Stage::Limits,
            CallError::State(_) | CallError::Ended => Stage::State,
            CallError::Denied(_) => Stage::Policy,
            CallError::Audit(_) => Stage::Audit,
            CallError::Upstream(_) => Stage::Upstream,
        }
    }
}

/// A call's request span and the trace context its caller sent.
pub(super) struct Traced {
    pub span: CallSpan,
    pub carried: Map<String, Value>,
}

/// Run one `tools/call` through every stage.
/// The whole call is decided under the request's one snapshot, whatever a reload does
/// meanwhile.
pub async fn run(
    state: &Arc<State>,
    now: &Snapshot,
    caller: Caller,
    request: CallToolRequestParams,
    context: RequestContext<RoleServer>,
    traced: Traced,
) -> Result<CallToolResponse, ErrorData> {
    let mut caller = caller;
    let meta = request.meta.as_ref().map_or(&context.meta.0.0, |m| &m.0.0);
    let task = crate::identity::task::declare(
        caller.task.as_ref(),
        meta.get(crate::identity::task::META_KEY),
    );
    let task = task.map(|t| caller.task = t);
    let mut facts = Facts::new(&caller, &request.name);
    let Traced { span, mut carried } = traced;
    if let Some(id) = span.trace_id(&carried) {
        carried.insert("trace_id".into(), Value::String(id));
    }
    facts.trace = Arc::new(carried);
    facts.span = span;
    let task = task.and_then(|()| match task_key(&caller) {
        Some(key) if !state.sessions.admits(&key) => Err(
            crate::identity::task::TaskError::TooMany(crate::session::MAX_TASKS),
        ),
        _ => Ok(()),
    });
    if let Err(e) = task {
        return refuse(state, &facts, e.into()).await.map(Into::into);
    }
    let attested = match admit(state, now, &mut facts, &request, &context).await {
        Ok(Admitted::Attested(attested)) => attested,
        // The caller is asked first; its answer comes with the call made again.
        Ok(Admitted::Asks(asks)) => return Ok(CallToolResponse::InputRequired(asks)),
        // The next round of a call already forwarded, whose upstream asked the caller.
        Ok(Admitted::Resumes(parked)) => {
            let responses = request.input_responses.as_ref();
            return super::rounds::resume(state, *parked, responses, &context).await;
        }
        Err(e) => return refuse(state, &facts, e).await.map(Into::into),
    };
    // A 2026-07-28 caller is asked what the upstream asks by the call's answer: the call
    // runs on while the caller answers, in rounds.
    if super::era::modern(&context) {
        return super::rounds::first(state, now, attested, &context).await;
    }
    let result = forward(state, now, &attested, &context).await;
    finish(state, attested, result).await
}

/// A forwarded call's end: what the session did, the outcome record, and the caller's
/// answer. A call its upstream made a task of ends with the task (see `tasks`).
pub(super) async fn finish(
    state: &Arc<State>,
    attested: Attested,
    result: Result<CallToolResponse, UpstreamError>,
) -> Result<CallToolResponse, ErrorData> {
    let call = attested.permitted().call();
    // What the session did, for flow rules and budgets (also before any exist: a reload
    // may add them): the call was forwarded; a label is acquired only by getting data, a
    // result the caller received.
    let got = matches!(&result, Ok(CallToolResponse::Complete(r)) if r.is_error != Some(true));
    let task = task_key(&call.caller);
    // Shared with the other replicas while flow rules or budgets read it.
    let store = state.flow_store();
    let (session, tool) = (&call.caller.session, &call.tool);
    let recorded = state
        .sessions
        .record(store, session, task.as_deref(), tool, got)
        .await;
    // Data whose labels the other replicas could not learn of is not handed over: a
    // replica that does not know the session holds them would let it send them out.
    let withheld = match recorded {
        Ok(()) => None,
        Err(e) if got && !tool.labels.is_empty() => Some(format!(
            "the result was withheld: that this session read `{}` data could not be recorded in the state database ({e}), so the other replicas would not know it; try again shortly",
            tool.labels.join("`, `")
        )),
        Err(e) => {
            tracing::warn!(
                "what session {session} did (a call to `{}`) is not in the state database ({e}): another replica serving it will not see it",
                tool.name
            );
            None
        }
    };
    let counted = |outcome| {
        state.metrics.call(
            labels(Some(&call.tool), outcome, ""),
            call.arrived.elapsed(),
        )
    };
    if attested
        .permitted()
        .decision()
        .verdicts
        .iter()
        .any(|v| v.rule.as_ref().is_some_and(|r| r.grant.is_some()))
    {
        state.metrics.grant_uses.inc();
    }
    let result = match result {
        Ok(CallToolResponse::Task(task)) => {
            counted("task");
            let task = super::tasks::created(state, attested, task).await?;
            return Ok(CallToolResponse::Task(task));
        }
        Ok(CallToolResponse::Complete(r)) => Ok(r),
        Ok(_) => Err(UpstreamError::Refused {
            server: call.tool.server.clone(),
            code: rmcp::model::ErrorCode::INTERNAL_ERROR,
            message: "it asked for input after its questions were answered".into(),
        }),
        Err(e) => Err(e),
    };
    let outcome = match (&result, &withheld) {
        (Ok(r), Some(reason)) => Outcome::Withheld {
            digest: digest::canonical(&serde_json::to_value(r).unwrap_or_default()),
            reason: reason.clone(),
        },
        (Ok(r), None) => Outcome::Result {
            is_error: r.is_error == Some(true),
            digest: digest::canonical(&serde_json::to_value(r).unwrap_or_default()),
        },
        (Err(e), _) => Outcome::Unknown {
            reason: e.to_string(),
        },
    };
    counted(match &result {
        Ok(r) if r.is_error == Some(true) => "tool_error",
        Ok(_) => "ok",
        Err(_) => "upstream_error",
    });
    let written = state.audit.outcome(&attested, &outcome).await;
    call.span.event("audit.outcome", None);
    if let Err(e) = written {
        tracing::error!(call = %call.id, error = %e, "the outcome of a forwarded call could not be audited");
    }
    if let Some(reason) = withheld {
        tracing::warn!(call = %call.id, "{reason}");
        return reply(&call.id, CallError::Denied(reason)).map(Into::into);
    }
    result
        .or_else(|e| reply(&call.id, CallError::Upstream(e)))
        .map(Into::into)
}

/// How far a call got before it was forwarded: attested, its caller
/// must answer a question first, or it is the next round of a call already forwarded.
#[expect(
    clippy::large_enum_variant,
    reason = "the large variant is every call's; boxing it would allocate on every call for the rare small one"
)]
enum Admitted {
    Attested(Attested),
    Asks(InputRequiredResult),
    Resumes(Box<super::rounds::Parked>),
}

/// Every stage up to the durable "attempt" record, in order: catalog, integrity, intent,
/// arguments, policy (and approval), audit. Each stage adds to `facts` what the audit
/// record of a refusal after it must say. A new stage is one line here and a variant of
/// [`CallError`].
async fn admit(
    state: &Arc<State>,
    now: &Snapshot,
    facts: &mut Facts<'_>,
    request: &CallToolRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<Admitted, CallError> {
    let meta = request.meta.as_ref().map_or(&context.meta.0.0, |m| &m.0.0);
    let tool = facts.tool.insert(now.catalog.resolve(&request.name)?);
    let args = facts
        .args
        .insert(request.arguments.clone().unwrap_or_default());
    integrity(tool)?;
    let (field, injected) = (&now.config.live.intent_field, tool.intent_injected);
    facts.intent = intent::take(args, meta.get(intent::META_KEY), field, injected, tool.tier)?;
    facts.intent_redacted = now.config.live.redact_intent || tool.redacts_intent();
    check_args(tool, args)?;
    // The state a 2026-07-28 client carries back is opened (once) before anything else
    // is decided or counted: one this gateway did not seal for exactly this call is
    // refused here. A call already forwarded takes up its next round.
    let confirmation = match &request.request_state {
        None => None,
        Some(sealed) => match super::rounds::open(
            state,
            &crate::policy::binding(tool, args, facts.caller),
            sealed,
        )? {
            super::rounds::Carried::Approval(approval) => Some(Confirmation {
                approval,
                answer: super::confirm::answer_in(request.input_responses.as_ref()),
            }),
            super::rounds::Carried::Parked(id) => {
                let parked = state.rounds.take(&id).ok_or(CallError::Ended)?;
                return Ok(Admitted::Resumes(Box::new(parked)));
            }
        },
    };
    let limits = &now.config.live.limits;
    if limits.has_rates() {
        let has_role = |id: &str, role: &str| now.policy.is_or_has_role(id, role);
        let object = crate::policy::object_of(tool);
        let chain = facts.caller.chain();
        match state.store.shared() {
            true => {
                state
                    .counters
                    .take_shared(&state.store, limits, &chain, &object, tool.tier, &has_role)
                    .await?
            }
            false => state
                .counters
                .take(limits, &chain, &object, tool.tier, &has_role)?,
        }
    }
    let call = Call {
        id: facts.call_id.clone(),
        caller: facts.caller.clone(),
        tool: tool.clone(),
        args: args.clone(),
        intent: facts.intent.clone(),
        intent_redacted: facts.intent_redacted,
        trace: facts.trace.clone(),
        span: facts.span.clone(),
        arrived: facts.arrived,
        held: match now.policy.flows_could_apply(tool) {
            true => {
                let (session, task) = (&facts.caller.session, task_key(facts.caller));
                let held = state
                    .sessions
                    .held_everywhere(&state.store, session, task.as_deref());
                held.await.map_err(|e| {
                    CallError::Denied(format!(
                        "what this session has done could not be read ({e}), so the flow rules cannot be checked; the call was not made: try again shortly"
                    ))
                })?
            }
            false => Arc::default(),
        },
    };
    let decided = {
        let started = Instant::now();
        let decided = now.policy.authorize(call, None);
        let took = started.elapsed();
        state.metrics.decision_seconds.observe(took.as_secs_f64());
        // A stage of microseconds is an event of the request's span, not a span.
        facts.span.event("policy", Some(took));
        decided
    };
    let decided = granted_elsewhere(state, now, decided).await;
    let permitted = match decided {
        Err(r) if r.decision.effect.waits() => {
            waiting_cap(state, now, &r.call).await?;
            let _waiting = facts.span.stage("approval");
            let waited = super::approve::obtain(state, now, r, context, confirmation).await;
            match waited {
                Ok(Waited::Asks(asks)) => return Ok(Admitted::Asks(asks)),
                Ok(Waited::Permitted(p)) => Ok(p),
                Err(r) => Err(r),
            }
        }
        other => other,
    }
    .map_err(|refused| facts.denied(refused))?;
    let permitted = grants_in_force(state, permitted)
        .await
        .map_err(|refused| facts.denied(refused))?;
    let _writing = facts.span.stage("audit.attempt");
    state
        .audit
        .attempt(permitted)
        .await
        .map(Admitted::Attested)
        .map_err(|(permitted, e)| {
            facts.decision = Some(permitted.decision().clone());
            e.into()
        })
}

/// With a store other replicas share, a call that policy did not simply allow is decided
/// again with the grants read from the store now (a grant given on another replica a moment
/// ago). Always again, not only when this read changed the book: the notification of that
/// grant may have changed it between the decision and this read.
async fn granted_elsewhere(
    state: &State,
    now: &Snapshot,
    decided: Result<Permitted, Box<Refused>>,
) -> Result<Permitted, Box<Refused>> {
    match decided {
        Err(r) if state.grants.shared() && state.grants.refresh().await.is_ok() => {
            now.policy.authorize(r.call, None)
        }
        other => other,
    }
}

/// With a store other replicas share, a call allowed by a grant is forwarded only if the
/// store says the grant is still in force (it may have been revoked on another replica a
/// moment ago); a store that cannot say refuses the call (fail closed).
async fn grants_in_force(state: &State, permitted: Permitted) -> Result<Permitted, Box<Refused>> {
    if !state.grants.shared() {
        return Ok(permitted);
    }
    for id in permitted.grants() {
        match state.grants.in_force(&id, crate::clock::now_ms()).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(permitted.withdraw(format!(
                    "grant `{id}` is no longer in force (revoked or expired); ask a grantor again"
                )));
            }
            Err(e) => {
                return Err(permitted.withdraw(format!(
                    "grant `{id}` could not be confirmed ({e}); the call was not made: retry once the state database answers"
                )));
            }
        }
    }
    Ok(permitted)
}

/// A call that needs an approval when its principal already has as many requests waiting
/// as a `pending_approvals` limit allows (a retry of a call that is waiting joins its own
/// request and is not counted): nobody floods the approvers.
async fn waiting_cap(state: &State, now: &Snapshot, call: &Call) -> Result<(), CallError> {
    let principal = call
        .caller
        .chain()
        .first()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let has_role = |id: &str, role: &str| now.policy.is_or_has_role(id, role);
    let Some(max) = now.config.live.limits.pending_cap(&principal, &has_role) else {
        return Ok(());
    };
    let binding = crate::policy::binding_of(call);
    let pending = state
        .approvals
        .list(Some(crate::approval::Status::Pending))
        .await
        .map_err(|e| {
            CallError::Denied(format!("cannot count the approval requests waiting: {e}"))
        })?;
    let waiting = pending
        .iter()
        .filter(|r| r.call.chain.first() == Some(&principal) && r.binding != binding)
        .count();
    match waiting >= max as usize {
        true => Err(CallError::Limited(Limited {
            message: format!(
                "limit: `{principal}` already has {waiting} approval requests waiting (at most {max}); wait for a decision on them before asking for another"
            ),
            retry_after: std::time::Duration::ZERO,
        })),
        false => Ok(()),
    }
}

/// Forward an attested call to its upstream, putting what the upstream asks to the
/// caller on the way (see `asks`).
async fn forward(
    state: &Arc<State>,
    now: &Snapshot,
    attested: &Attested,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, UpstreamError> {
    let result = super::asks::forward(state, attested, context).await?;
    Ok(renamed(now, attested, result))
}

/// Forward an attested call to its upstream, the upstream's questions going to
/// `downstream`'s route.
pub(super) async fn forward_only(
    state: &State,
    now: &Snapshot,
    attested: &Attested,
    downstream: crate::upstream::Downstream,
) -> Result<CallToolResponse, UpstreamError> {
    let result = state.upstreams.forward(attested, downstream).await?;
    Ok(renamed(now, attested, result))
}

/// Links to the upstream's resources in a result, renamed to the gateway's names for
/// them.
fn renamed(now: &Snapshot, attested: &Attested, result: CallToolResponse) -> CallToolResponse {
    let CallToolResponse::Complete(result) = result else {
        return result;
    };
    let links = result
        .content
        .iter()
        .any(|c| c.as_resource_link().is_some() || c.as_resource().is_some());
    match links {
        true => {
            let server = &attested.permitted().call().tool.server;
            super::resources::rename_links(now, server, result).into()
        }
        false => result.into(),
    }
}

/// The key of the caller's task record, when the call has a task.
fn task_key(caller: &Caller) -> Option<String> {
    let task = caller.task.as_ref()?;
    Some(crate::session::task_key(&caller.chain(), task))
}

/// What is known about a call when it is refused: filled in stage by stage by [`admit`].
struct Facts<'a> {
    call_id: String,
    caller: &'a Caller,
    /// The name the caller asked for.
    requested: &'a str,
    tool: Option<Arc<ToolRef>>,
    args: Option<Map<String, Value>>,
    intent: Option<String>,
    /// Whether the intent is recorded as its digest only.
    intent_redacted: bool,
    decision: Option<Decision>,
    /// When the request arrived.
    arrived: Instant,
    /// The caller's trace context and the call's trace id (see `telemetry::trace`).
    trace: Arc<Map<String, Value>>,
    /// The request's span.
    span: CallSpan,
}

impl<'a> Facts<'a> {
    fn new(caller: &'a Caller, requested: &'a str) -> Self {
        Self {
            arrived: Instant::now(),
            trace: Arc::default(),
            span: CallSpan::default(),
            call_id: uuid::Uuid::new_v4().to_string(),
            caller,
            requested,
            tool: None,
            args: None,
            intent: None,
            intent_redacted: false,
            decision: None,
        }
    }

    /// A call the policy (or an approver) refused: its decision goes into the record.
    fn denied(&mut self, refused: Box<Refused>) -> CallError {
        let Refused {
            decision, message, ..
        } = *refused;
        self.decision = Some(decision);
        CallError::Denied(message)
    }
}

/// Check the arguments against the tool's schema and its owner's constraints (moved into
/// a JSON value for the check and back, not copied).
fn check_args(tool: &ToolRef, args: &mut Map<String, Value>) -> Result<(), ArgumentsError> {
    let Some(check) = tool.args.as_ref() else {
        return Ok(());
    };
    let value = Value::Object(std::mem::take(args));
    let checked = check.check(&value);
    if let Value::Object(taken) = value {
        *args = taken;
    }
    checked
}

fn integrity(tool: &ToolRef) -> Result<(), CallError> {
    match &tool.state {
        ToolState::Ready => Ok(()),
        ToolState::Quarantined {
            pinned,
            live,
            changed,
        } => Err(CallError::Quarantined(quarantined(
            tool,
            pinned,
            live,
            changed.as_deref(),
        ))),
        ToolState::Unusable(reason) => Err(CallError::Unusable {
            tool: tool.name.clone(),
            reason: reason.clone(),
        }),
    }
}

/// What a caller is told about a quarantined tool: which fields changed (names only: the
/// new text may be an injection aimed at the model) and how its owner re-pins it.
fn quarantined(tool: &ToolRef, pinned: &str, live: &str, changed: Option<&[String]>) -> String {
    let changed = changed
        .map(|c| format!("changed: {}", c.join(", ")))
        .unwrap_or_else(|| "which fields changed is not known here".into());
    let file = tool
        .manifest_file
        .as_ref()
        .map(|f| format!("`{f}`"))
        .unwrap_or_else(|| "its manifest".into());
    format!(
        "`{}` is quarantined: its definition changed since its owner pinned it ({changed}; pinned {pinned}, now {live}); \
         ask the tool owner to review the change with `mcp-warden manifest pin --upstream {} --tool {}`, \
         update `pin` in {file} if it is safe, and reload the gateway",
        tool.name, tool.server, tool.tool
    )
}

/// A call's labels in `/metrics`: its server, tool and tier from the catalog. A name the
/// caller made up is not a label: a call the catalog could not resolve is `unknown`.
fn labels(tool: Option<&ToolRef>, outcome: &'static str, stage: &'static str) -> CallLabels {
    let (server, name, tier) = match tool {
        Some(t) => (t.server.clone(), t.name.clone(), t.tier.as_str()),
        None => ("unknown".to_string(), "unknown".to_string(), "unknown"),
    };
    CallLabels {
        server,
        gen_ai_tool_name: name,
        tier,
        outcome,
        stage,
    }
}

/// Audit a refusal, then answer it.
async fn refuse(
    state: &State,
    facts: &Facts<'_>,
    error: CallError,
) -> Result<CallToolResult, ErrorData> {
    let message = error.to_string();
    let refusal = Refusal {
        call_id: &facts.call_id,
        caller: facts.caller,
        requested: facts.requested,
        tool: facts.tool.as_deref(),
        args: facts.args.as_ref(),
        intent: facts.intent.as_deref(),
        intent_redacted: facts.intent_redacted,
        stage: error.stage(),
        decision: facts.decision.as_ref(),
        error: &message,
        trace: &facts.trace,
    };
    if let Err(e) = state.audit.refusal(&refusal).await {
        tracing::error!(call = %facts.call_id, error = %e, "a refused call could not be audited");
    }
    // The requested name and the message may carry what the caller sent: escaped, so a
    // log line cannot be forged or rewrite the terminal it is read on.
    let (tool, agent, told) = (
        crate::escape::visible(facts.requested),
        crate::escape::visible(facts.caller.agent()),
        crate::escape::visible(&message),
    );
    tracing::info!(call = %facts.call_id, %tool, %agent, stage = ?error.stage(), "refused: {told}");
    let labels = labels(facts.tool.as_deref(), "refused", error.stage().label());
    state.metrics.call(labels, facts.arrived.elapsed());
    reply(&facts.call_id, error)
}

/// A refusal as an MCP answer (see `answer`): an unknown tool, or a `requestState` that
/// is not ours for this call, is a protocol error (`-32602`: the request cannot be
/// used); everything else is a tool error the caller can read and act on, with
/// `isError: true`.
fn reply(call_id: &str, error: CallError) -> Result<CallToolResult, ErrorData> {
    let stage = error.stage();
    match error {
        CallError::Unknown(e) => Err(Failure::UnknownTool {
            message: e.to_string(),
            call_id: call_id.to_string(),
        }
        .into()),
        // What the caller must declare before the upstream can serve it: a protocol
        // error, whole, as the upstream gave it.
        CallError::Upstream(e @ UpstreamError::NeedsCapability { .. }) => {
            Err(Failure::Upstream(e).into())
        }
        // A state that is not ours for this call makes the request itself unusable.
        e @ (CallError::State(_) | CallError::Ended) => Err(Failure::UnknownTool {
            message: e.to_string(),
            call_id: call_id.to_string(),
        }
        .into()),
        other => Ok(answer::tool_refusal(call_id, stage, other.to_string())),
    }
}
