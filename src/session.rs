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
/// How often idle records are looked for (on a call).
const SWEEP: Duration = Duration::from_secs(60);
/// The most task records kept at once. A call that would start one more is refused
/// rather than any record dropped early: forgetting what a task read would let it out.
pub const MAX_TASKS: usize = 50_000;

/// The key of a task's record: the chain and the task's root (a sub-task shares its
/// parent's record, so narrowing a task never sheds what the task has read).
pub fn task_key(chain: &[&str], task: &crate::identity::Task) -> String {
    let root = task.id.split('/').next().unwrap_or(&task.id);
    format!("task:{}:{root}", chain.join(">"))
}

#[derive(Default)]
pub struct Sessions {
    by_session: Mutex<Records>,
}

/// Sessions' records and tasks' records, apart (tasks are counted against their cap).
#[derive(Default)]
struct Records {
    sessions: HashMap<String, Memory>,
    tasks: HashMap<String, Memory>,
    /// When idle records were last looked for.
    swept: Option<Instant>,
}

impl Records {
    fn get_mut(&mut self, key: &str) -> Option<&mut Memory> {
        match key.starts_with("task:") {
            true => self.tasks.get_mut(key),
            false => self.sessions.get_mut(key),
        }
    }

    /// The record of `key`, made when there is none (the key is copied only then, not on
    /// every call).
    fn entry(&mut self, key: &str) -> Option<&mut Memory> {
        let map = match key.starts_with("task:") {
            true => &mut self.tasks,
            false => &mut self.sessions,
        };
        if !map.contains_key(key) {
            let fresh = Memory {
                view: SessionView::default(),
                touched: Instant::now(),
            };
            map.insert(key.to_string(), fresh);
        }
        map.get_mut(key)
    }
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

    /// Whether a call of task `key` may go on: its record exists, or there is room for it.
    pub fn admits(&self, key: &str) -> bool {
        let all = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.tasks.contains_key(key) || all.tasks.len() < MAX_TASKS
    }

    /// `session` is closed: what it did is dropped (its task's record stays).
    pub fn end(&self, session: &str) {
        let mut all = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.sessions.remove(session);
    }

    /// `session` (and its task) had a call to `tool` forwarded; `got` a result: they now
    /// hold the tool's labels.
    pub fn record(&self, session: &str, task: Option<&str>, tool: &ToolRef, got: bool) {
        // Where and when, for the labels a result brings (most calls bring none).
        let (via, at) = match got && !tool.labels.is_empty() {
            true => provenance(tool),
            false => Default::default(),
        };
        self.touch(session, task, |view| note(view, tool, got, &via, &at));
    }

    /// The data labels `call`'s tool brings, acquired by its caller's session (and task)
    /// when the result reaches it later than the call's answer (a task's result).
    pub fn acquired(&self, call: &crate::policy::Call) {
        let tool = &call.tool;
        if tool.labels.is_empty() {
            return;
        }
        let (via, at) = provenance(tool);
        let chain = call.caller.chain();
        let task = call.caller.task.as_ref().map(|t| task_key(&chain, t));
        let session = call.caller.session.as_str();
        self.touch(session, task.as_deref(), |view| {
            labels(view, tool, &via, &at)
        });
    }

    /// Change what `session` (and its task) has done, sweeping idle memories now and then.
    fn touch(&self, session: &str, task: Option<&str>, mut change: impl FnMut(&mut SessionView)) {
        let mut all = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if all.swept.is_none_or(|at| now.duration_since(at) >= SWEEP) {
            all.swept = Some(now);
            all.sessions.retain(|key, m| {
                !key.starts_with("http:") || now.duration_since(m.touched) < HTTP_IDLE
            });
            all.tasks
                .retain(|_, m| now.duration_since(m.touched) < TASK_IDLE);
        }
        for key in std::iter::once(session).chain(task) {
            if let Some(memory) = all.entry(key) {
                memory.touched = now;
                change(&mut memory.view);
            }
        }
    }
}

/// Where and when a tool's labels were acquired: its object, now.
fn provenance(tool: &ToolRef) -> (String, String) {
    let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    (crate::policy::object_of(tool), at)
}

/// Add a forwarded call to what a session (or task) has done.
fn note(view: &mut SessionView, tool: &ToolRef, got: bool, via: &str, at: &str) {
    if tool.tier == Tier::Act {
        view.act_calls = view.act_calls.saturating_add(1);
    }
    if !view.upstreams.contains(&tool.server) {
        view.upstreams.push(tool.server.clone());
    }
    if got {
        labels(view, tool, via, at);
    }
}

/// The data labels of `tool`'s result, acquired (once each) via `via` at `at`.
fn labels(view: &mut SessionView, tool: &ToolRef, via: &str, at: &str) {
    for label in &tool.labels {
        if !view.acquired.iter().any(|a| &a.label == label) {
            view.acquired.push(Acquired {
                label: label.clone(),
                via: via.to_string(),
                at: at.to_string(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past the cap a new task is refused; a task already kept goes on; no record is
    /// dropped to make room.
    #[test]
    fn past_the_cap_a_new_task_is_refused_and_no_kept_task_is_dropped() {
        let sessions = Sessions::default();
        {
            let mut all = sessions.by_session.lock().unwrap();
            for n in 0..MAX_TASKS {
                all.entry(&format!("task:agent:a:T-{n}"));
            }
            all.entry("test:session");
        }
        assert!(sessions.admits("task:agent:a:T-0"));
        assert!(!sessions.admits("task:agent:a:T-new"));
        let all = sessions.by_session.lock().unwrap();
        assert_eq!((all.tasks.len(), all.sessions.len()), (MAX_TASKS, 1));
    }
}
