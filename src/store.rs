//! Shared state that outlives the process: approval requests with their verdicts,
//! grants, rate-limit buckets, and what sessions have done (for flow rules). One interface ([`Store`]) over two engines: SQLite under `state_dir` (the
//! zero-configuration default, one gateway) and PostgreSQL (`[store] url`, shared by
//! replicas). Each engine numbers its schema migrations and applies them at open; each
//! gives an atomic [`update`](Store::update_request) (read a row, let a rule change it,
//! write what changed, in one transaction that holds the row, so a rule decides on what
//! is still there when it writes) and [`watch`](Store::watch), a counter bumped after
//! every committed change (PostgreSQL: every replica's change, by LISTEN/NOTIFY, with a
//! poll while the notifications are down) so that whoever waits on a row wakes at once.
//! It stores rows; what they mean (who may decide, when a request closes, which grants
//! count) is for `approval` and `grant`.

mod postgres;
mod rows;
mod sqlite;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use tokio::sync::{broadcast, watch};

pub use postgres::WitnessTable;
pub use rows::{BucketAsk, GrantRow, RequestRow, VerdictRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the state database failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the state database (PostgreSQL) failed: {0}")]
    Postgres(String),
    #[error("cannot open the state database `{path}`: {reason}")]
    Open { path: String, reason: String },
    #[error(
        "the state database `{path}` has schema version {found}, newer than this mcp-warden knows ({known}): run the newer version, or restore a backup"
    )]
    Newer {
        path: String,
        found: u32,
        known: usize,
    },
    #[error("the state database's worker stopped: {0}")]
    Worker(String),
    #[error(
        "the state database holds a record this mcp-warden cannot read ({0}): was it written by a newer version?"
    )]
    Unreadable(String),
}

/// What an engine's operations return.
type Done<'a, T> = BoxFuture<'a, Result<T, StoreError>>;
/// A change to a row, applied inside the engine's transaction.
type Rule<R> = Box<dyn FnOnce(&mut R) + Send>;

/// One engine's rows and transactions. Every write bumps `changes` once committed.
trait Engine: Send + Sync {
    /// Whether other processes change this database.
    fn shared(&self) -> bool;
    /// Tell every process on this database `message` (not empty).
    fn announce(&self, message: String) -> Done<'_, ()>;
    /// Take a token from every bucket asked, or from none, in one transaction that holds
    /// the buckets: `None` when taken, else the first empty bucket's index and tokens.
    fn take_tokens(&self, asks: Vec<BucketAsk>) -> Done<'_, Option<(usize, f64)>>;
    fn insert_request(&self, row: RequestRow) -> Done<'_, ()>;
    fn request(&self, id: String) -> Done<'_, Option<RequestRow>>;
    /// Every request, or those with `status`, newest first.
    fn requests(&self, status: Option<String>) -> Done<'_, Vec<RequestRow>>;
    /// The oldest request for `binding` with `status` not expired at `now`.
    fn find_request(
        &self,
        binding: String,
        status: String,
        now: u64,
    ) -> Done<'_, Option<RequestRow>>;
    /// The ids of requests with `status` whose expiry is at or before `now`.
    fn due_requests(&self, status: String, now: u64) -> Done<'_, Vec<String>>;
    /// Apply `rule` to request `id` (it may change its status and expiry and add
    /// verdicts) and write what changed, in one transaction; the row as written.
    fn update_request(&self, id: String, rule: Rule<RequestRow>) -> Done<'_, Option<RequestRow>>;
    fn insert_grant(&self, row: GrantRow) -> Done<'_, ()>;
    /// Every grant, newest first.
    fn grants(&self) -> Done<'_, Vec<GrantRow>>;
    fn grant(&self, id: String) -> Done<'_, Option<GrantRow>>;
    /// Apply `rule` to grant `id` (its status and who revoked it), in one transaction.
    fn update_grant(&self, id: String, rule: Rule<GrantRow>) -> Done<'_, Option<GrantRow>>;
    /// The documents kept under `keys` that have not expired at `now`, in no order.
    fn memories(&self, keys: Vec<String>, now: u64) -> Done<'_, Vec<String>>;
    /// Apply `rule` to the document under `key` (empty when there is none, or it has
    /// expired at `now`) and keep what it made until `expires`, in one transaction that
    /// holds the row; rows expired at `now` are dropped on the way. Watchers are not told:
    /// nobody waits on these.
    fn update_memory(
        &self,
        key: String,
        now: u64,
        expires: u64,
        rule: Rule<String>,
    ) -> Done<'_, ()>;
    /// Keep a tool's pinned `definition` under its `pin` (a pin names one definition, so
    /// a pin kept already is left as it is).
    fn keep_pin(&self, pin: String, definition: String) -> Done<'_, ()>;
    /// The definition kept under `pin`.
    fn pin(&self, pin: String) -> Done<'_, Option<String>>;
}

/// The state database, whichever engine holds it.
pub struct Store {
    engine: Box<dyn Engine>,
    changes: watch::Sender<u64>,
    /// What other processes on the database announced.
    heard: broadcast::Sender<String>,
    /// Where it is, for messages (a path, or the URL without its password).
    shown: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("at", &self.shown).finish()
    }
}

/// Bump a change counter.
fn bump(changes: &watch::Sender<u64>) {
    changes.send_modify(|n| *n = n.wrapping_add(1));
}

impl Store {
    /// Open (or create) the SQLite database at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let changes = watch::Sender::new(0);
        let engine = sqlite::Sqlite::open(path, changes.clone())?;
        Ok(Self {
            engine: Box::new(engine),
            changes,
            heard: broadcast::Sender::new(16),
            shown: path.display().to_string(),
        })
    }

    /// A SQLite database that lives as long as this value (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        let changes = watch::Sender::new(0);
        let engine = sqlite::Sqlite::in_memory(changes.clone())?;
        Ok(Self {
            engine: Box::new(engine),
            changes,
            heard: broadcast::Sender::new(16),
            shown: "(memory)".into(),
        })
    }

    /// Connect to the PostgreSQL database at `url` (`postgres://…`, or libpq's
    /// `key=value` form), bring its schema up to date and start listening for other
    /// replicas' changes.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let changes = watch::Sender::new(0);
        let heard = broadcast::Sender::new(16);
        let engine = postgres::Postgres::connect(url, changes.clone(), heard.clone()).await?;
        let shown = engine.shown().to_string();
        Ok(Self {
            engine: Box::new(engine),
            changes,
            heard,
            shown,
        })
    }

    /// Whether other replicas share this database (PostgreSQL): their changes come
    /// through [`watch`](Store::watch) too.
    pub fn shared(&self) -> bool {
        self.engine.shared()
    }

    /// Tell every gateway on this database `message` (with SQLite, nobody: there is no
    /// other).
    pub async fn announce(&self, message: &str) -> Result<(), StoreError> {
        self.engine.announce(message.to_string()).await
    }

    /// What other gateways on this database announce (and this one: the sender hears
    /// itself too), from now on.
    pub fn announcements(&self) -> Announcements {
        Announcements(self.heard.subscribe())
    }

    /// Take one token from each bucket of `asks` (rate limits every replica counts
    /// together), or from none: `None` when taken, else the first empty one's index and
    /// the tokens it has.
    pub async fn take_tokens(
        &self,
        asks: Vec<BucketAsk>,
    ) -> Result<Option<(usize, f64)>, StoreError> {
        self.engine.take_tokens(asks).await
    }

    /// Where the database is (a path, or a URL without its password).
    pub fn location(&self) -> &str {
        &self.shown
    }

    /// A receiver that sees a new value after every committed change (with PostgreSQL,
    /// every replica's).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub async fn insert_request(&self, row: RequestRow) -> Result<(), StoreError> {
        self.engine.insert_request(row).await
    }

    pub async fn request(&self, id: &str) -> Result<Option<RequestRow>, StoreError> {
        self.engine.request(id.to_string()).await
    }

    /// Every request, or those with `status`, newest first.
    pub async fn requests(&self, status: Option<&str>) -> Result<Vec<RequestRow>, StoreError> {
        self.engine.requests(status.map(String::from)).await
    }

    /// The oldest request for `binding` with `status` that has not expired at `now`.
    pub async fn find_request(
        &self,
        binding: &str,
        status: &str,
        now: u64,
    ) -> Result<Option<RequestRow>, StoreError> {
        let (binding, status) = (binding.to_string(), status.to_string());
        self.engine.find_request(binding, status, now).await
    }

    /// The requests with `status` whose expiry is at or before `now`.
    pub async fn due_requests(&self, status: &str, now: u64) -> Result<Vec<String>, StoreError> {
        self.engine.due_requests(status.to_string(), now).await
    }

    /// Let `rule` change request `id` (its status, expiry and verdicts; it may add
    /// verdicts, never remove one) and write what it changed, all in one transaction:
    /// the request as written and what the rule returned, or `None` if there is no such
    /// request.
    pub async fn update_request<T: Send + 'static>(
        &self,
        id: &str,
        rule: impl FnOnce(&mut RequestRow) -> T + Send + 'static,
    ) -> Result<Option<(RequestRow, T)>, StoreError> {
        let (rule, out) = keeping(rule);
        let row = self.engine.update_request(id.to_string(), rule).await?;
        Ok(row.and_then(|row| Some((row, taken(&out)?))))
    }

    pub async fn insert_grant(&self, row: GrantRow) -> Result<(), StoreError> {
        self.engine.insert_grant(row).await
    }

    /// Every grant, newest first.
    /// Grant `id`, read by its key (a call a grant allows asks this of a shared store).
    pub async fn grant(&self, id: &str) -> Result<Option<GrantRow>, StoreError> {
        self.engine.grant(id.to_string()).await
    }

    pub async fn grants(&self) -> Result<Vec<GrantRow>, StoreError> {
        self.engine.grants().await
    }

    /// Let `rule` change grant `id` (its status and who revoked it) and write what it
    /// changed, in one transaction: the grant as written and what the rule returned, or
    /// `None` if there is no such grant.
    pub async fn update_grant<T: Send + 'static>(
        &self,
        id: &str,
        rule: impl FnOnce(&mut GrantRow) -> T + Send + 'static,
    ) -> Result<Option<(GrantRow, T)>, StoreError> {
        let (rule, out) = keeping(rule);
        let row = self.engine.update_grant(id.to_string(), rule).await?;
        Ok(row.and_then(|row| Some((row, taken(&out)?))))
    }
}

impl Store {
    /// The documents kept under `keys` (what sessions and tasks have done, see `session`)
    /// that have not expired.
    pub async fn memories(&self, keys: &[&str]) -> Result<Vec<String>, StoreError> {
        let keys = keys.iter().map(|k| k.to_string()).collect();
        self.engine.memories(keys, crate::clock::now_ms()).await
    }

    /// Let `rule` change the document under `key` (empty when there is none, or it has
    /// expired) and keep it for `keep` from now, in one transaction that holds the row:
    /// two replicas changing one document both see each other's change.
    pub async fn update_memory(
        &self,
        key: &str,
        keep: std::time::Duration,
        rule: impl FnOnce(&mut String) + Send + 'static,
    ) -> Result<(), StoreError> {
        let now = crate::clock::now_ms();
        let keep = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
        let expires = now.saturating_add(keep);
        let rule: Rule<String> = Box::new(rule);
        self.engine
            .update_memory(key.to_string(), now, expires, rule)
            .await
    }
}

impl Store {
    /// Keep a tool's pinned `definition` (JSON) under its `pin`, for every replica to name
    /// what changed when the tool drifts from it.
    pub async fn keep_pin(&self, pin: &str, definition: String) -> Result<(), StoreError> {
        self.engine.keep_pin(pin.to_string(), definition).await
    }

    /// The definition kept under `pin` (JSON, to be checked against the pin by whoever
    /// believes it).
    pub async fn pin(&self, pin: &str) -> Result<Option<String>, StoreError> {
        self.engine.pin(pin.to_string()).await
    }
}

/// Announcements heard on the database, in order (see [`Store::announcements`]).
pub struct Announcements(broadcast::Receiver<String>);

impl Announcements {
    /// The next one; `None` once the store is gone. Announcements missed while the
    /// listener fell behind are passed over (each says what to do, not what changed).
    pub async fn next(&mut self) -> Option<String> {
        loop {
            match self.0.recv().await {
                Ok(message) => return Some(message),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// `rule` as an engine takes it, and where what it returns is kept.
fn keeping<R, T: Send + 'static>(
    rule: impl FnOnce(&mut R) -> T + Send + 'static,
) -> (Rule<R>, Arc<Mutex<Option<T>>>) {
    let out = Arc::new(Mutex::new(None));
    let kept = out.clone();
    let rule: Rule<R> = Box::new(move |row| {
        let answer = rule(row);
        *kept.lock().unwrap_or_else(PoisonError::into_inner) = Some(answer);
    });
    (rule, out)
}

fn taken<T>(out: &Mutex<Option<T>>) -> Option<T> {
    out.lock().unwrap_or_else(PoisonError::into_inner).take()
}

/// Unix milliseconds as the databases store them.
fn to_sql(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn from_sql(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}
