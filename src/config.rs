//! `warden.toml`: listeners, upstreams, identities and paths, parsed into `Raw*` structs
//! and checked once into [`Config`]. Later stages trust a `Config`; this module does not
//! open connections or read manifests and policies (it only knows where they are).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::problem::{Problem, line_of, toml_error_line, toml_error_message};

mod approval;
mod auth;
pub mod env_file;
mod limits;
mod store;
mod telemetry;
mod upstream;
mod witness;
pub use approval::{ActDefault, ApprovalBoot, ApprovalConfig, ApproverConfig};
pub use auth::{ApiKeyConfig, AuthConfig, IssuerConfig, KeySource};
pub use store::StoreConfig;
pub use telemetry::TelemetryConfig;
use upstream::RawUpstream;
pub use upstream::{
    UpstreamConfig, UpstreamProtocol, UpstreamTransport, expand_env, expand_with, substitute,
    valid_server_id,
};
use witness::RawWitness;
pub use witness::{SyslogConfig, SyslogTls, WitnessConfig, WitnessSink};

/// The separator between a server id and a tool name in a namespaced tool name
/// (`demo_send_message`). Server ids may not contain it, so the first occurrence always
/// splits correctly; it is valid in every client's tool-name rule.
pub const SEPARATOR: char = '_';

/// The environment variable that `${MCP_WARDEN_EXE}` expands to when unset: the path of
/// the running gateway binary, so a config can start the bundled demo tool server.
pub const SELF_EXE_VAR: &str = "MCP_WARDEN_EXE";

/// The embedded defaults: the demo tool server behind the shipped demo manifest and policy.
pub const DEFAULT_CONFIG: &str = include_str!("../examples/warden.toml");

/// The `source` of the embedded defaults.
const EMBEDDED: &str = "<embedded defaults>";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", crate::problem::render(.0))]
    Invalid(Vec<Problem>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    gateway: RawGateway,
    #[serde(default)]
    listen: RawListen,
    #[serde(default)]
    identity: RawIdentities,
    #[serde(default)]
    upstream: Vec<Spanned<RawUpstream>>,
    #[serde(default)]
    approval: approval::RawApproval,
    #[serde(default)]
    approver: Vec<approval::RawApprover>,
    auth: Option<auth::RawAuth>,
    /// Where signed checkpoints are also written.
    #[serde(default)]
    witness: Vec<RawWitness>,
    /// Rate limits and caps on waiting approvals.
    #[serde(default)]
    limit: Vec<limits::RawLimit>,
    /// Span export and the metrics scraper's token.
    #[serde(default)]
    telemetry: telemetry::RawTelemetry,
    /// Where replicas share approvals and grants.
    #[serde(default)]
    store: store::RawStore,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    manifests: Option<String>,
    policy_model: Option<String>,
    policy: Option<String>,
    /// Flow rules over what a session has read.
    flows: Option<String>,
    state_dir: Option<String>,
    audit_log: Option<String>,
    /// The key that signs the audit log's checkpoints.
    audit_key: Option<String>,
    /// `NAME=value` lines that `${NAME}` in an upstream's settings may use.
    env_file: Option<String>,
    intent_field: Option<String>,
    /// Record every caller's intent as its digest only.
    #[serde(default)]
    redact_intent: bool,
    call_timeout: Option<Spanned<String>>,
    relist_interval: Option<Spanned<String>>,
    /// Reload when a manifest, the policy or this file changes.
    #[serde(default)]
    watch: bool,
    /// This replica's name among replicas that share a store (`${NAME}` expanded).
    replica: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    http: Option<Spanned<String>>,
    admin: Option<Spanned<String>>,
    /// `/metrics`, `/healthz` and `/readyz` on a listener of their own.
    metrics: Option<Spanned<String>>,
    #[serde(default)]
    allow_remote: bool,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentities {
    stdio: Option<RawIdentity>,
    http: Option<RawIdentity>,
    #[serde(default)]
    api_keys: Vec<auth::RawApiKey>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    agent: String,
    on_behalf_of: Option<String>,
}

/// The checked gateway configuration: what only a restart applies, and what a reload
/// replaces.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (`<embedded defaults>` for the built-in one).
    pub source: PathBuf,
    /// What it holds that works but deserves a look (`check` and the start report them).
    pub warnings: Vec<Problem>,
    /// The directory relative paths are taken from.
    pub base: PathBuf,
    pub boot: Boot,
    pub live: Live,
}

/// The settings only a restart applies: listeners, upstreams, storage, the timings of
/// the loops started at start, and the approvers' credentials. A reload that reads other
/// values keeps these and names them in a warning.
#[derive(Debug, Clone, PartialEq)]
pub struct Boot {
    /// Reload when a manifest, the policy or the config file changes (`[gateway] watch`).
    pub watch: bool,
    pub state_dir: PathBuf,
    pub audit_log: PathBuf,
    /// The private key that signs the audit log's checkpoints (made when absent):
    /// `MCP_WARDEN_AUDIT_KEY`, else `[gateway] audit_key`, else in `state_dir`.
    pub audit_key: PathBuf,
    /// Where signed checkpoints (or every record) are also sent (`[[witness]]`).
    pub witnesses: Vec<WitnessConfig>,
    pub call_timeout: Duration,
    /// How often every upstream's tools are listed again, for servers that change without
    /// saying so (`0s`: never).
    pub relist_interval: Duration,
    pub http: Option<HttpListen>,
    pub upstreams: Vec<UpstreamConfig>,
    /// The file of credentials `${NAME}` in upstream values may use (`[gateway] env_file`).
    pub env_file: Option<PathBuf>,
    /// Where approvers work: the approvals page and API (loopback unless allowed).
    pub admin: Option<SocketAddr>,
    /// Where `/metrics`, `/healthz` and `/readyz` are also served (loopback unless allowed).
    pub metrics: Option<SocketAddr>,
    pub approval: ApprovalBoot,
    /// Span export and the metrics scraper's token (`[telemetry]`).
    pub telemetry: TelemetryConfig,
    /// Where approvals and grants are kept (`[store]`).
    pub store: StoreConfig,
    /// This replica's name (`[gateway] replica`): in its audit log's name and records.
    pub replica: Option<String>,
}

/// The settings a reload replaces: where manifests and policy are, the intent field,
/// the configured identities, how approvals run, and how HTTP callers authenticate.
#[derive(Debug, Clone)]
pub struct Live {
    pub manifests: PathBuf,
    pub policy_model: PathBuf,
    pub policy: PathBuf,
    /// Flow rules (`flows.toml`; absent: none).
    pub flows: PathBuf,
    pub intent_field: String,
    /// Record every intent as its digest only (`[gateway] redact_intent`).
    pub redact_intent: bool,
    pub stdio_identity: IdentityConfig,
    pub http_identity: IdentityConfig,
    pub approval: ApprovalConfig,
    /// Token verification for HTTP callers (`[auth]`).
    pub auth: Option<AuthConfig>,
    /// API keys HTTP callers may present instead of a token.
    pub api_keys: Vec<ApiKeyConfig>,
    /// Rate limits and caps on waiting approvals (`[[limit]]`).
    pub limits: crate::limits::LimitConfig,
}

impl Boot {
    /// The settings (as written in `warden.toml`) whose values differ in `other`.
    pub fn changed(&self, other: &Boot) -> Vec<&'static str> {
        // Every field, named: a field added to `Boot` does not compile until it is here.
        let Boot {
            watch,
            state_dir,
            audit_log,
            audit_key,
            witnesses,
            call_timeout,
            relist_interval,
            http,
            upstreams,
            env_file,
            admin,
            metrics,
            approval,
            telemetry,
            store,
            replica,
        } = self;
        let ApprovalBoot {
            database,
            public_url,
            approvers,
        } = approval;
        [
            ("`state_dir`", state_dir == &other.state_dir),
            ("`audit_log`", audit_log == &other.audit_log),
            ("`audit_key`", audit_key == &other.audit_key),
            ("`witness`", witnesses == &other.witnesses),
            ("`call_timeout`", call_timeout == &other.call_timeout),
            (
                "`relist_interval`",
                relist_interval == &other.relist_interval,
            ),
            ("`watch`", watch == &other.watch),
            ("`listen.http`", http == &other.http),
            ("`listen.admin`", admin == &other.admin),
            ("`listen.metrics`", metrics == &other.metrics),
            ("`[telemetry]`", telemetry == &other.telemetry),
            ("`[store]`", store == &other.store),
            ("`replica`", replica == &other.replica),
            ("`[[upstream]]`", upstreams == &other.upstreams),
            ("`env_file`", env_file == &other.env_file),
            ("`approval.database`", database == &other.approval.database),
            ("`[[approver]]`", approvers == &other.approval.approvers),
            (
                "`approval.public_url`",
                public_url == &other.approval.public_url,
            ),
        ]
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(name, _)| name)
        .collect()
    }
}

impl Config {
    /// Whether HTTP callers must authenticate (any `[auth]` or API key configured); when
    /// not, every HTTP caller is `[identity.http]`, on loopback only.
    pub fn authenticates(&self) -> bool {
        self.live.auth.is_some() || !self.live.api_keys.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpListen {
    pub addr: SocketAddr,
    /// `Host` header values accepted (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// Browser `Origin`s accepted besides loopback ones (`scheme://host:port`).
    pub allowed_origins: Vec<String>,
    /// Whether it listens off loopback (allowed by `allow_remote`).
    pub remote: bool,
}

/// A configured caller identity: an agent acting, optionally, for a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    pub agent: String,
    pub on_behalf_of: Option<String>,
}

impl Config {
    /// Load and check a config file; relative paths are taken from the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::parse(&text, path, &base)
    }

    /// The embedded defaults, with paths taken from `base` (normally the working directory).
    pub fn embedded(base: &Path) -> Result<Self, ConfigError> {
        Self::parse(DEFAULT_CONFIG, Path::new(EMBEDDED), base)
    }

    /// Read this config again from where it came from (its file, or the embedded
    /// defaults with the same base).
    pub fn reread(&self) -> Result<Self, ConfigError> {
        if self.source == Path::new(EMBEDDED) {
            Self::embedded(&self.base)
        } else {
            Self::load(&self.source)
        }
    }

    /// Parse and check config text. Every problem is reported, not just the first.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            ConfigError::Invalid(vec![Problem::error(
                file,
                toml_error_line(text, &e),
                toml_error_message(&e),
            )])
        })?;
        let mut problems = Vec::new();
        let mut config = check(raw, text, file, base, &mut problems);
        if problems.iter().any(Problem::is_error) {
            return Err(ConfigError::Invalid(problems));
        }
        config.warnings = problems;
        Ok(config)
    }

    pub fn upstream(&self, id: &str) -> Option<&UpstreamConfig> {
        self.boot.upstreams.iter().find(|u| u.id == id)
    }

    /// The upstream a name belongs to: `id` + `separator` + rest for a namespaced
    /// upstream, else the one upstream without a namespace, with the whole name.
    pub fn route<'a>(&self, name: &'a str, separator: char) -> Option<(&UpstreamConfig, &'a str)> {
        let namespaced = name
            .split_once(separator)
            .and_then(|(id, rest)| Some((self.upstream(id).filter(|u| u.namespace)?, rest)));
        namespaced.or_else(|| Some((self.boot.upstreams.iter().find(|u| !u.namespace)?, name)))
    }
}

/// `[gateway] replica`, expanded and checked: a name that can be part of a file name.
fn replica_name(
    raw: &Spanned<String>,
    text: &str,
    file: &Path,
    out: &mut Vec<Problem>,
) -> Option<String> {
    let line = Some(crate::problem::line_of(text, raw.span().start));
    let name = match expand_env(raw.get_ref().trim()) {
        Ok(n) => n,
        Err(e) => {
            out.push(Problem::error(file, line, format!("`replica`: {e}")));
            return None;
        }
    };
    let fits = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !name.starts_with('.');
    if !fits {
        out.push(Problem::error(
            file,
            line,
            format!("`replica` `{}` must be 1-64 of A-Z a-z 0-9 . _ - (it names the replica's audit log), e.g. \"gw-1\" or \"${{HOSTNAME}}\"", crate::escape::visible(&name)),
        ));
        return None;
    }
    Some(name)
}

/// The audit log of replica `replica`: its name before the extension.
pub fn replica_log(log: &Path, replica: &str) -> PathBuf {
    let stem = log
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "audit".into());
    let name = match log.extension() {
        Some(ext) => format!("{stem}-{replica}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{replica}"),
    };
    log.with_file_name(name)
}

fn check(raw: RawConfig, text: &str, file: &Path, base: &Path, out: &mut Vec<Problem>) -> Config {
    let path = |value: Option<String>, default: &str| base.join(value.unwrap_or(default.into()));
    let state_dir = path(raw.gateway.state_dir, ".mcp-warden");
    let audit_log = match raw.gateway.audit_log {
        Some(p) => base.join(p),
        None => state_dir.join("audit.jsonl"),
    };
    let replica = raw
        .gateway
        .replica
        .as_ref()
        .and_then(|r| replica_name(r, text, file, out));
    // Each replica its own chain: `audit.jsonl` becomes `audit-<replica>.jsonl`.
    let audit_log = match &replica {
        Some(r) => replica_log(&audit_log, r),
        None => audit_log,
    };
    let audit_key = match (
        std::env::var_os("MCP_WARDEN_AUDIT_KEY"),
        raw.gateway.audit_key,
    ) {
        (Some(p), _) => PathBuf::from(p),
        (None, Some(p)) => base.join(p),
        (None, None) => state_dir.join("audit-signing.key"),
    };
    let intent_field = raw.gateway.intent_field.unwrap_or_else(|| "intent".into());
    if !env_file::valid_name(&intent_field) {
        out.push(Problem::error(
            file,
            None,
            format!("`intent_field` `{intent_field}` must match [A-Za-z_][A-Za-z0-9_]*"),
        ));
    }
    let call_timeout = duration(
        raw.gateway.call_timeout,
        "call_timeout",
        Duration::from_secs(300),
        text,
        file,
        out,
    );
    let relist_interval = duration(
        raw.gateway.relist_interval,
        "relist_interval",
        Duration::from_secs(300),
        text,
        file,
        out,
    );
    let cx = approval::Context {
        text,
        file,
        base,
        state_dir: &state_dir,
    };
    let approval = approval::check(raw.approval, raw.approver, &cx, out);
    let admin = raw
        .listen
        .admin
        .as_ref()
        .and_then(|a| address(a, "listen.admin", raw.listen.allow_remote, text, file, out));
    let metrics = raw.listen.metrics.as_ref().and_then(|a| {
        address(
            a,
            "listen.metrics",
            raw.listen.allow_remote,
            text,
            file,
            out,
        )
    });
    let telemetry = telemetry::check(raw.telemetry, text, file, out);
    let http = check_listen(raw.listen, text, file, out);
    let auth_cx = auth::Context { text, file, base };
    let auth = raw.auth.map(|a| auth::check(a, &auth_cx, out));
    let api_keys = auth::api_keys(raw.identity.api_keys, &auth_cx, out);
    if http.as_ref().is_some_and(|h| h.remote) && auth.is_none() && api_keys.is_empty() {
        out.push(Problem::error(
            file,
            None,
            "`listen.http` is reachable off loopback but callers do not authenticate: add `[auth]` or `[[identity.api_keys]]`".to_string(),
        ));
    }
    let stdio_identity = identity(raw.identity.stdio, "agent:stdio", file, out);
    let http_identity = identity(raw.identity.http, "agent:http", file, out);
    let env_file = raw.gateway.env_file.map(|p| base.join(p));
    let vars = upstream::env_file_vars(env_file.as_deref(), out);
    let upstreams = upstream::check_upstreams(raw.upstream, &vars, text, file, base, out);
    let store = store::check(raw.store, &vars, text, file, out);
    let mut witnesses = witness::witnesses(
        raw.witness,
        base,
        file,
        (store.url.as_deref(), replica.as_deref()),
        out,
    );
    // Replicas on PostgreSQL keep their checkpoints there too, unasked: a witness each
    // replica's host alone cannot rewrite (`[[witness]] store = true` says more, such as
    // `records = "all"`).
    if let Some(url) = &store.url
        && !witnesses
            .iter()
            .any(|w| matches!(w.sink, WitnessSink::Store { .. }))
    {
        witnesses.push(WitnessConfig {
            sink: WitnessSink::Store {
                url: url.clone(),
                replica: replica.clone().unwrap_or_default(),
            },
            every_record: false,
        });
    }
    let limits = limits::limits(raw.limit, file, out);
    let (approval_boot, approval) = approval;
    Config {
        source: file.to_path_buf(),
        warnings: Vec::new(),
        base: base.to_path_buf(),
        boot: Boot {
            watch: raw.gateway.watch,
            state_dir,
            audit_log,
            audit_key,
            witnesses,
            call_timeout,
            relist_interval,
            http,
            upstreams,
            env_file,
            admin,
            metrics,
            approval: approval_boot,
            telemetry,
            store,
            replica,
        },
        live: Live {
            manifests: path(raw.gateway.manifests, "tool-manifests"),
            policy_model: path(raw.gateway.policy_model, "policies/model.conf"),
            policy: path(raw.gateway.policy, "policies/policy.csv"),
            flows: path(raw.gateway.flows, "policies/flows.toml"),
            intent_field,
            redact_intent: raw.gateway.redact_intent,
            stdio_identity,
            http_identity,
            approval,
            auth,
            api_keys,
            limits,
        },
    }
}

/// A duration such as `"60s"` or `"10m"`; `default` when absent.
fn duration(
    value: Option<Spanned<String>>,
    key: &str,
    default: Duration,
    text: &str,
    file: &Path,
    out: &mut Vec<Problem>,
) -> Duration {
    let Some(s) = value else { return default };
    humantime::parse_duration(s.get_ref()).unwrap_or_else(|e| {
        let line = Some(line_of(text, s.span().start));
        out.push(Problem::error(
            file,
            line,
            format!(
                "`{key}` `{}`: {e} (write e.g. \"60s\" or \"5m\")",
                s.get_ref()
            ),
        ));
        default
    })
}

fn check_listen(
    raw: RawListen,
    text: &str,
    file: &Path,
    out: &mut Vec<Problem>,
) -> Option<HttpListen> {
    let addr = address(
        raw.http.as_ref()?,
        "listen.http",
        raw.allow_remote,
        text,
        file,
        out,
    )?;
    let mut allowed_hosts = loopback_hosts();
    allowed_hosts.extend(raw.allowed_hosts);
    for origin in &raw.allowed_origins {
        if !(origin.starts_with("https://") || origin.starts_with("http://")) {
            out.push(Problem::error(
                file,
                None,
                format!("`allowed_origins` entry `{origin}` must be `scheme://host[:port]`, e.g. \"https://app.example.com\""),
            ));
        }
    }
    Some(HttpListen {
        addr,
        allowed_hosts,
        allowed_origins: raw.allowed_origins,
        remote: !addr.ip().is_loopback(),
    })
}

/// A listener address; off loopback only with `allow_remote`.
fn address(
    spanned: &Spanned<String>,
    key: &str,
    allow_remote: bool,
    text: &str,
    file: &Path,
    out: &mut Vec<Problem>,
) -> Option<SocketAddr> {
    let line = Some(line_of(text, spanned.span().start));
    let Ok(addr) = spanned.get_ref().parse::<SocketAddr>() else {
        out.push(Problem::error(
            file,
            line,
            format!(
                "`{key}` `{}` is not an address: write e.g. \"127.0.0.1:8787\"",
                spanned.get_ref()
            ),
        ));
        return None;
    };
    if !addr.ip().is_loopback() && !allow_remote {
        out.push(Problem::error(
            file,
            line,
            format!(
                "`{key}` `{addr}` is not a loopback address: bind 127.0.0.1, or set \
                 `allow_remote = true` if a trusted proxy (with TLS) guards it"
            ),
        ));
    }
    Some(addr)
}

fn identity(
    raw: Option<RawIdentity>,
    default_agent: &str,
    file: &Path,
    out: &mut Vec<Problem>,
) -> IdentityConfig {
    let raw = raw.unwrap_or(RawIdentity {
        agent: default_agent.into(),
        on_behalf_of: None,
    });
    for name in std::iter::once(&raw.agent).chain(raw.on_behalf_of.iter()) {
        if !valid_identity_name(name) {
            out.push(Problem::error(
                file,
                None,
                format!("identity `{name}` must look like `kind:name` (e.g. `agent:desktop`, `user:alice`)"),
            ));
        }
    }
    IdentityConfig {
        agent: raw.agent,
        on_behalf_of: raw.on_behalf_of,
    }
}

/// The `Host` values every HTTP listener accepts: loopback names only.
pub fn loopback_hosts() -> Vec<String> {
    vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()]
}

/// An identity name: `kind:name`, printable ASCII without spaces or commas (which would
/// break a policy line).
pub fn valid_identity_name(name: &str) -> bool {
    let printable = name
        .chars()
        .all(|c| c.is_ascii_graphic() && c != ',' && c != '#');
    matches!(name.split_once(':'), Some((kind, rest)) if !kind.is_empty() && !rest.is_empty())
        && printable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("warden.toml"), Path::new("/base"))
    }

    #[test]
    fn embedded_defaults_are_valid() {
        let config = Config::embedded(Path::new("/base")).unwrap();
        assert_eq!(config.boot.upstreams.len(), 1);
        assert_eq!(config.live.manifests, Path::new("/base/tool-manifests"));
    }

    /// A reload names the restart-only settings the file changed, and only those: a
    /// changed policy path, intent field or approval timeout is applied, not named.
    #[test]
    fn boot_settings_that_differ_are_named_and_live_ones_are_not() {
        let upstream = "[[upstream]]\nid = \"demo\"\ncommand = \"x\"\n";
        let running = parse(upstream).unwrap();
        let live_only = format!(
            "[gateway]\npolicy = \"other.csv\"\nintent_field = \"why\"\n[approval]\ntimeout = \"5s\"\n{upstream}"
        );
        let live_only = parse(&live_only).unwrap();
        assert!(running.boot.changed(&live_only.boot).is_empty());
        assert_ne!(running.live.policy, live_only.live.policy);
        let boot = "[gateway]\ncall_timeout = \"9s\"\n[listen]\nadmin = \"127.0.0.1:9999\"\n[[upstream]]\nid = \"demo\"\ncommand = \"y\"\n";
        assert_eq!(
            running.boot.changed(&parse(boot).unwrap().boot),
            ["`call_timeout`", "`listen.admin`", "`[[upstream]]`"]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let err =
            parse("[[upstream]]\nid = \"bad_id\"\ncommand = \"x\"\n\n[[upstream]]\nid = \"ok\"\n")
                .unwrap_err();
        let ConfigError::Invalid(problems) = err else {
            panic!()
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].line, Some(1));
        assert!(problems[1].message.contains("exactly one of"));
        assert_eq!(problems[1].line, Some(5));
    }

    #[test]
    fn unknown_keys_are_refused_with_a_line() {
        let err = parse("[gateway]\nmanifest = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("warden.toml:2"), "{err}");
        assert!(err.contains("manifest"), "{err}");
    }

    #[test]
    fn remote_http_binding_needs_an_explicit_opt_in_and_authenticated_callers() {
        assert!(parse("[listen]\nhttp = \"0.0.0.0:8787\"\n").is_err());
        let remote = "[listen]\nhttp = \"0.0.0.0:8787\"\nallow_remote = true\n";
        let err = parse(remote).unwrap_err().to_string();
        assert!(err.contains("callers do not authenticate"), "{err}");
        let key = format!(
            "{remote}\n[[identity.api_keys]]\nagent = \"agent:a\"\nsha256 = \"{}\"\n",
            "0".repeat(64)
        );
        assert!(parse(&key).is_ok());
        assert!(parse("[listen]\nhttp = \"127.0.0.1:0\"\n").is_ok());
    }
}
