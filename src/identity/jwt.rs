//! JWT bearer tokens: the keys of each trusted issuer (a JWKS file or URL, or an HS256
//! secret) and the checks a token must pass: a known key (`kid`), an algorithm that key
//! is for (`alg: none` never), the issuer that key belongs to, this gateway as audience,
//! `exp`/`nbf` with a small leeway, a lifetime no longer than the operator allows, and a
//! delegation chain (`sub` + RFC 8693 `act`, current actor outermost) that is neither too
//! deep nor cyclic.

use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::sync::{PoisonError, RwLock};

use super::{AuthError, Credential, Verified};
use crate::config::{AuthConfig, IssuerConfig, KeySource};

/// One verification key and what it may verify.
struct Key {
    issuer: String,
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// The keys of every trusted issuer; JWKS URLs are fetched again (at most every 30 s)
/// when a token names a key the gateway does not have.
pub struct Keys {
    config: AuthConfig,
    keys: RwLock<Vec<Key>>,
    /// When the keys were last fetched; held across a fetch, so that a burst of tokens
    /// naming an unknown key fetches once.
    #[expect(
        clippy::disallowed_types,
        reason = "one JWKS refresh at a time, across the awaits of fetching"
    )]
    refreshed: tokio::sync::Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: Option<u64>,
    nbf: Option<u64>,
    jti: Option<String>,
    scope: Option<String>,
    scp: Option<Vec<String>>,
    act: Option<Actor>,
    /// The task the token is for, binding everyone down its chain.
    task: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Actor {
    sub: String,
    act: Option<Box<Actor>>,
}

impl Keys {
    /// Load every issuer's keys; an unreadable file, unset secret or unreachable JWKS URL
    /// stops the gateway from starting.
    pub async fn load(config: &AuthConfig) -> Result<Self, String> {
        let mut keys = Vec::new();
        for issuer in &config.issuers {
            keys.extend(load_issuer(issuer).await?);
        }
        Ok(Self {
            config: config.clone(),
            keys: RwLock::new(keys),
            // The first unknown `kid` fetches again at once (a key rotated since start).
            refreshed: Default::default(),
        })
    }

    /// Verify `token` and the delegation chain it carries.
    pub async fn verify(&self, token: &str) -> Result<Verified, AuthError> {
        refuse_alg_none(token)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid(format!("malformed token: {e}")))?;
        if header.kid.is_some() && !self.has_kid(header.kid.as_deref()).await {
            self.refresh().await;
        }
        // The keys are replaced whole, so a poisoned lock still holds a whole list.
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let key = pick(&keys, header.kid.as_deref(), header.alg)?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&key.issuer]);
        validation.set_audience(&[&self.config.resource]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| invalid(describe(&e)))?;
        let issuer = key.issuer.clone();
        drop(keys);
        self.accept(data.claims, issuer)
    }

    fn accept(&self, claims: Claims, issuer: String) -> Result<Verified, AuthError> {
        let start = claims.iat.or(claims.nbf).ok_or_else(|| {
            invalid(
                "the token has neither `iat` nor `nbf`, so its lifetime cannot be checked".into(),
            )
        })?;
        let lifetime = Duration::from_secs(claims.exp.saturating_sub(start));
        if lifetime > self.config.max_token_lifetime {
            return Err(invalid(format!(
                "the token is valid for {}, longer than the {} this gateway accepts: use short-lived tokens",
                humantime::format_duration(lifetime),
                humantime::format_duration(self.config.max_token_lifetime)
            )));
        }
        if let Some(wanted) = &self.config.scope {
            let mut scopes = claims.scope.iter().flat_map(|s| s.split_whitespace());
            let listed = claims.scp.iter().flatten().any(|s| s == wanted);
            if !listed && !scopes.any(|s| s == wanted) {
                return Err(AuthError::InsufficientScope(wanted.clone()));
            }
        }
        let (principal, agents) = chain(&claims)?;
        super::check_chain(principal.as_deref(), &agents, self.config.max_chain_depth)?;
        let task = claims
            .task
            .as_ref()
            .map(super::Task::parse)
            .transpose()
            .map_err(|e| invalid(format!("the token's `task` claim: {e}")))?;
        Ok(Verified {
            principal,
            agents,
            task,
            credential: Credential {
                kind: "jwt",
                issuer: Some(issuer),
                jti: claims.jti,
            },
        })
    }

    async fn has_kid(&self, kid: Option<&str>) -> bool {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|k| k.kid.as_deref() == kid)
    }

    /// Fetch the JWKS URLs again, unless that was done in the last 30 s.
    async fn refresh(&self) {
        let mut last = self.refreshed.lock().await;
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(30)) {
            return;
        }
        *last = Some(Instant::now());
        let mut fresh = Vec::new();
        for issuer in &self.config.issuers {
            match load_issuer(issuer).await {
                Ok(keys) => fresh.extend(keys),
                Err(e) => {
                    tracing::warn!(issuer = %issuer.issuer, error = %e, "cannot refresh the issuer's keys; keeping the old ones");
                    return;
                }
            }
        }
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = fresh;
    }
}

/// The key that verifies a token with this `kid` and `alg`.
fn pick<'a>(keys: &'a [Key], kid: Option<&str>, alg: Algorithm) -> Result<&'a Key, AuthError> {
    let candidates: Vec<&Key> = match kid {
        Some(kid) => keys
            .iter()
            .filter(|k| k.kid.as_deref() == Some(kid))
            .collect(),
        None => keys
            .iter()
            .filter(|k| k.algorithms.contains(&alg))
            .collect(),
    };
    let key = match (kid, candidates.as_slice()) {
        (_, [one]) => *one,
        (Some(kid), []) => return Err(invalid(format!("unknown key id `{kid}`"))),
        (None, []) => return Err(invalid(format!("no trusted key verifies `{alg:?}` tokens"))),
        (Some(kid), _) => {
            return Err(invalid(format!(
                "key id `{kid}` is ambiguous: several issuers use it"
            )));
        }
        (None, _) => {
            return Err(invalid(
                "the token names no key (`kid`) and several keys could verify it".into(),
            ));
        }
    };
    if !key.algorithms.contains(&alg) {
        return Err(invalid(format!("the key is not for `{alg:?}` tokens")));
    }
    Ok(key)
}

/// Refuse `alg: none` (in any spelling) with a message that says so.
fn refuse_alg_none(token: &str) -> Result<(), AuthError> {
    let header = token.split('.').next().unwrap_or_default();
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .map_err(|_| invalid("malformed token: the header is not base64url".into()))?;
    let json: serde_json::Value = serde_json::from_slice(&decoded)
        .map_err(|_| invalid("malformed token: the header is not JSON".into()))?;
    match json.get("alg").and_then(serde_json::Value::as_str) {
        Some(alg) if alg.eq_ignore_ascii_case("none") => {
            Err(invalid("unsigned tokens (`alg: none`) are refused".into()))
        }
        _ => Ok(()),
    }
}

/// The principal (`sub`) and the agents, first delegate to current actor. With no `act`,
/// the subject itself is the caller.
fn chain(claims: &Claims) -> Result<(Option<String>, Vec<String>), AuthError> {
    let Some(mut actor) = claims.act.as_ref() else {
        return Ok((None, vec![name(&claims.sub, "user")?]));
    };
    let mut agents = vec![name(&actor.sub, "agent")?];
    while let Some(prior) = actor.act.as_deref() {
        agents.push(name(&prior.sub, "agent")?);
        actor = prior;
    }
    agents.reverse();
    Ok((Some(name(&claims.sub, "user")?), agents))
}

/// `kind:value` as policy names it: a bare subject gets `kind:` in front.
fn name(sub: &str, kind: &str) -> Result<String, AuthError> {
    let full = match sub.contains(':') {
        true => sub.to_string(),
        false => format!("{kind}:{sub}"),
    };
    match crate::config::valid_identity_name(&full) {
        true => Ok(full),
        false => Err(invalid(format!(
            "subject `{sub}` is not a usable identity name"
        ))),
    }
}

fn invalid(message: String) -> AuthError {
    AuthError::Invalid(message)
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)".into(),
        ErrorKind::InvalidAudience => "the token is not for this gateway (`aud`)".into(),
        ErrorKind::InvalidIssuer => "the token's issuer (`iss`) does not own its key".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("the token has no `{c}`"),
        _ => format!("the token is not acceptable: {e}"),
    }
}

async fn load_issuer(issuer: &IssuerConfig) -> Result<Vec<Key>, String> {
    let who = &issuer.issuer;
    let secret = |bytes: Vec<u8>| -> Result<Vec<Key>, String> {
        if bytes.len() < 32 {
            return Err(format!(
                "the HS256 secret for `{who}` is shorter than 32 bytes"
            ));
        }
        let algorithms = vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
        let key = DecodingKey::from_secret(&bytes);
        Ok(vec![Key {
            issuer: who.clone(),
            kid: None,
            key,
            algorithms,
        }])
    };
    match &issuer.keys {
        KeySource::SecretEnv(var) => {
            let value = std::env::var(var)
                .map_err(|_| format!("`{var}` (the secret for `{who}`) is not set"))?;
            secret(value.trim().as_bytes().to_vec())
        }
        KeySource::SecretFile(path) => {
            let value = std::fs::read(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            secret(String::from_utf8_lossy(&value).trim().as_bytes().to_vec())
        }
        KeySource::JwksFile(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            jwks(who, &text)
        }
        KeySource::JwksUrl(url) => {
            let fetch = async {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| e.to_string())?;
                let response = client.get(url).send().await.map_err(|e| e.to_string())?;
                response
                    .error_for_status()
                    .map_err(|e| e.to_string())?
                    .text()
                    .await
                    .map_err(|e| e.to_string())
            };
            let text = fetch
                .await
                .map_err(|e| format!("cannot fetch the keys of `{who}` from `{url}`: {e}"))?;
            jwks(who, &text)
        }
    }
}

fn jwks(issuer: &str, text: &str) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_str(text)
        .map_err(|e| format!("the JWKS of `{issuer}` is not valid: {e}"))?;
    set.keys.iter().map(|jwk| key(issuer, jwk)).collect()
}

fn key(issuer: &str, jwk: &Jwk) -> Result<Key, String> {
    let kid = jwk.common.key_id.clone();
    let key = DecodingKey::from_jwk(jwk).map_err(|e| {
        format!(
            "key `{}` of `{issuer}`: {e}",
            kid.clone().unwrap_or_default()
        )
    })?;
    let algorithms = match jwk.common.key_algorithm {
        Some(alg) => vec![alg.to_string().parse().map_err(|_| {
            format!(
                "key `{}` of `{issuer}` has an algorithm tokens cannot use",
                kid.clone().unwrap_or_default()
            )
        })?],
        None => key.family().algorithms().to_vec(),
    };
    Ok(Key {
        issuer: issuer.to_string(),
        kid,
        key,
        algorithms,
    })
}
