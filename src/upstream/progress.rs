//! Progress from an upstream, handed to the call it belongs to in the order the upstream
//! sent it. rmcp runs each incoming notification in a task of its own but hands a
//! response straight to the waiting call, so a handler-based relay can lose the race: the
//! call answers first, and the progress sent just before the result arrives too late (or
//! not at all, once the call's route is gone). Here the transport itself sorts progress
//! into each call's queue as the messages are read, before the service loop sees the
//! response that follows them; the call drains its queue before it answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestMethod, CallToolRequestParams, ClientJsonRpcMessage, GetExtensions, GetMeta,
    JsonRpcMessage, ProgressNotificationParam, ProgressToken, Request, ServerJsonRpcMessage,
    ServerNotification,
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
/// progress into them, in the order the messages are read.
pub struct Ordered<T> {
    inner: T,
    relay: Arc<ProgressRelay>,
}

impl<T> Ordered<T> {
    pub fn new(inner: T, relay: Arc<ProgressRelay>) -> Self {
        Self { inner, relay }
    }
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for Ordered<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        if let JsonRpcMessage::Request(request) = &item
            && let Some(key) = request.request.extensions().get::<RouteKey>()
            && let Some(token) = request.request.get_meta().get_progress_token()
        {
            self.relay.bind(*key, token);
        }
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        let message = self.inner.receive().await?;
        if let JsonRpcMessage::Notification(n) = &message
            && let ServerNotification::ProgressNotification(p) = &n.notification
        {
            self.relay.deliver(&p.params);
        }
        Some(message)
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inner.close().await
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
