//! Tool manifests (`tool-manifests/*.toml`), one per upstream, written by the tool's
//! owner: each tool's tier, extra argument constraints, redacted arguments, pin and
//! approval rule. This module parses and checks them; it does not talk to upstreams (the
//! catalog joins manifests with live tools, `arguments` compiles constraints).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use crate::problem::{Problem, line_of, toml_error_line, toml_error_message};
use crate::rules::{ArgRule, RULE_KEYS};

mod approval_rule;
pub mod skeleton;
pub use approval_rule::{ApprovalRule, MAX_QUORUM};

/// How much harm a tool can do; ordered from least to most strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Observes state; no side effects.
    Read,
    /// Changes data inside the agent's own working scope; reversible or local.
    Transform,
    /// Effects outside the agent's scope, or irreversible.
    Act,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Read => "read",
            Tier::Transform => "transform",
            Tier::Act => "act",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Tier::Read),
            "transform" => Ok(Tier::Transform),
            "act" => Ok(Tier::Act),
            other => Err(format!(
                "unknown tier `{other}`: use `read`, `transform` or `act`"
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    server: Spanned<String>,
    owner: Option<String>,
    #[serde(default)]
    tools: BTreeMap<String, Spanned<RawTool>>,
    #[serde(default)]
    prompts: BTreeMap<String, Spanned<RawTiered>>,
    #[serde(default)]
    resources: BTreeMap<String, Spanned<RawTiered>>,
}

/// A prompt's or resource prefix's entry: only a tier.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTiered {
    tier: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    tier: Spanned<String>,
    pin: Option<Spanned<String>>,
    #[serde(default)]
    arguments: BTreeMap<String, toml::Value>,
    #[serde(default)]
    redact: Vec<Spanned<String>>,
    approval: Option<Spanned<approval_rule::RawApprovalRule>>,
    /// What the tool's results contain (`pii`, `customer`, `secrets`…).
    #[serde(default)]
    labels: Vec<Spanned<String>>,
    /// Whether the tool sends data out of the organisation.
    #[serde(default)]
    egress: bool,
}

/// One upstream's manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub server: String,
    pub owner: Option<String>,
    pub file: PathBuf,
    pub tools: BTreeMap<String, ToolEntry>,
    /// Prompts the owner tiers (any other prompt is `read`).
    pub prompts: BTreeMap<String, Tier>,
    /// Resource URI prefixes the owner tiers; the longest matching prefix wins (any other
    /// resource is `read`).
    pub resources: BTreeMap<String, Tier>,
}

impl Manifest {
    /// The tier of a resource: its longest tiered URI prefix's, else `read`.
    pub fn resource_tier(&self, uri: &str) -> Tier {
        self.resources
            .iter()
            .filter(|(prefix, _)| uri.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(Tier::Read, |(_, tier)| *tier)
    }
}

/// What the owner says about one tool.
#[derive(Debug, Clone)]
pub struct ToolEntry {
    pub tier: Tier,
    /// `sha256:<hex>` of the tool's definition, when pinned.
    pub pin: Option<String>,
    /// Extra JSON Schema per argument, layered on the tool's own `inputSchema`.
    pub constraints: Map<String, Value>,
    /// Path and URL rules per argument (`path = { path = { within = … } }`).
    pub rules: Vec<(String, ArgRule)>,
    /// JSON pointers into the arguments kept out of the audit log (digest only).
    pub redact: Vec<String>,
    /// When calls need a human approval beyond what policy says.
    pub approval: Option<Arc<ApprovalRule>>,
    /// What its results contain: a session that gets one acquires these labels.
    pub labels: Vec<String>,
    /// It sends data out of the organisation.
    pub egress: bool,
    /// Where the tool's table starts, for diagnostics.
    pub line: usize,
}

/// All manifests, by server id.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    by_server: HashMap<String, Manifest>,
}

impl Manifests {
    pub fn get(&self, server: &str) -> Option<&Manifest> {
        self.by_server.get(server)
    }

    pub fn entry(&self, server: &str, tool: &str) -> Option<&ToolEntry> {
        self.get(server).and_then(|m| m.tools.get(tool))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Manifest> {
        self.by_server.values()
    }

    /// Parse every `(file, text)`; a file with errors contributes nothing. Problems from
    /// all files are returned together.
    pub fn parse(files: &[(PathBuf, String)]) -> (Self, Vec<Problem>) {
        let mut manifests = Self::default();
        let mut problems = Vec::new();
        for (file, text) in files {
            let Some(m) = parse_one(file, text, &mut problems) else {
                continue;
            };
            if let Some(other) = manifests.by_server.get(&m.server) {
                problems.push(Problem::error(
                    file,
                    Some(1),
                    format!(
                        "server `{}` already has a manifest in `{}`",
                        m.server,
                        other.file.display()
                    ),
                ));
                continue;
            }
            manifests.by_server.insert(m.server.clone(), m);
        }
        (manifests, problems)
    }
}

/// Read every `*.toml` file in a directory, sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<(PathBuf, String)>, Problem> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Problem::error(
            dir,
            None,
            format!("cannot read the manifest directory: {e}"),
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| match std::fs::read_to_string(&p) {
            Ok(text) => Ok((p, text)),
            Err(e) => Err(Problem::error(&p, None, format!("cannot read: {e}"))),
        })
        .collect()
}

fn parse_one(file: &Path, text: &str, out: &mut Vec<Problem>) -> Option<Manifest> {
    let raw: RawManifest = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            out.push(Problem::error(
                file,
                toml_error_line(text, &e),
                toml_error_message(&e),
            ));
            return None;
        }
    };
    let before = out.iter().filter(|p| p.is_error()).count();
    let server_line = Some(line_of(text, raw.server.span().start));
    if let Err(why) = crate::config::valid_server_id(raw.server.get_ref()) {
        out.push(Problem::error(
            file,
            server_line,
            format!("`server` `{}` {why}", raw.server.get_ref().escape_default()),
        ));
    }
    let mut tools = BTreeMap::new();
    for (name, spanned) in raw.tools {
        let line = line_of(text, spanned.span().start);
        if let Some(entry) = check_tool(&name, spanned.into_inner(), line, text, file, out) {
            tools.insert(name, entry);
        }
    }
    let prompts = tiers("prompt", raw.prompts, text, file, out);
    let resources = tiers("resources", raw.resources, text, file, out);
    let failed = out.iter().filter(|p| p.is_error()).count() > before;
    (!failed).then(|| Manifest {
        server: raw.server.into_inner(),
        owner: raw.owner,
        file: file.to_path_buf(),
        tools,
        prompts,
        resources,
    })
}

/// Checked `[prompts.NAME]` or `[resources."PREFIX"]` tiers.
fn tiers(
    what: &str,
    raw: BTreeMap<String, Spanned<RawTiered>>,
    text: &str,
    file: &Path,
    out: &mut Vec<Problem>,
) -> BTreeMap<String, Tier> {
    let mut checked = BTreeMap::new();
    for (name, entry) in raw {
        let tier = entry.into_inner().tier;
        match tier.get_ref().parse::<Tier>() {
            Ok(t) => {
                checked.insert(name, t);
            }
            Err(e) => out.push(Problem::error(
                file,
                Some(line_of(text, tier.span().start)),
                format!("{what} `{name}`: {e}"),
            )),
        }
    }
    checked
}

fn check_tool(
    name: &str,
    raw: RawTool,
    line: usize,
    text: &str,
    file: &Path,
    out: &mut Vec<Problem>,
) -> Option<ToolEntry> {
    let at = |span: std::ops::Range<usize>| Some(line_of(text, span.start));
    if !valid_tool_name(name) {
        out.push(Problem::error(
            file,
            Some(line),
            format!(
                "tool name `{}` must be 1-128 of A-Z a-z 0-9 _ - .",
                name.escape_default()
            ),
        ));
    }
    let tier = match raw.tier.get_ref().parse::<Tier>() {
        Ok(t) => Some(t),
        Err(e) => {
            out.push(Problem::error(
                file,
                at(raw.tier.span()),
                format!("tool `{name}`: {e}"),
            ));
            None
        }
    };
    let pin = raw.pin.map(|p| {
        let valid = p.get_ref().strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
        if !valid {
            out.push(Problem::error(file, at(p.span()), format!("tool `{name}`: `pin` must be `sha256:` and 64 hex digits (run `mcp-warden check` to see the current pin)")));
        }
        p.into_inner()
    });
    let mut constraints = Map::new();
    let mut rules = Vec::new();
    for (arg, value) in raw.arguments {
        match serde_json::to_value(&value) {
            Ok(Value::Object(mut table)) => {
                match ArgRule::parse(&table) {
                    Ok(Some(rule)) => rules.push((arg.clone(), rule)),
                    Ok(None) => {}
                    Err(e) => out.push(Problem::error(file, Some(line), format!("tool `{name}`: argument `{arg}`: {e}"))),
                }
                table.retain(|k, _| !RULE_KEYS.contains(&k.as_str()));
                // The rest is JSON Schema; an argument with rules alone must still be given.
                constraints.insert(arg, Value::Object(table));
            }
            _ => out.push(Problem::error(file, Some(line), format!("tool `{name}`: constraint for argument `{arg}` must be a table of JSON Schema keywords, e.g. {{ maxLength = 64 }}"))),
        }
    }
    let mut redact = Vec::new();
    for pointer in raw.redact {
        if !pointer.get_ref().starts_with('/') {
            out.push(Problem::error(
                file,
                at(pointer.span()),
                format!(
                    "tool `{name}`: redact entry `{}` must be a JSON pointer such as `/password`",
                    pointer.get_ref()
                ),
            ));
        }
        redact.push(pointer.into_inner());
    }
    let approval = raw.approval.and_then(|a| {
        let line = at(a.span());
        approval_rule::check(a.into_inner())
            .map_err(|errs| {
                for e in errs {
                    out.push(Problem::error(file, line, format!("tool `{name}`: {e}")));
                }
            })
            .ok()
            .map(Arc::new)
    });
    let mut labels = Vec::new();
    for label in raw.labels {
        if !valid_label(label.get_ref()) {
            out.push(Problem::error(
                file,
                at(label.span()),
                format!(
                    "tool `{name}`: label `{}` must be 1-64 of a-z 0-9 _ - (e.g. `pii`)",
                    label.get_ref().escape_default()
                ),
            ));
        }
        labels.push(label.into_inner());
    }
    Some(ToolEntry {
        tier: tier?,
        pin,
        constraints,
        rules,
        redact,
        approval,
        labels,
        egress: raw.egress,
        line,
    })
}

/// A data label: 1-64 characters of `a-z0-9_-`.
pub fn valid_label(label: &str) -> bool {
    (1..=64).contains(&label.len())
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

/// MCP's tool-name rule: 1-128 characters of `A-Za-z0-9_-.`.
pub fn valid_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Manifests, Vec<Problem>) {
        Manifests::parse(&[(PathBuf::from("m.toml"), text.to_string())])
    }

    #[test]
    fn homoglyph_invisible_and_bidi_names_are_refused_at_load() {
        // Cyrillic `е`, a zero-width space, a right-to-left override, a soft hyphen.
        for name in ["r\u{435}ad", "read\u{200b}", "read\u{202e}", "re\u{ad}ad"] {
            let (_, problems) = parse(&format!(
                "server = \"fs\"\n[tools.\"{name}\"]\ntier = \"read\"\n"
            ));
            assert!(
                problems
                    .iter()
                    .any(|p| p.is_error() && p.message.contains("must be 1-128")),
                "{name:?}: {problems:?}"
            );
        }
        let (_, problems) = parse("server = \"f\u{455}\"\n[tools.read]\ntier = \"read\"\n");
        assert!(
            problems.iter().any(Problem::is_error),
            "homoglyph server id: {problems:?}"
        );
    }

    #[test]
    fn a_valid_manifest_parses() {
        let (m, problems) = parse(
            "server = \"fs\"\n[tools.read]\ntier = \"read\"\n[tools.read.arguments]\npath = { pattern = \"^/srv/\" }\n[tools.write]\ntier = \"transform\"\nredact = [\"/content\"]\n",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let read = m.entry("fs", "read").unwrap();
        assert_eq!(read.tier, Tier::Read);
        assert_eq!(read.constraints["path"]["pattern"], "^/srv/");
        assert_eq!(m.entry("fs", "write").unwrap().redact, vec!["/content"]);
    }

    #[test]
    fn bad_tier_pin_and_pointer_are_each_reported_on_their_line() {
        let (m, problems) = parse(
            "server = \"fs\"\n[tools.a]\ntier = \"admin\"\n[tools.b]\ntier = \"read\"\npin = \"md5:x\"\nredact = [\"content\"]\n",
        );
        assert!(m.get("fs").is_none(), "a manifest with errors is not used");
        let lines: Vec<_> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![Some(3), Some(6), Some(7)], "{problems:?}");
        assert!(problems[0].message.contains("unknown tier `admin`"));
    }

    #[test]
    fn unknown_keys_and_duplicate_servers_are_errors() {
        let (_, problems) = parse("server = \"fs\"\n[tools.a]\ntier = \"read\"\nteir = \"x\"\n");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(4));
        let files = vec![
            (PathBuf::from("a.toml"), "server = \"fs\"\n".to_string()),
            (PathBuf::from("b.toml"), "server = \"fs\"\n".to_string()),
        ];
        let (_, problems) = Manifests::parse(&files);
        assert!(problems[0].message.contains("already has a manifest"));
    }

    #[test]
    fn tiers_are_ordered_by_strictness() {
        assert!(Tier::Read < Tier::Transform && Tier::Transform < Tier::Act);
    }
}
