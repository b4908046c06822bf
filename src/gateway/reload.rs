//! Reloading policy, manifests and config while calls run. A reload reads every input
//! again and builds a complete new [`Snapshot`] beside the running one (config, manifests
//! with their schemas compiled, a fresh Casbin policy, caller credentials, the catalog
//! from each upstream's last tool list). Only when all of it is valid and the reload is
//! audited is it installed, in one step; a call in flight keeps the snapshot it started
//! with. A reload that fails changes nothing, reports every error and is audited too.
//! Settings that only a restart can apply (listeners, upstreams, storage paths) keep
//! their running values, with a warning. Triggered by SIGHUP, `POST /reload` on the admin
//! listener, and, with `[gateway] watch`, by a change to any file it reads.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Snapshot, State};
use crate::catalog::Catalog;
use crate::config::{Config, ConfigError};
use crate::problem::Problem;

/// A reload that took effect.
#[derive(Debug, Clone)]
pub struct Reloaded {
    pub generation: u64,
    /// Warnings about the new inputs (located, one line each).
    pub warnings: Vec<String>,
}

impl State {
    /// Read config, manifests and policy again and, if every one is valid, swap them in.
    /// `by` says who asked (`signal`, `file-change`, `admin:<approver>`), for the audit.
    pub async fn reload(&self, by: &str) -> Result<Reloaded, Vec<Problem>> {
        let reloaded = self.reload_once(by).await;
        let result = match &reloaded {
            Ok(_) => "ok",
            Err(_) => "failed",
        };
        let labels = crate::telemetry::ResultLabels { result };
        self.metrics.reloads.get_or_create(&labels).inc();
        // A reload made here (not one another replica announced) is announced to the
        // replicas sharing the store; each reloads its own files.
        if !by.starts_with(FROM_REPLICA)
            && self.store.shared()
            && let Err(e) = self
                .store
                .announce(&format!("{ANNOUNCED}{}", self.origin))
                .await
        {
            tracing::warn!("the other replicas were not told of this reload: {e}");
        }
        reloaded
    }

    async fn reload_once(&self, by: &str) -> Result<Reloaded, Vec<Problem>> {
        let swapping = self.swapping.lock().await;
        let running = self.current();
        let built = self.build(&running).await;
        let (next, warnings) = match built {
            Ok(built) => built,
            Err(problems) => {
                drop(swapping);
                self.audit_refused(by, &problems).await;
                return Err(problems);
            }
        };
        let warnings: Vec<String> = warnings.iter().map(Problem::located).collect();
        let record = json!({
            "by": by,
            "outcome": "ok",
            "generation": next.generation,
            "warnings": warnings,
            "inputs": inputs(&next.config),
        });
        if let Value::Object(fields) = record
            && let Err(e) = self.audit.event("reload", fields).await
        {
            let source = next.config.source.clone();
            let problem = Problem::error(&source, None, format!("{e}; nothing was changed"));
            return Err(vec![problem]);
        }
        let generation = next.generation;
        let catalog = next.catalog.clone();
        self.install(next);
        drop(swapping);
        tracing::info!(%by, generation, "reloaded policy, manifests and config");
        for w in &warnings {
            tracing::warn!("{w}");
        }
        self.report_drift(&catalog).await;
        self.notify_list_changed().await;
        self.relay_lists_changed().await;
        Ok(Reloaded {
            generation,
            warnings,
        })
    }

    /// A complete new snapshot from the inputs as they are now, or every problem found.
    async fn build(&self, running: &Snapshot) -> Result<(Snapshot, Vec<Problem>), Vec<Problem>> {
        let read = match running.config.reread() {
            Ok(read) => read,
            Err(e) => {
                let mut problems = match e {
                    ConfigError::Invalid(problems) => problems,
                    e @ ConfigError::Read { .. } => {
                        vec![Problem::error(&running.config.source, None, e.to_string())]
                    }
                };
                // Report the manifests' and policy's errors too (at the running paths).
                if let Err(mut more) = super::load_rules(&running.config).await {
                    problems.append(&mut more);
                }
                return Err(problems);
            }
        };
        let mut warnings = Vec::new();
        let config = keep_restart_only(&running.config, read, &mut warnings);
        let (manifests, policy, mut found) = super::load_rules(&config).await?;
        warnings.append(&mut found);
        if policy.rows().next().is_none() && running.policy.rows().next().is_some() {
            return Err(vec![Problem::error(
                &config.live.policy,
                None,
                "the new policy has no `p` rules at all (an empty or half-written file?); \
                 the running policy stays in force: to refuse everything on purpose, write a `deny` rule",
            )]);
        }
        let authenticator = crate::identity::Authenticator::load(&config)
            .await
            .map_err(|e| vec![Problem::error(&config.source, None, e)])?;
        let mut catalog = Catalog::default();
        for (id, live) in self.live_tools() {
            if let Some(tools) = self.catalogue(&config, &manifests, &id, &live).await {
                catalog = catalog.with_server(&id, tools);
            }
        }
        let snapshot = Snapshot {
            policy: Arc::new(policy.with_grants(self.grants.book())),
            manifests: Arc::new(manifests),
            authenticator: Arc::new(authenticator),
            catalog: Arc::new(catalog),
            generation: running.generation + 1,
            config: Arc::new(config),
        };
        Ok((snapshot, warnings))
    }

    async fn audit_refused(&self, by: &str, problems: &[Problem]) {
        let errors: Vec<String> = problems
            .iter()
            .filter(|p| p.is_error())
            .map(Problem::located)
            .collect();
        tracing::warn!(%by, "reload refused, the running policy, manifests and config stay in force:\n{}", errors.join("\n"));
        let record = json!({"by": by, "outcome": "refused", "errors": errors});
        if let Value::Object(fields) = record
            && let Err(e) = self.audit.event("reload", fields).await
        {
            tracing::error!(error = %e, "cannot audit a refused reload");
        }
    }
}

/// `read` with the settings only a restart can apply (its `boot`) put back to their
/// running values; one warning names those that were changed in the file.
fn keep_restart_only(running: &Config, mut read: Config, warnings: &mut Vec<Problem>) -> Config {
    let kept = running.boot.changed(&read.boot);
    read.boot = running.boot.clone();
    if !kept.is_empty() {
        warnings.push(Problem::warning(
            &read.source,
            None,
            format!(
                "{} changed: only a restart applies that; the running value is kept until then",
                kept.join(", ")
            ),
        ));
    }
    read
}

/// The files a snapshot was built from, with the digest of each, for the audit record.
fn inputs(config: &Config) -> Map<String, Value> {
    fingerprint(config)
        .into_iter()
        .filter_map(|(path, digest)| Some((path.display().to_string(), json!(digest?))))
        .collect()
}

/// Every file a reload reads: the config file, the policy model, rules and flow rules,
/// and each manifest.
fn watched(config: &Config) -> Vec<PathBuf> {
    let mut files = vec![
        config.live.policy_model.clone(),
        config.live.policy.clone(),
        config.live.flows.clone(),
    ];
    if config.source.is_file() {
        files.push(config.source.clone());
    }
    if let Ok(dir) = std::fs::read_dir(&config.live.manifests) {
        let mut manifests: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        manifests.sort();
        files.extend(manifests);
    }
    files
}

/// What the watched files hold now: each one's path and content digest (`None` when it
/// cannot be read). Contents, not times: two writes within one mtime tick still differ.
pub(super) type Fingerprint = Vec<(PathBuf, Option<String>)>;

pub(super) fn fingerprint(config: &Config) -> Fingerprint {
    watched(config)
        .into_iter()
        .map(|p| {
            let digest = std::fs::read(&p).ok().map(|b| crate::digest::sha256(&b));
            (p, digest)
        })
        .collect()
}

/// With `[gateway] watch`: look at the inputs every second and reload once a change has
/// held still for a second (an editor's save is often several writes).
/// `seen` is how the files looked when the running state was read.
pub(super) async fn watch(weak: std::sync::Weak<State>, mut seen: Fingerprint) {
    const EVERY: Duration = Duration::from_secs(1);
    let mut settling: Option<Fingerprint> = None;
    loop {
        tokio::time::sleep(EVERY).await;
        let Some(state) = weak.upgrade() else { return };
        let now = fingerprint(&state.current().config);
        if now == seen {
            settling = None;
            continue;
        }
        if settling.as_ref() != Some(&now) {
            settling = Some(now);
            continue;
        }
        seen = now;
        settling = None;
        if let Err(problems) = state.reload("file-change").await {
            tracing::warn!("{} problem(s) in the changed files", problems.len());
        }
    }
}

/// What a reload announcement says, before the announcing replica's name.
const ANNOUNCED: &str = "reload ";
/// How a reload another replica announced names its cause (`by`).
const FROM_REPLICA: &str = "replica ";

/// With a store other replicas share: reload when another replica announces a reload of
/// its own (signal, CLI, API or file change), so all of them follow one change.
pub(super) async fn follow_reloads(state: std::sync::Weak<State>) {
    let Some(mut heard) = state.upgrade().map(|s| s.store.announcements()) else {
        return;
    };
    loop {
        let Some(message) = heard.next().await else {
            return;
        };
        let Some(state) = state.upgrade() else { return };
        let Some(from) = message.strip_prefix(ANNOUNCED) else {
            continue;
        };
        if from == state.origin {
            continue;
        }
        let by = format!("{FROM_REPLICA}{from}");
        if let Err(problems) = state.reload(&by).await {
            tracing::error!(
                "a reload announced by replica `{}` failed here ({} problems); the last good configuration stays",
                crate::escape::visible(from),
                problems.len()
            );
        }
    }
}
