//! Requests an upstream sends the client (`sampling/createMessage`, `elicitation/create`,
//! `roots/list`), routed to the call they belong to. Over Streamable HTTP a request that
//! arrives on the response stream of one of our calls belongs to that call, whoever else
//! has calls in flight. Otherwise (stdio, or the standalone stream) MCP does not say
//! which call it belongs to, and an upstream connection is shared by every client: the
//! request goes to the one session whose calls to that upstream are in flight, and when
//! there is none, or more than one, it is refused rather than put to a client that may be
//! the wrong one. Deciding whether the caller may be asked is the gateway's job: an
//! [`Ask`] carries the request and the way to answer it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::{ClientResult, RequestId, ServerRequest};
use rmcp::service::InboundStreamOrigin;
use tokio::sync::{Notify, mpsc, oneshot};

/// How long a request that names one of our calls waits for that call's id to be known
/// (it is bound the moment the call has been handed to the connection).
const BINDING: Duration = Duration::from_secs(1);

/// What an upstream asks of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskKind {
    Sampling,
    Elicitation,
    Roots,
}

impl AskKind {
    pub fn of(request: &ServerRequest) -> Option<Self> {
        match request {
            ServerRequest::CreateMessageRequest(_) => Some(AskKind::Sampling),
            ServerRequest::ElicitRequest(_) => Some(AskKind::Elicitation),
            ServerRequest::ListRootsRequest(_) => Some(AskKind::Roots),
            // Pings are answered by the gateway; anything else is not relayed.
            _ => None,
        }
    }

    /// The MCP method.
    pub fn method(self) -> &'static str {
        match self {
            AskKind::Sampling => "sampling/createMessage",
            AskKind::Elicitation => "elicitation/create",
            AskKind::Roots => "roots/list",
        }
    }
}

/// Why an upstream's request was put to no client: the one place these become the
/// answer the upstream gets (the client-facing answers are `gateway::answer`'s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unasked {
    #[error("mcp-warden does not relay this request to clients")]
    NotRelayed,
    #[error(
        "mcp-warden relays {} only during a tools/call to this server, and none is in flight",
        .0.method()
    )]
    NoCall(AskKind),
    #[error(
        "mcp-warden cannot tell which of several clients with calls in flight this {} is for, so it asks none of them; retry when this server has one caller",
        .0.method()
    )]
    Ambiguous(AskKind),
    #[error("the call this request belonged to has ended")]
    Ended,
    #[error("the gateway's call table is unusable")]
    Unusable,
    #[error("the client answered with the wrong kind of result")]
    WrongResult,
}

impl From<Unasked> for ErrorData {
    fn from(why: Unasked) -> Self {
        let message = why.to_string();
        match why {
            // What the upstream asked cannot be put to a client now, or at all.
            Unasked::NotRelayed | Unasked::NoCall(_) | Unasked::Ambiguous(_) | Unasked::Ended => {
                ErrorData::invalid_request(message, None)
            }
            // The gateway or the client failed it.
            Unasked::Unusable | Unasked::WrongResult => ErrorData::internal_error(message, None),
        }
    }
}

/// One server-to-client request on its way to the caller, and where its answer goes.
pub struct Ask {
    pub kind: AskKind,
    pub request: ServerRequest,
    pub reply: oneshot::Sender<Result<ClientResult, ErrorData>>,
    /// The key a 2026-07-28 upstream gave the question (its `inputRequests` key), kept
    /// when the question goes on to a 2026-07-28 caller.
    pub key: Option<String>,
    /// Another question of the same round follows (a 2026-07-28 caller gets them
    /// together).
    pub more: bool,
}

/// Where a forwarded call takes the upstream's requests: its session and its channel.
#[derive(Clone, Debug)]
pub struct AskRoute {
    pub session: String,
    pub asks: mpsc::Sender<Ask>,
}

/// The calls in flight to each upstream that can take its requests.
#[derive(Default)]
pub struct Askers {
    next: AtomicU64,
    calls: Mutex<HashMap<String, Vec<InFlight>>>,
    /// Told when a call's request id becomes known.
    bound: Notify,
}

/// One call in flight: its route, and the id of our request to the upstream once known.
struct InFlight {
    id: u64,
    request: Option<RequestId>,
    route: AskRoute,
}

/// Forgets a call when it ends.
pub struct AskerGuard {
    askers: Arc<Askers>,
    server: String,
    id: u64,
}

impl AskerGuard {
    /// The call went out as `request`: what comes on its stream is its own.
    pub fn bind(&self, request: RequestId) {
        if let Ok(mut calls) = self.askers.calls.lock()
            && let Some(call) = calls
                .get_mut(&self.server)
                .and_then(|l| l.iter_mut().find(|c| c.id == self.id))
        {
            call.request = Some(request);
        }
        self.askers.bound.notify_waiters();
    }
}

impl Drop for AskerGuard {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.askers.calls.lock()
            && let Some(list) = calls.get_mut(&self.server)
        {
            list.retain(|c| c.id != self.id);
        }
    }
}

impl Askers {
    /// A call to `server` is in flight and takes its requests on `route`.
    pub fn register(self: &Arc<Self>, server: &str, route: AskRoute) -> AskerGuard {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut calls) = self.calls.lock() {
            calls.entry(server.to_string()).or_default().push(InFlight {
                id,
                request: None,
                route,
            });
        }
        AskerGuard {
            askers: self.clone(),
            server: server.to_string(),
            id,
        }
    }

    /// The call whose request to `server` was `request`, waiting a moment for its id to
    /// be bound; none when that call has ended.
    async fn owner(&self, server: &str, request: &RequestId) -> Result<AskRoute, Unasked> {
        let deadline = tokio::time::Instant::now() + BINDING;
        loop {
            // Subscribed before looking, so a binding made in between wakes it.
            let bound = self.bound.notified();
            {
                let calls = self.calls.lock().map_err(|_| Unasked::Unusable)?;
                let found = calls
                    .get(server)
                    .and_then(|l| l.iter().find(|c| c.request.as_ref() == Some(request)));
                if let Some(call) = found {
                    return Ok(call.route.clone());
                }
            }
            if tokio::time::timeout_at(deadline, bound).await.is_err() {
                return Err(Unasked::Ended);
            }
        }
    }

    /// The one session that can be asked on `server`'s behalf, or why there is none.
    fn route(&self, server: &str, kind: AskKind) -> Result<AskRoute, Unasked> {
        let calls = self.calls.lock().map_err(|_| Unasked::Unusable)?;
        let routes: Vec<&AskRoute> = calls
            .get(server)
            .map(|l| l.iter().map(|c| &c.route).collect())
            .unwrap_or_default();
        let first = routes.first().copied().cloned();
        match first {
            None => Err(Unasked::NoCall(kind)),
            Some(route) if routes.iter().all(|r| r.session == route.session) => Ok(route),
            Some(_) => Err(Unasked::Ambiguous(kind)),
        }
    }

    /// Put `request` to the client of the call it belongs to (by the stream it came on,
    /// `origin`, when it came on a call's) and wait for its answer (or the client's own
    /// error).
    pub async fn ask(
        &self,
        server: &str,
        request: ServerRequest,
        origin: Option<InboundStreamOrigin>,
    ) -> Result<ClientResult, ErrorData> {
        let kind = AskKind::of(&request).ok_or(Unasked::NotRelayed)?;
        let route = match &origin {
            Some(InboundStreamOrigin::OutboundRequest(id)) => self.owner(server, id).await,
            Some(InboundStreamOrigin::Unassociated) | None => self.route(server, kind),
        };
        let route = route.inspect_err(|e| {
            tracing::warn!(server = %server, method = kind.method(), reason = %e, "server-to-client request refused");
        })?;
        let (reply, answer) = oneshot::channel();
        route
            .asks
            .send(Ask {
                kind,
                request,
                reply,
                key: None,
                more: false,
            })
            .await
            .map_err(|_| Unasked::Ended)?;
        answer.await.map_err(|_| Unasked::Ended)?
    }
}

/// A 2026-07-28 question (an `inputRequests` entry) as the request it stands for.
pub fn request_of(question: &rmcp::model::InputRequest) -> Option<ServerRequest> {
    match question.clone() {
        rmcp::model::InputRequest::CreateMessage(r) => Some(ServerRequest::CreateMessageRequest(r)),
        rmcp::model::InputRequest::Elicitation(r) => Some(ServerRequest::ElicitRequest(r)),
        rmcp::model::InputRequest::ListRoots(r) => Some(ServerRequest::ListRootsRequest(r)),
        _ => None,
    }
}

/// A request to the client as the 2026-07-28 question it becomes.
pub fn question_of(request: &ServerRequest) -> Option<rmcp::model::InputRequest> {
    match request {
        ServerRequest::CreateMessageRequest(r) => {
            Some(rmcp::model::InputRequest::CreateMessage(r.clone()))
        }
        ServerRequest::ElicitRequest(r) => Some(rmcp::model::InputRequest::Elicitation(r.clone())),
        ServerRequest::ListRootsRequest(r) => Some(rmcp::model::InputRequest::ListRoots(r.clone())),
        _ => None,
    }
}

/// Put each of a 2026-07-28 upstream's questions (its `InputRequiredResult`) to the
/// caller of the call that got it, in turn, as its own requests would be: the answers,
/// keyed as the questions were. The upstream's `requestState` stays here: it goes back to
/// the upstream with the answers, never to the caller.
pub async fn answer_all(
    server: &str,
    route: Option<&AskRoute>,
    asked: &rmcp::model::InputRequiredResult,
) -> Result<rmcp::model::InputResponses, super::UpstreamError> {
    let refused = |message: String| super::UpstreamError::Refused {
        server: server.into(),
        code: rmcp::model::ErrorCode::INVALID_REQUEST,
        message,
    };
    let questions: Vec<_> = asked.input_requests.iter().flatten().collect();
    let mut waiting = Vec::new();
    for (n, (key, question)) in questions.iter().enumerate() {
        let Some(request) = request_of(question) else {
            return Err(refused(Unasked::NotRelayed.to_string()));
        };
        let kind = AskKind::of(&request)
            .ok_or(Unasked::NotRelayed)
            .map_err(|e| refused(e.to_string()))?;
        let route = route.ok_or_else(|| refused(Unasked::NoCall(kind).to_string()))?;
        let (reply, answer) = oneshot::channel();
        let ask = Ask {
            kind,
            request,
            reply,
            key: Some((*key).clone()),
            more: n + 1 < questions.len(),
        };
        route
            .asks
            .send(ask)
            .await
            .map_err(|_| refused(Unasked::Ended.to_string()))?;
        waiting.push(((*key).clone(), kind, answer));
    }
    let mut answers = rmcp::model::InputResponses::new();
    for (key, kind, answer) in waiting {
        let answer = answer
            .await
            .map_err(|_| refused(Unasked::Ended.to_string()))?
            .map_err(|e| {
                refused(format!(
                    "it asked the caller for {}, which was not given: {}",
                    kind.method(),
                    e.message
                ))
            })?;
        let value = serde_json::to_value(&answer).map_err(|e| refused(e.to_string()))?;
        answers.insert(key, value);
    }
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(session: &str) -> (AskRoute, mpsc::Receiver<Ask>) {
        let (asks, rx) = mpsc::channel(1);
        let session = session.to_string();
        (AskRoute { session, asks }, rx)
    }

    #[test]
    fn one_session_is_routed_and_two_or_none_are_refused() {
        let askers = Arc::new(Askers::default());
        assert!(askers.route("s", AskKind::Sampling).is_err());
        let (a1, _r1) = route("a");
        let (a2, _r2) = route("a");
        let g1 = askers.register("s", a1);
        let _g2 = askers.register("s", a2);
        assert_eq!(askers.route("s", AskKind::Sampling).unwrap().session, "a");
        assert!(askers.route("other", AskKind::Sampling).is_err());
        let (b, _rb) = route("b");
        let gb = askers.register("s", b);
        let refused = askers.route("s", AskKind::Elicitation).unwrap_err();
        assert_eq!(refused, Unasked::Ambiguous(AskKind::Elicitation));
        let answer = ErrorData::from(refused);
        assert!(
            answer.message.contains("several clients"),
            "{}",
            answer.message
        );
        assert_eq!(answer.code, rmcp::model::ErrorCode::INVALID_REQUEST);
        drop(gb);
        drop(g1);
        assert_eq!(askers.route("s", AskKind::Roots).unwrap().session, "a");
    }

    #[tokio::test]
    async fn a_request_on_a_calls_stream_goes_to_that_call_whoever_else_is_calling() {
        let askers = Arc::new(Askers::default());
        let (a, _ra) = route("a");
        let (b, _rb) = route("b");
        let ga = askers.register("s", a);
        let gb = askers.register("s", b);
        // Bound a moment after the request came: it waits for the binding.
        let late = {
            let askers = askers.clone();
            tokio::spawn(async move { askers.owner("s", &RequestId::Number(7)).await })
        };
        tokio::task::yield_now().await;
        gb.bind(RequestId::Number(7));
        ga.bind(RequestId::Number(6));
        assert_eq!(late.await.unwrap().unwrap().session, "b");
        assert_eq!(
            askers
                .owner("s", &RequestId::Number(6))
                .await
                .unwrap()
                .session,
            "a"
        );
        // Unassociated, the one-caller rule holds.
        assert_eq!(
            askers.route("s", AskKind::Sampling).unwrap_err(),
            Unasked::Ambiguous(AskKind::Sampling)
        );
        // A call that ended takes nothing.
        drop(gb);
        tokio::time::pause();
        assert_eq!(
            askers.owner("s", &RequestId::Number(7)).await.unwrap_err(),
            Unasked::Ended
        );
    }
}
