//! Caller authentication on the Streamable HTTP listener, in front of `/mcp`: tokens in
//! the query string are refused, the `Authorization: Bearer` credential is verified
//! (`identity::Authenticator`) and the verified caller put into the request for the
//! gateway, a session stays with the caller that opened it, and refusals are 401 with a
//! `WWW-Authenticate` pointing at the OAuth Protected Resource Metadata (RFC 9728), or
//! 403 `insufficient_scope`. The client's credential goes no further than this: upstream
//! requests carry only the gateway's own headers.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::refusals::{Refusals, Refused, Via};
use super::sealed::Owner;
use crate::gateway::State;
use crate::identity::{AuthError, Verified};

/// Query parameters that would carry a credential.
const QUERY_TOKENS: [&str; 5] = ["access_token", "token", "api_key", "apikey", "key"];

/// What the authentication layer keeps: the gateway state, and where refusals are
/// recorded.
pub struct HttpAuth {
    state: Arc<State>,
    refusals: Arc<Refusals>,
}

impl HttpAuth {
    pub fn new(state: Arc<State>, refusals: Arc<Refusals>) -> Arc<Self> {
        Arc::new(Self { state, refusals })
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
}

/// A session stays with the caller that opened it: the chain sealed in its id (see
/// `sealed`) must be the verified caller's.
fn same_caller(request: &Request, verified: &Verified) -> bool {
    match request.headers().contains_key("mcp-session-id") {
        false => true,
        true => request
            .extensions()
            .get::<Owner>()
            .is_some_and(|owner| owner.0 == chain_of(verified)),
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
    let opening = !request.headers().contains_key("mcp-session-id");
    if !same_caller(&request, &verified) {
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
    let owner = Owner(chain_of(&verified));
    request.extensions_mut().insert(verified);
    let mut response = next.run(request).await;
    if opening && response.headers().contains_key("mcp-session-id") {
        response.extensions_mut().insert(owner);
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
