//! The SQLite engine: one database file under `state_dir`, a pool of connections, the
//! blocking work on tokio's blocking threads, schema migrations numbered by `PRAGMA
//! user_version`, and writes in `BEGIN IMMEDIATE` transactions (the database's write
//! lock from the start, so a rule decides on what is still there when it writes).

mod approvals;
mod buckets;
mod grants;
mod memories;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::watch;

use super::{BucketAsk, Done, GrantRow, RequestRow, Rule, StoreError};

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
    "
CREATE TABLE buckets (
    rule TEXT NOT NULL,
    identity TEXT NOT NULL,
    tokens REAL NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (rule, identity)
);
",
    "
CREATE TABLE memories (
    key TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX memories_expires ON memories (expires);
CREATE TABLE pins (
    pin TEXT PRIMARY KEY,
    definition TEXT NOT NULL
);
",
];

/// Connections kept open between uses.
const IDLE: usize = 4;
/// How long a write waits for another connection's write to finish.
const BUSY: Duration = Duration::from_secs(5);

/// The engine.
pub(super) struct Sqlite {
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

impl Sqlite {
    /// Open (or create) the database at `path` and bring its schema up to date.
    pub fn open(path: &Path, changes: watch::Sender<u64>) -> Result<Self, StoreError> {
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
        Self::start(pool, first, &shown, changes)
    }

    /// A database that lives as long as this value.
    pub fn in_memory(changes: watch::Sender<u64>) -> Result<Self, StoreError> {
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
        Self::start(pool, first, "(memory)", changes)
    }

    fn start(
        pool: Pool,
        first: Connection,
        shown: &str,
        changes: watch::Sender<u64>,
    ) -> Result<Self, StoreError> {
        migrate(&first, shown)?;
        pool.give(first);
        Ok(Self {
            pool: Arc::new(pool),
            changes,
        })
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
        super::bump(&self.changes);
        Ok(out)
    }
}

impl super::Engine for Sqlite {
    fn shared(&self) -> bool {
        false
    }

    fn take_tokens(&self, asks: Vec<BucketAsk>) -> Done<'_, Option<(usize, f64)>> {
        Box::pin(self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = buckets::take(&tx, &asks, crate::clock::now_ms())?;
            if out.is_none() {
                tx.commit()?;
            }
            Ok(out)
        }))
    }

    /// Nobody else listens to a database of one gateway.
    fn announce(&self, _message: String) -> Done<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn insert_request(&self, row: RequestRow) -> Done<'_, ()> {
        Box::pin(self.write(move |tx| approvals::insert(tx, &row)))
    }

    fn request(&self, id: String) -> Done<'_, Option<RequestRow>> {
        Box::pin(self.read(move |tx| approvals::load(tx, &id)))
    }

    fn requests(&self, status: Option<String>) -> Done<'_, Vec<RequestRow>> {
        Box::pin(self.read(move |tx| approvals::list(tx, status.as_deref())))
    }

    fn find_request(
        &self,
        binding: String,
        status: String,
        now: u64,
    ) -> Done<'_, Option<RequestRow>> {
        Box::pin(self.read(move |tx| approvals::find(tx, &binding, &status, now)))
    }

    fn due_requests(&self, status: String, now: u64) -> Done<'_, Vec<String>> {
        Box::pin(self.read(move |tx| approvals::due(tx, &status, now)))
    }

    fn update_request(&self, id: String, rule: Rule<RequestRow>) -> Done<'_, Option<RequestRow>> {
        Box::pin(self.write(move |tx| approvals::update(tx, &id, rule)))
    }

    fn insert_grant(&self, row: GrantRow) -> Done<'_, ()> {
        Box::pin(self.write(move |tx| grants::insert(tx, &row)))
    }

    fn grant(&self, id: String) -> Done<'_, Option<GrantRow>> {
        Box::pin(self.read(move |tx| grants::one(tx, &id)))
    }

    fn grants(&self) -> Done<'_, Vec<GrantRow>> {
        Box::pin(self.read(grants::list))
    }

    fn update_grant(&self, id: String, rule: Rule<GrantRow>) -> Done<'_, Option<GrantRow>> {
        Box::pin(self.write(move |tx| grants::update(tx, &id, rule)))
    }

    fn memories(&self, keys: Vec<String>, now: u64) -> Done<'_, Vec<String>> {
        Box::pin(self.read(move |tx| memories::read(tx, &keys, now)))
    }

    fn update_memory(
        &self,
        key: String,
        now: u64,
        expires: u64,
        rule: Rule<String>,
    ) -> Done<'_, ()> {
        Box::pin(self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            memories::update(&tx, &key, now, expires, rule)?;
            Ok(tx.commit()?)
        }))
    }

    fn keep_pin(&self, pin: String, definition: String) -> Done<'_, ()> {
        Box::pin(self.run(move |conn| {
            conn.execute(
                "INSERT INTO pins (pin, definition) VALUES (?1, ?2) ON CONFLICT (pin) DO NOTHING",
                [pin, definition],
            )?;
            Ok(())
        }))
    }

    fn pin(&self, pin: String) -> Done<'_, Option<String>> {
        Box::pin(self.run(move |conn| {
            use rusqlite::OptionalExtension;
            let found = conn
                .query_row("SELECT definition FROM pins WHERE pin = ?1", [pin], |r| {
                    r.get(0)
                })
                .optional()?;
            Ok(found)
        }))
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
        drop(super::super::Store::open(&path).unwrap());
        assert_eq!(version(&path) as usize, MIGRATIONS.len());
        // A database from before numbered migrations: the first one's tables, version 0.
        let old = dir.path().join("old.db");
        Connection::open(&old)
            .unwrap()
            .execute_batch(MIGRATIONS[0])
            .unwrap();
        assert_eq!(version(&old), 0);
        drop(super::super::Store::open(&old).unwrap());
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
        let err = super::super::Store::open(&path).err().unwrap().to_string();
        assert!(
            err.contains("schema version 99") && err.contains("restore a backup"),
            "{err}"
        );
    }
}
