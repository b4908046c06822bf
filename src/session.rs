//! What a client session has done that later decisions need to see: the data labels it
//! acquired, each from a result the gateway forwarded to it (a refused or failed call
//! gives none), with the tool and time it came from. Flow rules read it (see `flows`).
//! It lives in memory, one entry per session: an HTTP session's is dropped once the
//! session has been idle longer than the transport keeps sessions; a stdio session's
//! lives as long as the gateway. Each entry holds at most one record per label, and
//! labels come from manifests, so an entry stays small.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::catalog::ToolRef;
use crate::flows::Acquired;

/// An HTTP session's labels are forgotten after this long without a call: the
/// transport closes a session idle for five minutes, so by then it is gone.
const HTTP_IDLE: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct Sessions {
    by_session: Mutex<HashMap<String, Memory>>,
}

struct Memory {
    acquired: Vec<Acquired>,
    touched: Instant,
}

impl Sessions {
    /// The labels `session` holds (empty when none).
    pub fn held(&self, session: &str) -> Arc<[Acquired]> {
        let mut all = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match all.get_mut(session) {
            Some(memory) => {
                memory.touched = Instant::now();
                memory.acquired.clone().into()
            }
            None => Arc::from([]),
        }
    }

    /// `session` got a result from `tool`: it now holds the tool's labels.
    pub fn acquire(&self, session: &str, tool: &ToolRef) {
        if tool.labels.is_empty() {
            return;
        }
        let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let via = crate::policy::object_of(tool);
        let mut all = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        all.retain(|key, m| !key.starts_with("http:") || now.duration_since(m.touched) < HTTP_IDLE);
        let memory = all.entry(session.to_string()).or_insert_with(|| Memory {
            acquired: Vec::new(),
            touched: now,
        });
        memory.touched = now;
        for label in &tool.labels {
            if !memory.acquired.iter().any(|a| &a.label == label) {
                memory.acquired.push(Acquired {
                    label: label.clone(),
                    via: via.clone(),
                    at: at.clone(),
                });
            }
        }
    }
}
