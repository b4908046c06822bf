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

use rmcp::RoleClient;
use rmcp::model::{
    ClientJsonRpcMessage, GetExtensions, GetMeta, JsonRpcMessage, ProgressNotificationParam,
    ProgressToken, ServerJsonRpcMessage, ServerNotification,
};
use rmcp::transport::Transport;
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
