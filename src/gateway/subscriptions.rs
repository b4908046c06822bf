//! Resource subscriptions through the gateway: a `resources/subscribe` is decided like a
//! read (and audited, `method: "resources/subscribe"`), forwarded once per upstream URI,
//! and each `notifications/resources/updated` from the upstream goes, renamed, to the
//! clients subscribed to it whose chain may still read it. List-change notices for
//! resources and prompts go to every client (lists are filtered per caller anyway).

use std::sync::Mutex;

use rmcp::model::{
    ResourceUpdatedNotificationParam, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::{ErrorData, Peer, RoleServer};

use super::answer::Failure;
use super::attest;
use super::resources::{access, outer};
use super::{Snapshot, State};
use crate::identity::Caller;
use crate::policy::{AccessKind, Effect};

struct Subscription {
    peer: Peer<RoleServer>,
    caller: Caller,
    server: String,
    uri: String,
}

/// Who is subscribed to what.
#[derive(Default)]
pub struct Subscriptions {
    list: Mutex<Vec<Subscription>>,
}

impl State {
    /// A client's `resources/subscribe`.
    pub async fn subscribe_resource(
        &self,
        peer: Peer<RoleServer>,
        caller: Caller,
        request: SubscribeRequestParams,
    ) -> Result<(), ErrorData> {
        let now = self.current();
        let (server, uri) = route_resource(&now, &request.uri)?;
        let mut wanted = access(&now, &caller, &server, &uri);
        wanted.kind = AccessKind::Subscription;
        let attested = attest(self, &now, wanted).await?;
        let first = {
            let Ok(mut list) = self.subscriptions.list.lock() else {
                return Err(Failure::Unavailable("subscriptions are unavailable").into());
            };
            list.retain(|s| !s.peer.is_transport_closed());
            let first = !list.iter().any(|s| s.server == server && s.uri == uri);
            let session = caller.session.clone();
            list.retain(|s| !(s.caller.session == session && s.server == server && s.uri == uri));
            list.push(Subscription {
                peer,
                caller,
                server,
                uri,
            });
            first
        };
        if first {
            self.upstreams
                .subscribe(&attested)
                .await
                .map_err(|e| ErrorData::from(Failure::Upstream(e)))?;
        }
        Ok(())
    }

    /// A client's `resources/unsubscribe`; the upstream is told once nobody is left.
    pub async fn unsubscribe_resource(
        &self,
        caller: &Caller,
        request: UnsubscribeRequestParams,
    ) -> Result<(), ErrorData> {
        let (server, uri) = route_resource(&self.current(), &request.uri)?;
        let last = match self.subscriptions.list.lock() {
            Ok(mut list) => {
                list.retain(|s| {
                    !(s.caller.session == caller.session && s.server == server && s.uri == uri)
                });
                !list.iter().any(|s| s.server == server && s.uri == uri)
            }
            Err(_) => false,
        };
        if last && let Err(e) = self.upstreams.unsubscribe(&server, &uri).await {
            tracing::debug!(server = %server, error = %e, "upstream refused resources/unsubscribe");
        }
        Ok(())
    }

    /// Pass an upstream's update to the clients subscribed that may still read it.
    pub async fn relay_resource_updated(&self, server: &str, uri: &str) {
        let now = self.current();
        let targets: Vec<Peer<RoleServer>> = match self.subscriptions.list.lock() {
            Ok(list) => list
                .iter()
                .filter(|s| s.server == server && s.uri == uri && !s.peer.is_transport_closed())
                .filter(|s| {
                    let wanted = access(&now, &s.caller, server, uri);
                    let decision = now.policy.decide(&s.caller, &wanted.object(), wanted.tier);
                    decision.effect == Effect::Allow
                })
                .map(|s| s.peer.clone())
                .collect(),
            Err(_) => return,
        };
        let renamed = outer(&now, server, uri);
        for peer in targets {
            let note = ResourceUpdatedNotificationParam::new(renamed.clone());
            if let Err(e) = peer.notify_resource_updated(note).await {
                tracing::debug!(error = %e, "could not relay a resource update");
            }
        }
    }

    /// Tell every client that resource and prompt lists may have changed.
    pub async fn relay_lists_changed(&self) {
        for peer in self.peers() {
            let _ = peer.notify_resource_list_changed().await;
            let _ = peer.notify_prompt_list_changed().await;
        }
    }
}

/// `server+uri` → (server, uri) for a configured server.
fn route_resource(now: &Snapshot, uri: &str) -> Result<(String, String), ErrorData> {
    now.config
        .route(uri, '+')
        .map(|(u, inner)| (u.id.clone(), inner.to_string()))
        .ok_or_else(|| {
            let message = format!(
                "unknown resource `{uri}`: call resources/list to see the resources you may read"
            );
            Failure::UnknownResource(message).into()
        })
}
