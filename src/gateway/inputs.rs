//! What a 2026-07-28 upstream asks during a `prompts/get` or `resources/read`: it answers
//! with an `InputRequiredResult` (its questions and its own `requestState`) instead of
//! the prompt or the contents. Each question is decided and audited as any question an
//! upstream puts during a tool call (policy objects `server/elicitation/NAME`, … with the
//! prompt's name or the resource's URI). Then:
//!
//! - a 2026-07-28 caller gets the questions, keyed as the upstream keyed them, under the
//!   gateway's own `requestState`: sealed (see [`crate::seal`]), bound to the caller's
//!   chain and the exact request, good for one round, holding the upstream's state
//!   (which never leaves the gateway) and the keys asked. It makes the request again with
//!   its answers and that state; only answers to the keys asked go on, with the
//!   upstream's state. A state that is changed, replayed, expired or another's is
//!   refused (`-32602`), audited, and nothing reaches the upstream.
//! - an older caller is asked by requests, here, and the upstream asked again with its
//!   answers, for as many rounds as the upstream asks (at most ten).
//!
//! Nothing is kept between rounds: the state the caller carries is all there is.

use rmcp::model::{GetPromptResponse, InputRequiredResult, InputResponses, ReadResourceResponse};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::answer::Failure;
use super::{Snapshot, State};
use crate::approval::now_ms;
use crate::audit::AttestedAccess;
use crate::policy::{Access, Decision, Effect, RefusedAccess};
use crate::upstream::{AskKind, Round, UpstreamError, Upstreams};

/// What a sealed state is for (the first line of what it is bound to).
const PURPOSE: &str = "mcp-warden/inputs/1";
/// The most rounds of questions one request may take.
const MAX_ROUNDS: usize = 10;

/// A request its upstream may answer with questions.
pub trait Asking: Sized {
    /// One round of it upstream.
    fn send<'a>(
        upstreams: &'a Upstreams,
        attested: &'a AttestedAccess,
        round: Round,
    ) -> impl Future<Output = Result<Self, UpstreamError>> + Send + 'a;
    /// The upstream's questions, or the answer itself.
    fn asked(self) -> Result<Self, InputRequiredResult>;
    /// The gateway's questions for its caller.
    fn asks(asks: InputRequiredResult) -> Self;
}

impl Asking for GetPromptResponse {
    fn send<'a>(
        upstreams: &'a Upstreams,
        attested: &'a AttestedAccess,
        round: Round,
    ) -> impl Future<Output = Result<Self, UpstreamError>> + Send + 'a {
        upstreams.get_prompt(attested, round)
    }
    fn asked(self) -> Result<Self, InputRequiredResult> {
        match self {
            GetPromptResponse::InputRequired(asks) => Err(asks),
            done => Ok(done),
        }
    }
    fn asks(asks: InputRequiredResult) -> Self {
        GetPromptResponse::InputRequired(asks)
    }
}

impl Asking for ReadResourceResponse {
    fn send<'a>(
        upstreams: &'a Upstreams,
        attested: &'a AttestedAccess,
        round: Round,
    ) -> impl Future<Output = Result<Self, UpstreamError>> + Send + 'a {
        upstreams.read_resource(attested, round)
    }
    fn asked(self) -> Result<Self, InputRequiredResult> {
        match self {
            ReadResourceResponse::InputRequired(asks) => Err(asks),
            done => Ok(done),
        }
    }
    fn asks(asks: InputRequiredResult) -> Self {
        ReadResourceResponse::InputRequired(asks)
    }
}

/// What the gateway's state holds: the upstream's own state and the keys it asked.
#[derive(Serialize, Deserialize)]
struct Carried {
    upstream: Option<String>,
    keys: Vec<String>,
}

/// One request (`access`, decided and audited here) in rounds. `answers` and `sealed` are what the caller brought back from the last round,
/// if anything: the state is opened before anything is decided.
pub async fn rounds<R: Asking>(
    state: &State,
    now: &Snapshot,
    access: Access,
    answers: Option<InputResponses>,
    sealed: Option<String>,
    context: &RequestContext<RoleServer>,
) -> Result<R, ErrorData> {
    let binding = binding(&access);
    let offers = super::asks::offers(context);
    let mut round = Round {
        offers,
        ..Round::default()
    };
    if let Some(sealed) = sealed {
        let carried = match open(state, &binding, &sealed) {
            Ok(c) => c,
            Err(e) => return Err(refuse(state, access, e.to_string()).await),
        };
        let answers = answers.unwrap_or_default();
        let asked = |key: &String| carried.keys.contains(key);
        round.answers = Some(answers.into_iter().filter(|(k, _)| asked(k)).collect());
        round.state = carried.upstream;
    }
    let attested = super::attest(state, now, access).await?;
    let access = attested.access();
    let asker = (access.server.as_str(), access.name.as_str());
    for _ in 0..MAX_ROUNDS {
        let sent = R::send(&state.upstreams, &attested, round.clone()).await;
        let asked = match sent
            .map_err(|e| ErrorData::from(Failure::Upstream(e)))?
            .asked()
        {
            Ok(done) => return Ok(done),
            Err(asked) => asked,
        };
        let questions = asked.input_requests.clone().unwrap_or_default();
        let mut requests = Vec::new();
        for (key, question) in &questions {
            let request = crate::upstream::request_of(question).ok_or_else(cannot_relay)?;
            let kind = AskKind::of(&request).ok_or_else(cannot_relay)?;
            super::asks::decide_for(state, &access.caller, asker, context, kind, &request).await?;
            requests.push((key.clone(), request));
        }
        if super::era::modern(context) {
            let carried = Carried {
                upstream: asked.request_state,
                keys: questions.keys().cloned().collect(),
            };
            let sealed = seal(state, &binding, &carried).map_err(|e| {
                ErrorData::from(Failure::Unrelayable(format!(
                    "cannot put the questions: {e}"
                )))
            })?;
            return Ok(R::asks(InputRequiredResult::new(
                Some(questions),
                Some(sealed),
            )));
        }
        // An older caller is asked by requests, and the upstream again with the answers.
        let mut answers = InputResponses::new();
        for (key, request) in requests {
            let answer = context.peer.send_request(request).await.map_err(|e| {
                let message = format!("the calling client did not answer: {e}");
                ErrorData::from(Failure::ClientFailed(message))
            })?;
            answers.insert(key, serde_json::to_value(answer).unwrap_or_default());
        }
        round = Round {
            answers: Some(answers),
            state: asked.request_state,
            offers,
        };
    }
    let message = format!("it asked for input more than {MAX_ROUNDS} times for one request");
    Err(Failure::Upstream(UpstreamError::Refused {
        server: access.server.clone(),
        code: rmcp::model::ErrorCode::INTERNAL_ERROR,
        message,
    })
    .into())
}

/// What a state is bound to: its purpose, the method and object, the caller's chain and
/// the exact arguments.
fn binding(access: &Access) -> Vec<u8> {
    let args = crate::digest::canonical(&Value::Object(access.args.clone()));
    let chain = access.caller.chain().join(">");
    let (method, object) = (access.kind.method(), access.object());
    format!("{PURPOSE}\n{method}\n{object}\n{chain}\n{args}").into_bytes()
}

fn seal(
    state: &State,
    binding: &[u8],
    carried: &Carried,
) -> Result<String, crate::seal::SealError> {
    let timeout = state.current().config.boot.call_timeout;
    let until = now_ms().saturating_add(timeout.as_millis() as u64);
    let payload =
        serde_json::to_vec(carried).map_err(|e| crate::seal::SealError::Sealing(e.to_string()))?;
    state.sealer.seal(&payload, binding, until)
}

fn open(state: &State, binding: &[u8], sealed: &str) -> Result<Carried, crate::seal::SealError> {
    let payload = state.sealer.open(sealed, binding, now_ms())?;
    serde_json::from_slice(&payload).map_err(|_| crate::seal::SealError::Foreign)
}

/// Refuse a request whose state is not the gateway's for it: audited, nothing forwarded.
async fn refuse(state: &State, access: Access, why: String) -> ErrorData {
    let refused = RefusedAccess {
        access,
        decision: Decision {
            effect: Effect::Deny,
            rule: None,
            verdicts: Vec::new(),
            reason: Some(why.clone()),
            flow: None,
        },
        message: why.clone(),
    };
    if let Err(e) = state.audit.access_refused(&refused).await {
        tracing::error!(error = %e, "a refused request state could not be audited");
    }
    Failure::Malformed(why).into()
}

fn cannot_relay() -> ErrorData {
    Failure::Unrelayable("the upstream asked something mcp-warden cannot relay".into()).into()
}
