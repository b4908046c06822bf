//! The SQLite table of grants (in the approvals database), and the in-memory
//! [`GrantBook`] of active grants it keeps current after every change.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Grant, GrantBook, GrantStatus};

const SCHEMA: &str = "
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
";

#[derive(Debug, thiserror::Error)]
#[error("the grant store failed: {0}")]
pub struct StoreError(String);

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// Grants on disk, and the book decisions read.
pub struct GrantStore {
    conn: Mutex<Connection>,
    book: Arc<GrantBook>,
}

impl GrantStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        let store = Self {
            conn: Mutex::new(conn),
            book: Arc::default(),
        };
        store.reload()?;
        Ok(store)
    }

    /// The book decisions consult.
    pub fn book(&self) -> Arc<GrantBook> {
        self.book.clone()
    }

    /// Store a new, active grant; it takes effect at once.
    pub fn insert(&self, grant: &Grant) -> Result<(), StoreError> {
        self.lock()?
            .execute(
                "INSERT INTO grants VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'active', NULL)",
                params![
                    grant.id,
                    grant.to,
                    grant.on_behalf_of,
                    grant.tools,
                    grant.tier.as_str(),
                    grant.reason,
                    grant.by,
                    grant.created as i64,
                    grant.expires as i64
                ],
            )
            .map_err(err)?;
        self.reload()
    }

    /// Revoke an active grant; `None` when there is no active grant `id`.
    pub fn revoke(&self, id: &str, by: &str) -> Result<Option<Grant>, StoreError> {
        let changed = self
            .lock()?
            .execute(
                "UPDATE grants SET status = 'revoked', revoked_by = ?2 WHERE id = ?1 AND status = 'active'",
                params![id, by],
            )
            .map_err(err)?;
        self.reload()?;
        match changed {
            0 => Ok(None),
            _ => self.get(id),
        }
    }

    /// Mark active grants past their expiry as expired; the ones it marked.
    pub fn sweep(&self, now: u64) -> Result<Vec<Grant>, StoreError> {
        let expired: Vec<Grant> = self
            .list()?
            .into_iter()
            .filter(|g| g.status == GrantStatus::Active && g.expires <= now)
            .collect();
        for g in &expired {
            self.lock()?
                .execute(
                    "UPDATE grants SET status = 'expired' WHERE id = ?1 AND status = 'active'",
                    params![g.id],
                )
                .map_err(err)?;
        }
        if !expired.is_empty() {
            self.reload()?;
        }
        Ok(expired)
    }

    pub fn get(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        self.lock()?
            .query_row("SELECT * FROM grants WHERE id = ?1", params![id], row)
            .optional()
            .map_err(err)
    }

    /// Every grant, newest first.
    pub fn list(&self) -> Result<Vec<Grant>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare("SELECT * FROM grants ORDER BY created DESC")
            .map_err(err)?;
        let rows = stmt.query_map([], row).map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)
    }

    fn reload(&self) -> Result<(), StoreError> {
        let active = self
            .list()?
            .into_iter()
            .filter(|g| g.status == GrantStatus::Active)
            .collect();
        self.book.replace(active);
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| err("lock poisoned"))
    }
}

fn row(r: &Row<'_>) -> rusqlite::Result<Grant> {
    let tier: String = r.get(4)?;
    let status: String = r.get(9)?;
    let bad = |what: &str| {
        rusqlite::Error::InvalidColumnType(0, what.into(), rusqlite::types::Type::Text)
    };
    Ok(Grant {
        id: r.get(0)?,
        to: r.get(1)?,
        on_behalf_of: r.get(2)?,
        tools: r.get(3)?,
        tier: tier.parse().map_err(|_| bad("tier"))?,
        reason: r.get(5)?,
        by: r.get(6)?,
        created: r.get::<_, i64>(7)? as u64,
        expires: r.get::<_, i64>(8)? as u64,
        status: match status.as_str() {
            "active" => GrantStatus::Active,
            "revoked" => GrantStatus::Revoked,
            "expired" => GrantStatus::Expired,
            _ => return Err(bad("status")),
        },
        revoked_by: r.get(10)?,
    })
}
