//! The `[store]` table of `warden.toml`: where approvals and grants are kept when several
//! replicas share them (`url`, a PostgreSQL database). Without it they stay in SQLite at
//! `[approval] database` under `state_dir`.

use serde::Deserialize;
use toml::Spanned;

use super::env_file::Vars;
use super::upstream::expand_with;
use crate::problem::{Problem, line_of};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    url: Option<Spanned<String>>,
}

/// The checked `[store]` settings (a restart applies them).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    /// `postgres://…` (or libpq's `key=value` form), `${NAME}` expanded from the
    /// environment or the env file; `None`: SQLite.
    pub url: Option<String>,
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
    StoreConfig { url }
}
