//! Who is at the admin listener: approver tokens (configured as SHA-256 hashes, or made
//! fresh at start and written to the state directory), presented as a bearer header or as
//! the page's cookie; never in a query string. It says who an approver is, not what they
//! may decide: policy does that.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use sha2::{Digest, Sha256};

use crate::config::Config;

/// The cookie the approvals page signs in with.
pub const COOKIE_NAME: &str = "mcp_warden_approver";

/// The approvers' credentials, by token hash.
#[derive(Debug, Default)]
pub struct Approvers {
    by_hash: HashMap<String, String>,
}

/// A token made at start for an approver configured without one.
#[derive(Debug, Clone)]
pub struct FreshToken {
    pub identity: String,
    pub token: String,
    /// Where it was written (readable by this user only).
    pub file: PathBuf,
}

/// How a request presented its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    Bearer,
    Cookie,
}

impl Approvers {
    /// The configured approvers; those without a hash get a fresh token, written to
    /// `<state_dir>/approver-tokens/<identity>`.
    pub fn from_config(config: &Config) -> std::io::Result<(Self, Vec<FreshToken>)> {
        let mut approvers = Self::default();
        let mut fresh = Vec::new();
        for a in &config.boot.approval.approvers {
            let hash = match &a.sha256 {
                Some(h) => h.clone(),
                None => {
                    let token = new_token();
                    let file = token_file(&config.boot.state_dir, &a.identity);
                    write_private(&file, &token)?;
                    let hash = token_hash(&token);
                    fresh.push(FreshToken {
                        identity: a.identity.clone(),
                        token,
                        file,
                    });
                    hash
                }
            };
            approvers.by_hash.insert(hash, a.identity.clone());
        }
        Ok((approvers, fresh))
    }

    /// The approver a token belongs to.
    pub fn identify(&self, token: &str) -> Option<&str> {
        self.by_hash.get(&token_hash(token)).map(String::as_str)
    }

    /// The approver a request's credential belongs to, and how it was presented.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<(String, Presented)> {
        if let Some(token) = bearer(headers) {
            return self
                .identify(token)
                .map(|id| (id.to_string(), Presented::Bearer));
        }
        let token = cookie(headers, COOKIE_NAME)?;
        self.identify(token)
            .map(|id| (id.to_string(), Presented::Cookie))
    }
}

/// The token of an `Authorization: Bearer` header (the scheme in any case).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A new random approver token (256 bits).
pub fn new_token() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("mwa_{a}{b}")
}

/// The hex SHA-256 of a token, as configured in `[[approver]] sha256`.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Where a fresh token for `identity` is written.
pub fn token_file(state_dir: &Path, identity: &str) -> PathBuf {
    let name: String = identity
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    state_dir.join("approver-tokens").join(name)
}

fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{token}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn approvers() -> Approvers {
        let mut a = Approvers::default();
        a.by_hash
            .insert(token_hash("secret-c"), "user:carol".into());
        a
    }

    #[test]
    fn a_token_is_known_by_its_hash_only() {
        let a = approvers();
        assert_eq!(a.identify("secret-c"), Some("user:carol"));
        assert_eq!(a.identify("secret-x"), None);
        assert_eq!(a.identify(&token_hash("secret-c")), None);
    }

    #[test]
    fn bearer_and_cookie_are_accepted_and_named() {
        let a = approvers();
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer secret-c"));
        assert_eq!(
            a.authenticate(&h),
            Some(("user:carol".into(), Presented::Bearer))
        );
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("x=1; mcp_warden_approver=secret-c"),
        );
        assert_eq!(
            a.authenticate(&h),
            Some(("user:carol".into(), Presented::Cookie))
        );
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer wrong"));
        h.insert(
            COOKIE,
            HeaderValue::from_static("mcp_warden_approver=secret-c"),
        );
        assert_eq!(a.authenticate(&h), None, "a wrong bearer is not rescued");
    }

    #[test]
    fn fresh_tokens_are_distinct_and_long() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 64);
    }
}
