//! Resource subscriptions through the gateway: a `resources/subscribe` (or, on 2026-07-28,
//! each resource a `subscriptions/listen` names) is decided like a read (and audited,
//! `method: "resources/subscribe"`), forwarded once per upstream URI, and each
//! `notifications/resources/updated` from the upstream goes, renamed, to the clients
//! subscribed to it whose chain may still read it. List-change notices go to every
//! client, and to every open `subscriptions/listen` that asked for them (lists are
//! filtered per caller anyway). A listen's subscriptions end with it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rmcp::model::{
    ResourceUpdatedNotification, ResourceUpdatedNotificationParam, ServerNotification,
    SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{SubscriptionContext, SubscriptionSink};
use rmcp::{ErrorData, Peer, RoleServer};

use super::answer::Failure;
use super::attest;
use super::resources::{access, outer};
use super::{Snapshot, State};
use crate::identity::Caller;
use crate::policy::{AccessKind, Effect};

struct Subscription {
    to: Target,
    caller: Caller,
    server: String,
    uri: String,
}

/// Where a subscriber's notifications go.
enum Target {
    /// A 2025-11-25 session.
    Session(Peer<RoleServer>),
    /// An open 2026-07-28 `subscriptions/listen` (its id here).
    Listen(SubscriptionSink, u64),
}

impl Target {
    fn closed(&self) -> bool {
        match self {
            Target::Session(peer) => peer.is_transport_closed(),
            Target::Listen(..) => false, // removed when the listen ends
        }
    }

    fn listen(&self) -> Option<u64> {
        match self {
            Target::Listen(_, id) => Some(*id),
            Target::Session(_) => None,
        }
    }
}

/// Who is subscribed to what, and the open listens (for list changes).
#[derive(Default)]
pub struct Subscriptions {
    list: Mutex<Vec<Subscription>>,
    listens: Mutex<Vec<(u64, SubscriptionSink)>>,
    next: AtomicU64,
}

impl State {
    /// A client's `resources/subscribe`.
    pub async fn subscribe_resource(
        &self,
        peer: Peer<RoleServer>,
        caller: Caller,
        request: SubscribeRequestParams,
    ) -> Result<(), ErrorData> {
        self.subscribe_to(Target::Session(peer), caller, &request.uri)
            .await
    }

    /// Decide, audit and record one subscription; the upstream is asked once per URI.
    async fn subscribe_to(&self, to: Target, caller: Caller, uri: &str) -> Result<(), ErrorData> {
        let now = self.current();
        let (server, uri) = route_resource(&now, uri)?;
        let mut wanted = access(&now, &caller, &server, &uri);
        wanted.kind = AccessKind::Subscription;
        let attested = attest(self, &now, wanted).await?;
        let first = {
            let Ok(mut list) = self.subscriptions.list.lock() else {
                return Err(Failure::Unavailable("subscriptions are unavailable").into());
            };
            list.retain(|s| !s.to.closed());
            let first = !list.iter().any(|s| s.server == server && s.uri == uri);
            if let Target::Session(_) = to {
                let session = caller.session.clone();
                list.retain(|s| {
                    !(s.to.listen().is_none()
                        && s.caller.session == session
                        && s.server == server
                        && s.uri == uri)
                });
            }
            list.push(Subscription {
                to,
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
        self.forget(&server, &uri, |s| {
            s.to.listen().is_none() && s.caller.session == caller.session
        })
        .await;
        Ok(())
    }

    /// Drop the subscriptions to `server`'s `uri` that `whose` picks; the upstream is told
    /// once nobody is left.
    async fn forget(&self, server: &str, uri: &str, whose: impl Fn(&Subscription) -> bool) {
        let last = match self.subscriptions.list.lock() {
            Ok(mut list) => {
                list.retain(|s| !(s.server == server && s.uri == uri && whose(s)));
                !list.iter().any(|s| s.server == server && s.uri == uri)
            }
            Err(_) => false,
        };
        if last && let Err(e) = self.upstreams.unsubscribe(server, uri).await {
            tracing::debug!(server = %server, error = %e, "upstream refused resources/unsubscribe");
        }
    }

    /// A 2026-07-28 `subscriptions/listen`, until it is cancelled: each resource it names
    /// is decided and audited as a `resources/subscribe` (a refusal ends the listen with
    /// the refusal), list changes it asked for reach it, and its subscriptions end with
    /// it.
    pub async fn listen(
        &self,
        caller: Caller,
        context: SubscriptionContext,
    ) -> Result<(), ErrorData> {
        let id = self.subscriptions.next.fetch_add(1, Ordering::Relaxed);
        let sink = context.sink().clone();
        let uris = context
            .accepted()
            .resource_subscriptions
            .clone()
            .unwrap_or_default();
        let mut subscribed = Ok(());
        for uri in &uris {
            let to = Target::Listen(sink.clone(), id);
            subscribed = self.subscribe_to(to, caller.clone(), uri).await;
            if subscribed.is_err() {
                break;
            }
        }
        if subscribed.is_ok() {
            if let Ok(mut listens) = self.subscriptions.listens.lock() {
                listens.push((id, sink));
            }
            context.cancelled().await;
        }
        if let Ok(mut listens) = self.subscriptions.listens.lock() {
            listens.retain(|(l, _)| *l != id);
        }
        for uri in &uris {
            if let Ok((server, inner)) = route_resource(&self.current(), uri) {
                self.forget(&server, &inner, |s| s.to.listen() == Some(id))
                    .await;
            }
        }
        subscribed
    }

    /// Send `notification` to every open listen that asked for its kind (each listen's
    /// sink drops what it did not ask for).
    pub(super) async fn tell_listens(&self, notification: ServerNotification) {
        let sinks: Vec<SubscriptionSink> = match self.subscriptions.listens.lock() {
            Ok(listens) => listens.iter().map(|(_, s)| s.clone()).collect(),
            Err(_) => return,
        };
        for sink in sinks {
            let _ = sink.send(notification.clone()).await;
        }
    }

    /// Pass an upstream's update to the clients subscribed that may still read it.
    pub async fn relay_resource_updated(&self, server: &str, uri: &str) {
        let now = self.current();
        let targets: Vec<Target> = match self.subscriptions.list.lock() {
            Ok(list) => list
                .iter()
                .filter(|s| s.server == server && s.uri == uri && !s.to.closed())
                .filter(|s| {
                    let wanted = access(&now, &s.caller, server, uri);
                    let decision = now.policy.decide(&s.caller, &wanted.object(), wanted.tier);
                    decision.effect == Effect::Allow
                })
                .map(|s| match &s.to {
                    Target::Session(peer) => Target::Session(peer.clone()),
                    Target::Listen(sink, id) => Target::Listen(sink.clone(), *id),
                })
                .collect(),
            Err(_) => return,
        };
        let renamed = outer(&now, server, uri);
        for target in targets {
            let note = ResourceUpdatedNotificationParam::new(renamed.clone());
            let sent = match target {
                Target::Session(peer) => peer
                    .notify_resource_updated(note)
                    .await
                    .map_err(|e| e.to_string()),
                Target::Listen(sink, _) => {
                    let update = ServerNotification::ResourceUpdatedNotification(
                        ResourceUpdatedNotification::new(note),
                    );
                    sink.send(update).await.map_err(|e| e.to_string())
                }
            };
            if let Err(e) = sent {
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
        self.tell_listens(ServerNotification::ResourceListChangedNotification(
            Default::default(),
        ))
        .await;
        self.tell_listens(ServerNotification::PromptListChangedNotification(
            Default::default(),
        ))
        .await;
    }
}

/// What a `subscriptions/listen` may have: what it asked for, but only resources of a
/// configured server (each is decided when the listen starts).
pub fn accepted(now: &Snapshot, requested: &SubscriptionFilter) -> SubscriptionFilter {
    let mut accepted = requested.clone();
    if let Some(uris) = accepted.resource_subscriptions.as_mut() {
        uris.retain(|uri| route_resource(now, uri).is_ok());
    }
    accepted
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
