//! Shared state that outlives the process: approval requests with their verdicts, and
//! grants. One SQLite database (under `state_dir` by default), one pool of connections to
//! it, an async API whose blocking work runs on tokio's blocking threads, schema
//! migrations numbered by `PRAGMA user_version` and applied at open, an atomic
//! [`update`](Store::update_request) (read a row, let a rule change it, write what changed,
//! in one transaction) and [`watch`](Store::watch), a counter bumped after every committed
//! change so that whoever waits on a row wakes at once instead of polling. It stores
//! rows; what they mean (who may decide, when a request closes, which grants count) is
//! for `approval` and `grant`.

mod approvals;
mod grants;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::watch;

pub use approvals::{RequestRow, VerdictRow};
pub use grants::GrantRow;

/// Each migration takes the schema from the version before it to its own number (its
/// index + 1). Databases written before migrations were numbered are at version 0 and
/// already have the tables of the first, which creates them only if absent.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    binding TEXT NOT NULL,
    call TEXT NOT NULL,
    status TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_binding ON requests (binding, status);
CREATE TABLE IF NOT EXISTS verdicts (
    id TEXT NOT NULL REFERENCES requests (id),
    approver TEXT NOT NULL,
    approve INTEGER NOT NULL,
    comment TEXT,
    at INTEGER NOT NULL,
    PRIMARY KEY (id, approver)
);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY,
    grantee TEXT NOT NULL,
    on_behalf_of TEXT,
    tools TEXT NOT NULL,
    tier TEXT NOT NULL,
    reason TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    created INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    status TEXT NOT NULL,
    revoked_by TEXT
);
",
    "
ALTER TABLE verdicts ADD COLUMN confirmed TEXT;
",
    "
ALTER TABLE grants ADD COLUMN task TEXT;
",
];

/// Connections kept open between uses.
const IDLE: usize = 4;
/// How long a write waits for another connection's write to finish.
const BUSY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the state database failed: {0}")]
    Database(#[from] rusqlite::Error),
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
}

/// The state database.
pub struct Store {
    pool: Arc<Pool>,
    changes: watch::Sender<u64>,
}

/// Connections to one database, opened as needed and kept for reuse.
struct Pool {
    target: String,
    flags: OpenFlags,
    idle: Mutex<Vec<Connection>>,
    /// A memory database lives while a connection to it is open.
    _anchor: Option<Mutex<Connection>>,
}

impl Pool {
    fn connect(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(&self.target, self.flags)?;
        conn.busy_timeout(BUSY)?;
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")?;
        Ok(conn)
    }

    fn take(&self) -> rusqlite::Result<Connection> {
        let reused = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        reused.map_or_else(|| self.connect(), Ok)
    }

    fn give(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE {
            idle.push(conn);
        }
    }
}

impl Store {
    /// Open (or create) the database at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        }
        let pool = Pool {
            target: shown.clone(),
            flags: OpenFlags::default(),
            idle: Mutex::default(),
            _anchor: None,
        };
        let first = pool.connect().map_err(|e| StoreError::Open {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        first.execute_batch("PRAGMA journal_mode = WAL;")?;
        Self::start(pool, first, &shown)
    }

    /// A database that lives as long as this value (tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        let target = format!(
            "file:mcp-warden-{}?mode=memory&cache=shared",
            uuid::Uuid::new_v4()
        );
        let mut pool = Pool {
            target,
            flags: OpenFlags::default() | OpenFlags::SQLITE_OPEN_URI,
            idle: Mutex::default(),
            _anchor: None,
        };
        pool._anchor = Some(Mutex::new(pool.connect()?));
        let first = pool.connect()?;
        Self::start(pool, first, "(memory)")
    }

    fn start(pool: Pool, first: Connection, shown: &str) -> Result<Self, StoreError> {
        migrate(&first, shown)?;
        pool.give(first);
        Ok(Self {
            pool: Arc::new(pool),
            changes: watch::Sender::new(0),
        })
    }

    /// A receiver that sees a new value after every committed change.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Run `work` on a pooled connection on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.take()?;
            let result = work(&mut conn);
            pool.give(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Read in one transaction (a consistent view).
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run(move |conn| {
            let tx = conn.transaction()?;
            work(&tx)
        })
        .await
    }

    /// Change in one transaction that holds the write lock from its start, so a rule that
    /// read a row decides on what is still there when it writes; then tell the watchers.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let out = self
            .run(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let out = work(&tx)?;
                tx.commit()?;
                Ok(out)
            })
            .await?;
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        Ok(out)
    }
}

/// Apply every migration past the database's version, each in its own transaction.
fn migrate(conn: &Connection, shown: &str) -> Result<(), StoreError> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found as usize > MIGRATIONS.len() {
        return Err(StoreError::Newer {
            path: shown.to_string(),
            found,
            known: MIGRATIONS.len(),
        });
    }
    for (done, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {migration}; PRAGMA user_version = {}; COMMIT;",
            done + 1
        ))?;
    }
    Ok(())
}

/// Unix milliseconds as SQLite stores them.
fn to_sql(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn from_sql(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_is_at_the_last_version_and_an_old_one_is_brought_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let version = |path: &Path| -> u32 {
            Connection::open(path)
                .unwrap()
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap()
        };
        drop(Store::open(&path).unwrap());
        assert_eq!(version(&path) as usize, MIGRATIONS.len());
        // A database from before numbered migrations: the first one's tables, version 0.
        let old = dir.path().join("old.db");
        Connection::open(&old)
            .unwrap()
            .execute_batch(MIGRATIONS[0])
            .unwrap();
        assert_eq!(version(&old), 0);
        drop(Store::open(&old).unwrap());
        assert_eq!(version(&old) as usize, MIGRATIONS.len());
        // Every later migration ran: verdicts record confirmations.
        Connection::open(&old)
            .unwrap()
            .execute_batch("SELECT confirmed FROM verdicts")
            .unwrap();
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99;")
            .unwrap();
        let err = Store::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("schema version 99") && err.contains("restore a backup"),
            "{err}"
        );
    }
}
