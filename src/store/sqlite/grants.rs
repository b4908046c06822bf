//! Grants in SQLite: plain functions over one transaction, which the engine opens.

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::super::{GrantRow, Rule, StoreError, from_sql, to_sql};

const COLUMNS: &str = "id, grantee, on_behalf_of, tools, tier, reason, granted_by, created, expires, status, revoked_by, task";

pub(super) fn insert(tx: &Transaction<'_>, g: &GrantRow) -> Result<(), StoreError> {
    tx.execute(
        &format!("INSERT INTO grants ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
        params![
            g.id, g.grantee, g.on_behalf_of, g.tools, g.tier, g.reason, g.granted_by,
            to_sql(g.created), to_sql(g.expires), g.status, g.revoked_by, g.task
        ],
    )?;
    Ok(())
}

pub(super) fn one(tx: &Transaction<'_>, id: &str) -> Result<Option<GrantRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM grants WHERE id = ?1");
    Ok(tx.query_row(&sql, params![id], row).optional()?)
}

pub(super) fn list(tx: &Transaction<'_>) -> Result<Vec<GrantRow>, StoreError> {
    let mut stmt = tx.prepare(&format!(
        "SELECT {COLUMNS} FROM grants ORDER BY created DESC"
    ))?;
    let rows = stmt.query_map([], row)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(super) fn update(
    tx: &Transaction<'_>,
    id: &str,
    rule: Rule<GrantRow>,
) -> Result<Option<GrantRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM grants WHERE id = ?1");
    let Some(before) = tx.query_row(&sql, params![id], row).optional()? else {
        return Ok(None);
    };
    let mut changed = before.clone();
    rule(&mut changed);
    if changed.status != before.status || changed.revoked_by != before.revoked_by {
        tx.execute(
            "UPDATE grants SET status = ?2, revoked_by = ?3 WHERE id = ?1",
            params![id, changed.status, changed.revoked_by],
        )?;
    }
    Ok(Some(changed))
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
