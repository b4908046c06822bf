//! Sealed session ids, so that any replica serves any 2025-11-25 session: the id a
//! client is given is the session's own id, the client's `initialize` parameters (its
//! revision and capabilities) and the caller's verified chain, sealed (AES-256-GCM) under
//! a key the replicas share (`[store] session_key`; a random one with a single replica).
//! It holds no secret. A replica that receives an id it did not open unseals it and lets
//! rmcp restore the session from those parameters (the `initialize` handshake replayed);
//! an id no replica's key opens, or one past its day, is answered 404 so the client opens
//! a new session. The caller's chain inside it binds the session to its caller (checked by
//! `auth`). A session its client ends (`DELETE`) is ended on every replica on a shared
//! store: the ending is announced to the replicas listening, and kept in the database for
//! the id's lifetime for a replica that did not hear it (checked when a replica meets the
//! session for the first time).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::InitializeRequestParams;
use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};
use serde::{Deserialize, Serialize};

use crate::seal::Sealer;

/// The header session ids travel in.
const HEADER: &str = "mcp-session-id";
/// What a sealed id is bound to (its purpose).
const BOUND: &[u8] = b"mcp-warden session id";
/// How long a session id is good for; then the client opens a new session.
const LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How long unsealed parameters are kept for rmcp to restore a session with.
const KEPT: Duration = Duration::from_secs(600);

/// Who opened a session: the chain of the caller that sent its `initialize` (empty when
/// callers are not authenticated). Set on the request when its session id was opened,
/// and on the response that opens a session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owner(pub Vec<String>);

/// What a session id carries.
#[derive(Serialize, Deserialize)]
struct Sealed {
    id: String,
    chain: Vec<String>,
    initialize: InitializeRequestParams,
}

/// The sealer, and the `initialize` parameters of sessions seen lately by their own id
/// (for rmcp to restore a session from, and to seal a new session's id with).
pub struct SealedSessions {
    sealer: Arc<Sealer>,
    known: Mutex<HashMap<String, (InitializeRequestParams, Instant)>>,
    /// Sessions their clients ended (`DELETE`), here or, on a shared store, on another
    /// replica: refused until their ids expire.
    ended: Mutex<HashMap<String, Instant>>,
    /// The state database, when replicas share it.
    store: Option<Arc<crate::store::Store>>,
}

/// How an ended session is announced to the other replicas: this, then its id.
const ENDED: &str = "session-ended ";

impl std::fmt::Debug for SealedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSessions")
    }
}

fn now_ms() -> u64 {
    crate::clock::now_ms()
}

impl SealedSessions {
    pub fn new(sealer: Arc<Sealer>) -> Self {
        Self {
            sealer,
            known: Mutex::default(),
            ended: Mutex::default(),
            store: None,
        }
    }

    /// The same, ending sessions on every replica of `store` when it is shared; hearing
    /// the others' endings from the task this starts (it stops with the sessions).
    pub fn shared(sealer: Arc<Sealer>, store: &Arc<crate::store::Store>) -> Arc<Self> {
        let this = Arc::new(Self {
            store: Some(store.clone()).filter(|s| s.shared()),
            ..Self::new(sealer)
        });
        if this.store.is_some() {
            let mut heard = store.announcements();
            let weak = Arc::downgrade(&this);
            tokio::spawn(async move {
                while let Some(message) = heard.next().await {
                    let Some(sessions) = weak.upgrade() else {
                        return;
                    };
                    if let Some(id) = message.strip_prefix(ENDED) {
                        sessions.end_here(id);
                    }
                }
            });
        }
        this
    }

    /// Refuse session `id` here from now on.
    fn end_here(&self, id: &str) {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        if ended.len() > 10_000 {
            ended.retain(|_, at| at.elapsed() < LIFETIME);
        }
        ended.insert(id.to_string(), Instant::now());
    }

    /// Session `id` was ended by its client here: end it on every replica (announced, and
    /// kept in the database for a replica that does not hear it). A failure is logged:
    /// the other replicas then serve the id until it expires.
    async fn end_everywhere(&self, id: &str) {
        let Some(store) = &self.store else { return };
        let kept = store
            .update_memory(&format!("ended:{id}"), LIFETIME, |doc| {
                *doc = "ended".into();
            })
            .await;
        let told = store.announce(&format!("{ENDED}{id}")).await;
        if let Err(e) = kept.and(told) {
            tracing::warn!(
                "a session its client ended could not be ended on the other replicas ({e}); they serve its id until it expires"
            );
        }
    }

    /// Whether another replica ended session `id` (met here for the first time). When
    /// the database does not answer, the session is served (replicas that are up heard
    /// the ending as it happened).
    async fn ended_elsewhere(&self, id: &str) -> bool {
        let Some(store) = &self.store else {
            return false;
        };
        match store.memories(&[&format!("ended:{id}")]).await {
            Ok(found) if !found.is_empty() => {
                self.end_here(id);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::debug!("cannot ask the state database whether a session was ended: {e}");
                false
            }
        }
    }

    fn keep(&self, id: &str, params: InitializeRequestParams) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        // A session seen lately is already there: nothing to copy on every request.
        if known.get(id).is_some_and(|(_, at)| at.elapsed() < KEPT / 2) {
            return;
        }
        if known.len() > 1024 {
            known.retain(|_, (_, at)| at.elapsed() < KEPT);
        }
        known.insert(id.to_string(), (params, Instant::now()));
    }

    fn params(&self, id: &str) -> Option<InitializeRequestParams> {
        let known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        known.get(id).map(|(p, _)| p.clone())
    }

    /// The session id to give the client for session `id` opened by `owner`.
    fn seal(&self, id: &str, owner: &Owner) -> Option<String> {
        let sealed = Sealed {
            id: id.to_string(),
            chain: owner.0.clone(),
            initialize: self.params(id)?,
        };
        let payload = serde_json::to_vec(&sealed).ok()?;
        let until = now_ms().saturating_add(LIFETIME.as_millis() as u64);
        self.sealer.seal(&payload, BOUND, until).ok()
    }

    /// The session a client's id names, or `None` when it cannot be opened here or its
    /// client ended it here.
    fn open(&self, outer: &str) -> Option<Sealed> {
        let payload = self.sealer.read(outer, BOUND, now_ms()).ok()?;
        let sealed: Sealed = serde_json::from_slice(&payload).ok()?;
        let ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        (!ended.contains_key(&sealed.id)).then_some(sealed)
    }
}

#[async_trait::async_trait]
impl SessionStore for SealedSessions {
    async fn load(&self, id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        Ok(self.params(id).map(SessionState::new))
    }

    async fn store(&self, id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        self.keep(id, state.initialize_params.clone());
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), SessionStoreError> {
        self.end_here(id);
        Ok(())
    }
}

/// The middleware (outermost): a client's sealed id is opened and replaced by the
/// session's own id before anything else sees the request (404 when it cannot be
/// opened), and a new session's id is sealed on its way out.
pub async fn seal_ids(
    State(sessions): State<Arc<SealedSessions>>,
    mut request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(HEADER)
        .map(|v| v.to_str().map(str::to_string));
    match given {
        None => {}
        Some(Ok(outer)) => {
            let Some(opened) = sessions.open(&outer) else {
                return unknown();
            };
            let Ok(inner) = HeaderValue::from_str(&opened.id) else {
                return unknown();
            };
            let first_here = sessions.params(&opened.id).is_none();
            if first_here && sessions.ended_elsewhere(&opened.id).await {
                return unknown();
            }
            sessions.keep(&opened.id, opened.initialize);
            request.headers_mut().insert(HEADER, inner);
            request.extensions_mut().insert(Owner(opened.chain));
        }
        Some(Err(_)) => return unknown(),
    }
    let opened_here = !request.headers().contains_key(HEADER);
    let ending = (request.method() == axum::http::Method::DELETE)
        .then(|| {
            request
                .headers()
                .get(HEADER)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        })
        .flatten();
    let mut response = next.run(request).await;
    if let Some(id) = ending.filter(|_| response.status().is_success()) {
        sessions.end_everywhere(&id).await;
    }
    let inner = response
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let (true, Some(inner)) = (opened_here, inner) {
        let owner = response
            .extensions()
            .get::<Owner>()
            .cloned()
            .unwrap_or_default();
        let sealed = sessions
            .seal(&inner, &owner)
            .and_then(|s| HeaderValue::from_str(&s).ok());
        match sealed {
            Some(outer) => {
                response.headers_mut().insert(HEADER, outer);
            }
            None => {
                tracing::error!("a new session's id could not be sealed; the client is refused");
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the session could not be opened",
                )
                    .into_response();
            }
        }
    }
    response
}

/// A session this replica cannot open: the client should open a new one.
fn unknown() -> Response {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32001, "message": "session not found: it expired or was issued by another gateway; send initialize again without Mcp-Session-Id"}
    });
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}
