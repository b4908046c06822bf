//! The `[store]` table of `warden.toml`: where approvals and grants are kept when several
//! replicas share them (`url`, a PostgreSQL database; without it they stay in SQLite at
//! `[approval] database` under `state_dir`), and the secret the replicas seal session ids
//! and carried request state with (`session_key`), so any replica opens what another
//! sealed.

use serde::Deserialize;
use toml::Spanned;

use super::env_file::Vars;
use super::upstream::expand_with;
use crate::problem::{Problem, line_of};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    url: Option<Spanned<String>>,
    session_key: Option<Spanned<String>>,
}

/// The checked `[store]` settings (a restart applies them).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// `postgres://…` (or libpq's `key=value` form), `${NAME}` expanded from the
    /// environment or the env file; `None`: SQLite.
    pub url: Option<String>,
    /// 32 bytes every replica holds; `None`: a random key at each start (one replica).
    pub session_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for StoreConfig {
    /// Never shows the URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engine = match self.url {
            Some(_) => "postgres",
            None => "sqlite",
        };
        f.debug_struct("StoreConfig")
            .field("engine", &engine)
            .finish()
    }
}

pub(super) fn check(
    raw: RawStore,
    vars: &Vars,
    text: &str,
    file: &std::path::Path,
    out: &mut Vec<Problem>,
) -> StoreConfig {
    let url = raw.url.and_then(|u| {
        let line = Some(line_of(text, u.span().start));
        let written = u.get_ref().trim();
        let postgres = written.starts_with("postgres://")
            || written.starts_with("postgresql://")
            || written.contains("host=");
        if !postgres {
            out.push(Problem::error(
                file,
                line,
                "`[store] url` is not a PostgreSQL URL: write \"postgres://USER@HOST:5432/DATABASE\" (the password from ${NAME} or PGPASSWORD), or leave `[store]` out to keep state in SQLite".to_string(),
            ));
            return None;
        }
        match expand_with(written, vars) {
            Ok(url) => Some(url),
            Err(e) => {
                out.push(Problem::error(file, line, format!("`[store] url`: {e}")));
                None
            }
        }
    });
    let session_key = raw.session_key.and_then(|k| {
        let line = Some(line_of(text, k.span().start));
        let key = expand_with(k.get_ref().trim(), vars)
            .map_err(|e| format!("`[store] session_key`: {e}"))
            .and_then(|hex_key| {
                let mut key = [0u8; 32];
                hex::decode_to_slice(hex_key.trim(), &mut key).map(|()| key).map_err(|_| {
                    "`[store] session_key` must be 64 hex digits (32 random bytes: `openssl rand -hex 32`), the same on every replica".to_string()
                })
            });
        key.map_err(|m| out.push(Problem::error(file, line, m))).ok()
    });
    if url.is_some() && session_key.is_none() {
        out.push(Problem::warning(
            file,
            None,
            "`[store] url` is set but `[store] session_key` is not: replicas cannot open each other's session ids, so a 2025-11-25 client must stay on the replica it started on. Give every replica the same `session_key`".to_string(),
        ));
    }
    StoreConfig { url, session_key }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::Severity;

    fn checked(toml_text: &str) -> (StoreConfig, Vec<Problem>) {
        let raw: RawStore = toml::from_str(toml_text).unwrap();
        let mut out = Vec::new();
        let vars = Vars::new();
        let config = check(
            raw,
            &vars,
            toml_text,
            std::path::Path::new("warden.toml"),
            &mut out,
        );
        (config, out)
    }

    #[test]
    fn a_shared_store_without_a_session_key_is_warned_about_and_a_bad_key_refused() {
        let (config, out) = checked("url = \"postgres://warden@db/warden\"\n");
        assert!(config.url.is_some() && config.session_key.is_none());
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].severity, Severity::Warning);
        assert!(out[0].message.contains("session_key"), "{}", out[0].message);

        let key = "ab".repeat(32);
        let (config, out) = checked(&format!(
            "url = \"postgres://warden@db/warden\"\nsession_key = \"{key}\"\n"
        ));
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(config.session_key, Some([0xab; 32]));
        assert!(
            !format!("{config:?}").contains("ab"),
            "Debug shows no key: {config:?}"
        );

        let (config, out) = checked("session_key = \"not hex\"\n");
        assert_eq!(config.session_key, None);
        assert_eq!(out[0].severity, Severity::Error);
        assert!(out[0].message.contains("openssl rand -hex 32"));
        let (_, out) = checked("url = \"mysql://db/warden\"\n");
        assert!(out[0].message.contains("PostgreSQL"), "{}", out[0].message);
    }
}
