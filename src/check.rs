//! `mcp-warden check`: every problem in the config, the manifests and the policy, with
//! file and line; then, unless offline, each upstream's live tools against its manifest
//! (missing tools, stale or absent pins, `read` tools the server calls destructive,
//! schemas that cannot be compiled). Reports; changes nothing.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::arguments::{self, ArgumentCheck};
use crate::catalog::effective_tier;
use crate::config::Config;
use crate::digest;
use crate::gateway::load_rules;
use crate::manifest::{Manifest, Manifests, Tier};
use crate::policy::Policy;
use crate::problem::Problem;
use crate::upstream::Upstreams;

/// How long `check` waits for one upstream to list its tools.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// Check everything; returns every problem found (errors and warnings).
pub async fn run(config: &Config, offline: bool) -> Vec<Problem> {
    let (manifests, mut problems) = match load_rules(config).await {
        Ok((m, policy, warnings)) => {
            let mut problems = warnings;
            check_approvers(config, &m, &policy, &mut problems);
            check_env_file(config, &mut problems);
            check_dead_rows(&m, &policy, &mut problems);
            (m, problems)
        }
        Err(problems) => return problems,
    };
    for m in manifests.iter() {
        check_constraints(m, &mut problems);
    }
    if !offline {
        // The issuers' keys: files and secrets are read, JWKS URLs fetched.
        if let Err(e) = crate::identity::Authenticator::load(config).await {
            problems.push(Problem::error(
                &config.source,
                None,
                format!("cannot verify HTTP callers: {e}"),
            ));
        }
        check_upstreams(config, &manifests, &mut problems).await;
        check_witnesses(config, &mut problems).await;
    }
    problems
}

/// Every witness reachable: a syslog server connected to (TLS handshake included), a
/// collector's port open, a witness file's directory there or makeable. A witness that
/// cannot be reached is a warning: the gateway still starts, and retries it.
async fn check_witnesses(config: &Config, out: &mut Vec<Problem>) {
    for witness in &config.boot.witnesses {
        let sink = witness.sink.clone();
        let probed = tokio::task::spawn_blocking(move || crate::audit::witness::probe(&sink))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(e) = probed {
            out.push(Problem::warning(
                &config.source,
                None,
                format!("witness `{}` cannot be reached: {e}", witness.sink),
            ));
        }
    }
}

/// Objects that are not tools: prompts, resources, logs and what upstreams ask callers.
const NON_TOOL_OBJECTS: [&str; 6] = [
    "prompts",
    "resources",
    "logs",
    "sampling",
    "elicitation",
    "roots",
];

/// Policy rows whose object matches no tool any manifest lists (a typo, or a tool that
/// went away), unless they name one of the non-tool objects.
fn check_dead_rows(manifests: &Manifests, policy: &crate::policy::Policy, out: &mut Vec<Problem>) {
    let tools: Vec<String> = manifests
        .iter()
        .flat_map(|m| m.tools.keys().map(move |t| format!("{}/{t}", m.server)))
        .collect();
    let mut rows: Vec<_> = policy.rows().filter(|r| r.grant.is_none()).collect();
    rows.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    for rule in rows {
        let Some(object) = rule.fields.get(1) else {
            continue;
        };
        let kind = object.split('/').nth(1).unwrap_or("");
        let names_other = NON_TOOL_OBJECTS
            .iter()
            .any(|k| kind == *k || kind.starts_with(&format!("{k}/")));
        if names_other || tools.iter().any(|t| crate::grant::matches(object, t)) {
            continue;
        }
        out.push(Problem::warning(
            std::path::Path::new(&rule.file),
            Some(rule.line),
            format!(
                "`p, {}` can never match: no manifest lists a tool `{object}` matches (objects are `server/tool`)",
                rule.fields.join(", ")
            ),
        ));
    }
}

/// Approvers who can sign in but may approve nothing, or who have nowhere to sign in.
fn check_approvers(
    config: &Config,
    manifests: &Manifests,
    policy: &Policy,
    out: &mut Vec<Problem>,
) {
    let approvers = &config.boot.approval.approvers;
    if !approvers.is_empty() && config.boot.admin.is_none() {
        out.push(Problem::warning(&config.source, None, "`[[approver]]` entries are configured but `[listen] admin` is not: approvers have nowhere to decide".to_string()));
    }
    let objects: Vec<String> = manifests
        .iter()
        .flat_map(|m| m.tools.keys().map(move |t| format!("{}/{t}", m.server)))
        .collect();
    for a in approvers {
        let decides = |o: &String| {
            policy.may_approve(&a.identity, o) || policy.asks_to_confirm(&a.identity, o)
        };
        if !objects.iter().any(decides) {
            out.push(Problem::warning(&config.source, None, format!("approver `{}` may approve no listed tool, nor confirm calls made on their behalf: add a policy row such as `p, {}, server/*, approve, allow`", a.identity, a.identity)));
        }
    }
}

/// A file of credentials others may read is a warning.
fn check_env_file(config: &Config, out: &mut Vec<Problem>) {
    if let Some(path) = config
        .boot
        .env_file
        .as_deref()
        .filter(|p| crate::config::env_file::readable_by_others(p))
    {
        out.push(Problem::warning(
            path,
            None,
            "others may read this file of credentials: `chmod 600` it",
        ));
    }
}

fn check_constraints(m: &Manifest, out: &mut Vec<Problem>) {
    for (name, entry) in &m.tools {
        for (arg, rule) in &entry.rules {
            out.push(Problem::note(
                &m.file,
                Some(entry.line),
                format!("tool `{name}`: argument `{arg}` must be {}", rule.explain()),
            ));
        }
        for (arg, constraint) in &entry.constraints {
            let ruled = entry.rules.iter().any(|(a, _)| a == arg);
            if let (Some(kind), false, true) =
                (looks_like(arg), ruled, constraint.get("pattern").is_some())
            {
                out.push(Problem::warning(&m.file, Some(entry.line), format!("tool `{name}`: argument `{arg}` looks like a {kind} checked with a `pattern`, which cannot resolve `..`, encodings or address notations: use `{kind} = {{ … }}` (see the README's argument rules)")));
            }
        }
        if entry.constraints.is_empty() {
            continue;
        }
        if let Err(e) = arguments::compile(&arguments::constraints_schema(&entry.constraints)) {
            out.push(Problem::error(
                &m.file,
                Some(entry.line),
                format!("tool `{name}`: argument constraints are not valid JSON Schema: {e}"),
            ));
        }
    }
}

/// Whether an argument's name says it holds a path or a URL.
fn looks_like(arg: &str) -> Option<&'static str> {
    let name = arg.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| name.contains(w));
    if has(&["url", "uri", "href", "endpoint", "link"]) {
        Some("url")
    } else if has(&["path", "file", "dir", "folder"]) {
        Some("path")
    } else {
        None
    }
}

async fn check_upstreams(config: &Config, manifests: &Manifests, out: &mut Vec<Problem>) {
    let (tx, _rx) = mpsc::unbounded_channel();
    let upstreams = Arc::new(Upstreams::new(&config.boot.upstreams, UPSTREAM_TIMEOUT, tx));
    for upstream in &config.boot.upstreams {
        let listed =
            tokio::time::timeout(UPSTREAM_TIMEOUT, upstreams.list_tools(&upstream.id)).await;
        let live = match listed {
            Ok(Ok(live)) => live,
            Ok(Err(e)) => {
                out.push(Problem::error(&config.source, None, e.to_string()));
                continue;
            }
            Err(_) => {
                out.push(Problem::error(
                    &config.source,
                    None,
                    format!(
                        "upstream `{}` did not list its tools within {}s",
                        upstream.id,
                        UPSTREAM_TIMEOUT.as_secs()
                    ),
                ));
                continue;
            }
        };
        match manifests.get(&upstream.id) {
            Some(m) => compare(m, &live, out),
            None if upstream.expose_unlisted => {}
            None => out.push(Problem::warning(
                &config.source,
                None,
                format!(
                    "upstream `{}` has no manifest in `{}`: none of its {} tools is exposed",
                    upstream.id,
                    config.live.manifests.display(),
                    live.len()
                ),
            )),
        }
    }
    upstreams.shutdown().await;
}

/// Compare a manifest with an upstream's live tools.
pub fn compare(m: &Manifest, live: &[Value], out: &mut Vec<Problem>) {
    for (name, entry) in &m.tools {
        let at = Some(entry.line);
        let Some(def) = live
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(name))
        else {
            out.push(Problem::warning(
                &m.file,
                at,
                format!("tool `{name}` is not offered by upstream `{}`", m.server),
            ));
            continue;
        };
        let pin = digest::tool_pin(def);
        match &entry.pin {
            Some(p) if *p != pin => out.push(Problem::error(&m.file, at, format!("tool `{name}` changed since it was pinned: it is quarantined until its owner reviews the change (`mcp-warden manifest pin --upstream {} --tool {name}` shows it) and sets `pin = \"{pin}\"`", m.server))),
            Some(_) => {}
            None => out.push(Problem::warning(&m.file, at, format!("tool `{name}` is not pinned: after reviewing it, add `pin = \"{pin}\"`"))),
        }
        if entry.tier == Tier::Read && effective_tier(Some(entry.tier), def) > Tier::Read {
            out.push(Problem::warning(&m.file, at, format!("tool `{name}` is tiered `read` but its server annotates it `destructiveHint: true`; the gateway treats it as `act`")));
        }
        let open_world = def.pointer("/annotations/openWorldHint") == Some(&Value::Bool(true));
        if open_world && !entry.egress {
            out.push(Problem::note(&m.file, at, format!("tool `{name}`: its server annotates it `openWorldHint: true`; if it sends data out of the organisation, mark it `egress = true` so that flow rules see it")));
        }
        let schema = def.get("inputSchema").cloned().unwrap_or(Value::Null);
        if let Err(e) = ArgumentCheck::compile(&schema, &entry.constraints, &entry.rules) {
            out.push(Problem::error(&m.file, at, format!("tool `{name}`: {e}")));
        }
    }
    let unlisted: Vec<&str> = live
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .filter(|n| !m.tools.contains_key(*n))
        .collect();
    if !unlisted.is_empty() {
        out.push(Problem::warning(
            &m.file,
            None,
            format!(
                "upstream `{}` offers tools this manifest does not list (hidden): {}",
                m.server,
                unlisted.join(", ")
            ),
        ));
    }
}
