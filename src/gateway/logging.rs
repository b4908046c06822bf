//! Upstream log entries (`notifications/message`), relayed to the clients that asked for
//! them with `logging/setLevel` (or, on 2026-07-28, to a request that names a level in its
//! `_meta`, while it runs, on its own stream), at or above the level each asked for, and only when
//! policy lets the client's whole chain read that server's logs (object `server/logs`,
//! tier `read`): a log line can carry another caller's data. Each upstream is asked for
//! the most verbose level any client wants; the filtering per client happens here.
#![allow(deprecated)] // logging is deprecated by SEP-2577 but real servers and clients use it

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{LoggingLevel, LoggingMessageNotificationParam};
use rmcp::{Peer, RoleServer};

use super::State;
use crate::identity::Caller;
use crate::manifest::Tier;
use crate::policy::Effect;

struct Subscriber {
    peer: Peer<RoleServer>,
    caller: Caller,
    level: LoggingLevel,
    /// Set for one request's subscription (2026-07-28), which ends with the request.
    request: Option<u64>,
}

/// The clients that asked for log entries.
#[derive(Default)]
pub struct LogSubscribers {
    list: Mutex<Vec<Subscriber>>,
    next: AtomicU64,
}

/// One request's subscription, ended when this is dropped (the request is answered).
pub struct RequestLogs {
    state: Arc<State>,
    id: u64,
}

impl Drop for RequestLogs {
    fn drop(&mut self) {
        if let Ok(mut list) = self.state.logs.list.lock() {
            list.retain(|s| s.request != Some(self.id));
        }
    }
}

fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

impl State {
    /// A client's `logging/setLevel`: remember it (replacing the session's earlier one) and
    /// ask the upstreams for the most verbose level anyone wants.
    pub async fn subscribe_logs(
        &self,
        peer: Peer<RoleServer>,
        caller: Caller,
        level: LoggingLevel,
    ) {
        let most_verbose = {
            let Ok(mut list) = self.logs.list.lock() else {
                return;
            };
            list.retain(|s| {
                !s.peer.is_transport_closed()
                    && (s.request.is_some() || s.caller.session != caller.session)
            });
            list.push(Subscriber {
                peer,
                caller,
                level,
                request: None,
            });
            list.iter().map(|s| s.level).min_by_key(|l| rank(*l))
        };
        if let Some(level) = most_verbose {
            self.upstreams.set_level(level).await;
        }
    }

    /// A 2026-07-28 request that names a log level: entries at or above it reach this
    /// request (on its own stream) until the returned guard is dropped.
    pub async fn logs_for_request(
        self: &Arc<Self>,
        peer: Peer<RoleServer>,
        caller: Caller,
        level: LoggingLevel,
    ) -> RequestLogs {
        let id = self.logs.next.fetch_add(1, Ordering::Relaxed);
        let most_verbose = match self.logs.list.lock() {
            Ok(mut list) => {
                list.push(Subscriber {
                    peer,
                    caller,
                    level,
                    request: Some(id),
                });
                list.iter().map(|s| s.level).min_by_key(|l| rank(*l))
            }
            Err(_) => None,
        };
        if let Some(level) = most_verbose {
            self.upstreams.set_level(level).await;
        }
        RequestLogs {
            state: self.clone(),
            id,
        }
    }

    /// Pass one upstream log entry to every client that asked for it and may read it.
    pub async fn relay_log(&self, server: &str, mut entry: LoggingMessageNotificationParam) {
        entry.logger = Some(match entry.logger.take() {
            Some(logger) => format!("{server}/{logger}"),
            None => server.to_string(),
        });
        let object = format!("{server}/logs");
        let now = self.current();
        let targets: Vec<Peer<RoleServer>> = match self.logs.list.lock() {
            Ok(list) => list
                .iter()
                .filter(|s| rank(entry.level) >= rank(s.level) && !s.peer.is_transport_closed())
                .filter(|s| {
                    now.policy.decide(&s.caller, &object, Tier::Read).effect == Effect::Allow
                })
                .map(|s| s.peer.clone())
                .collect(),
            Err(_) => return,
        };
        for peer in targets {
            if let Err(e) = peer.notify_logging_message(entry.clone()).await {
                tracing::debug!(error = %e, "could not relay a log entry");
            }
        }
    }
}
