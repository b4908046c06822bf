//! What a client session has done that later decisions need to see: the data labels it
//! acquired, each from a result the gateway forwarded to it (a refused or failed call
//! gives none), with the tool and time it came from; how many `act` calls it made; which
//! upstreams it called. Flow rules and budgets read it (see `flows`).
//! It lives in memory, one entry per session and one per task (by chain and root task,
//! across that chain's sessions): an HTTP session's is dropped when the session is
//! closed (by its client, or idle), and in any case once it has been idle longer than the
//! transport keeps sessions; a stdio session's lives as long as the gateway; a task's
//! for a day without calls. Each entry holds at most one record per label, and
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
/// A task's record (across the sessions of one chain) is kept this long without a call.
const TASK_IDLE: Duration = Duration::from_secs(24 * 3600);

/// The key of a task's record: the chain and the task's root (a sub-task shares its
/// parent's record, so narrowing a task never sheds what the task has read).
pub fn task_key(chain: &[&str], task: &crate::identity::Task) -> String {
    let root = task.id.split('/').next().unwrap_or(&task.id);
    format!("task:{}:{root}", chain.join(">"))
}

#[derive(Default)]
pub struct Sessions {
    by_session: Mutex<HashMap<String, Memory>>,
}

struct Memory {
    view: SessionView,
    touched: Instant,
}

impl Sessions {
    /// What `session` (and the task, when the call has one) has done so far: the labels
    /// and upstreams of both, the larger count of `act` calls.
    pub fn held(&self, session: &str, task: Option<&str>) -> Arc<SessionView> {
        let mut all = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut view = SessionView::default();
        for key in std::iter::once(session).chain(task) {
            let Some(memory) = all.get_mut(key) else {
                continue;
            };
            memory.touched = Instant::now();
            for a in &memory.view.acquired {
                if !view.acquired.iter().any(|h| h.label == a.label) {
                    view.acquired.push(a.clone());
                }
            }
            for u in &memory.view.upstreams {
                if !view.upstreams.contains(u) {
                    view.upstreams.push(u.clone());
                }
            }
            view.act_calls = view.act_calls.max(memory.view.act_calls);
        }
        Arc::new(view)
    }

    /// `session` is closed: what it did is dropped (its task's record stays).
    pub fn end(&self, session: &str) {
        let mut all = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.remove(session);
    }

    /// `session` (and its task) had a call to `tool` forwarded; `got` a result: they now
    /// hold the tool's labels.
    pub fn record(&self, session: &str, task: Option<&str>, tool: &ToolRef, got: bool) {
        let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let via = crate::policy::object_of(tool);
        let mut all = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        all.retain(|key, m| {
            let idle = now.duration_since(m.touched);
            match key.split(':').next() {
                Some("http") => idle < HTTP_IDLE,
                Some("task") => idle < TASK_IDLE,
                _ => true,
            }
        });
        for key in std::iter::once(session).chain(task) {
            let memory = all.entry(key.to_string()).or_insert_with(|| Memory {
                view: SessionView::default(),
                touched: now,
            });
            memory.touched = now;
            note(&mut memory.view, tool, got, &via, &at);
        }
    }
}

/// Add a forwarded call to what a session (or task) has done.
fn note(view: &mut SessionView, tool: &ToolRef, got: bool, via: &str, at: &str) {
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
                via: via.to_string(),
                at: at.to_string(),
            });
        }
    }
}
