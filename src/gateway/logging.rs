//! Upstream log entries (`notifications/message`), relayed to the clients that asked for
//! them with `logging/setLevel`, at or above the level each asked for, and only when
//! policy lets the client's whole chain read that server's logs (object `server/logs`,
//! tier `read`): a log line can carry another caller's data. Each upstream is asked for
//! the most verbose level any client wants; the filtering per client happens here.
#![allow(deprecated)] // logging is deprecated by SEP-2577 but real servers and clients use it

use std::sync::Mutex;

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
}

/// The clients that asked for log entries.
#[derive(Default)]
pub struct LogSubscribers {
    list: Mutex<Vec<Subscriber>>,
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
            list.retain(|s| !s.peer.is_transport_closed() && s.caller.session != caller.session);
            list.push(Subscriber {
                peer,
                caller,
                level,
            });
            list.iter().map(|s| s.level).min_by_key(|l| rank(*l))
        };
        if let Some(level) = most_verbose {
            self.upstreams.set_level(level).await;
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
