//! Streamable HTTP sessions, kept small: a session is a queue of the client's messages
//! for rmcp's service loop and a table of where each answer goes (the POST stream of the
//! request it answers or reports progress on, or the session's GET stream). rmcp's own
//! session manager runs a worker task per session with channels of its own (about 28 KB
//! more a session); this one routes in the service loop's own step, when a message is
//! handed over, so the messages of one request reach its stream in the order they were
//! sent. Each POST stream opens with a priming event and numbers its events
//! `<stream>/<index>`; a client that lost the stream takes it up again from the last id
//! it saw (SEP-1699) while the request is being answered, and for a minute after an
//! answer that found its stream gone. Sessions idle for five minutes are closed. It
//! knows nothing of what the messages mean beyond the ids that route them.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use futures::Stream;
use rmcp::RoleServer;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, GetExtensions, GetMeta, JsonRpcMessage,
    ProgressToken, RequestId, ServerJsonRpcMessage, ServerNotification,
};
use rmcp::service::{OriginatingRequestId, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::common::server_side_http::{ServerSseMessage, SessionId};
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::RestoreOutcome;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// A session with nothing open and nothing asked for this long is closed.
const IDLE: Duration = Duration::from_secs(300);
/// How often idle sessions are looked for (when a session is opened).
const SWEEP: Duration = Duration::from_secs(60);
/// Messages kept for a GET stream that is not open (yet), or not being read.
const BACKLOG: usize = 64;
/// How soon a client is told to reconnect to a POST stream that dropped.
const RETRY: Duration = Duration::from_secs(3);
/// How long a request's messages are kept for a client to reconnect to, after the
/// answer found its POST stream gone.
const PARKED: Duration = Duration::from_secs(60);
/// How many of a POST stream's last messages are kept for a client that reconnects.
const KEPT: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no session `{0}`")]
    NotFound(SessionId),
    #[error("the session was closed before it answered")]
    Closed,
    #[error("no event stream to take up again from that event id")]
    NoResume,
}

/// Every open session.
#[derive(Debug)]
pub struct Sessions {
    open: RwLock<HashMap<SessionId, Arc<Session>>>,
    last_sweep: Mutex<Instant>,
    /// Told the id of every session closed (by the client, or idle).
    on_close: Option<OnClose>,
}

/// What to do when a session is closed.
pub struct OnClose(pub Box<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for OnClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnClose")
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            open: RwLock::default(),
            last_sweep: Mutex::new(Instant::now()),
            on_close: None,
        }
    }
}

impl Sessions {
    /// Sessions that call `on_close` with the id of each one closed.
    pub fn with_on_close(on_close: OnClose) -> Self {
        Self {
            on_close: Some(on_close),
            ..Self::default()
        }
    }

    fn closed(&self, id: &str) {
        if let Some(OnClose(tell)) = &self.on_close {
            tell(id);
        }
    }
}

/// One session: what the client sent, for the service loop, and where answers go.
#[derive(Debug, Default)]
pub struct Session {
    inbound: Mutex<VecDeque<ClientJsonRpcMessage>>,
    arrived: Notify,
    closed: AtomicBool,
    routes: Mutex<Routes>,
}

/// The POST stream of a request still being answered, and what was sent on it (so a
/// client that lost the stream can take it up again from the last event it saw).
#[derive(Debug)]
struct Open {
    number: u64,
    tx: mpsc::UnboundedSender<ServerSseMessage>,
    token: Option<ProgressToken>,
    sent: Sent,
}

impl Open {
    /// Send the next message, with its event id `<stream>/<index>`; whether it reached an
    /// open stream. It is kept for a client that reconnects, unless it is the answer (the
    /// last message) and reached one.
    fn send(&mut self, message: ServerJsonRpcMessage, answer: bool) -> bool {
        let id = format!("{}/{}", self.number, self.sent.count + 1);
        let sse = ServerSseMessage::new(id, message);
        if !answer {
            self.sent.push(sse.clone());
            return self.tx.send(sse).is_ok();
        }
        match self.tx.send(sse) {
            Ok(()) => {
                self.sent.count += 1;
                true
            }
            Err(mpsc::error::SendError(sse)) => {
                self.sent.push(sse);
                false
            }
        }
    }
}

/// What was sent on a POST stream: the last [`KEPT`] messages, and how many in all.
#[derive(Debug, Default)]
struct Sent {
    kept: VecDeque<ServerSseMessage>,
    count: usize,
}

impl Sent {
    fn push(&mut self, sse: ServerSseMessage) {
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(sse);
        self.count += 1;
    }

    /// What was sent after event `index`, as far as it is kept (a stream's answer is
    /// its last message, so only progress that old is ever lost).
    fn after(&self, index: usize) -> impl Iterator<Item = &ServerSseMessage> {
        let first = self.count - self.kept.len();
        self.kept.iter().skip(index.saturating_sub(first))
    }
}

#[derive(Debug)]
struct Routes {
    /// The POST stream of each request still being answered.
    requests: HashMap<RequestId, Open>,
    /// The messages of answered requests whose POST stream had gone, by stream number.
    parked: HashMap<u64, (Instant, Sent)>,
    next_stream: u64,
    /// The request each progress token reports on.
    progress: HashMap<ProgressToken, RequestId>,
    /// The GET stream, if one is open.
    common: Option<mpsc::Sender<ServerSseMessage>>,
    /// What was meant for the GET stream while none was open.
    backlog: VecDeque<ServerSseMessage>,
    last_used: Instant,
}

impl Default for Routes {
    fn default() -> Self {
        Self {
            requests: HashMap::new(),
            parked: HashMap::new(),
            next_stream: 0,
            progress: HashMap::new(),
            common: None,
            backlog: VecDeque::new(),
            last_used: Instant::now(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every value behind these locks is whole between statements: a panic elsewhere
    // while one was held leaves nothing half changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Session {
    fn push(&self, message: ClientJsonRpcMessage) {
        lock(&self.inbound).push_back(message);
        self.arrived.notify_one();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.arrived.notify_one();
        let mut routes = lock(&self.routes);
        routes.requests.clear();
        routes.parked.clear();
        routes.progress.clear();
        routes.common = None;
    }

    /// Open a stream for `request`'s answer (and its progress), then hand it over.
    fn open_request(
        &self,
        request: ClientJsonRpcMessage,
    ) -> mpsc::UnboundedReceiver<ServerSseMessage> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let JsonRpcMessage::Request(r) = &request {
            let mut routes = lock(&self.routes);
            let now = Instant::now();
            routes.last_used = now;
            routes
                .parked
                .retain(|_, (at, _)| now.duration_since(*at) < PARKED);
            let token = r.request.get_meta().get_progress_token();
            if let Some(token) = &token {
                routes.progress.insert(token.clone(), r.id.clone());
            }
            let number = routes.next_stream;
            routes.next_stream += 1;
            // The priming event (SEP-1699): the stream's first id, and when to reconnect.
            let _ = tx.send(ServerSseMessage::priming(format!("{number}/0"), RETRY));
            let open = Open {
                number,
                tx,
                token,
                sent: Sent::default(),
            };
            routes.requests.insert(r.id.clone(), open);
        }
        self.push(request);
        rx
    }

    /// Route one message of the service loop to the stream it belongs to.
    fn route(&self, message: ServerJsonRpcMessage) {
        let mut routes = lock(&self.routes);
        let (request, done) = match &message {
            JsonRpcMessage::Response(r) => (Some(r.id.clone()), true),
            JsonRpcMessage::Error(e) => (e.id.clone(), true),
            JsonRpcMessage::Request(r) => (
                r.request
                    .extensions()
                    .get::<OriginatingRequestId>()
                    .map(|o| o.0.clone()),
                false,
            ),
            JsonRpcMessage::Notification(n) => match &n.notification {
                ServerNotification::ProgressNotification(p) => (
                    routes.progress.get(&p.params.progress_token).cloned(),
                    false,
                ),
                ServerNotification::CancelledNotification(c) => {
                    (c.params.request_id.clone(), false)
                }
                _ => (None, false),
            },
        };
        match request {
            Some(id) if done => match routes.finish(&id) {
                // Dropping the sender after the answer ends the POST stream.
                Some(mut open) => {
                    if !open.send(message, true) {
                        routes
                            .parked
                            .insert(open.number, (Instant::now(), open.sent));
                    }
                }
                None => routes.send_common(ServerSseMessage::from_message(message)),
            },
            Some(id) => match routes.requests.get_mut(&id) {
                Some(open) => {
                    open.send(message, false);
                }
                None => routes.send_common(ServerSseMessage::from_message(message)),
            },
            None => routes.send_common(ServerSseMessage::from_message(message)),
        }
    }

    /// Take up POST stream `number` again after the event `index`: what was sent after
    /// it, then (for a request still being answered) what comes next.
    fn resume(
        &self,
        number: u64,
        index: usize,
    ) -> Option<mpsc::UnboundedReceiver<ServerSseMessage>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut routes = lock(&self.routes);
        let replay = |sent: &Sent| {
            for sse in sent.after(index) {
                let _ = tx.send(sse.clone());
            }
        };
        if let Some((_, sent)) = routes.parked.remove(&number) {
            replay(&sent);
            return Some(rx);
        }
        let open = routes.requests.values_mut().find(|o| o.number == number)?;
        replay(&open.sent);
        open.tx = tx;
        Some(rx)
    }
}

impl Routes {
    /// A request is answered or cancelled: its stream and its progress token go.
    fn finish(&mut self, request: &RequestId) -> Option<Open> {
        let open = self.requests.remove(request)?;
        if let Some(token) = &open.token {
            self.progress.remove(token);
        }
        Some(open)
    }

    fn send_common(&mut self, sse: ServerSseMessage) {
        let sse = match &self.common {
            Some(tx) => match tx.try_send(sse) {
                Ok(()) => return,
                Err(
                    mpsc::error::TrySendError::Full(sse) | mpsc::error::TrySendError::Closed(sse),
                ) => sse,
            },
            None => sse,
        };
        if self.backlog.len() == BACKLOG {
            tracing::warn!(
                "a session's GET stream is not being read; dropped its oldest notification"
            );
            self.backlog.pop_front();
        }
        self.backlog.push_back(sse);
    }

    /// Open, with nothing in flight and nothing to send on.
    fn idle_since(&self) -> Option<Instant> {
        let streaming = self.common.as_ref().is_some_and(|c| !c.is_closed());
        (self.requests.is_empty() && !streaming).then_some(self.last_used)
    }
}

/// The service loop's side of a session.
pub struct SessionTransport(Arc<Session>);

impl Transport<RoleServer> for SessionTransport {
    type Error = SessionError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), SessionError>> + Send + 'static {
        // Routed now, in the order the service loop sends, not when the future runs.
        self.0.route(item);
        std::future::ready(Ok(()))
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            if let Some(message) = lock(&self.0.inbound).pop_front() {
                return Some(message);
            }
            if self.0.closed.load(Ordering::Acquire) {
                return None;
            }
            self.0.arrived.notified().await;
        }
    }

    async fn close(&mut self) -> Result<(), SessionError> {
        self.0.close();
        Ok(())
    }
}

impl Sessions {
    fn get(&self, id: &SessionId) -> Result<Arc<Session>, SessionError> {
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        open.get(id)
            .filter(|s| !s.closed.load(Ordering::Acquire))
            .cloned()
            .ok_or_else(|| SessionError::NotFound(id.clone()))
    }

    /// Close the sessions idle longer than [`IDLE`], at most once every [`SWEEP`].
    fn sweep(&self) {
        let now = Instant::now();
        {
            let mut last = lock(&self.last_sweep);
            if now.duration_since(*last) < SWEEP {
                return;
            }
            *last = now;
        }
        let mut gone = Vec::new();
        {
            let mut open = self.open.write().unwrap_or_else(PoisonError::into_inner);
            open.retain(|id, session| {
                let idle = lock(&session.routes)
                    .idle_since()
                    .is_some_and(|since| now.duration_since(since) >= IDLE);
                if idle {
                    session.close();
                    gone.push(id.to_string());
                }
                !idle
            });
        }
        gone.iter().for_each(|id| self.closed(id));
    }
}

impl SessionManager for Sessions {
    type Error = SessionError;
    type Transport = SessionTransport;

    async fn create_session(&self) -> Result<(SessionId, SessionTransport), SessionError> {
        self.sweep();
        let id: SessionId = uuid::Uuid::new_v4().simple().to_string().into();
        let session = Arc::new(Session::default());
        self.open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), session.clone());
        Ok((id, SessionTransport(session)))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, SessionError> {
        let mut rx = self.get(id)?.open_request(message);
        // The answer, after the priming event (the caller sends it a stream of its own).
        while let Some(sse) = rx.recv().await {
            if let Some(answer) = sse.message {
                return Ok(Arc::unwrap_or_clone(answer));
            }
        }
        Err(SessionError::Closed)
    }

    /// A session another replica opened (its sealed id opened here): a fresh session
    /// under the same id, for rmcp to replay the `initialize` handshake into.
    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<SessionTransport>, SessionError> {
        self.sweep();
        let mut open = self.open.write().unwrap_or_else(PoisonError::into_inner);
        if open.contains_key(&id) {
            return Ok(RestoreOutcome::AlreadyPresent);
        }
        let session = Arc::new(Session::default());
        open.insert(id, session.clone());
        Ok(RestoreOutcome::Restored(SessionTransport(session)))
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, SessionError> {
        Ok(self.get(id).is_ok())
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), SessionError> {
        let removed = self
            .open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(session) = removed {
            session.close();
            self.closed(id);
        }
        Ok(())
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, SessionError> {
        let mut rx = self.get(id)?.open_request(message);
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), SessionError> {
        let session = self.get(id)?;
        if let JsonRpcMessage::Notification(n) = &message
            && let ClientNotification::CancelledNotification(c) = &n.notification
            && let Some(request) = &c.params.request_id
        {
            // A cancelled request's stream ends; the handler hears of it below.
            lock(&session.routes).finish(request);
        }
        lock(&session.routes).last_used = Instant::now();
        session.push(message);
        Ok(())
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, SessionError> {
        let session = self.get(id)?;
        let (tx, mut rx) = mpsc::channel(BACKLOG);
        let mut routes = lock(&session.routes);
        routes.last_used = Instant::now();
        while let Some(sse) = routes.backlog.pop_front() {
            let _ = tx.try_send(sse);
        }
        // A new GET stream replaces the one before it, which ends.
        routes.common = Some(tx);
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, SessionError> {
        let session = self.get(id)?;
        let (number, index) = last_event_id
            .split_once('/')
            .and_then(|(n, i)| Some((n.parse().ok()?, i.parse().ok()?)))
            .ok_or(SessionError::NoResume)?;
        let mut rx = session
            .resume(number, index)
            .ok_or(SessionError::NoResume)?;
        Ok(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ping(id: u64) -> ClientJsonRpcMessage {
        serde_json::from_value(json!({"jsonrpc": "2.0", "id": id, "method": "ping"})).unwrap()
    }

    /// A client reconnecting gets what was sent after the event it names, as far as the
    /// last [`KEPT`] messages go.
    #[test]
    fn a_stream_keeps_its_last_messages_for_a_reconnecting_client() {
        let mut sent = Sent::default();
        let nth = |n: usize| ServerSseMessage::priming(format!("0/{n}"), RETRY);
        for n in 1..=KEPT + 44 {
            sent.push(nth(n));
        }
        let ids = |from: usize| -> Vec<String> {
            sent.after(from)
                .filter_map(|s| s.event_id.clone())
                .collect()
        };
        let all = KEPT + 44;
        assert_eq!(ids(all - 2), [format!("0/{}", all - 1), format!("0/{all}")]);
        assert!(ids(all).is_empty());
        // Older than what is kept: everything kept, from the oldest.
        assert_eq!(ids(3).len(), KEPT);
        assert_eq!(ids(3)[0], "0/45");
        assert_eq!(ids(44)[0], "0/45");
        assert_eq!(ids(45)[0], "0/46");
    }

    /// A session nobody has used for five minutes, with nothing in flight, is closed
    /// (its service loop hears the end); one with a request still being answered is not.
    #[tokio::test(start_paused = true)]
    async fn an_idle_session_is_closed_and_a_busy_one_is_not() {
        let sessions = Sessions::default();
        let (idle, mut idle_loop) = sessions.create_session().await.unwrap();
        let (busy, _busy_loop) = sessions.create_session().await.unwrap();
        let _answer = sessions.create_stream(&busy, ping(1)).await.unwrap();
        tokio::time::advance(IDLE - Duration::from_secs(1)).await;
        sessions.create_session().await.unwrap();
        assert!(
            sessions.has_session(&idle).await.unwrap(),
            "not idle long enough yet"
        );
        tokio::time::advance(SWEEP).await;
        sessions.create_session().await.unwrap();
        assert!(!sessions.has_session(&idle).await.unwrap());
        assert!(sessions.has_session(&busy).await.unwrap());
        assert!(idle_loop.receive().await.is_none(), "its service loop ends");
    }

    /// Each request's messages go to its own stream, in the order they were sent; what
    /// belongs to no request goes to the GET stream, kept until one opens.
    #[tokio::test]
    async fn messages_go_to_the_stream_of_their_request_in_order() {
        use futures::StreamExt;
        let sessions = Sessions::default();
        let (id, mut service) = sessions.create_session().await.unwrap();
        let one = sessions.create_stream(&id, ping(1)).await.unwrap();
        let two = sessions.create_stream(&id, ping(2)).await.unwrap();
        assert!(service.receive().await.is_some() && service.receive().await.is_some());
        let answer = |id: u64| -> ServerJsonRpcMessage {
            serde_json::from_value(json!({"jsonrpc": "2.0", "id": id, "result": {}})).unwrap()
        };
        let notice: ServerJsonRpcMessage = serde_json::from_value(
            json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}),
        )
        .unwrap();
        service.send(answer(2)).await.unwrap();
        service.send(notice).await.unwrap();
        service.send(answer(1)).await.unwrap();
        let ids = |events: Vec<ServerSseMessage>| -> Vec<(Option<String>, Value)> {
            events
                .into_iter()
                .map(|e| {
                    (
                        e.event_id,
                        e.message
                            .map(|m| json!(m)["id"].clone())
                            .unwrap_or_default(),
                    )
                })
                .collect()
        };
        use serde_json::Value;
        assert_eq!(
            ids(one.collect().await),
            [
                (Some("0/0".into()), Value::Null),
                (Some("0/1".into()), json!(1))
            ]
        );
        assert_eq!(
            ids(two.collect().await),
            [
                (Some("1/0".into()), Value::Null),
                (Some("1/1".into()), json!(2))
            ]
        );
        let mut common = Box::pin(sessions.create_standalone_stream(&id).await.unwrap());
        let kept = common.next().await.unwrap();
        assert_eq!(
            json!(kept.message.unwrap())["method"],
            json!("notifications/tools/list_changed")
        );
    }
}
