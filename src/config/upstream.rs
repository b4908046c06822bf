//! `[[upstream]]`: the tool servers the gateway fronts (a child process over stdio, or a
//! Streamable HTTP server), with `${NAME}` in their settings expanded from the
//! environment or from `[gateway] env_file` (see `env_file`). Checked once at load; it
//! does not start or contact them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::SELF_EXE_VAR;
use super::env_file::{self, Vars};
use crate::problem::{Problem, line_of};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUpstream {
    id: String,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    expose_unlisted: bool,
    /// Whether `/readyz` waits for it (default: yes).
    required: Option<bool>,
    namespace: Option<bool>,
    protocol: Option<String>,
}

/// How the gateway opens its connection to an upstream: `auto` (the default) asks
/// `server/discover` first and speaks 2026-07-28 to a server that knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// `server/discover` first (2026-07-28), `initialize` (2025-11-25) when the server
    /// does not know it.
    Auto,
    /// `initialize` at 2025-11-25 only.
    Initialize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub id: String,
    pub transport: UpstreamTransport,
    pub expose_unlisted: bool,
    /// Whether the gateway is ready (`/readyz`) only while connected to it.
    pub required: bool,
    /// Whether its tools, prompts and resources are shown under its id (`id_tool`,
    /// `id+uri`); at most one upstream may go without.
    pub namespace: bool,
    pub protocol: UpstreamProtocol,
}

#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamTransport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// The variables of `[gateway] env_file`, when it is set: a file that cannot be read or
/// parsed is an error at its line (`check` warns about one others may read).
pub(super) fn env_file_vars(path: Option<&Path>, out: &mut Vec<Problem>) -> Vars {
    let Some(path) = path else {
        return Vars::new();
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            out.push(Problem::error(
                path,
                None,
                format!("cannot read the `env_file`: {e}"),
            ));
            return Vars::new();
        }
    };
    env_file::parse(&text).unwrap_or_else(|(line, e)| {
        out.push(Problem::error(path, Some(line), e));
        Vars::new()
    })
}

pub(super) fn check_upstreams(
    raw: Vec<Spanned<RawUpstream>>,
    vars: &Vars,
    text: &str,
    file: &Path,
    base: &Path,
    out: &mut Vec<Problem>,
) -> Vec<UpstreamConfig> {
    let mut upstreams: Vec<UpstreamConfig> = Vec::new();
    for spanned in raw {
        let line = Some(line_of(text, spanned.span().start));
        let u = spanned.into_inner();
        if let Err(why) = valid_server_id(&u.id) {
            out.push(Problem::error(
                file,
                line,
                format!("upstream id `{}` {why}", u.id.escape_default()),
            ));
        }
        if upstreams.iter().any(|known| known.id == u.id) {
            out.push(Problem::error(
                file,
                line,
                format!("upstream id `{}` is used twice", u.id),
            ));
        }
        let namespace = u.namespace.unwrap_or(true);
        if !namespace && upstreams.iter().any(|known| !known.namespace) {
            out.push(Problem::error(
                file,
                line,
                format!("upstream `{}`: only one upstream may set `namespace = false` (its names are shown as they are, and names from two would collide)", u.id),
            ));
        }
        let protocol = match u.protocol.as_deref() {
            None | Some("auto") => UpstreamProtocol::Auto,
            Some("2025-11-25") => UpstreamProtocol::Initialize,
            Some(other) => {
                out.push(Problem::error(
                    file,
                    line,
                    format!("upstream `{}`: unknown `protocol = \"{}\"`: say \"auto\" (discover 2026-07-28, else `initialize`) or \"2025-11-25\" (`initialize` only)", u.id, other.escape_default()),
                ));
                UpstreamProtocol::Auto
            }
        };
        if let Some(transport) = upstream_transport(&u, vars, base, file, line, out) {
            upstreams.push(UpstreamConfig {
                id: u.id,
                transport,
                expose_unlisted: u.expose_unlisted,
                required: u.required.unwrap_or(true),
                namespace,
                protocol,
            });
        }
    }
    upstreams
}

fn upstream_transport(
    u: &RawUpstream,
    vars: &Vars,
    base: &Path,
    file: &Path,
    line: Option<usize>,
    out: &mut Vec<Problem>,
) -> Option<UpstreamTransport> {
    let mut expand = |value: &str| match expand_with(value, vars) {
        Ok(v) => v,
        Err(e) => {
            out.push(Problem::error(
                file,
                line,
                format!("upstream `{}`: {e}", u.id),
            ));
            String::new()
        }
    };
    match (&u.command, &u.url) {
        (Some(command), None) => Some(UpstreamTransport::Stdio {
            command: expand(command),
            args: u.args.iter().map(|a| expand(a)).collect(),
            env: u.env.iter().map(|(k, v)| (k.clone(), expand(v))).collect(),
            cwd: u.cwd.as_ref().map(|c| base.join(expand(c))),
        }),
        (None, Some(url)) => Some(UpstreamTransport::Http {
            url: expand(url),
            headers: u
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), expand(v)))
                .collect(),
        }),
        _ => {
            out.push(Problem::error(
                file,
                line,
                format!("upstream `{}` needs exactly one of `command` (stdio) or `url` (Streamable HTTP)", u.id),
            ));
            None
        }
    }
}

/// Expand `${NAME}` from the environment; an unset variable is an error, not "".
pub fn expand_env(value: &str) -> Result<String, String> {
    expand_with(value, &Vars::new())
}

/// Expand `${NAME}` from the environment, else from `vars` (an env file); an unset
/// variable is an error, not "".
pub fn expand_with(value: &str, vars: &Vars) -> Result<String, String> {
    substitute(value, |name| lookup_env(name, vars))
}

/// `value` with every `${…}` replaced by what `each` makes of what is inside the braces;
/// an unclosed `${` is an error.
pub fn substitute(
    value: &str,
    mut each: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        let Some(end) = after.find('}') else {
            return Err(format!("unclosed `${{` in `{value}`"));
        };
        out.push_str(&each(after.get(..end).unwrap_or_default())?);
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup_env(name: &str, vars: &Vars) -> Result<String, String> {
    if let Ok(v) = std::env::var(name) {
        return Ok(v);
    }
    if let Some(v) = vars.get(name) {
        return Ok(v.clone());
    }
    if name == SELF_EXE_VAR {
        return std::env::current_exe()
            .map(|p| p.display().to_string())
            .map_err(|e| format!("cannot find this executable for `${{{name}}}`: {e}"));
    }
    Err(format!("environment variable `{name}` is not set"))
}

/// A server id: lowercase ASCII letters, digits and `-`, starting with a letter, at most
/// 32 characters. It can never contain [`SEPARATOR`].
pub fn valid_server_id(id: &str) -> Result<(), &'static str> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let starts = id.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    match (id.len(), ok_chars && starts) {
        (0, _) => Err("is empty"),
        (33.., _) => Err("is longer than 32 characters"),
        (_, false) => Err("must be lowercase letters, digits and `-`, starting with a letter"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_cannot_contain_the_separator() {
        assert!(valid_server_id("my_srv").is_err());
        assert!(valid_server_id("my-srv").is_ok());
        assert!(valid_server_id("Fs").is_err());
        assert!(valid_server_id("fѕ").is_err(), "cyrillic homoglyph");
    }

    #[test]
    fn env_vars_expand_and_unset_ones_are_errors() {
        // SAFETY-free: tests only read variables that the process already has.
        let home = std::env::var("PATH").unwrap();
        assert_eq!(expand_env("a${PATH}b").unwrap(), format!("a{home}b"));
        assert!(expand_env("${MCP_WARDEN_SURELY_UNSET_VAR}").is_err());
        assert!(expand_env("${MCP_WARDEN_EXE}").is_ok());
        assert!(expand_env("${oops").is_err());
    }

    #[test]
    fn the_environment_wins_over_the_env_file_and_the_file_fills_the_rest() {
        let path = std::env::var("PATH").unwrap();
        let vars = Vars::from([
            ("PATH".to_string(), "from the file".to_string()),
            (
                "MCP_WARDEN_TEST_ONLY_IN_FILE".to_string(),
                "s3cret".to_string(),
            ),
        ]);
        assert_eq!(expand_with("${PATH}", &vars).unwrap(), path);
        assert_eq!(
            expand_with("Bearer ${MCP_WARDEN_TEST_ONLY_IN_FILE}", &vars).unwrap(),
            "Bearer s3cret"
        );
        assert!(expand_env("${MCP_WARDEN_TEST_ONLY_IN_FILE}").is_err());
    }
}
