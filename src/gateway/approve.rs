//! Parking a call that policy says needs approval: use an approval already granted for
//! exactly this call, or create a request and wait for approvers (sending progress so the
//! client keeps the call open) until it is approved, denied or expires. Every step is
//! audited. Approvers' decisions come in through [`State::decide_approval`].

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{InputRequiredResult, ProgressNotificationParam};
use rmcp::service::RequestContext;
use serde_json::Value;

use super::confirm::Confirmation;
use super::{Snapshot, State};
use crate::approval::{
    ApprovalError, Channel, Confirm, NewRequest, Request, Status, Verdict, now_ms, webhook,
};
use crate::audit::redacted;
use crate::digest;
use crate::policy::{Call, Decision, Effect, Permitted, Policy, Refused, binding_of};
use crate::seal::SealError;

/// How often a waiting call tells its client it is still waiting (progress keeps the
/// call open). Between those, it wakes when the store changes or the request expires.
const PROGRESS: Duration = Duration::from_secs(1);

type Outcome = Result<Permitted, Box<Refused>>;

/// What waiting for approval came to: the call may go on, or a 2026-07-28 client is
/// asked (the call is answered with the question and comes again with the answer).
#[expect(
    clippy::large_enum_variant,
    reason = "the large variant is every call's; boxing it would allocate on every call for the rare small one"
)]
pub enum Waited {
    Permitted(Permitted),
    Asks(InputRequiredResult),
}

fn refused(call: Call, decision: Decision, message: String) -> Outcome {
    Err(Box::new(Refused {
        call,
        decision,
        message,
    }))
}

/// Turn a call refused for want of approval into a permitted one, or a refusal that says
/// why (denied by whom, expired after how long, cancelled while pending). The identical
/// call retried (after a cancel or a gateway restart) uses its approval if granted, or
/// waits on its still-pending request instead of asking again.
/// A 2026-07-28 client's retry carrying the state of the question it was asked goes on
/// with the request that state names, whatever became of it meanwhile.
pub async fn obtain(
    state: &State,
    now: &Snapshot,
    waiting: Box<Refused>,
    context: &RequestContext<RoleServer>,
    carried: Option<Confirmation>,
) -> Result<Waited, Box<Refused>> {
    let policy = now.policy.as_ref();
    let Refused { call, decision, .. } = *waiting;
    let binding = binding_of(&call);
    if let Some(carried) = carried {
        let named = match state.approvals.get(&carried.approval).await {
            Ok(r) if r.binding == binding => r,
            Ok(_) => {
                return refused(call, decision, SealError::Foreign.to_string())
                    .map(Waited::Permitted);
            }
            Err(e) => return refused(call, decision, e.to_string()).map(Waited::Permitted),
        };
        return wait(
            state,
            policy,
            call,
            decision,
            named,
            context,
            carried.answer,
        )
        .await;
    }
    match state.approvals.find_approved(&binding, now_ms()).await {
        Ok(Some(granted)) => {
            return use_approval(state, policy, call, decision, granted, context)
                .await
                .map(Waited::Permitted);
        }
        Ok(None) => {}
        Err(e) => return refused(call, decision, e.to_string()).map(Waited::Permitted),
    }
    match state.approvals.find_pending(&binding, now_ms()).await {
        Ok(Some(open)) => return wait(state, policy, call, decision, open, context, None).await,
        Ok(None) => {}
        Err(e) => return refused(call, decision, e.to_string()).map(Waited::Permitted),
    }
    let request = match state
        .approvals
        .create(new_request(now, &call, &decision), now_ms())
        .await
    {
        Ok(r) => r,
        Err(e) => return refused(call, decision, e.to_string()).map(Waited::Permitted),
    };
    if let Err(e) = state
        .audit
        .approval(&request, "requested", None, None)
        .await
    {
        return refused(call, decision, e.to_string()).map(Waited::Permitted);
    }
    let agent = crate::escape::visible(call.caller.agent());
    tracing::info!(approval = %request.id, tool = %call.tool.name, %agent, "call parked for approval");
    if let Some(url) = &now.config.live.approval.webhook {
        let notice = webhook::notice(&request, state.page_url());
        tokio::spawn(webhook::deliver(url.clone(), notice));
    }
    wait(state, policy, call, decision, request, context, None).await
}

/// Wait for the request to be decided (or expire). The principal is asked in their
/// client where the rule allows it: a 2026-07-28 client by answering the call with the
/// question, unless it brought its `answer` with this retry; an older one by a request
/// on this call's stream.
async fn wait(
    state: &State,
    policy: &Policy,
    call: Call,
    decision: Decision,
    request: Request,
    context: &RequestContext<RoleServer>,
    answer: Option<super::confirm::Answer>,
) -> Result<Waited, Box<Refused>> {
    let (id, started) = (request.id.clone(), std::time::Instant::now());
    let waited = wait_for(state, policy, call, decision, request, context, answer).await;
    // How the wait ended, for `/metrics` (a question put to the caller is no end).
    let result = match &waited {
        Ok(Waited::Asks(_)) => return waited,
        Ok(Waited::Permitted(p)) => match p.approval().and_then(|g| g.confirmed_by.as_ref()) {
            Some(_) => "confirmed",
            None => "approved",
        },
        Err(_) => match state.approvals.get(&id).await.map(|r| r.status) {
            Ok(Status::Denied) => "denied",
            Ok(Status::Expired) => "expired",
            Ok(Status::Executed) => "used",
            Ok(Status::Pending | Status::Approved) | Err(_) => "cancelled",
        },
    };
    state.metrics.approval(result, started.elapsed());
    waited
}

async fn wait_for(
    state: &State,
    policy: &Policy,
    call: Call,
    decision: Decision,
    request: Request,
    context: &RequestContext<RoleServer>,
    answer: Option<super::confirm::Answer>,
) -> Result<Waited, Box<Refused>> {
    let id = request.id.clone();
    let token = context.meta.get_progress_token();
    let who = match &request.call.confirm {
        Some(c) => format!("`{}` to confirm", c.by),
        None => "a human approver".into(),
    };
    let note = match state.page_url() {
        Some(page) => format!("waiting for {who} (request `{id}`, {page}/#request-{id})"),
        None => format!("waiting for {who} (request `{id}`)"),
    };
    // Personal mode: ask the principal in their own client too, on this call's request.
    let principal = super::confirm::can_ask(&request, context);
    let by_rounds = super::era::modern(context);
    let mut asking = (principal.is_some() && !by_rounds)
        .then(|| Box::pin(super::confirm::ask(&request, context)));
    let answered = answer.is_some();
    if let (Some(answer), Some(by)) = (answer, principal.as_deref()) {
        let comment = Some(answer.comment.to_string());
        if let Err(e) = state
            .confirm(&id, by, answer.confirm, comment, Channel::Client)
            .await
        {
            tracing::warn!(approval = %id, error = %e, "the user's answer in their client was not recorded");
        }
    }
    // Subscribed before the first read: a decision made after it wakes this loop.
    let mut changes = state.approvals.watch();
    let mut next_progress = tokio::time::Instant::now();
    let cancelled = || {
        format!(
            "cancelled while waiting for approval request `{id}`; it stays pending, and once approved the identical call can be retried"
        )
    };
    for tick in 0u32.. {
        // A caller that has gone never uses an approval, however close the two came.
        if context.ct.is_cancelled() {
            return refused(call, decision, cancelled()).map(Waited::Permitted);
        }
        let current = match state.approvals.get(&id).await {
            Ok(r) => r,
            Err(e) => return refused(call, decision, e.to_string()).map(Waited::Permitted),
        };
        let left = current.expires.saturating_sub(now_ms());
        match current.status {
            // A 2026-07-28 client is asked by the answer to this call.
            Status::Pending if left > 0 && by_rounds && principal.is_some() && !answered => {
                return match super::confirm::rounds(state, &binding_of(&call), &current) {
                    Ok(asks) => Ok(Waited::Asks(asks)),
                    Err(e) => refused(call, decision, e.to_string()).map(Waited::Permitted),
                };
            }
            Status::Pending if left > 0 => {}
            Status::Pending | Status::Expired => {
                return expired(state, call, decision, &id)
                    .await
                    .map(Waited::Permitted);
            }
            Status::Denied => return denied(call, decision, current).map(Waited::Permitted),
            Status::Approved => {
                return use_approval(state, policy, call, decision, current, context)
                    .await
                    .map(Waited::Permitted);
            }
            Status::Executed => {
                let message = format!(
                    "approval request `{id}` was already used by an identical call; an approval is good for one call, so ask again"
                );
                return refused(call, decision, message).map(Waited::Permitted);
            }
        }
        if let Some(token) = token
            .as_ref()
            .filter(|_| tokio::time::Instant::now() >= next_progress)
        {
            let progress = ProgressNotificationParam::new(token.clone(), f64::from(tick))
                .with_message(note.clone());
            let _ = context.peer.notify_progress(progress).await;
            next_progress = tokio::time::Instant::now() + PROGRESS;
        }
        let mut until = Duration::from_millis(left);
        if token.is_some() {
            until = until.min(next_progress.saturating_duration_since(tokio::time::Instant::now()));
        }
        tokio::select! {
            // Cancellation first: a decision that arrives with it must not win the draw.
            biased;
            () = context.ct.cancelled() => return refused(call, decision, cancelled()).map(Waited::Permitted),
            changed = changes.changed() => {
                if changed.is_err() {
                    return refused(call, decision, "the approval store closed".into()).map(Waited::Permitted);
                }
            }
            answer = async { asking.as_mut()?.await }, if asking.is_some() => {
                asking = None;
                if let (Some(answer), Some(by)) = (answer, principal.as_deref()) {
                    let comment = Some(answer.comment.to_string());
                    if let Err(e) = state.confirm(&id, by, answer.confirm, comment, Channel::Client).await {
                        tracing::warn!(approval = %id, error = %e, "the user's answer in their client was not recorded");
                    }
                }
            }
            () = tokio::time::sleep(until) => {}
            () = state.stopping() => {
                let message = format!("the gateway is stopping; approval request `{id}` stays pending and survives the restart: once an approver approves it, retry this identical call and it will be made");
                return refused(call, decision, message).map(Waited::Permitted);
            }
        }
    }
    refused(call, decision, "approval wait ended".into()).map(Waited::Permitted)
}

async fn expired(state: &State, call: Call, decision: Decision, id: &str) -> Outcome {
    state.expire_approvals().await;
    let request = state.approvals.get(id).await.ok();
    let after = request
        .as_ref()
        .map(|r| humantime::format_duration(r.call.timeout).to_string())
        .unwrap_or_else(|| "its timeout".into());
    // Why it waited, when a flow rule (not the policy alone) asked for it.
    let why = request
        .and_then(|r| r.call.reason)
        .map(|reason| format!(" (it waited because {reason})"))
        .unwrap_or_default();
    refused(
        call,
        decision,
        format!(
            "approval request `{id}` expired after {after} without a decision{why}; the call was not made"
        ),
    )
}

fn denied(call: Call, decision: Decision, request: Request) -> Outcome {
    let by = request.verdicts.iter().find(|v| !v.approve);
    let who = by.map(|v| v.approver.clone()).unwrap_or_default();
    let comment = by
        .and_then(|v| v.comment.clone())
        .map(|c| format!(": {c}"))
        .unwrap_or_default();
    refused(
        call,
        decision,
        format!(
            "approval request `{}` was denied by `{who}`{comment}; the call was not made",
            request.id
        ),
    )
}

/// Use an approval (once), write that down, and ask policy again with it: the policy the
/// call started under and, if a reload replaced it while the call waited, the current one
/// too (an approval never outlives a policy change that now refuses the call).
async fn use_approval(
    state: &State,
    policy: &Policy,
    call: Call,
    decision: Decision,
    granted: Request,
    context: &RequestContext<RoleServer>,
) -> Outcome {
    // A caller that has gone never uses an approval: it stays for the call made next.
    if context.ct.is_cancelled() {
        let message = format!(
            "cancelled before approval request `{}` was used; it stays approved for the identical call made next",
            granted.id
        );
        return refused(call, decision, message);
    }
    let used = match state.approvals.consume(&granted.id, now_ms()).await {
        Ok(r) => r,
        Err(ApprovalError::Closed {
            id,
            status: "executed",
        }) => {
            let message = format!(
                "approval request `{id}` was already used by an identical call; an approval is good for one call, so ask again"
            );
            return refused(call, decision, message);
        }
        Err(e) => return refused(call, decision, e.to_string()),
    };
    if let Err(e) = state.audit.approval(&used, "executed", None, None).await {
        return refused(call, decision, e.to_string());
    }
    let permitted = policy.authorize(call, Some(&used))?;
    // The policy now, which may have been reloaded while the call waited: a second,
    // deliberate snapshot, since an approval never outranks the current policy.
    let latest = state.current();
    if std::ptr::eq(latest.policy.as_ref(), policy) {
        return Ok(permitted);
    }
    match latest
        .policy
        .authorize(permitted.call().clone(), Some(&used))
    {
        Ok(_) => Ok(permitted),
        Err(r) => refused(
            r.call,
            r.decision,
            format!(
                "the policy was reloaded while this call waited for approval and now refuses it: {}",
                r.message
            ),
        ),
    }
}

fn new_request(now: &Snapshot, call: &Call, decision: &Decision) -> NewRequest {
    let args = Value::Object(call.args.clone());
    // The principal may confirm their own agent's call where policy says `confirm`.
    let confirm = |in_client| {
        call.caller
            .principal
            .clone()
            .map(|by| Confirm { by, in_client })
    };
    // The owner's quorum, timeout and approvers count only when their rule applies.
    let rule = call.tool.approval.as_deref().filter(|r| r.applies(&args));
    NewRequest {
        call_id: call.id.clone(),
        session: call.caller.session.clone(),
        agent: call.caller.agent().to_string(),
        chain: call.caller.chain().into_iter().map(String::from).collect(),
        intent: call.intent.clone(),
        intent_redacted: call.intent_redacted,
        server: call.tool.server.clone(),
        tool: call.tool.tool.clone(),
        tier: call.tool.tier.to_string(),
        args_digest: digest::canonical(&args),
        args_display: redacted(args, &call.tool.redact),
        quorum: rule.map_or(1, |r| r.quorum),
        timeout: rule
            .and_then(|r| r.timeout)
            .unwrap_or(now.config.live.approval.timeout),
        approvers: rule.and_then(|r| r.approvers.clone()),
        reason: decision.flow.as_ref().and(decision.reason.clone()),
        task: call.caller.task.clone(),
        confirm: match decision.effect {
            Effect::Confirm => confirm(false),
            Effect::ConfirmInClient => confirm(true),
            Effect::Allow | Effect::Deny | Effect::Approve => None,
        },
    }
}

impl State {
    /// The state store, for what sessions have done, while flow rules or budgets read it
    /// (with none, a session's record stays in this process).
    pub(super) fn flow_store(&self) -> Option<&crate::store::Store> {
        Some(&*self.store).filter(|_| self.current().policy.has_flows())
    }

    /// Close every pending request whose time is up, each with an audit record.
    pub async fn expire_approvals(&self) {
        let expired = match self.approvals.expire_due(now_ms()).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "cannot expire approval requests");
                return;
            }
        };
        for r in expired {
            if let Err(e) = self.audit.approval(&r, "expired", None, None).await {
                tracing::error!(approval = %r.id, error = %e, "an expired approval request could not be audited");
            }
        }
    }

    /// Whether `approver` may decide `request` on `object`: the `approve` permission.
    /// The principal of a call that asks for their confirmation may decide it too.
    pub fn may_approve(&self, approver: &str, object: &str, request: &Request) -> bool {
        if request.confirmable_by(approver, Channel::Approvals) {
            return true;
        }
        let policy = self.current().policy.clone();
        policy.may_approve(approver, object)
            && request
                .call
                .approvers
                .as_deref()
                .is_none_or(|who| policy.is_or_has_role(approver, who))
    }

    /// An approver's decision on a request, checked against every rule (separation of
    /// duties, `approve` permission, one verdict per approver, still pending) and audited
    /// whether it counts or not.
    pub async fn decide_approval(
        &self,
        id: &str,
        approver: &str,
        approve: bool,
        comment: Option<String>,
    ) -> Result<Request, ApprovalError> {
        let request = self.approvals.get(id).await?;
        // The principal confirming (or refusing) their own agent's call, signed in with
        // their own approver credential.
        if request.confirmable_by(approver, Channel::Approvals) {
            return self
                .confirm(id, approver, approve, comment, Channel::Approvals)
                .await;
        }
        let object = format!("{}/{}", request.call.server, request.call.tool);
        let policy = self.current().policy.clone();
        let permitted = policy.may_approve(approver, &object);
        let verdict = Verdict {
            approver: approver.to_string(),
            approve,
            comment,
            at: now_ms(),
            confirmed: None,
        };
        let result = match request.call.approvers.as_deref() {
            Some(role) if permitted && !policy.is_or_has_role(approver, role) => {
                Err(ApprovalError::NotInRole {
                    approver: approver.into(),
                    role: role.into(),
                    object,
                })
            }
            _ => {
                self.approvals
                    .decide(id, verdict, permitted, now_ms())
                    .await
            }
        };
        let (record, event, error) = match &result {
            Ok(r) => (r.clone(), r.status.as_str(), None),
            Err(e) => (
                self.approvals.get(id).await?,
                "refused-decision",
                Some(e.to_string()),
            ),
        };
        let event = if event == "pending" {
            if approve { "approved-partly" } else { "denied" }
        } else {
            event
        };
        self.audit
            .approval(&record, event, Some(approver), error.as_deref())
            .await
            .map_err(|e| ApprovalError::Store(e.to_string()))?;
        result
    }
}
