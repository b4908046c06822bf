//! The `[approval]` table and the `[[approver]]` list of `warden.toml`: how long calls
//! wait, where requests are stored, whether `act` calls need approval by default, the
//! webhook told of new requests, and the approvers' credentials (hashed tokens, separate
//! from any agent credential). It does not decide who may approve what: policy does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::problem::{Problem, line_of};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApproval {
    timeout: Option<Spanned<String>>,
    database: Option<String>,
    act: Option<Spanned<String>>,
    webhook: Option<Spanned<String>>,
    public_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApprover {
    identity: Spanned<String>,
    sha256: Option<Spanned<String>>,
}

/// What an `act` call that policy simply allows needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActDefault {
    /// A human approval, unless the allowing rule names the `act` tier itself or the
    /// tool's manifest has an approval rule that does not apply to this call.
    Approve,
    /// Whatever policy says.
    Policy,
}

/// The checked `[approval]` settings a reload applies.
#[derive(Debug, Clone)]
pub struct ApprovalConfig {
    /// How long a request waits for a decision (a manifest rule may say otherwise).
    pub timeout: Duration,
    pub act: ActDefault,
    /// Told (HTTP POST, JSON) of every new request.
    pub webhook: Option<String>,
}

/// The checked `[approval]` settings and approvers only a restart applies.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalBoot {
    /// The SQLite database of approval requests.
    pub database: PathBuf,
    /// The approvals page as approvers reach it, for links; default: the admin listener.
    pub public_url: Option<String>,
    pub approvers: Vec<ApproverConfig>,
}

/// One approver's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApproverConfig {
    pub identity: String,
    /// Hex SHA-256 of the approver's token; `None`: a fresh token is made at each start
    /// and written to the state directory (for local use and demos).
    pub sha256: Option<String>,
}

pub(super) struct Context<'a> {
    pub text: &'a str,
    pub file: &'a Path,
    pub base: &'a Path,
    pub state_dir: &'a Path,
}

pub(super) fn check(
    raw: RawApproval,
    approvers: Vec<RawApprover>,
    cx: &Context<'_>,
    out: &mut Vec<Problem>,
) -> (ApprovalBoot, ApprovalConfig) {
    let timeout = super::duration(
        raw.timeout,
        "approval.timeout",
        Duration::from_secs(600),
        cx.text,
        cx.file,
        out,
    );
    let database = match raw.database {
        Some(p) => cx.base.join(p),
        None => cx.state_dir.join("approvals.db"),
    };
    let act = match raw.act.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("approve") => ActDefault::Approve,
        Some("policy") => ActDefault::Policy,
        Some(other) => {
            out.push(error(
                cx,
                raw.act.as_ref(),
                format!("`approval.act` `{other}` must be \"approve\" (the default) or \"policy\""),
            ));
            ActDefault::Approve
        }
    };
    let live = ApprovalConfig {
        timeout,
        act,
        webhook: raw
            .webhook
            .and_then(|u| url(cx, u, "approval.webhook", out)),
    };
    let boot = ApprovalBoot {
        database,
        public_url: raw
            .public_url
            .and_then(|u| url(cx, u, "approval.public_url", out)),
        approvers: check_approvers(approvers, cx, out),
    };
    (boot, live)
}

fn url(
    cx: &Context<'_>,
    value: Spanned<String>,
    key: &str,
    out: &mut Vec<Problem>,
) -> Option<String> {
    let s = value.get_ref();
    if s.starts_with("http://") || s.starts_with("https://") {
        return Some(s.trim_end_matches('/').to_string());
    }
    out.push(error(
        cx,
        Some(&value),
        format!("`{key}` `{s}` must be an http:// or https:// URL"),
    ));
    None
}

fn check_approvers(
    raw: Vec<RawApprover>,
    cx: &Context<'_>,
    out: &mut Vec<Problem>,
) -> Vec<ApproverConfig> {
    let mut checked: Vec<ApproverConfig> = Vec::new();
    for a in raw {
        let identity = a.identity.get_ref().clone();
        if !super::valid_identity_name(&identity) {
            out.push(error(
                cx,
                Some(&a.identity),
                format!("approver `{identity}` must look like `kind:name` (e.g. `user:carol`)"),
            ));
        }
        if checked.iter().any(|c| c.identity == identity) {
            out.push(error(
                cx,
                Some(&a.identity),
                format!("approver `{identity}` is listed twice; give each approver one entry"),
            ));
        }
        let sha256 = a.sha256.as_ref().map(|s| s.get_ref().to_ascii_lowercase());
        if let Some(h) = &sha256 {
            if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                out.push(error(cx, a.sha256.as_ref(), format!("approver `{identity}`: `sha256` must be 64 hex digits; make one with `mcp-warden approvals new-token --identity {identity}`")));
            } else if checked.iter().any(|c| c.sha256.as_ref() == Some(h)) {
                out.push(error(cx, a.sha256.as_ref(), format!("approver `{identity}` shares its token with another approver; each approver needs their own")));
            }
        }
        checked.push(ApproverConfig { identity, sha256 });
    }
    checked
}

fn error(cx: &Context<'_>, at: Option<&Spanned<String>>, message: String) -> Problem {
    let line = at.map(|s| line_of(cx.text, s.span().start));
    Problem::error(cx.file, line, message)
}

#[cfg(test)]
mod tests {
    use crate::config::{ActDefault, Config, ConfigError};
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("warden.toml"), Path::new("/base"))
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Err(ConfigError::Invalid(p)) => p.into_iter().map(|p| p.to_string()).collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn approvers_and_approval_keys_are_checked() {
        let hash = "a".repeat(64);
        let ok = parse(&format!(
            "[approval]\nact = \"policy\"\nwebhook = \"https://hooks.example/a\"\n\n[listen]\nadmin = \"127.0.0.1:8788\"\n\n[[approver]]\nidentity = \"user:carol\"\nsha256 = \"{hash}\"\n\n[[approver]]\nidentity = \"user:erin\"\n"
        ))
        .unwrap();
        assert_eq!(ok.live.approval.act, ActDefault::Policy);
        assert_eq!(ok.boot.approval.approvers.len(), 2);
        assert_eq!(ok.boot.approval.approvers[1].sha256, None);
        assert_eq!(ok.boot.admin.map(|a| a.port()), Some(8788));

        let errs = errors(&format!(
            "[approval]\nact = \"always\"\nwebhook = \"ftp://x\"\n\n[[approver]]\nidentity = \"carol\"\nsha256 = \"{hash}\"\n\n[[approver]]\nidentity = \"user:erin\"\nsha256 = \"{hash}\"\n\n[[approver]]\nidentity = \"user:erin\"\nsha256 = \"xyz\"\n"
        ));
        assert_eq!(errs.len(), 6, "{errs:#?}");
        for needle in [
            "act",
            "webhook",
            "kind:name",
            "shares its token",
            "listed twice",
            "64 hex",
        ] {
            assert!(
                errs.iter().any(|e| e.contains(needle)),
                "{needle}: {errs:#?}"
            );
        }
    }

    #[test]
    fn the_admin_listener_stays_on_loopback_unless_allowed() {
        assert!(parse("[listen]\nadmin = \"0.0.0.0:8788\"\n").is_err());
        assert!(parse("[listen]\nadmin = \"0.0.0.0:8788\"\nallow_remote = true\n").is_ok());
    }
}
