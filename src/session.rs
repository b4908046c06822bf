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
//! With replicas on a shared state database (PostgreSQL), while flow rules or budgets are
//! configured, an HTTP session's record and a task's are also kept there (a JSON document
//! a key, over the same idle windows): each replica adds what it forwarded before the
//! caller has the answer, and reads the shared record before deciding, so a session that
//! read data on one replica carries its labels to every other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::catalog::ToolRef;
use crate::flows::{Acquired, SessionView};
use crate::manifest::Tier;
use crate::store::{Store, StoreError};

/// An HTTP session's labels are forgotten after this long without a call: the
/// transport closes a session idle for five minutes, so by then it is gone.
const HTTP_IDLE: Duration = Duration::from_secs(600);
/// A task's record (across the sessions of one chain) is kept this long without a call.
const TASK_IDLE: Duration = Duration::from_secs(24 * 3600);
/// How often idle records are looked for (on a call).
const SWEEP: Duration = Duration::from_secs(60);
/// How often a replica writes a shared record it uses even when nothing changed, so that
/// it is kept there as long as it is used somewhere (and its idle window a minute longer).
const REFRESH: Duration = Duration::from_secs(60);
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
    fn get(&self, key: &str) -> Option<&Memory> {
        match key.starts_with("task:") {
            true => self.tasks.get(key),
            false => self.sessions.get(key),
        }
    }

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
                shared: None,
            };
            map.insert(key.to_string(), fresh);
        }
        map.get_mut(key)
    }
}

struct Memory {
    view: SessionView,
    touched: Instant,
    /// When this replica last wrote it to a shared state database.
    shared: Option<Instant>,
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
            merge(&mut view, &memory.view);
        }
        Arc::new(view)
    }

    /// The same, on every replica: with a shared state database, what any replica
    /// recorded for an HTTP session or a task is added. An error when that cannot be read
    /// (what the other replicas saw is unknown, so the call must not be decided).
    pub async fn held_everywhere(
        &self,
        store: &Store,
        session: &str,
        task: Option<&str>,
    ) -> Result<Arc<SessionView>, StoreError> {
        let here = self.held(session, task);
        let keys: Vec<&str> = shared_keys(Some(store), session, task).collect();
        if keys.is_empty() {
            return Ok(here);
        }
        let mut view = Arc::unwrap_or_clone(here);
        for doc in store.memories(&keys).await? {
            let kept: SessionView =
                serde_json::from_str(&doc).map_err(|e| StoreError::Unreadable(e.to_string()))?;
            merge(&mut view, &kept);
        }
        Ok(Arc::new(view))
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
    /// hold the tool's labels. With `store` shared, also in the record every replica reads
    /// (for an HTTP session and a task), before the caller has the answer: the next call
    /// may land on another replica.
    pub async fn record(
        &self,
        store: Option<&Store>,
        session: &str,
        task: Option<&str>,
        tool: &ToolRef,
        got: bool,
    ) -> Result<(), StoreError> {
        let noted = Noted::call(tool, got);
        // What this replica already added needs no second write (an `act` call always
        // counts), but a record in use is written now and then, so that it does not
        // expire there while it is read.
        match self.touch(session, task, |view| noted.onto(view)) {
            true => self.share(store, session, task, noted).await,
            false => Ok(()),
        }
    }

    /// Write `noted`, and what this replica holds for each record, to the records every
    /// replica reads (so a write that failed before is made good by the next); when it
    /// fails, the records are marked as not written, so that the next call writes them (it
    /// would otherwise find nothing changed here).
    async fn share(
        &self,
        store: Option<&Store>,
        session: &str,
        task: Option<&str>,
        noted: Noted<'_>,
    ) -> Result<(), StoreError> {
        let keys: Vec<&str> = shared_keys(store, session, task).collect();
        let Some(store) = store.filter(|_| !keys.is_empty()) else {
            return Ok(());
        };
        let here: Vec<(&str, SessionView)> = {
            let all = self
                .by_session
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            keys.iter()
                .map(|k| (*k, all.get(k).map(|m| m.view.clone()).unwrap_or_default()))
                .collect()
        };
        let shared = share(store, here, noted).await;
        if shared.is_err() {
            let mut all = self
                .by_session
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for key in keys {
                if let Some(memory) = all.get_mut(key) {
                    memory.shared = None;
                }
            }
        }
        shared
    }

    /// The data labels `call`'s tool brings, acquired by its caller's session (and task)
    /// when the result reaches it later than the call's answer (a task's result); with
    /// `store` shared, on every replica.
    pub async fn acquired(
        &self,
        store: Option<&Store>,
        call: &crate::policy::Call,
    ) -> Result<(), StoreError> {
        let tool = &call.tool;
        if tool.labels.is_empty() {
            return Ok(());
        }
        let noted = Noted::result(tool);
        let chain = call.caller.chain();
        let task = call.caller.task.as_ref().map(|t| task_key(&chain, t));
        let session = call.caller.session.as_str();
        match self.touch(session, task.as_deref(), |view| noted.onto(view)) {
            true => self.share(store, session, task.as_deref(), noted).await,
            false => Ok(()),
        }
    }

    /// Change what `session` (and its task) has done, sweeping idle memories now and then:
    /// whether to write it to a shared state database (`change` changed either, or this
    /// replica has not written it for a while).
    fn touch(
        &self,
        session: &str,
        task: Option<&str>,
        mut change: impl FnMut(&mut SessionView) -> bool,
    ) -> bool {
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
        let mut changed = false;
        for key in std::iter::once(session).chain(task) {
            if let Some(memory) = all.entry(key) {
                memory.touched = now;
                let stale = memory
                    .shared
                    .is_none_or(|at| now.duration_since(at) >= REFRESH);
                if change(&mut memory.view) || stale {
                    memory.shared = Some(now);
                    changed = true;
                }
            }
        }
        changed
    }
}

/// The keys of `session` and `task` whose records every replica shares: none without a
/// shared state database; a stdio session is its own process's alone.
fn shared_keys<'a>(
    store: Option<&Store>,
    session: &'a str,
    task: Option<&'a str>,
) -> impl Iterator<Item = &'a str> {
    let shared = store.is_some_and(Store::shared);
    std::iter::once(session)
        .chain(task)
        .filter(move |k| shared && (k.starts_with("http:") || k.starts_with("task:")))
}

/// Add `noted` to each shared record, with the labels and upstreams this replica holds
/// for it, each in one transaction that holds its row (two replicas adding at once both
/// count). A record this version cannot read is left as it is (reading it refuses the
/// session's calls).
async fn share(
    store: &Store,
    records: Vec<(&str, SessionView)>,
    noted: Noted<'_>,
) -> Result<(), StoreError> {
    for (key, here) in records {
        let keep = match key.starts_with("task:") {
            true => TASK_IDLE,
            false => HTTP_IDLE,
        };
        let owned = noted.owned();
        store
            .update_memory(key, keep, move |doc| {
                let view = match doc.is_empty() {
                    true => Ok(SessionView::default()),
                    false => serde_json::from_str::<SessionView>(doc),
                };
                if let Ok(mut view) = view {
                    owned.borrowed().onto(&mut view);
                    merge(&mut view, &here);
                    if let Ok(changed) = serde_json::to_string(&view) {
                        *doc = changed;
                    }
                }
            })
            .await?;
    }
    Ok(())
}

/// Add what `from` holds to `into`: each label and upstream once, the larger count of
/// `act` calls.
fn merge(into: &mut SessionView, from: &SessionView) {
    for a in &from.acquired {
        if !into.acquired.iter().any(|h| h.label == a.label) {
            into.acquired.push(a.clone());
        }
    }
    for u in &from.upstreams {
        if !into.upstreams.contains(u) {
            into.upstreams.push(u.clone());
        }
    }
    into.act_calls = into.act_calls.max(from.act_calls);
}

/// What one forwarded call, or one result, adds to a record.
struct Noted<'a> {
    /// An `act` call was forwarded.
    act: bool,
    /// The upstream called (none for a result that comes later than its call).
    server: Option<&'a str>,
    /// The labels acquired (none unless data reached the caller).
    labels: &'a [String],
    /// Where and when they were acquired.
    via: String,
    at: String,
}

/// A [`Noted`] that owns its parts, to take into a store's transaction.
struct NotedBuf {
    act: bool,
    server: Option<String>,
    labels: Vec<String>,
    via: String,
    at: String,
}

impl NotedBuf {
    fn borrowed(&self) -> Noted<'_> {
        Noted {
            act: self.act,
            server: self.server.as_deref(),
            labels: &self.labels,
            via: self.via.clone(),
            at: self.at.clone(),
        }
    }
}

impl<'a> Noted<'a> {
    /// A call to `tool` forwarded; `got` a result.
    fn call(tool: &'a ToolRef, got: bool) -> Self {
        let labels: &[String] = match got {
            true => &tool.labels,
            false => &[],
        };
        // Where and when, for the labels a result brings (most calls bring none).
        let (via, at) = match labels.is_empty() {
            true => Default::default(),
            false => provenance(tool),
        };
        Self {
            act: tool.tier == Tier::Act,
            server: Some(&tool.server),
            labels,
            via,
            at,
        }
    }

    /// `tool`'s result reached its caller after the call's answer.
    fn result(tool: &'a ToolRef) -> Self {
        let (via, at) = provenance(tool);
        Self {
            act: false,
            server: None,
            labels: &tool.labels,
            via,
            at,
        }
    }

    fn owned(&self) -> NotedBuf {
        NotedBuf {
            act: self.act,
            server: self.server.map(String::from),
            labels: self.labels.to_vec(),
            via: self.via.clone(),
            at: self.at.clone(),
        }
    }

    /// Add this to a session's (or task's) record, each label once: whether it changed.
    fn onto(&self, view: &mut SessionView) -> bool {
        let mut changed = self.act;
        if self.act {
            view.act_calls = view.act_calls.saturating_add(1);
        }
        if let Some(server) = self.server
            && !view.upstreams.iter().any(|u| u == server)
        {
            view.upstreams.push(server.to_string());
            changed = true;
        }
        for label in self.labels {
            if !view.acquired.iter().any(|a| &a.label == label) {
                view.acquired.push(Acquired {
                    label: label.clone(),
                    via: self.via.clone(),
                    at: self.at.clone(),
                });
                changed = true;
            }
        }
        changed
    }
}

/// Where and when a tool's labels were acquired: its object, now.
fn provenance(tool: &ToolRef) -> (String, String) {
    let at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    (crate::policy::object_of(tool), at)
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
