//! Tasks (the `io.modelcontextprotocol/tasks` extension of 2026-07-28) through the
//! gateway. A call whose caller can take a task may be answered by its upstream with one
//! (`resultType: "task"`): the call was decided and its attempt audited like any other;
//! the caller polls `tasks/get`, answers what the task asks with `tasks/update`, and may
//! `tasks/cancel` it.
//!
//! - The caller knows the task by the gateway's name for it, `SERVER+ID` (the upstream's
//!   id after its upstream's; ids cannot contain `+`, so the first one splits).
//! - A task is bound to the chain that created it: `tasks/get`, `tasks/update` and
//!   `tasks/cancel` from anyone else are refused as if the task did not exist (so its
//!   existence is not told either), and audited.
//! - What a task asks its caller (its `inputRequests`) is decided and audited as any
//!   question an upstream puts during a call, once per question; the caller's answers go
//!   on only for questions it was shown. A question policy refuses ends the task: it is
//!   cancelled upstream and its caller told why.
//! - The task's end (completed, failed, cancelled) is the call's outcome record, written
//!   once, when the gateway first sees it: in its caller's `tasks/get`, or in the gateway's
//!   own poll of the upstream (at the upstream's suggested interval, 1–30 s), which goes
//!   on until the task ends or its time to live does, so the outcome is audited even when
//!   the caller never asks again. A completed task's result is the data its caller gets
//!   (flow rules' labels are acquired when the caller gets it).
//!
//! The tasks known here are this process's (a restart forgets them: their calls'
//! outcomes stay unknown in the audit log, as for any call a crash interrupts).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rmcp::model::{CreateTaskResult, DetailedTask, GetTaskResult, InputResponses, TaskPayload};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Map, Value};

use super::State;
use super::answer::Failure;
use crate::audit::{Attested, Outcome};
use crate::identity::Caller;
use crate::manifest::Tier;
use crate::policy::{Access, AccessKind, Call, Decision, Effect, RefusedAccess};
use crate::upstream::{AskKind, Offers, TaskOp};

/// The most tasks kept at once; past it, the oldest finished one is forgotten first, and
/// a new task is refused when none has finished.
const MAX_TASKS: usize = 10_000;
/// How long a task is kept when its upstream gives it no time to live (or a longer one).
const KEEP_AT_MOST: Duration = Duration::from_secs(24 * 60 * 60);

/// The tasks callers created through this gateway, by the gateway's name for them.
#[derive(Default)]
pub struct Tasks {
    by_id: Mutex<HashMap<String, Arc<Kept>>>,
}

impl Tasks {
    /// How many are kept.
    pub fn count(&self) -> usize {
        self.by_id.lock().map_or(0, |t| t.len())
    }
}

/// One task: its upstream's id for it, and its call (whose caller's chain alone may use
/// it, and whose tool's upstream runs it).
struct Kept {
    upstream_id: String,
    call: Call,
    /// The call's attested permit, taken when its outcome is written.
    attested: Mutex<Option<Attested>>,
    /// The questions (`inputRequests` keys) decided and shown to the caller.
    shown: Mutex<HashSet<String>>,
    until: Instant,
}

impl Kept {
    /// The upstream that runs it.
    fn server(&self) -> &str {
        &self.call.tool.server
    }

    fn done(&self) -> bool {
        self.attested
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }
}

impl Tasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Kept>>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The task `id`, when it exists and `caller`'s chain created it.
    fn of(&self, caller: &Caller, id: &str) -> Result<Arc<Kept>, Failure> {
        let kept = self.lock().get(id).cloned();
        match kept {
            Some(k) if k.until > Instant::now() && k.call.caller.chain() == caller.chain() => Ok(k),
            _ => Err(Failure::Malformed(format!(
                "unknown task `{id}`: a task is known only to the caller that created it, until its time to live ends"
            ))),
        }
    }

    /// Keep `kept` under `id`, making room when full.
    fn keep(&self, id: String, kept: Arc<Kept>) -> Result<(), Arc<Kept>> {
        let mut all = self.lock();
        let now = Instant::now();
        all.retain(|_, k| k.until > now);
        if all.len() >= MAX_TASKS {
            let oldest = all
                .iter()
                .filter(|(_, k)| k.done())
                .min_by_key(|(_, k)| k.until)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(old) => drop(all.remove(&old)),
                None => return Err(kept),
            }
        }
        all.insert(id, kept);
        Ok(())
    }
}

/// The gateway's name for `server`'s task `id`.
fn outer(server: &str, id: &str) -> String {
    format!("{server}+{id}")
}

/// An upstream answered `attested`'s call with a task: keep it, and give the caller the
/// task under the gateway's name. A task that cannot be kept is cancelled upstream and
/// its outcome written now.
pub async fn created(
    state: &Arc<State>,
    attested: Attested,
    mut task: CreateTaskResult,
) -> Result<CreateTaskResult, ErrorData> {
    let call = attested.permitted().call().clone();
    let server = call.tool.server.clone();
    let upstream_id = task.task.task_id.clone();
    let ttl = task.task.ttl_ms.map(Duration::from_millis);
    let keep_for = ttl.map_or(KEEP_AT_MOST, |t| t.min(KEEP_AT_MOST));
    let id = outer(&server, &upstream_id);
    let kept = Arc::new(Kept {
        upstream_id: upstream_id.clone(),
        call,
        attested: Mutex::new(Some(attested)),
        shown: Mutex::default(),
        until: Instant::now() + keep_for,
    });
    if let Err(kept) = state.tasks.keep(id.clone(), kept.clone()) {
        let why =
            "too many tasks are running through mcp-warden; try again when some have finished";
        let _ = state
            .upstreams
            .task(&server, TaskOp::Cancel(upstream_id), Offers::default())
            .await;
        end(state, &kept, Outcome::Unknown { reason: why.into() }).await;
        return Err(Failure::Unavailable(why).into());
    }
    let poll = task
        .task
        .poll_interval_ms
        .unwrap_or(5_000)
        .clamp(1_000, 30_000);
    watch(state, kept, Duration::from_millis(poll));
    task.task.task_id = id;
    Ok(task)
}

/// `tasks/get`: the task's state, its questions decided, its end audited.
pub async fn get(
    state: &State,
    caller: &Caller,
    id: &str,
    context: &RequestContext<RoleServer>,
) -> Result<GetTaskResult, ErrorData> {
    let kept = owned(state, caller, id, AccessKind::TaskGet).await?;
    let got = state
        .upstreams
        .task(
            kept.server(),
            TaskOp::Get(kept.upstream_id.clone()),
            super::asks::offers(context),
        )
        .await
        .map_err(|e| ErrorData::from(Failure::Upstream(e)))?;
    let Some(mut got) = got else {
        return Err(Failure::Unrelayable(
            "the upstream's answer to tasks/get is not a task".into(),
        )
        .into());
    };
    got.task.task.task_id = id.to_string();
    let payload = std::mem::replace(&mut got.task.payload, TaskPayload::Working);
    let payload = match payload {
        TaskPayload::InputRequired { input_requests } => {
            match asked(state, &kept, input_requests, context).await {
                Ok(shown) => TaskPayload::InputRequired {
                    input_requests: shown,
                },
                Err(refused) => {
                    // A question policy refuses ends the task: its outcome is written
                    // first, so that no poll sees it cancelled and calls it that.
                    let reason = format!("mcp-warden cancelled the task: {}", refused.message);
                    end(state, &kept, Outcome::Unknown { reason }).await;
                    let op = TaskOp::Cancel(kept.upstream_id.clone());
                    let _ = state
                        .upstreams
                        .task(kept.server(), op, super::asks::offers(context))
                        .await;
                    TaskPayload::Failed {
                        error: error_object(&refused),
                    }
                }
            }
        }
        other => {
            if let Some(outcome) = terminal(&other) {
                // The result reaches its caller now: its data labels come with it.
                let got = matches!(
                    outcome,
                    Outcome::Result {
                        is_error: false,
                        ..
                    }
                );
                if got
                    && let Err(e) = state
                        .sessions
                        .acquired(state.flow_store(), &kept.call)
                        .await
                {
                    tracing::warn!(
                        "the labels task {} brought its session are not in the state database ({e}): another replica serving it will not see them",
                        kept.call.id
                    );
                }
                end(state, &kept, outcome).await;
            }
            other
        }
    };
    got.task = DetailedTask::new(got.task.task, payload);
    Ok(got)
}

/// `tasks/update`: the caller's answers to the questions it was shown go to the upstream.
pub async fn update(
    state: &State,
    caller: &Caller,
    id: &str,
    responses: InputResponses,
    context: &RequestContext<RoleServer>,
) -> Result<(), ErrorData> {
    let kept = owned(state, caller, id, AccessKind::TaskUpdate).await?;
    let shown = kept
        .shown
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let responses: InputResponses = responses
        .into_iter()
        .filter(|(key, _)| shown.contains(key))
        .collect();
    let op = TaskOp::Update(kept.upstream_id.clone(), responses);
    acknowledged(state, &kept, op, context).await
}

/// `tasks/cancel`: passed on for the caller that created the task.
pub async fn cancel(
    state: &State,
    caller: &Caller,
    id: &str,
    context: &RequestContext<RoleServer>,
) -> Result<(), ErrorData> {
    let kept = owned(state, caller, id, AccessKind::TaskCancel).await?;
    let op = TaskOp::Cancel(kept.upstream_id.clone());
    acknowledged(state, &kept, op, context).await
}

/// Send `op` on `kept`'s upstream for its caller, whose answer is an acknowledgement.
async fn acknowledged(
    state: &State,
    kept: &Kept,
    op: TaskOp,
    context: &RequestContext<RoleServer>,
) -> Result<(), ErrorData> {
    let sent = state
        .upstreams
        .task(kept.server(), op, super::asks::offers(context))
        .await;
    sent.map(drop).map_err(|e| Failure::Upstream(e).into())
}

/// The task `id` for its own caller; anyone else's request is refused as unknown, and
/// audited.
async fn owned(
    state: &State,
    caller: &Caller,
    id: &str,
    kind: AccessKind,
) -> Result<Arc<Kept>, ErrorData> {
    match state.tasks.of(caller, id) {
        Ok(kept) => Ok(kept),
        Err(failure) => {
            let (server, _) = id.split_once('+').unwrap_or(("", id));
            let refused = RefusedAccess {
                access: Access {
                    caller: caller.clone(),
                    kind,
                    server: server.to_string(),
                    name: id.to_string(),
                    tier: Tier::Read,
                    args: Map::new(),
                },
                decision: Decision {
                    effect: Effect::Deny,
                    rule: None,
                    verdicts: Vec::new(),
                    reason: Some("no task of this caller has that id".into()),
                    flow: None,
                },
                message: "no task of this caller has that id".into(),
            };
            if let Err(e) = state.audit.access_refused(&refused).await {
                tracing::error!(error = %e, "a refused task request could not be audited");
            }
            Err(failure.into())
        }
    }
}

/// The task's questions this caller may be asked: each decided (and audited) the first
/// time it is seen; the first one refused is the error.
async fn asked(
    state: &State,
    kept: &Kept,
    questions: rmcp::model::InputRequests,
    context: &RequestContext<RoleServer>,
) -> Result<rmcp::model::InputRequests, ErrorData> {
    let seen = kept
        .shown
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for (key, question) in &questions {
        if seen.contains(key) {
            continue;
        }
        let request = crate::upstream::request_of(question);
        let Some((kind, request)) = request.and_then(|r| Some((AskKind::of(&r)?, r))) else {
            return Err(Failure::Unrelayable(
                "a task asked something mcp-warden cannot relay".into(),
            )
            .into());
        };
        super::asks::decide(state, &kept.call, context, kind, &request).await?;
        kept.shown
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone());
    }
    Ok(questions)
}

/// The JSON-RPC error object of a refusal, for a failed task.
fn error_object(error: &ErrorData) -> Map<String, Value> {
    match serde_json::to_value(error) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// The outcome of a task that has ended; `None` while it runs or waits for input.
fn terminal(payload: &TaskPayload) -> Option<Outcome> {
    match payload {
        TaskPayload::Completed { result } => Some(Outcome::Result {
            is_error: result.get("isError") == Some(&Value::Bool(true)),
            digest: crate::digest::canonical(&Value::Object(result.clone())),
        }),
        TaskPayload::Failed { error } => {
            let message = error.get("message").and_then(Value::as_str).unwrap_or("?");
            let reason = format!("the task failed: {message}");
            Some(Outcome::Unknown { reason })
        }
        TaskPayload::Cancelled => Some(Outcome::Unknown {
            reason: "the task was cancelled".into(),
        }),
        _ => None,
    }
}

/// Follow a kept task upstream until it ends, so that its outcome is written even when
/// its caller stops asking: every `poll` (the upstream's suggestion, 1–30 s), until the
/// outcome is written or the task's time to live ends.
fn watch(state: &Arc<State>, kept: Arc<Kept>, poll: Duration) {
    let state = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(poll).await;
            let Some(state) = state.upgrade() else {
                return;
            };
            if kept.done() {
                return;
            }
            if Instant::now() >= kept.until {
                let reason = "the task's time to live ended before mcp-warden saw it end";
                end(
                    &state,
                    &kept,
                    Outcome::Unknown {
                        reason: reason.into(),
                    },
                )
                .await;
                return;
            }
            let op = TaskOp::Get(kept.upstream_id.clone());
            let got = state
                .upstreams
                .task(kept.server(), op, Offers::default())
                .await;
            if let Ok(Some(got)) = got
                && let Some(outcome) = terminal(&got.task.payload)
            {
                end(&state, &kept, outcome).await;
                return;
            }
        }
    });
}

/// Write the task's call's outcome, once.
async fn end(state: &State, kept: &Kept, outcome: Outcome) {
    let attested = kept
        .attested
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let Some(attested) = attested else {
        return;
    };
    if let Err(e) = state.audit.outcome(&attested, &outcome).await {
        let call = &kept.call.id;
        tracing::error!(call = %call, error = %e, "the outcome of a task could not be audited");
    }
}
