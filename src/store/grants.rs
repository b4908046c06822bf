//! Grants as rows: one per grant, its tier and status as words.

use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError, from_sql, to_sql};

/// One grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub id: String,
    pub grantee: String,
    pub on_behalf_of: Option<String>,
    pub tools: String,
    pub tier: String,
    pub reason: String,
    pub granted_by: String,
    pub created: u64,
    pub expires: u64,
    pub status: String,
    pub revoked_by: Option<String>,
    /// Only for calls of this task (or a sub-task of it).
    pub task: Option<String>,
}

const COLUMNS: &str = "id, grantee, on_behalf_of, tools, tier, reason, granted_by, created, expires, status, revoked_by, task";

impl Store {
    pub async fn insert_grant(&self, g: GrantRow) -> Result<(), StoreError> {
        self.write(move |tx| {
            tx.execute(
                &format!("INSERT INTO grants ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
                params![
                    g.id, g.grantee, g.on_behalf_of, g.tools, g.tier, g.reason, g.granted_by,
                    to_sql(g.created), to_sql(g.expires), g.status, g.revoked_by, g.task
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Every grant, newest first.
    pub async fn grants(&self) -> Result<Vec<GrantRow>, StoreError> {
        self.read(|tx| {
            let mut stmt = tx.prepare(&format!(
                "SELECT {COLUMNS} FROM grants ORDER BY created DESC"
            ))?;
            let rows = stmt.query_map([], row)?.collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Let `rule` change grant `id` (its status and who revoked it) and write what it
    /// changed, in one transaction: the grant as written and what the rule returned, or
    /// `None` if there is no such grant.
    pub async fn update_grant<T: Send + 'static>(
        &self,
        id: &str,
        rule: impl FnOnce(&mut GrantRow) -> T + Send + 'static,
    ) -> Result<Option<(GrantRow, T)>, StoreError> {
        let id = id.to_string();
        self.write(move |tx| {
            let sql = format!("SELECT {COLUMNS} FROM grants WHERE id = ?1");
            let Some(before) = tx.query_row(&sql, params![id], row).optional()? else {
                return Ok(None);
            };
            let mut changed = before.clone();
            let out = rule(&mut changed);
            if changed.status != before.status || changed.revoked_by != before.revoked_by {
                tx.execute(
                    "UPDATE grants SET status = ?2, revoked_by = ?3 WHERE id = ?1",
                    params![id, changed.status, changed.revoked_by],
                )?;
            }
            Ok(Some((changed, out)))
        })
        .await
    }
}

fn row(r: &Row<'_>) -> rusqlite::Result<GrantRow> {
    Ok(GrantRow {
        id: r.get(0)?,
        grantee: r.get(1)?,
        on_behalf_of: r.get(2)?,
        tools: r.get(3)?,
        tier: r.get(4)?,
        reason: r.get(5)?,
        granted_by: r.get(6)?,
        created: from_sql(r.get(7)?),
        expires: from_sql(r.get(8)?),
        status: r.get(9)?,
        revoked_by: r.get(10)?,
        task: r.get(11)?,
    })
}
