//! What a client session has done that later decisions need to see: the data labels it
//! acquired, each from a result the gateway forwarded to it (a refused or failed call
//! gives none), with the tool and time it came from; how many `act` calls it made; which
//! upstreams it called. Flow rules and budgets read it (see `flows`).
//! It lives in memory, one entry per session: an HTTP session's is dropped once the
//! session has been idle longer than the transport keeps sessions; a stdio session's
//! lives as long as the gateway. Each entry holds at most one record per label, and
//! labels come from manifests, so an entry stays small.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::catalog::ToolRef;
use crate::flows::{Acquired, SessionView};
use crate::manifest::Tier;

/// An HTTP session's labels are forgotten after this long without a call: the
/// transport closes a session idle for five minutes, so by then it is gone.
const HTTP_IDLE: Duration = Duration::from_secs(600);

#[derive(Default)]
pub struct Sessions {
    by_session: Mutex<HashMap<String, Memory>>,
}

struct Memory {
    view: SessionView,
    touched: Instant,
}

impl Sessions {
    /// What `session` has done so far (nothing, for a session not seen yet).
    pub fn held(&self, session: &str) -> Arc<SessionView> {
        let mut all = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match all.get_mut(session) {
            Some(memory) => {
                memory.touched = Instant::now();
                Arc::new(memory.view.clone())
            }
            None => Arc::default(),
        }
    }

    /// `session` had a call to `tool` forwarded; `got` a result: it now holds the tool's
    /// labels.
    pub fn record(&self, session: &str, tool: &ToolRef, got: bool) {
        let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let via = crate::policy::object_of(tool);
        let mut all = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        all.retain(|key, m| !key.starts_with("http:") || now.duration_since(m.touched) < HTTP_IDLE);
        let memory = all.entry(session.to_string()).or_insert_with(|| Memory {
            view: SessionView::default(),
            touched: now,
        });
        memory.touched = now;
        let view = &mut memory.view;
        if tool.tier == Tier::Act {
            view.act_calls = view.act_calls.saturating_add(1);
        }
        if !view.upstreams.contains(&tool.server) {
            view.upstreams.push(tool.server.clone());
        }
        for label in tool.labels.iter().filter(|_| got) {
            if !view.acquired.iter().any(|a| &a.label == label) {
                view.acquired.push(Acquired {
                    label: label.clone(),
                    via: via.clone(),
                    at: at.clone(),
                });
            }
        }
    }
}
