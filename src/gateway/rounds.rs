//! A 2026-07-28 caller's call in rounds. Such a client cannot be sent a request: what
//! the gateway or the upstream asks it during a call comes back as the call's answer
//! (an `InputRequiredResult`: the questions, and a `requestState`), and the client
//! answers by making the identical call again with that state and its answers. The state
//! is sealed by the gateway (see [`crate::seal`]) and bound to the caller's chain and the
//! exact call; it names either an approval request the principal is asked to confirm
//! (see `confirm`), or a forwarded call whose upstream is waiting for an answer.
//!
//! A forwarded call runs in a task of its own for such a caller: its upstream's
//! questions are decided and audited as for any caller (see `asks`), then handed to
//! whichever round of the call is waiting, which parks the call and answers the client
//! with them. The next round takes the call out, gives the upstream its answers and waits
//! again, for the result or the next question. The task writes the outcome record when
//! the upstream answers, whoever is waiting; a call no round takes up within the call
//! timeout is let go: the upstream is told its question will not be answered.

#![allow(deprecated)] // sampling and roots are deprecated by SEP-2577 but still relayed

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::model::{
    CallToolResponse, ClientResult, CreateMessageResult, ElicitResult, InputRequests,
    InputRequiredResult, InputResponses, ListRootsResult, ServerRequest,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use tokio::sync::{mpsc, oneshot};

use super::answer::Failure;
use super::{Snapshot, State};
use crate::approval::now_ms;
use crate::audit::Attested;
use crate::policy::Call;
use crate::seal::SealError;
use crate::upstream::{Ask, AskKind};

/// What a sealed state is for (the first line of what it is bound to).
const PURPOSE: &str = "mcp-warden/rounds/1";
/// The key of a question in `inputRequests` when the upstream gave it none (a 2025-11-25
/// upstream's request).
const UPSTREAM: &str = "upstream";
/// The most calls parked at once; past it, an upstream's question is refused.
const MAX_PARKED: usize = 10_000;

/// What an opened state names.
pub enum Carried {
    /// The approval request whose principal was asked to confirm.
    Approval(String),
    /// A forwarded call whose upstream waits for an answer.
    Parked(String),
}

/// What a state is bound to: its purpose and the call's binding (tool, exact arguments,
/// caller chain).
fn bound(binding: &str) -> Vec<u8> {
    format!("{PURPOSE}\n{binding}").into_bytes()
}

/// Seal `carried` for the call with `binding`, good until `until` (ms).
pub fn seal(
    state: &State,
    binding: &str,
    carried: &Carried,
    until: u64,
) -> Result<String, SealError> {
    let payload = match carried {
        Carried::Approval(id) => format!("approval:{id}"),
        Carried::Parked(id) => format!("parked:{id}"),
    };
    state
        .sealer
        .seal(payload.as_bytes(), &bound(binding), until)
}

/// Open the `requestState` a call carries back (once: a state is good for one round).
pub fn open(state: &State, binding: &str, sealed: &str) -> Result<Carried, SealError> {
    let payload = state.sealer.open(sealed, &bound(binding), now_ms())?;
    let payload = String::from_utf8(payload).map_err(|_| SealError::Foreign)?;
    match payload.split_once(':') {
        Some(("approval", id)) => Ok(Carried::Approval(id.to_string())),
        Some(("parked", id)) => Ok(Carried::Parked(id.to_string())),
        _ => Err(SealError::Foreign),
    }
}

/// What the call's task tells the round waiting on it.
pub enum Event {
    /// The upstream asks the caller of this call something.
    Asks(Ask, Box<Call>),
    /// The call is done: the caller's answer (its outcome already audited, or its task
    /// kept).
    Done(Result<CallToolResponse, ErrorData>),
}

/// A call waiting for its caller's next round.
pub struct Parked {
    events: mpsc::Receiver<Event>,
    /// The questions of this round, each with where its answer goes.
    questions: Vec<Question>,
    binding: String,
}

/// One question put to the caller.
struct Question {
    /// Its key in `inputRequests` (the upstream's own, when it gave one).
    key: String,
    kind: AskKind,
    request: ServerRequest,
    reply: oneshot::Sender<Result<ClientResult, ErrorData>>,
}

/// The parked calls, by id.
#[derive(Default)]
pub struct Rounds {
    parked: Mutex<HashMap<String, Parked>>,
}

impl Rounds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.parked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Take the parked call `id` out (it is then this round's).
    pub fn take(&self, id: &str) -> Option<Parked> {
        self.lock().remove(id)
    }
}

/// The first round of a forwarded call: start its task and wait for the result or the
/// upstream's first question.
pub async fn first(
    state: &Arc<State>,
    now: &Snapshot,
    attested: Attested,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    let (tell, events) = mpsc::channel(4);
    let (asks, mut asked) = mpsc::channel(4);
    let call = attested.permitted().call();
    // The call outlives this round: it ends with its upstream's answer.
    let cancelled = tokio_util::sync::CancellationToken::new();
    let downstream = super::asks::downstream(call, context, asks, cancelled);
    let (task_state, task_now) = (state.clone(), now.clone());
    tokio::spawn(async move {
        let result = {
            let forwarded =
                super::call::forward_only(&task_state, &task_now, &attested, downstream);
            tokio::pin!(forwarded);
            loop {
                tokio::select! {
                    result = &mut forwarded => break result,
                    Some(ask) = asked.recv() => {
                        // Decided by the round that puts it, with that round's capabilities.
                        let call = Box::new(attested.permitted().call().clone());
                        if let Err(mpsc::error::SendError(Event::Asks(ask, _))) =
                            tell.send(Event::Asks(ask, call)).await
                        {
                            let ended = "the call this request belonged to has ended";
                            let _ = ask.reply.send(Err(Failure::ClientCannot(ended.into()).into()));
                        }
                    }
                }
            }
        };
        let answer = super::call::finish(&task_state, attested, result).await;
        let _ = tell.send(Event::Done(answer)).await;
    });
    wait(state, None, events, context).await
}

/// A later round: give the upstream the caller's answer, then wait again.
pub async fn resume(
    state: &Arc<State>,
    parked: Parked,
    responses: Option<&InputResponses>,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    let Parked {
        events,
        questions,
        binding,
    } = parked;
    // Each question answered goes to the upstream; one without a usable answer is asked
    // again, under a fresh state.
    let mut open = Vec::new();
    for q in questions {
        let answer = responses
            .and_then(|r| r.get(&q.key))
            .and_then(|v| result_of(q.kind, v.clone()));
        match answer {
            Some(answer) => {
                let _ = q.reply.send(Ok(answer));
            }
            None => open.push(q),
        }
    }
    if !open.is_empty() {
        let parked = Parked {
            events,
            questions: open,
            binding,
        };
        return park(state, parked);
    }
    wait(state, Some(binding), events, context).await
}

/// Wait for the call's result or its upstream's next question; a question is decided,
/// then the call is parked and the caller asked. The call's binding (what its state is
/// sealed to) is worked out the first time a question comes, when not known yet.
async fn wait(
    state: &Arc<State>,
    binding: Option<String>,
    mut events: mpsc::Receiver<Event>,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, ErrorData> {
    let mut questions = Vec::new();
    loop {
        match events.recv().await {
            Some(Event::Done(answer)) => return answer,
            Some(Event::Asks(ask, call)) => {
                // Decided and audited as for any caller; a refusal goes to the upstream.
                let request = &ask.request;
                let more = ask.more;
                match super::asks::decide(state, &call, context, ask.kind, request).await {
                    Err(e) => {
                        let _ = ask.reply.send(Err(e));
                    }
                    Ok(()) => questions.push(Question {
                        key: ask.key.unwrap_or_else(|| UPSTREAM.to_string()),
                        kind: ask.kind,
                        request: ask.request,
                        reply: ask.reply,
                    }),
                }
                // The questions of one round go to the caller together.
                if more || questions.is_empty() {
                    continue;
                }
                let binding = binding.unwrap_or_else(|| crate::policy::binding_of(&call));
                let parked = Parked {
                    events,
                    questions,
                    binding,
                };
                return park(state, parked);
            }
            None => {
                return Err(
                    Failure::ClientFailed("the call ended without an answer".into()).into(),
                );
            }
        }
    }
}

/// Park the call and answer the caller with the upstream's questions.
fn park(state: &Arc<State>, parked: Parked) -> Result<CallToolResponse, ErrorData> {
    let timeout = state.current().config.boot.call_timeout;
    let until = now_ms().saturating_add(timeout.as_millis() as u64);
    let id = uuid::Uuid::new_v4().to_string();
    let asks: Option<InputRequests> = parked
        .questions
        .iter()
        .map(|q| Some((q.key.clone(), crate::upstream::question_of(&q.request)?)))
        .collect();
    let sealed = seal(state, &parked.binding, &Carried::Parked(id.clone()), until);
    let full = state.rounds.lock().len() >= MAX_PARKED;
    let (Some(asks), Ok(sealed), false) = (asks, sealed, full) else {
        let why = match full {
            true => "too many calls are waiting for their callers' answers; try again shortly",
            false => "mcp-warden could not put this request to its 2026-07-28 caller",
        };
        for q in parked.questions {
            let _ = q.reply.send(Err(Failure::ClientCannot(why.into()).into()));
        }
        return Err(Failure::ClientFailed(why.into()).into());
    };
    state.rounds.lock().insert(id.clone(), parked);
    // A call no round takes up in time is let go: dropping it tells the upstream.
    let rounds = Arc::downgrade(state);
    tokio::spawn(async move {
        tokio::time::sleep(timeout).await;
        if let Some(state) = rounds.upgrade() {
            drop(state.rounds.take(&id));
        }
    });
    Ok(CallToolResponse::InputRequired(InputRequiredResult::new(
        Some(asks),
        Some(sealed),
    )))
}

/// The caller's answer as the result the upstream's request expects.
fn result_of(kind: AskKind, value: serde_json::Value) -> Option<ClientResult> {
    match kind {
        AskKind::Sampling => serde_json::from_value::<CreateMessageResult>(value)
            .ok()
            .map(|r| ClientResult::CreateMessageResult(Box::new(r))),
        AskKind::Elicitation => serde_json::from_value::<ElicitResult>(value)
            .ok()
            .map(ClientResult::ElicitResult),
        AskKind::Roots => serde_json::from_value::<ListRootsResult>(value)
            .ok()
            .map(ClientResult::ListRootsResult),
    }
}
