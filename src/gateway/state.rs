//! The gateway's shared state: checked config, manifests, policy, catalog, upstream
//! connections and audit log, built once at start. Keeps the catalog current when an
//! upstream's tool list changes and tells connected clients.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rmcp::{Peer, RoleServer};
use tokio::sync::mpsc;

use crate::approval::ApprovalStore;
use crate::audit::AuditLog;
use crate::catalog::{self, Catalog};
use crate::config::Config;
use crate::manifest::{self, Manifests};
use crate::policy::Policy;
use crate::problem::{self, Problem};
use crate::upstream::{UpstreamEvent, Upstreams};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{}", problem::render(.0))]
    Invalid(Vec<Problem>),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("cannot open the approval store: {0}")]
    Approvals(#[from] crate::approval::ApprovalError),
    #[error("cannot verify HTTP callers: {0}")]
    Auth(String),
    #[error(transparent)]
    Grants(#[from] crate::grant::StoreError),
}

/// Everything a gateway session needs, shared by all sessions.
pub struct State {
    pub config: Config,
    pub manifests: Manifests,
    pub policy: Policy,
    pub audit: AuditLog,
    pub approvals: ApprovalStore,
    /// Just-in-time grants (their active set is what policy consults).
    pub grants: crate::grant::GrantStore,
    pub upstreams: Upstreams,
    /// Verifies HTTP callers' credentials; `None` when they present none.
    pub authenticator: Option<crate::identity::Authenticator>,
    catalog: RwLock<Arc<Catalog>>,
    peers: Mutex<Vec<Peer<RoleServer>>>,
    /// The approvals page's address, once the admin listener is up (for links).
    page_url: std::sync::OnceLock<String>,
    /// Cancelled when the gateway is stopping: waiting calls answer and let go.
    stopping: tokio_util::sync::CancellationToken,
    /// Clients that asked for upstream log entries.
    pub(super) logs: super::logging::LogSubscribers,
    /// Clients subscribed to resources.
    pub(super) subscriptions: super::subscriptions::Subscriptions,
}

/// Read the manifest files and policy files a config names.
/// The manifest files (path, text) and the policy model and rules texts a config names.
pub type Inputs = (Vec<(std::path::PathBuf, String)>, (String, String));

pub fn read_inputs(config: &Config) -> Result<Inputs, Vec<Problem>> {
    let manifests = manifest::read_dir(&config.manifests).map_err(|p| vec![p])?;
    let read = |p: &Path| {
        std::fs::read_to_string(p)
            .map_err(|e| vec![Problem::error(p, None, format!("cannot read: {e}"))])
    };
    Ok((
        manifests,
        (read(&config.policy_model)?, read(&config.policy)?),
    ))
}

/// Load manifests and policy; every error from both is reported together.
pub async fn load_rules(
    config: &Config,
) -> Result<(Manifests, Policy, Vec<Problem>), Vec<Problem>> {
    let (files, (model, rules)) = read_inputs(config)?;
    let (manifests, mut problems) = Manifests::parse(&files);
    let policy = Policy::load((&config.policy_model, &model), (&config.policy, &rules)).await;
    let mut unused: Vec<String> = manifests
        .iter()
        .filter(|m| config.upstream(&m.server).is_none())
        .map(|m| format!("`{}` ({})", m.server, m.file.display()))
        .collect();
    unused.sort();
    if !unused.is_empty() {
        problems.push(Problem::warning(
            &config.manifests,
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
        Ok(policy) => Ok((
            manifests,
            policy.with_act_default(config.approval.act),
            problems,
        )),
    }
}

impl State {
    /// Load everything, open the audit log, connect to every upstream and build the
    /// catalog. An invalid config, manifest or policy refuses to start; an unreachable
    /// upstream does not (its tools appear once it answers).
    pub async fn start(config: Config) -> Result<Arc<Self>, StartError> {
        let (manifests, policy, warnings) =
            load_rules(&config).await.map_err(StartError::Invalid)?;
        for w in &warnings {
            tracing::warn!("{}", w.located());
        }
        let authenticator = crate::identity::Authenticator::load(&config)
            .await
            .map_err(StartError::Auth)?;
        let audit = AuditLog::open(&config.audit_log)?;
        let approvals = ApprovalStore::open(&config.approval.database)?;
        let grants = crate::grant::GrantStore::open(&config.approval.database)?;
        let policy = policy.with_grants(grants.book());
        let (changed_tx, changed_rx) = mpsc::unbounded_channel();
        let upstreams = Upstreams::new(&config.upstreams, config.call_timeout, changed_tx);
        let state = Arc::new(Self {
            config,
            manifests,
            policy,
            audit,
            approvals,
            grants,
            upstreams,
            authenticator,
            catalog: RwLock::new(Arc::new(Catalog::default())),
            peers: Mutex::new(Vec::new()),
            page_url: std::sync::OnceLock::new(),
            stopping: tokio_util::sync::CancellationToken::new(),
            logs: Default::default(),
            subscriptions: Default::default(),
        });
        let ids: Vec<String> = state.upstreams.ids().cloned().collect();
        futures::future::join_all(ids.iter().map(|id| state.start_upstream(id))).await;
        tokio::spawn(watch_changes(Arc::downgrade(&state), changed_rx));
        tokio::spawn(sweep_grants(Arc::downgrade(&state)));
        if !state.config.relist_interval.is_zero() {
            tokio::spawn(relist(Arc::downgrade(&state), state.config.relist_interval));
        }
        Ok(state)
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

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().map(|c| c.clone()).unwrap_or_default()
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
        let Some(upstream) = self.config.upstream(id) else {
            return false;
        };
        let live = match self.upstreams.list_tools(id).await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(server = %id, error = %e, "cannot list upstream tools");
                return false;
            }
        };
        let (tools, warnings) =
            catalog::build_server(upstream, &live, &self.manifests, &self.config.intent_field);
        for w in warnings {
            tracing::warn!(server = %id, "{w}");
        }
        for t in &tools {
            if let catalog::ToolState::Quarantined { pinned, live } = &t.state {
                tracing::warn!(tool = %t.name, %pinned, %live, "tool quarantined: its definition no longer matches its pin");
            }
        }
        if let Ok(mut catalog) = self.catalog.write() {
            *catalog = Arc::new(catalog.with_server(id, tools));
            for name in catalog.ambiguous() {
                tracing::warn!(tool = %name, "more than one upstream offers this tool name; it is hidden");
            }
        }
        true
    }

    /// Remember a connected client so it hears about tool-list changes.
    pub fn add_peer(&self, peer: Peer<RoleServer>) {
        if let Ok(mut peers) = self.peers.lock() {
            peers.retain(|p| !p.is_transport_closed());
            peers.push(peer);
        }
    }

    /// The connected clients.
    pub(super) fn peers(&self) -> Vec<Peer<RoleServer>> {
        let peers: Vec<Peer<RoleServer>> = self.peers.lock().map(|p| p.clone()).unwrap_or_default();
        peers
            .into_iter()
            .filter(|p| !p.is_transport_closed())
            .collect()
    }

    async fn notify_list_changed(&self) {
        for peer in self.peers() {
            if let Err(e) = peer.notify_tool_list_changed().await {
                tracing::debug!(error = %e, "could not notify a client of a tool-list change");
            }
        }
    }
}

/// Refresh the catalog for each upstream that reports a tool-list change, then pass the
/// change on to every client; relay log entries to the clients that asked for them.
async fn watch_changes(
    weak: std::sync::Weak<State>,
    mut events: mpsc::UnboundedReceiver<UpstreamEvent>,
) {
    let mut limiter = RefreshLimiter::default();
    while let Some(event) = events.recv().await {
        let Some(state) = weak.upgrade() else { return };
        match event {
            UpstreamEvent::ToolsChanged(id) => limiter.refresh(&weak, &state, id).await,
            UpstreamEvent::Log(id, entry) => state.relay_log(&id, entry).await,
            UpstreamEvent::ResourceUpdated(id, uri) => {
                state.relay_resource_updated(&id, &uri).await
            }
            UpstreamEvent::ListsChanged(_) => state.relay_lists_changed().await,
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

/// At most one re-list per upstream a second, however fast it announces changes: an
/// announcement inside that second schedules one re-list at its end (never more).
#[derive(Default)]
struct RefreshLimiter {
    last: std::collections::HashMap<String, tokio::time::Instant>,
    pending: Arc<Mutex<std::collections::HashSet<String>>>,
}

impl RefreshLimiter {
    const GAP: Duration = Duration::from_secs(1);

    async fn refresh(&mut self, weak: &std::sync::Weak<State>, state: &Arc<State>, id: String) {
        let now = tokio::time::Instant::now();
        match self.last.get(&id).map(|t| *t + Self::GAP) {
            Some(next) if next > now => {
                let fresh = self
                    .pending
                    .lock()
                    .map(|mut p| p.insert(id.clone()))
                    .unwrap_or(false);
                if fresh {
                    let (weak, pending) = (weak.clone(), self.pending.clone());
                    self.last.insert(id.clone(), next);
                    tokio::spawn(async move {
                        tokio::time::sleep_until(next).await;
                        if let Ok(mut p) = pending.lock() {
                            p.remove(&id);
                        }
                        if let Some(state) = weak.upgrade()
                            && state.refresh(&id).await
                        {
                            state.notify_list_changed().await;
                        }
                    });
                }
            }
            _ => {
                self.last.insert(id.clone(), now);
                if state.refresh(&id).await {
                    state.notify_list_changed().await;
                }
            }
        }
    }
}

/// Every `every`, list each upstream's tools again; tell clients when that changed what
/// the catalog holds (a server that changed without announcing it).
async fn relist(weak: std::sync::Weak<State>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(state) = weak.upgrade() else { return };
        let ids: Vec<String> = state.upstreams.ids().cloned().collect();
        for id in ids {
            let before = state.fingerprint(&id);
            if state.refresh(&id).await && state.fingerprint(&id) != before {
                tracing::info!(server = %id, "upstream tools changed without an announcement");
                state.notify_list_changed().await;
            }
        }
    }
}

impl State {
    /// What the catalog holds for one upstream, to see whether a re-list changed it.
    fn fingerprint(&self, id: &str) -> String {
        let catalog = self.catalog();
        let tools: Vec<String> = catalog
            .tools()
            .filter(|t| t.server == id)
            .map(|t| format!("{}{:?}{}", t.name, t.state, t.listing))
            .collect();
        tools.join("\n")
    }
}
