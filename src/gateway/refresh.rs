//! Keeping the catalog current: re-list an upstream when it announces a change (at most
//! once a second each, however fast it announces), and every `relist_interval` for
//! servers that change without saying so; tell clients when what they see changed. Also
//! passes log entries and resource notifications on to the clients that asked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::State;
use crate::upstream::UpstreamEvent;

/// Refresh the catalog for each upstream that reports a tool-list change, then pass the
/// change on to every client; relay log entries to the clients that asked for them.
pub(super) async fn watch_changes(
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
            UpstreamEvent::Settled(done) => {
                let _ = done.send(());
            }
        }
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
pub(super) async fn relist(weak: std::sync::Weak<State>, every: Duration) {
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
        let catalog = self.current().catalog.clone();
        let tools: Vec<String> = catalog
            .tools()
            .filter(|t| t.server == id)
            .map(|t| format!("{}{:?}{}", t.name, t.state, t.listing))
            .collect();
        tools.join("\n")
    }
}
