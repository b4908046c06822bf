//! The `[auth]` table and `[[identity.api_keys]]` of `warden.toml`: how HTTP callers
//! prove who they are. API keys are stored as SHA-256 hashes, each naming its agent and,
//! optionally, the principal it always acts for. `[auth]` makes the gateway an OAuth
//! resource server: its resource URI (the audience every JWT must name), the token
//! issuers it trusts (`[[auth.jwt]]`: a JWKS file or URL, or an HS256 secret from the
//! environment or a file), the longest token lifetime it accepts, the deepest delegation
//! chain, and an optional scope every token must carry. Verifying tokens is `identity`'s
//! job; this only checks the configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::problem::{Problem, line_of};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    resource: Spanned<String>,
    #[serde(default)]
    authorization_servers: Vec<String>,
    max_token_lifetime: Option<Spanned<String>>,
    max_chain_depth: Option<Spanned<i64>>,
    leeway: Option<Spanned<String>>,
    scope: Option<String>,
    #[serde(default)]
    jwt: Vec<Spanned<RawIssuer>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIssuer {
    issuer: String,
    jwks_file: Option<String>,
    jwks_url: Option<String>,
    secret_env: Option<String>,
    secret_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApiKey {
    agent: Spanned<String>,
    on_behalf_of: Option<String>,
    sha256: Spanned<String>,
}

/// The checked `[auth]` table.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// This gateway's resource URI: every JWT's `aud` must contain it, and it is the
    /// `resource` of the protected resource metadata.
    pub resource: String,
    /// Where clients get tokens (advertised in the metadata).
    pub authorization_servers: Vec<String>,
    /// Tokens valid for longer than this (`exp` − `iat`) are refused.
    pub max_token_lifetime: Duration,
    /// The most identities a delegation chain may hold (principal and agents).
    pub max_chain_depth: usize,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
    /// A scope every token must carry (403 `insufficient_scope` otherwise).
    pub scope: Option<String>,
    pub issuers: Vec<IssuerConfig>,
}

/// One trusted token issuer and where its keys come from.
#[derive(Debug, Clone)]
pub struct IssuerConfig {
    /// The exact `iss` its tokens carry.
    pub issuer: String,
    pub keys: KeySource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS document on disk (RS256, ES256 keys).
    JwksFile(PathBuf),
    /// A JWKS document fetched at start and again when a token names an unknown key.
    JwksUrl(String),
    /// An HS256 secret read from this environment variable.
    SecretEnv(String),
    /// An HS256 secret read from this file.
    SecretFile(PathBuf),
}

/// One API key: the hash of the key, the agent it is, and whom it always acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyConfig {
    pub agent: String,
    pub on_behalf_of: Option<String>,
    /// Hex SHA-256 of the key.
    pub sha256: String,
}

pub(super) struct Context<'a> {
    pub text: &'a str,
    pub file: &'a Path,
    pub base: &'a Path,
}

impl Context<'_> {
    fn error<T>(&self, span: &Spanned<T>, message: String) -> Problem {
        Problem::error(
            self.file,
            Some(line_of(self.text, span.span().start)),
            message,
        )
    }
}

pub(super) fn check(raw: RawAuth, cx: &Context, out: &mut Vec<Problem>) -> AuthConfig {
    let resource = raw.resource.get_ref().trim_end_matches('/').to_string();
    if !(resource.starts_with("https://") || resource.starts_with("http://")) {
        out.push(cx.error(
            &raw.resource,
            format!("`auth.resource` `{resource}` must be this gateway's URL, e.g. \"https://warden.example.com/mcp\""),
        ));
    }
    let lifetime = duration(raw.max_token_lifetime, "max_token_lifetime", 3600, cx, out);
    let leeway = duration(raw.leeway, "leeway", 30, cx, out);
    let depth = match raw.max_chain_depth {
        None => 4,
        Some(d) if (1..=16).contains(d.get_ref()) => *d.get_ref() as usize,
        Some(d) => {
            out.push(cx.error(
                &d,
                format!("`max_chain_depth` {} must be 1 to 16", d.get_ref()),
            ));
            4
        }
    };
    let issuers = raw
        .jwt
        .into_iter()
        .filter_map(|i| issuer(i, cx, out))
        .collect();
    AuthConfig {
        resource,
        authorization_servers: raw.authorization_servers,
        max_token_lifetime: lifetime,
        max_chain_depth: depth,
        leeway,
        scope: raw.scope,
        issuers,
    }
}

fn duration(
    value: Option<Spanned<String>>,
    key: &str,
    default_secs: u64,
    cx: &Context,
    out: &mut Vec<Problem>,
) -> Duration {
    let Some(s) = value else {
        return Duration::from_secs(default_secs);
    };
    humantime::parse_duration(s.get_ref()).unwrap_or_else(|e| {
        out.push(cx.error(
            &s,
            format!("`auth.{key}` `{}`: {e} (write e.g. \"1h\")", s.get_ref()),
        ));
        Duration::from_secs(default_secs)
    })
}

fn issuer(raw: Spanned<RawIssuer>, cx: &Context, out: &mut Vec<Problem>) -> Option<IssuerConfig> {
    let r = raw.get_ref();
    let sources = [
        r.jwks_file
            .clone()
            .map(|f| KeySource::JwksFile(cx.base.join(f))),
        r.jwks_url.clone().map(KeySource::JwksUrl),
        r.secret_env.clone().map(KeySource::SecretEnv),
        r.secret_file
            .clone()
            .map(|f| KeySource::SecretFile(cx.base.join(f))),
    ];
    let mut given: Vec<KeySource> = sources.into_iter().flatten().collect();
    if given.len() != 1 {
        out.push(cx.error(
            &raw,
            format!(
                "`[[auth.jwt]]` for `{}` needs exactly one of `jwks_file`, `jwks_url`, `secret_env`, `secret_file`",
                r.issuer
            ),
        ));
        return None;
    }
    if r.issuer.is_empty() {
        out.push(cx.error(
            &raw,
            "`[[auth.jwt]]` needs `issuer` (the tokens' exact `iss`)".into(),
        ));
    }
    let keys = given.pop()?;
    if let KeySource::JwksUrl(url) = &keys
        && !url.starts_with("https://")
        && !url.starts_with("http://127.0.0.1")
        && !url.starts_with("http://localhost")
    {
        out.push(cx.error(
            &raw,
            format!("`jwks_url` `{url}` must be https (or loopback)"),
        ));
    }
    Some(IssuerConfig {
        issuer: r.issuer.clone(),
        keys,
    })
}

pub(super) fn api_keys(
    raw: Vec<RawApiKey>,
    cx: &Context,
    out: &mut Vec<Problem>,
) -> Vec<ApiKeyConfig> {
    let mut keys = Vec::new();
    for k in raw {
        let hash = k.sha256.get_ref().to_ascii_lowercase();
        if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            out.push(cx.error(
                &k.sha256,
                "`sha256` must be 64 hex digits: run `mcp-warden keys new --agent AGENT` and paste the line it prints".into(),
            ));
            continue;
        }
        let names = std::iter::once(k.agent.get_ref()).chain(k.on_behalf_of.iter());
        if let Some(bad) = names.into_iter().find(|n| !super::valid_identity_name(n)) {
            out.push(cx.error(
                &k.agent,
                format!("identity `{bad}` must look like `kind:name` (e.g. `agent:helpdesk`)"),
            ));
            continue;
        }
        if keys.iter().any(|c: &ApiKeyConfig| c.sha256 == hash) {
            out.push(cx.error(&k.sha256, "the same API key is configured twice".into()));
            continue;
        }
        keys.push(ApiKeyConfig {
            agent: k.agent.into_inner(),
            on_behalf_of: k.on_behalf_of,
            sha256: hash,
        });
    }
    keys
}
