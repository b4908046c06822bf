//! Strict JSON-RPC at the HTTP edge: a POST's body is checked before the MCP service sees
//! it, and a malformed one gets the JSON-RPC error the specification names (`-32700`
//! parse error, `-32600` invalid request, `-32602` invalid `tools/call` params) with
//! HTTP 400, instead of a plain-text 415 or a misleading "method not found". A request
//! id still in flight in the same session is refused too: a second call under it would
//! run upstream while the first caller's answer could no longer find its way back. Owns
//! no session and decides nothing about who may call what.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Value, json};

use super::MAX_BODY_BYTES;
use super::refusals::{Refusals, Refused, Via};

/// Why a body was refused: the JSON-RPC error, and the id to answer with (`null` when
/// the request's own id is missing or unusable).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: i64,
    pub message: String,
    pub id: Value,
}

impl Refusal {
    /// `-32600` with no id: the message as a whole was refused.
    pub fn invalid(message: &str) -> Self {
        Self::new(-32600, message, None)
    }

    pub fn with_id(code: i64, message: String, id: Value) -> Self {
        Self { code, message, id }
    }

    fn new(code: i64, message: impl Into<String>, id: Option<&Id>) -> Self {
        Self {
            code,
            message: message.into(),
            id: id.map_or(Value::Null, Id::to_value),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "error": {"code": self.code, "message": self.message},
        });
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    }
}

/// A request id as JSON-RPC allows it in MCP: a string or an integer (never null).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    Number(i64),
    Text(String),
}

impl Id {
    pub fn to_value(&self) -> Value {
        match self {
            Id::Number(n) => json!(n),
            Id::Text(s) => json!(s),
        }
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Number(n) => write!(f, "{n}"),
            Id::Text(s) => write!(f, "{s:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an `id` that is a string or an integer (never null)")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Id, E> {
                Ok(Id::Number(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Id, E> {
                i64::try_from(n)
                    .map(Id::Number)
                    .map_err(|_| E::custom("`id` is too large"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Id, E> {
                Ok(Id::Text(s.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A field that may be absent, but not `null` or the wrong type when present.
#[derive(Debug, Default)]
enum Field<T> {
    #[default]
    Absent,
    Present(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Field::Present)
    }
}

impl<T> Field<T> {
    fn get(&self) -> Option<&T> {
        match self {
            Field::Absent => None,
            Field::Present(t) => Some(t),
        }
    }
}

/// What a JSON-RPC message must look like; a duplicated member is an error (serde's).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(default)]
    id: Field<Id>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(default)]
    params: Option<IgnoredAny>,
    #[serde(default)]
    result: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

/// `tools/call` params: one `name`, a string; `arguments`, when given, an object.
#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    #[expect(dead_code, reason = "read to check its type and that it is there once")]
    name: Cow<'a, str>,
    #[serde(default)]
    #[expect(dead_code, reason = "read to check it is an object")]
    arguments: Option<Object>,
}

/// Any JSON object, its members skipped.
struct Object;

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Object;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Object, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Object)
            }
        }
        d.deserialize_map(V)
    }
}

/// The params member of a `tools/call` body, checked on its own.
#[derive(Deserialize)]
struct CallEnvelope<'a> {
    #[serde(borrow)]
    #[expect(dead_code, reason = "read to check it")]
    params: Option<CallParams<'a>>,
}

/// Check one POST body: the request's id (if it has one) when it is well formed.
pub fn check(body: &[u8]) -> Result<Option<Id>, Refusal> {
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {
            return Err(Refusal::new(
                -32600,
                "invalid request: batches are not supported (MCP removed them in 2025-06-18); send one message per POST",
                None,
            ));
        }
        None => return Err(Refusal::new(-32700, "parse error: the body is empty", None)),
        Some(_) => {}
    }
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            Refusal::new(-32700, format!("parse error: {e}"), None)
        }
        _ => Refusal::new(
            -32600,
            format!("invalid request: {}", strip_position(&e)),
            None,
        ),
    })?;
    let id = envelope.id.get();
    if envelope.jsonrpc.as_deref() != Some("2.0") {
        return Err(Refusal::new(
            -32600,
            "invalid request: `jsonrpc` must be \"2.0\"",
            id,
        ));
    }
    match (envelope.method.as_deref(), id) {
        (Some(""), _) => Err(Refusal::new(
            -32600,
            "invalid request: `method` is empty",
            id,
        )),
        (Some("tools/call"), Some(_)) => {
            if envelope.params.is_none() {
                return Err(Refusal::new(
                    -32602,
                    "invalid params: `tools/call` needs `params` with a `name`",
                    id,
                ));
            }
            match serde_json::from_slice::<CallEnvelope>(body) {
                Ok(_) => Ok(id.cloned()),
                Err(e) => Err(Refusal::new(
                    -32602,
                    format!("invalid params for `tools/call`: {}", strip_position(&e)),
                    id,
                )),
            }
        }
        (Some(_), _) => Ok(id.cloned()),
        // A response to one of the server's requests.
        (None, Some(_)) if envelope.result.is_some() != envelope.error.is_some() => Ok(None),
        (None, _) => Err(Refusal::new(
            -32600,
            "invalid request: a request needs a `method` (and a response an `id` with one `result` or `error`)",
            id,
        )),
    }
}

/// serde_json's message without "at line 1 column 80", which says nothing to a caller.
fn strip_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(at) => text.get(..at).unwrap_or(&text).to_string(),
        None => text,
    }
}

/// Request ids in flight, per session.
#[derive(Default, Clone)]
pub struct InFlight(Arc<Mutex<HashSet<(String, Id)>>>);

/// What a request asked, for the record of its refusal.
struct Asked {
    method: String,
    path: String,
    caller: Option<crate::identity::Verified>,
}

/// What the layer keeps: the ids in flight, and where its refusals are audited.
#[derive(Clone)]
pub struct Edge {
    in_flight: InFlight,
    refusals: Arc<Refusals>,
}

impl Edge {
    pub fn new(refusals: Arc<Refusals>) -> Self {
        Self {
            in_flight: InFlight::default(),
            refusals,
        }
    }

    /// The service's own refusals (its `Host` and `Origin` checks against DNS rebinding,
    /// answered 403 in plain text) are audited too, with the text as the error.
    async fn forbidden(&self, asked: &Asked, response: Response) -> Response {
        if response.status() != StatusCode::FORBIDDEN {
            return response;
        }
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let error = String::from_utf8_lossy(&bytes).into_owned();
        self.refusals
            .record(Refused {
                via: Via::Http {
                    method: &asked.method,
                    path: &asked.path,
                    status: StatusCode::FORBIDDEN.as_u16(),
                },
                error: &error,
                caller: asked.caller.as_ref(),
            })
            .await;
        Response::from_parts(parts, Body::from(bytes))
    }

    /// Audit a refusal of the request `parts` describes, then answer it.
    async fn refuse(
        &self,
        parts: &axum::http::request::Parts,
        refusal: Refusal,
        status: StatusCode,
    ) -> Response {
        tracing::info!(code = refusal.code, error = %crate::escape::visible(&refusal.message), "a JSON-RPC message refused at the HTTP edge");
        let mut response = refusal.clone().into_response();
        *response.status_mut() = status;
        self.refusals
            .record(Refused {
                via: Via::Http {
                    method: parts.method.as_str(),
                    path: parts.uri.path(),
                    status: response.status().as_u16(),
                },
                error: &refusal.message,
                caller: parts.extensions.get::<crate::identity::Verified>(),
            })
            .await;
        response
    }
}

/// Frees a request id when its answer has been sent (or the client went away).
struct Release {
    table: InFlight,
    key: (String, Id),
}

impl Drop for Release {
    fn drop(&mut self) {
        let mut table = self.table.0.lock().unwrap_or_else(PoisonError::into_inner);
        table.remove(&self.key);
    }
}

/// The middleware: POST bodies checked as [`check`] says, and a request id already in
/// flight in the same session refused; anything else passes untouched.
pub async fn strict(State(edge): State<Edge>, request: Request, next: Next) -> Response {
    let asked = Asked {
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
        caller: request
            .extensions()
            .get::<crate::identity::Verified>()
            .cloned(),
    };
    if request.method() != Method::POST {
        let response = next.run(request).await;
        return edge.forbidden(&asked, response).await;
    }
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let refusal = Refusal::new(
                -32600,
                format!("invalid request: the body is over {MAX_BODY_BYTES} bytes or was cut off"),
                None,
            );
            return edge
                .refuse(&parts, refusal, StatusCode::PAYLOAD_TOO_LARGE)
                .await;
        }
    };
    let id = match check(&bytes) {
        Ok(id) => id,
        Err(refusal) => return edge.refuse(&parts, refusal, StatusCode::BAD_REQUEST).await,
    };
    let session = parts
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let release = match (session, id) {
        (Some(session), Some(id)) => {
            let key = (session, id.clone());
            let fresh = edge
                .in_flight
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.clone());
            if !fresh {
                let refusal = Refusal::new(
                    -32600,
                    format!(
                        "invalid request: id {id} is still in use by a request in this session; use a new id for each request"
                    ),
                    Some(&id),
                );
                return edge.refuse(&parts, refusal, StatusCode::BAD_REQUEST).await;
            }
            Some(Release {
                table: edge.in_flight.clone(),
                key,
            })
        }
        _ => None,
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let response = edge.forbidden(&asked, response).await;
    let Some(release) = release else {
        return response;
    };
    // The id is in flight until the answer's body has been sent whole (or dropped).
    let (parts, body) = response.into_parts();
    let stream = body.into_data_stream().map(move |frame| {
        let _held = &release;
        frame
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &str) -> Refusal {
        check(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn malformed_bodies_get_the_json_rpc_error_the_specification_names() {
        for (body, code, says) in [
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/li",
                -32700,
                "parse error",
            ),
            ("", -32700, "empty"),
            ("not json", -32700, "parse error"),
            (
                "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
                -32600,
                "batches",
            ),
            (
                "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}",
                -32600,
                "\"2.0\"",
            ),
            ("{\"id\":1,\"method\":\"ping\"}", -32600, "\"2.0\""),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}",
                -32600,
                "never null",
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"ping\"}",
                -32600,
                "string or an integer",
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}",
                -32600,
                "string or an integer",
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}",
                -32600,
                "string or an integer",
            ),
            ("{\"jsonrpc\":\"2.0\",\"id\":1}", -32600, "needs a `method`"),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\"}",
                -32600,
                "empty",
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"ping\"}",
                -32600,
                "duplicate field `id`",
            ),
            ("17", -32600, "invalid request"),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"name\":\"b\"}}",
                -32602,
                "duplicate field `name`",
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"a\",\"arguments\":[1]}}",
                -32602,
                "expected an object",
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"arguments\":{}}}",
                -32602,
                "missing field `name`",
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\"}",
                -32602,
                "needs `params`",
            ),
        ] {
            let r = refused(body);
            assert_eq!(r.code, code, "{body}: {r:?}");
            assert!(r.message.contains(says), "{body}: {}", r.message);
            // Where a parse failed helps; where a field was wrong does not.
            assert_eq!(
                r.message.contains(" at line "),
                code == -32700 && !body.is_empty(),
                "{}",
                r.message
            );
        }
        // The id is answered when it could be read.
        assert_eq!(
            refused("{\"jsonrpc\":\"1.0\",\"id\":\"x\",\"method\":\"ping\"}").id,
            json!("x")
        );
        assert_eq!(
            refused("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\"}").id,
            json!(7)
        );
    }

    /// A body over the limit gets 413 and a JSON-RPC error, and is audited; the service
    /// behind never sees it.
    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_whole_and_audited() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().unwrap();
        let audit = crate::audit::AuditLog::open(&dir.path().join("audit.jsonl")).unwrap();
        let reached = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = reached.clone();
        let router = axum::Router::new()
            .route(
                "/mcp",
                axum::routing::post(move || async move {
                    seen.store(true, std::sync::atomic::Ordering::SeqCst);
                    "reached"
                }),
            )
            .layer(axum::middleware::from_fn_with_state(
                Edge::new(Refusals::new(audit.clone())),
                strict,
            ));
        let body = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"pad\":\"{}\"}}}}",
            "x".repeat(MAX_BODY_BYTES)
        );
        let request = Request::post("/mcp").body(Body::from(body)).unwrap();
        let response = router.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(answer["error"]["code"], -32600);
        assert!(!reached.load(std::sync::atomic::Ordering::SeqCst));
        audit.flush().await.unwrap();
        let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
        assert!(
            log.contains("\"stage\":\"transport\"") && log.contains("\"status\":413"),
            "{log}"
        );
    }

    #[test]
    fn well_formed_messages_pass_with_their_id() {
        for (body, id) in [
            (
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}",
                Some(Id::Number(1)),
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"tools/call\",\"params\":{\"name\":\"x\",\"arguments\":{\"k\":[1]},\"_meta\":{}}}",
                Some(Id::Text("a".into())),
            ),
            (
                "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
                None,
            ),
            ("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}", None),
            (
                "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":1,\"message\":\"m\"}}",
                None,
            ),
            (
                " \n{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\",\"params\":null}",
                Some(Id::Number(9)),
            ),
        ] {
            assert_eq!(check(body.as_bytes()), Ok(id), "{body}");
        }
    }
}
