//! Caller authentication on the Streamable HTTP listener, in front of `/mcp`: tokens in
//! the query string are refused, the `Authorization: Bearer` credential is verified
//! (`identity::Authenticator`) and the verified caller put into the request for the
//! gateway, a session stays with the caller that opened it, and refusals are 401 with a
//! `WWW-Authenticate` pointing at the OAuth Protected Resource Metadata (RFC 9728), or
//! 403 `insufficient_scope`. The client's credential goes no further than this: upstream
//! requests carry only the gateway's own headers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::refusals::{Refusals, Refused, Via};
use crate::gateway::State;
use crate::identity::{AuthError, Verified};

/// Query parameters that would carry a credential.
const QUERY_TOKENS: [&str; 5] = ["access_token", "token", "api_key", "apikey", "key"];

/// The most sessions whose callers are remembered; the oldest are forgotten first (and
/// can then no longer be used: their clients open new ones).
const MAX_SESSIONS: usize = 100_000;

/// Each session's caller, oldest session first.
#[derive(Default)]
struct Sessions {
    owners: HashMap<String, Vec<String>>,
    order: std::collections::VecDeque<String>,
}

/// What the authentication layer keeps: the gateway state and each session's caller.
pub struct HttpAuth {
    state: Arc<State>,
    sessions: Mutex<Sessions>,
    refusals: Arc<Refusals>,
}

impl HttpAuth {
    pub fn new(state: Arc<State>, refusals: Arc<Refusals>) -> Arc<Self> {
        Arc::new(Self {
            state,
            sessions: Mutex::new(Sessions::default()),
            refusals,
        })
    }

    /// Where the protected resource metadata is, for `WWW-Authenticate`.
    fn metadata_url(&self) -> Option<String> {
        let config = self.state.current().config.clone();
        let resource = &config.live.auth.as_ref()?.resource;
        let (origin, path) = split_origin(resource);
        Some(format!(
            "{origin}/.well-known/oauth-protected-resource{path}"
        ))
    }

    fn refuse(&self, error: &AuthError) -> Response {
        let (status, code) = match error {
            AuthError::Missing => (StatusCode::UNAUTHORIZED, None),
            AuthError::Malformed(_) => (StatusCode::UNAUTHORIZED, Some("invalid_request")),
            AuthError::Invalid(_) => (StatusCode::UNAUTHORIZED, Some("invalid_token")),
            AuthError::InsufficientScope(_) => (StatusCode::FORBIDDEN, Some("insufficient_scope")),
        };
        let mut params = Vec::new();
        if let Some(code) = code {
            params.push(format!("error=\"{code}\""));
            params.push(format!(
                "error_description=\"{}\"",
                quoted(&error.to_string())
            ));
        }
        if let AuthError::InsufficientScope(scope) = error {
            params.push(format!("scope=\"{}\"", quoted(scope)));
        }
        if let Some(url) = self.metadata_url() {
            params.push(format!("resource_metadata=\"{url}\""));
        }
        let challenge = match params.is_empty() {
            true => "Bearer".to_string(),
            false => format!("Bearer {}", params.join(", ")),
        };
        let body = json!({"error": code.unwrap_or("unauthorized"), "error_description": error.to_string()});
        let mut response = (status, axum::Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }

    /// The session's caller must stay the one that opened it; a session this layer did
    /// not see opened (or has forgotten) is refused.
    fn same_caller(&self, session: Option<&str>, verified: &Verified) -> bool {
        let chain = chain_of(verified);
        let sessions = self.sessions.lock();
        match (session, sessions) {
            (Some(id), Ok(sessions)) => {
                sessions.owners.get(id).is_some_and(|owner| *owner == chain)
            }
            (None, _) => true,
            (Some(_), Err(_)) => false,
        }
    }

    fn bind(&self, session: &str, verified: &Verified) {
        if let Ok(mut sessions) = self.sessions.lock() {
            if sessions.order.len() >= MAX_SESSIONS
                && let Some(oldest) = sessions.order.pop_front()
            {
                sessions.owners.remove(&oldest);
            }
            sessions.order.push_back(session.to_string());
            sessions
                .owners
                .insert(session.to_string(), chain_of(verified));
        }
    }
}

fn chain_of(v: &Verified) -> Vec<String> {
    v.principal.iter().chain(v.agents.iter()).cloned().collect()
}

/// A value for a quoted-string in a header: printable ASCII, no quotes or backslashes.
fn quoted(s: &str) -> String {
    s.replace('…', "...")
        .chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect()
}

/// `https://host:port/path` → (`https://host:port`, `/path`).
fn split_origin(url: &str) -> (&str, &str) {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url.get(after_scheme..).and_then(|rest| rest.find('/')) {
        Some(i) => url.split_at(after_scheme + i),
        None => (url, ""),
    }
}

/// The middleware: verify, then pass the request on with its [`Verified`] caller.
pub async fn authenticate(
    axum::extract::State(auth): axum::extract::State<Arc<HttpAuth>>,
    mut request: Request,
    next: Next,
) -> Response {
    let authenticator = auth.state.current().authenticator.clone();
    let Some(authenticator) = authenticator.as_ref() else {
        return next.run(request).await;
    };
    let verified = match credential(&request) {
        Ok(bearer) => authenticator.verify(bearer).await,
        Err(e) => Err(e),
    };
    let (method, path) = (
        request.method().to_string(),
        request.uri().path().to_string(),
    );
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            tracing::info!(error = %crate::escape::visible(&e.to_string()), "HTTP caller refused");
            let response = auth.refuse(&e);
            let error = e.to_string();
            auth.refusals
                .record(Refused {
                    via: Via::Http {
                        method: &method,
                        path: &path,
                        status: response.status().as_u16(),
                    },
                    error: &error,
                    caller: None,
                })
                .await;
            return response;
        }
    };
    let session = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if !auth.same_caller(session.as_deref(), &verified) {
        let error = "this session belongs to another caller, or is unknown: open your own";
        auth.refusals
            .record(Refused {
                via: Via::Http {
                    method: &method,
                    path: &path,
                    status: 403,
                },
                error,
                caller: Some(&verified),
            })
            .await;
        let body = json!({"error": "forbidden", "error_description": error});
        return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
    }
    request.extensions_mut().insert(verified.clone());
    let response = next.run(request).await;
    let opened = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok());
    if let (None, Some(id)) = (&session, opened) {
        auth.bind(id, &verified);
    }
    response
}

/// The bearer credential of a request; tokens in the query string are refused.
fn credential(request: &Request) -> Result<&str, AuthError> {
    let query = request.uri().query().unwrap_or_default();
    let in_query = query
        .split('&')
        .filter_map(|pair| pair.split('=').next())
        .any(|name| QUERY_TOKENS.iter().any(|t| t.eq_ignore_ascii_case(name)));
    if in_query {
        return Err(AuthError::Malformed(
            "credentials in the query string are refused: send `Authorization: Bearer ...`".into(),
        ));
    }
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Err(AuthError::Missing);
    };
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("the Authorization header is not text".into()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(AuthError::Malformed(
            "use `Authorization: Bearer <token or API key>`".into(),
        )),
    }
}

/// `GET /.well-known/oauth-protected-resource[/path]`: RFC 9728 metadata.
pub async fn metadata(axum::extract::State(auth): axum::extract::State<Arc<HttpAuth>>) -> Response {
    let config = auth.state.current().config.clone();
    let Some(config) = config.live.auth.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut body = serde_json::Map::new();
    body.insert("resource".into(), json!(config.resource));
    body.insert("bearer_methods_supported".into(), json!(["header"]));
    body.insert("resource_name".into(), json!("mcp-warden"));
    if !config.authorization_servers.is_empty() {
        body.insert(
            "authorization_servers".into(),
            json!(config.authorization_servers),
        );
    }
    if let Some(scope) = &config.scope {
        body.insert("scopes_supported".into(), json!([scope]));
    }
    axum::Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_and_path_of_a_resource_are_split_for_the_metadata_url() {
        assert_eq!(
            split_origin("https://w.example.com:8443/mcp"),
            ("https://w.example.com:8443", "/mcp")
        );
        assert_eq!(
            split_origin("http://127.0.0.1:8787"),
            ("http://127.0.0.1:8787", "")
        );
    }
}
