//! Progress from an upstream, handed to the call it belongs to in the order the upstream
//! sent it. rmcp runs each incoming notification in a task of its own but hands a
//! response straight to the waiting call, so a handler-based relay can lose the race: the
//! call answers first, and the progress sent just before the result arrives too late (or
//! not at all, once the call's route is gone). Here the transport itself sorts progress
//! into each call's queue as the messages are read, before the service loop sees the
//! response that follows them; the call drains its queue before it answers. Log entries
//! are handed on here too, in the order they are read (see `Upstreams::settled`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestMethod, CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, ErrorCode,
    GetExtensions, GetMeta, JsonRpcMessage, NumberOrString, ProgressNotificationParam,
    ProgressToken, ProtocolVersion, Request, RequestId, ServerJsonRpcMessage, ServerNotification,
};
use rmcp::transport::Transport;
use rmcp::{Peer, RoleClient, RoleServer};
use tokio::sync::mpsc;

/// Marks a request whose progress a call is waiting for (kept in the request's
/// extensions, which never go on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteKey(u64);

type Queue = mpsc::UnboundedSender<ProgressNotificationParam>;

/// The calls in flight on one upstream connection that want its progress.
#[derive(Default)]
pub struct ProgressRelay {
    next: AtomicU64,
    routes: Mutex<Routes>,
}

#[derive(Default)]
struct Routes {
    /// Opened by a call, not yet sent (rmcp picks the progress token when it sends).
    open: HashMap<RouteKey, Queue>,
    /// Sent: the upstream's progress token → the call's queue.
    bound: HashMap<ProgressToken, (RouteKey, Queue)>,
    tokens: HashMap<RouteKey, ProgressToken>,
}

/// Closes a call's route when the call ends.
pub struct RouteGuard {
    relay: Arc<ProgressRelay>,
    key: RouteKey,
}

impl RouteGuard {
    pub fn key(&self) -> RouteKey {
        self.key
    }
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        if let Ok(mut routes) = self.relay.routes.lock() {
            routes.open.remove(&self.key);
            if let Some(token) = routes.tokens.remove(&self.key) {
                routes.bound.remove(&token);
            }
        }
    }
}

impl ProgressRelay {
    /// Open a route for a call about to be sent; progress for it goes to `queue`.
    pub fn open(self: &Arc<Self>, queue: Queue) -> RouteGuard {
        let key = RouteKey(self.next.fetch_add(1, Ordering::Relaxed));
        if let Ok(mut routes) = self.routes.lock() {
            routes.open.insert(key, queue);
        }
        RouteGuard {
            relay: self.clone(),
            key,
        }
    }

    /// A marked request is being sent with `token`: its progress goes to its call.
    fn bind(&self, key: RouteKey, token: ProgressToken) {
        if let Ok(mut routes) = self.routes.lock()
            && let Some(queue) = routes.open.remove(&key)
        {
            routes.tokens.insert(key, token.clone());
            routes.bound.insert(token, (key, queue));
        }
    }

    /// Queue progress for the call it belongs to; progress for no call in flight is
    /// dropped.
    fn deliver(&self, params: &ProgressNotificationParam) {
        if let Ok(routes) = self.routes.lock()
            && let Some((_, queue)) = routes.bound.get(&params.progress_token)
        {
            let _ = queue.send(params.clone());
        }
    }
}

/// An upstream transport that binds outgoing calls to their routes and sorts incoming
/// progress into them, in the order the messages are read; and says (at `warn`, with the
/// upstream's id) when the upstream answers a request it was never sent, which rmcp
/// drops without a word.
///
/// One answer is changed on its way in: a `server/discover` refused with -32022 and a list
/// of revisions that has none the gateway asked for is a server that knows the discovery
/// but speaks only older revisions; rmcp would give up on it, where `initialize` on the
/// same connection works. It is handed on as -32601, which is how rmcp recognises a
/// server of the `initialize` era.
pub struct Ordered<T> {
    inner: T,
    relay: Arc<ProgressRelay>,
    upstream: String,
    sent: Sent,
    /// Where log entries go, in the order they are read (before the answer that follows
    /// them reaches its call).
    events: mpsc::UnboundedSender<super::UpstreamEvent>,
    /// The id of the `server/discover` sent, until it is answered.
    discover: Option<RequestId>,
}

/// The ids of requests sent and not yet answered. A request never answered must not grow
/// the set for ever: past [`Sent::KEEP`] the older half is forgotten, and an answer to a
/// forgotten (numeric, so older) id is not called unknown.
#[derive(Default)]
struct Sent {
    ids: HashMap<RequestId, u64>,
    next: u64,
    forgotten: Option<i64>,
}

impl Sent {
    const KEEP: usize = 4096;

    fn add(&mut self, id: RequestId) {
        self.ids.insert(id, self.next);
        self.next += 1;
        if self.ids.len() > Self::KEEP {
            let oldest = self.next.saturating_sub(Self::KEEP as u64 / 2);
            let forgotten = &mut self.forgotten;
            self.ids.retain(|id, n| {
                let keep = *n >= oldest;
                if let (false, NumberOrString::Number(x)) = (keep, id) {
                    *forgotten = Some(forgotten.map_or(*x, |f| f.max(*x)));
                }
                keep
            });
        }
    }

    /// Whether `id` is the answer to a request sent (and now answered).
    fn answered(&mut self, id: &RequestId) -> bool {
        self.ids.remove(id).is_some()
            || matches!((id, self.forgotten), (NumberOrString::Number(n), Some(f)) if *n <= f)
    }
}

impl<T> Ordered<T> {
    pub fn new(
        inner: T,
        relay: Arc<ProgressRelay>,
        upstream: &str,
        events: mpsc::UnboundedSender<super::UpstreamEvent>,
    ) -> Self {
        Self {
            inner,
            relay,
            upstream: upstream.to_string(),
            sent: Sent::default(),
            events,
            discover: None,
        }
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Ordered<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let JsonRpcMessage::Request(request) = &item {
            self.sent.add(request.id.clone());
            match &request.request {
                ClientRequest::DiscoverRequest(_) => self.discover = Some(request.id.clone()),
                // rmcp waited 10 s for an answer that did not come.
                ClientRequest::InitializeRequest(_) if self.discover.take().is_some() => {
                    tracing::warn!(upstream = %self.upstream, "the upstream did not answer `server/discover` within 10 s and is spoken to with `initialize`; set `protocol = \"2025-11-25\"` for it to skip the wait");
                }
                _ => {}
            }
            if let Some(key) = request.request.extensions().get::<RouteKey>()
                && let Some(token) = request.request.get_meta().get_progress_token()
            {
                self.relay.bind(*key, token);
            }
        }
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        let mut message = self.inner.receive().await?;
        if let Some(discover) = &self.discover
            && let JsonRpcMessage::Error(e) = &mut message
            && e.id.as_ref() == Some(discover)
        {
            self.discover = None;
            only_older(&self.upstream, &mut e.error);
        }
        let answered = match &message {
            JsonRpcMessage::Notification(n) => {
                match &n.notification {
                    ServerNotification::ProgressNotification(p) => self.relay.deliver(&p.params),
                    #[allow(deprecated)] // logging is deprecated by SEP-2577 but servers use it
                    ServerNotification::LoggingMessageNotification(l) => {
                        let entry =
                            super::UpstreamEvent::Log(self.upstream.clone(), l.params.clone());
                        let _ = self.events.send(entry);
                    }
                    _ => {}
                }
                None
            }
            JsonRpcMessage::Response(r) => Some(&r.id),
            JsonRpcMessage::Error(e) => e.id.as_ref(),
            _ => None,
        };
        if let Some(id) = answered
            && !self.sent.answered(id)
        {
            tracing::warn!(upstream = %self.upstream, id = %id, "the upstream answered a request the gateway never sent it (unknown id); the answer is dropped");
        }
        Some(message)
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inner.close().await
    }
}

/// Turn a -32022 answer to `server/discover` whose supported revisions are all of the
/// `initialize` era into -32601 (see [`Ordered`]).
fn only_older(upstream: &str, error: &mut rmcp::ErrorData) {
    if error.code != ErrorCode::UNSUPPORTED_PROTOCOL_VERSION {
        return;
    }
    let supported: Vec<ProtocolVersion> = error
        .data
        .as_ref()
        .and_then(|d| d.get("supported"))
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    if supported.iter().all(ProtocolVersion::has_initialize) {
        tracing::debug!(upstream = %upstream, ?supported, "the upstream speaks only revisions opened by `initialize`");
        error.code = ErrorCode::METHOD_NOT_FOUND;
    }
}

/// One call's progress on its way to the caller: the queue the transport fills, and the
/// caller's peer and token (none when the caller asked for no progress).
pub struct CallProgress {
    queue: mpsc::UnboundedReceiver<ProgressNotificationParam>,
    to: Option<(Peer<RoleServer>, ProgressToken, RouteGuard)>,
}

impl CallProgress {
    /// Open a route on `relay` for `request` when the caller asked for progress.
    pub fn open(
        relay: Option<&Arc<ProgressRelay>>,
        caller: Option<(Peer<RoleServer>, ProgressToken)>,
        request: &mut Request<CallToolRequestMethod, CallToolRequestParams>,
    ) -> Self {
        let (tx, queue) = mpsc::unbounded_channel();
        let to = relay.zip(caller).map(|(relay, (peer, token))| {
            let route = relay.open(tx);
            request.extensions_mut().insert(route.key());
            (peer, token, route)
        });
        Self { queue, to }
    }

    /// The next notification from the upstream (`None` when no route was opened).
    pub async fn next(&mut self) -> Option<ProgressNotificationParam> {
        self.queue.recv().await
    }

    /// Pass one notification on to the caller, under the caller's own token.
    pub async fn relay(&self, mut note: ProgressNotificationParam) {
        let Some((peer, token, _)) = &self.to else {
            return;
        };
        note.progress_token = token.clone();
        if let Err(e) = peer.notify_progress(note).await {
            tracing::debug!(error = %e, "could not relay progress");
        }
    }

    /// Pass on everything queued so far: what the upstream sent before its result was
    /// queued before the result arrived.
    pub async fn drain(&mut self) {
        while let Ok(note) = self.queue.try_recv() {
            self.relay(note).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_known_once_and_an_old_forgotten_id_is_not_called_unknown() {
        let mut sent = Sent::default();
        sent.add(NumberOrString::Number(1));
        assert!(sent.answered(&NumberOrString::Number(1)));
        assert!(!sent.answered(&NumberOrString::Number(1)), "answered twice");
        assert!(!sent.answered(&NumberOrString::Number(99)), "never sent");
        for n in 2..(Sent::KEEP as i64 + 10) {
            sent.add(NumberOrString::Number(n));
        }
        assert!(sent.ids.len() <= Sent::KEEP, "bounded");
        assert!(
            sent.answered(&NumberOrString::Number(2)),
            "forgotten, not unknown"
        );
        assert!(
            !sent.answered(&NumberOrString::Number(1_000_000)),
            "never sent"
        );
    }
}
