//! Refusals at the HTTP edge, audited: a missing or bad credential, a chain that is
//! cyclic or too deep, a session that belongs to another caller, a malformed message, a
//! request id still in flight. Each is a `decision` record at the `transport` stage,
//! with the verified caller when there is one. A flood of bad requests must not fill the
//! disk: past [`RATE`] a second (bursts of [`BURST`]) they are counted, not written one
//! by one, and the next record written says how many were left out and since when.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::audit::AuditLog;
use crate::identity::Verified;
use crate::limits::Bucket;

/// Transport refusals written per second, at most, once a burst is spent.
const RATE: f64 = 10.0;
const BURST: f64 = 100.0;

pub struct Refusals {
    audit: AuditLog,
    flood: Mutex<Flood>,
}

/// The records' bucket, and the refusals it left out since the last one written.
struct Flood {
    bucket: Bucket,
    /// Refusals not written since the last one that was, and when the first was.
    left_out: u64,
    since: Option<String>,
}

impl Flood {
    fn new(now: Instant) -> Self {
        Self {
            bucket: Bucket::full(BURST, now),
            left_out: 0,
            since: None,
        }
    }

    /// Whether to write the next refusal (with the count of those left out before it, if
    /// any), or only count it.
    fn take(&mut self, now: Instant) -> Option<Option<(u64, Option<String>)>> {
        self.bucket.refill(now, RATE, BURST);
        if !self.bucket.has_token() {
            self.left_out += 1;
            self.since.get_or_insert_with(|| {
                humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
            });
            return None;
        }
        self.bucket.spend();
        Some((self.left_out > 0).then(|| (std::mem::take(&mut self.left_out), self.since.take())))
    }
}

/// What is known about a refused request: how it came, what it was told, and who sent
/// it when that is known (a verified credential, or the stdio identity).
pub struct Refused<'a> {
    pub via: Via<'a>,
    pub error: &'a str,
    pub caller: Option<&'a Verified>,
}

pub enum Via<'a> {
    Http {
        method: &'a str,
        path: &'a str,
        status: u16,
    },
    /// A stdio session, and the identity its config gives.
    Stdio {
        session: &'a str,
        agent: &'a str,
        on_behalf_of: Option<&'a str>,
    },
}

impl Refusals {
    pub fn new(audit: AuditLog) -> Arc<Self> {
        Arc::new(Self {
            audit,
            flood: Mutex::new(Flood::new(Instant::now())),
        })
    }

    /// Audit a refusal, unless the bucket is empty (then count it).
    pub async fn record(&self, refused: Refused<'_>) {
        let taken = self
            .flood
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(Instant::now());
        let Some(left_out) = taken else {
            return;
        };
        let mut fields = Map::new();
        fields.insert("decision".into(), json!("deny"));
        fields.insert("stage".into(), json!("transport"));
        fields.insert("error".into(), json!(refused.error));
        match refused.via {
            Via::Http {
                method,
                path,
                status,
            } => {
                fields.insert(
                    "http".into(),
                    json!({"method": method, "path": path, "status": status}),
                );
            }
            Via::Stdio {
                session,
                agent,
                on_behalf_of,
            } => {
                let chain: Vec<&str> = on_behalf_of.into_iter().chain([agent]).collect();
                fields.insert("session".into(), json!(session));
                fields.insert("agent".into(), json!(agent));
                fields.insert("chain".into(), json!(chain));
            }
        }
        if let Some(caller) = refused.caller {
            let chain: Vec<&String> = caller
                .principal
                .iter()
                .chain(caller.agents.iter())
                .collect();
            fields.insert("agent".into(), json!(caller.agents.last()));
            fields.insert("chain".into(), json!(chain));
        }
        if let Some((n, since)) = left_out {
            fields.insert(
                "left_out".into(),
                json!({"refusals": n, "since": since.map_or(Value::Null, Value::from)}),
            );
        }
        if let Err(e) = self.audit.event("decision", fields).await {
            tracing::error!(error = %e, "a refusal at the HTTP edge could not be audited");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket alone: a burst is written, then one a tenth of a second, the rest
    /// counted and named in the next record written.
    #[tokio::test(start_paused = true)]
    async fn a_flood_is_written_at_the_rate_and_the_rest_counted() {
        let mut b = Flood::new(Instant::now());
        let written = (0..1000)
            .filter(|_| b.take(Instant::now()).is_some())
            .count();
        assert_eq!(written, BURST as usize);
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        let first = b.take(Instant::now());
        let (n, since) = first
            .unwrap()
            .expect("the first written after a flood counts it");
        assert_eq!(n, 900);
        assert!(since.is_some());
        let written = (0..1000)
            .filter(|_| b.take(Instant::now()).is_some())
            .count();
        assert_eq!(written, RATE as usize - 1);
        assert_eq!(b.left_out, 1000 - (RATE as u64 - 1));
    }
}
