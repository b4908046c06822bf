//! The gateway's shared state: checked config, manifests, policy, catalog, upstream
//! connections and audit log, built once at start. Keeps the catalog current when an
//! upstream's tool list changes and tells connected clients.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rmcp::{Peer, RoleServer};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::approval::Approvals;
use crate::audit::AuditLog;
use crate::catalog::{self, Catalog, PinStore};
use crate::config::Config;
use crate::manifest::{self, Manifests};
use crate::policy::Policy;
use crate::problem::{self, Problem};
use crate::store::Store;
use crate::upstream::Upstreams;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{}", problem::render(.0))]
    Invalid(Vec<Problem>),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Key(#[from] crate::audit::checkpoint::KeyError),
    #[error(transparent)]
    Seal(crate::seal::SealError),
    #[error("cannot verify HTTP callers: {0}")]
    Auth(String),
    #[error(transparent)]
    Grants(#[from] crate::grant::StoreError),
}

/// Everything a gateway session needs, shared by all sessions.
pub struct State {
    /// Config, manifests, policy, credentials and catalog, replaced whole by a reload or
    /// a catalog refresh; a request takes it once and finishes under it.
    current: RwLock<Arc<Snapshot>>,
    /// Held while a new snapshot is built and installed, so refreshes and reloads never
    /// interleave (neither loses the other's change).
    #[expect(
        clippy::disallowed_types,
        reason = "a reload or refresh runs alone, across the awaits of reading and listing"
    )]
    pub(super) swapping: tokio::sync::Mutex<()>,
    /// Each upstream's last tool list, so a reload rebuilds the catalog without asking.
    live: Mutex<HashMap<String, Arc<Vec<Value>>>>,
    /// Pinned tool definitions, to name what changed when a tool drifts.
    pub pins: PinStore,
    /// Quarantined tools already reported, with the live pin reported: one record each
    /// time a tool enters quarantine or drifts again, not one a refresh.
    drifts: Mutex<HashMap<String, String>>,
    pub audit: AuditLog,
    pub approvals: Approvals,
    /// Rate-limit buckets (kept across reloads for rules that did not change).
    pub counters: crate::limits::Counters,
    /// What each session has read (labels), for flow rules.
    pub sessions: crate::session::Sessions,
    /// Just-in-time grants (their active set is what policy consults).
    pub grants: crate::grant::Grants,
    /// The state store approvals and grants are in (shared by replicas, or this
    /// gateway's own).
    pub(crate) store: Arc<crate::store::Store>,
    /// This gateway among the replicas sharing the store: its `replica` name, else an id
    /// of this process.
    pub origin: String,
    pub upstreams: Upstreams,
    /// Connected clients (2025-11-25 sessions), with their transport.
    peers: Mutex<Vec<(Peer<RoleServer>, &'static str)>>,
    /// The approvals page's address, once the admin listener is up (for links).
    page_url: std::sync::OnceLock<String>,
    /// Cancelled when the gateway is stopping: waiting calls answer and let go.
    stopping: tokio_util::sync::CancellationToken,
    /// Clients that asked for upstream log entries.
    pub(super) logs: super::logging::LogSubscribers,
    /// Clients subscribed to resources.
    pub(super) subscriptions: super::subscriptions::Subscriptions,
    /// Seals the state a 2026-07-28 client carries between the rounds of a request.
    pub(super) sealer: crate::seal::Sealer,
    /// Seals session ids (under the replicas' shared `[store] session_key`, else a key of
    /// this process alone: its sessions then end with it).
    pub session_sealer: Arc<crate::seal::Sealer>,
    /// 2026-07-28 callers' calls waiting for their next round.
    pub(super) rounds: super::rounds::Rounds,
    /// The tasks callers' calls became (the 2026-07-28 tasks extension).
    pub(super) tasks: super::tasks::Tasks,
    /// What `/metrics` shows; the stages report to it, it never stops a call.
    pub metrics: crate::telemetry::Metrics,
}

/// One consistent view of what a reload replaces. Cheap to clone.
#[derive(Clone)]
pub struct Snapshot {
    pub config: Arc<Config>,
    pub manifests: Arc<Manifests>,
    pub policy: Arc<Policy>,
    /// Verifies HTTP callers' credentials; `None` when they present none.
    pub authenticator: Arc<Option<crate::identity::Authenticator>>,
    pub catalog: Arc<Catalog>,
    /// 1 at start, one more at each successful reload.
    pub generation: u64,
}

/// Read the manifest files and policy files a config names.
/// The manifest files (path, text) and the policy model and rules texts a config names.
pub type Inputs = (Vec<(std::path::PathBuf, String)>, (String, String));

pub fn read_inputs(config: &Config) -> Result<Inputs, Vec<Problem>> {
    let manifests = manifest::read_dir(&config.live.manifests).map_err(|p| vec![p])?;
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| vec![Problem::error(p, None, format!("cannot read: {e}"))])
    };
    Ok((
        manifests,
        (read(&config.live.policy_model)?, read(&config.live.policy)?),
    ))
}

/// Load manifests and policy; every error from both is reported together.
pub async fn load_rules(
    config: &Config,
) -> Result<(Manifests, Policy, Vec<Problem>), Vec<Problem>> {
    let (files, (model, rules)) = read_inputs(config)?;
    let (manifests, mut problems) = Manifests::parse(&files);
    // The config's own warnings, reported with the rest.
    problems.splice(0..0, config.warnings.iter().cloned());
    let policy = Policy::load(
        (&config.live.policy_model, &model),
        (&config.live.policy, &rules),
    )
    .await;
    let mut unused: Vec<String> = manifests
        .iter()
        .filter(|m| config.upstream(&m.server).is_none())
        .map(|m| format!("`{}` ({})", m.server, m.file.display()))
        .collect();
    unused.sort();
    if !unused.is_empty() {
        problems.push(Problem::warning(
            &config.live.manifests,
            None,
            format!(
                "manifests for servers with no configured upstream are unused: {}",
                unused.join(", ")
            ),
        ));
    }
    match policy {
        Err(crate::policy::PolicyError::Invalid(mut p)) => {
            problems.append(&mut p);
            Err(problems)
        }
        Ok(_) if problems.iter().any(Problem::is_error) => Err(problems),
        Ok(policy) => {
            let (flows, mut flow_problems) = crate::flows::Flows::load(&config.live.flows);
            if flow_problems.iter().any(Problem::is_error) {
                problems.append(&mut flow_problems);
                return Err(problems);
            }
            problems.append(&mut flow_problems);
            Ok((
                manifests,
                policy
                    .with_act_default(config.live.approval.act)
                    .with_flows(flows),
                problems,
            ))
        }
    }
}

impl State {
    /// Load everything, open the audit log, connect to every upstream and build the
    /// catalog. An invalid config, manifest or policy refuses to start; an unreachable
    /// upstream does not (its tools appear once it answers).
    pub async fn start(config: Config) -> Result<Arc<Self>, StartError> {
        // Taken before anything is read, so a change made while starting is not missed.
        let seen = config
            .boot
            .watch
            .then(|| super::reload::fingerprint(&config));
        let (manifests, policy, warnings) =
            load_rules(&config).await.map_err(StartError::Invalid)?;
        for w in &warnings {
            tracing::warn!("{}", w.located());
        }
        let authenticator = crate::identity::Authenticator::load(&config)
            .await
            .map_err(StartError::Auth)?;
        let signer = crate::audit::checkpoint::Signer::load_or_create(&config.boot.audit_key)?;
        let witness =
            crate::audit::witness::Witness::start(&config.boot.witnesses).map_err(|e| {
                crate::audit::AuditError::Open {
                    path: config.boot.audit_log.clone(),
                    reason: format!("cannot start the audit witness: {e}"),
                }
            })?;
        let audit = AuditLog::open_witnessed(
            &config.boot.audit_log,
            Some(signer),
            witness,
            config.boot.replica.clone(),
        )?;
        let store = Arc::new(match &config.boot.store.url {
            Some(url) => Store::connect(url).await?,
            None => Store::open(&config.boot.approval.database)?,
        });
        let approvals = Approvals::new(store.clone());
        let grants = crate::grant::Grants::open(store.clone()).await?;
        let origin = config.boot.replica.clone().unwrap_or_else(|| {
            format!(
                "pid-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            )
        });
        let policy = policy.with_grants(grants.book());
        let (changed_tx, changed_rx) = mpsc::unbounded_channel();
        let upstreams =
            Upstreams::new(&config.boot.upstreams, config.boot.call_timeout, changed_tx);
        let relist_interval = config.boot.relist_interval;
        let sealer = match &config.boot.store.session_key {
            Some(key) => crate::seal::Sealer::shared(key, "requestState"),
            None => crate::seal::Sealer::random(),
        }
        .map_err(StartError::Seal)?;
        let session_sealer = Arc::new(
            match &config.boot.store.session_key {
                Some(key) => crate::seal::Sealer::shared(key, "session"),
                None => crate::seal::Sealer::random(),
            }
            .map_err(StartError::Seal)?,
        );
        let metrics = crate::telemetry::Metrics::new(audit.metrics(), upstreams.metrics());
        let state = Arc::new(Self {
            pins: match store.shared() {
                true => PinStore::shared(&config.boot.state_dir),
                false => PinStore::new(&config.boot.state_dir),
            },
            current: RwLock::new(Arc::new(Snapshot {
                config: Arc::new(config),
                manifests: Arc::new(manifests),
                policy: Arc::new(policy),
                authenticator: Arc::new(authenticator),
                catalog: Arc::default(),
                generation: 1,
            })),
            swapping: Default::default(),
            live: Mutex::new(HashMap::new()),
            drifts: Mutex::new(HashMap::new()),
            audit,
            approvals,
            counters: crate::limits::Counters::default(),
            sessions: crate::session::Sessions::default(),
            grants,
            store,
            origin,
            upstreams,
            peers: Mutex::new(Vec::new()),
            page_url: std::sync::OnceLock::new(),
            stopping: tokio_util::sync::CancellationToken::new(),
            logs: Default::default(),
            subscriptions: Default::default(),
            sealer,
            session_sealer,
            rounds: Default::default(),
            tasks: Default::default(),
            metrics,
        });
        let ids: Vec<String> = state.upstreams.ids().cloned().collect();
        futures::future::join_all(ids.iter().map(|id| state.start_upstream(id))).await;
        tokio::spawn(super::refresh::watch_changes(
            Arc::downgrade(&state),
            changed_rx,
        ));
        tokio::spawn(sweep_grants(Arc::downgrade(&state)));
        if state.grants.shared() {
            tokio::spawn(follow_grants(Arc::downgrade(&state)));
            tokio::spawn(super::reload::follow_reloads(Arc::downgrade(&state)));
        }
        if let Some(seen) = seen {
            tokio::spawn(super::reload::watch(Arc::downgrade(&state), seen));
        }
        if !relist_interval.is_zero() {
            tokio::spawn(super::refresh::relist(
                Arc::downgrade(&state),
                relist_interval,
            ));
        }
        Ok(state)
    }

    /// The current snapshot: config, manifests, policy and catalog of one generation. A
    /// request takes it once and passes it down, so that a reload in the middle of the
    /// request cannot mix generations (there are no accessors for its parts, on purpose).
    pub fn current(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Install `next` (the caller holds `swapping`).
    pub(super) fn install(&self, next: Snapshot) {
        let next = Arc::new(next);
        match self.current.write() {
            Ok(mut current) => *current = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    /// The gateway is stopping: every call waiting for approval answers its client now
    /// (its request stays pending for after the restart).
    pub fn stop_waiting(&self) {
        self.stopping.cancel();
    }

    /// Resolves once [`State::stop_waiting`] was called.
    pub fn stopping(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.stopping.cancelled()
    }

    /// Where approvers decide, for links in notifications.
    pub fn page_url(&self) -> Option<&str> {
        self.page_url.get().map(String::as_str)
    }

    pub fn set_page_url(&self, url: String) {
        let _ = self.page_url.set(url);
    }

    /// Catalogue an upstream; on failure, keep retrying in the background.
    async fn start_upstream(self: &Arc<Self>, id: &str) {
        if self.refresh(id).await {
            return;
        }
        let weak = Arc::downgrade(self);
        let id = id.to_string();
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(2);
            loop {
                tokio::time::sleep(delay).await;
                let Some(state) = weak.upgrade() else { return };
                if state.refresh(&id).await {
                    state.notify_list_changed().await;
                    return;
                }
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        });
    }

    /// Re-list one upstream's tools and swap them into the catalog. Returns whether the
    /// upstream answered (on failure its previous tools are kept).
    pub async fn refresh(&self, id: &str) -> bool {
        let live = match self.upstreams.list_tools(id).await {
            Ok(live) => Arc::new(live),
            Err(e) => {
                tracing::warn!(server = %id, error = %e, "cannot list upstream tools");
                return false;
            }
        };
        let labels = crate::telemetry::ServerLabels {
            server: id.to_string(),
        };
        self.metrics.catalog_refreshes.get_or_create(&labels).inc();
        if let Ok(mut known) = self.live.lock() {
            known.insert(id.to_string(), live.clone());
        }
        let swapping = self.swapping.lock().await;
        let now = self.current();
        let Some(tools) = self.catalogue(&now.config, &now.manifests, id, &live).await else {
            return false;
        };
        let catalog = Arc::new(now.catalog.with_server(id, tools));
        for name in catalog.ambiguous() {
            tracing::warn!(tool = %name, "more than one upstream offers this tool name; it is hidden");
        }
        self.install(Snapshot {
            catalog: catalog.clone(),
            ..(*now).clone()
        });
        drop(swapping);
        self.report_drift(&catalog).await;
        true
    }

    /// One upstream's catalog entries from its live tools, under `config` and `manifests`
    /// (`None` for an upstream the config does not name).
    pub(super) async fn catalogue(
        &self,
        config: &Config,
        manifests: &Manifests,
        id: &str,
        live: &[Value],
    ) -> Option<Vec<Arc<catalog::ToolRef>>> {
        let upstream = config.upstream(id)?;
        // A tool that drifted from its pin: the pinned definition, from another replica
        // when this one never saw it.
        if self.store.shared() {
            for definition in live {
                let name = definition.get("name").and_then(Value::as_str);
                let entry = name.and_then(|n| manifests.entry(id, n));
                if let Some(pinned) = entry.and_then(|e| e.pin.as_deref())
                    && crate::digest::tool_pin(definition) != pinned
                {
                    self.pins.fetch(&self.store, pinned).await;
                }
            }
        }
        let (tools, warnings) = catalog::build_server(
            upstream,
            live,
            manifests,
            &config.live.intent_field,
            &self.pins,
        );
        self.pins.share(&self.store).await;
        for w in warnings {
            tracing::warn!(server = %id, "{w}");
        }
        Some(tools)
    }

    /// The last tool list each upstream gave.
    pub(super) fn live_tools(&self) -> Vec<(String, Arc<Vec<Value>>)> {
        self.live
            .lock()
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Log and audit each tool in `catalog` that entered quarantine (or drifted to yet
    /// another definition) since the last report, naming the fields that changed.
    pub(super) async fn report_drift(&self, catalog: &Catalog) {
        for t in catalog.tools() {
            let catalog::ToolState::Quarantined {
                pinned,
                live,
                changed,
            } = &t.state
            else {
                if let Ok(mut d) = self.drifts.lock() {
                    d.remove(&t.name);
                }
                continue;
            };
            let fresh = self
                .drifts
                .lock()
                .is_ok_and(|mut d| d.insert(t.name.clone(), live.clone()).as_ref() != Some(live));
            if !fresh {
                continue;
            }
            let fields = changed
                .as_ref()
                .map(|c| c.join(", "))
                .unwrap_or_else(|| "unknown (the pinned definition was never seen here)".into());
            tracing::warn!(tool = %t.name, changed = %fields, %pinned, %live, "tool quarantined: its definition no longer matches its pin");
            let record = json!({
                "server": t.server,
                "tool": t.name,
                "upstream_tool": t.tool,
                "pinned": pinned,
                "live": live,
                "changed": changed,
                "manifest": t.manifest_file,
            });
            if let Value::Object(fields) = record
                && let Err(e) = self.audit.event("drift", fields).await
            {
                tracing::error!(tool = %t.name, error = %e, "cannot audit a quarantined tool (it stays quarantined)");
            }
        }
    }

    /// Remember a connected client (over `transport`: `stdio` or `http`) so it hears
    /// about tool-list changes.
    pub fn add_peer(&self, peer: Peer<RoleServer>, transport: &'static str) {
        if let Ok(mut peers) = self.peers.lock() {
            peers.retain(|(p, _)| !p.is_transport_closed());
            peers.push((peer, transport));
        }
    }

    /// The connected clients.
    pub(super) fn peers(&self) -> Vec<Peer<RoleServer>> {
        let peers = self.peers.lock().map(|p| p.clone()).unwrap_or_default();
        peers
            .into_iter()
            .filter(|(p, _)| !p.is_transport_closed())
            .map(|(p, _)| p)
            .collect()
    }

    /// Open client sessions over `transport`.
    pub fn sessions_over(&self, transport: &str) -> usize {
        self.peers.lock().map_or(0, |peers| {
            peers
                .iter()
                .filter(|(p, t)| *t == transport && !p.is_transport_closed())
                .count()
        })
    }

    /// Tasks kept for their callers.
    pub fn kept_tasks(&self) -> usize {
        self.tasks.count()
    }

    pub(super) async fn notify_list_changed(&self) {
        for peer in self.peers() {
            if let Err(e) = peer.notify_tool_list_changed().await {
                tracing::debug!(error = %e, "could not notify a client of a tool-list change");
            }
        }
        let changed =
            rmcp::model::ServerNotification::ToolListChangedNotification(Default::default());
        self.tell_listens(changed).await;
    }
}

/// With a store other replicas share: read the grants again after every change any
/// replica makes, so a grant given or revoked elsewhere is in force here at once.
async fn follow_grants(state: std::sync::Weak<State>) {
    let Some(mut changes) = state.upgrade().map(|s| s.approvals.watch()) else {
        return;
    };
    while changes.changed().await.is_ok() {
        let Some(state) = state.upgrade() else { return };
        if let Err(e) = state.grants.refresh().await {
            tracing::debug!("grants not read again: {e}");
        }
    }
}

/// Every 10 s, record the grants that ran out (audit only: decisions check the time).
async fn sweep_grants(state: std::sync::Weak<State>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(10));
    loop {
        every.tick().await;
        let Some(state) = state.upgrade() else { return };
        state.sweep_grants().await;
    }
}
