//! Approval requests and their verdicts in SQLite: plain functions over one
//! transaction, which the engine opens.

use rusqlite::{OptionalExtension, Transaction, params};

use super::super::{RequestRow, StoreError, VerdictRow, from_sql, to_sql};

pub(super) fn insert(tx: &Transaction<'_>, row: &RequestRow) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO requests (id, binding, call, status, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![row.id, row.binding, row.call, row.status, to_sql(row.created), to_sql(row.expires)],
    )?;
    for verdict in &row.verdicts {
        insert_verdict(tx, &row.id, verdict)?;
    }
    Ok(())
}

pub(super) fn list(
    tx: &Transaction<'_>,
    status: Option<&str>,
) -> Result<Vec<RequestRow>, StoreError> {
    let ids = ids(
        tx,
        "SELECT id FROM requests WHERE ?1 IS NULL OR status = ?1 ORDER BY created DESC",
        params![status],
    )?;
    loaded(tx, &ids)
}

pub(super) fn find(
    tx: &Transaction<'_>,
    binding: &str,
    status: &str,
    now: u64,
) -> Result<Option<RequestRow>, StoreError> {
    let found = ids(
        tx,
        "SELECT id FROM requests WHERE binding = ?1 AND status = ?2 AND expires > ?3 ORDER BY created LIMIT 1",
        params![binding, status, to_sql(now)],
    )?;
    Ok(loaded(tx, &found)?.pop())
}

pub(super) fn due(tx: &Transaction<'_>, status: &str, now: u64) -> Result<Vec<String>, StoreError> {
    ids(
        tx,
        "SELECT id FROM requests WHERE status = ?1 AND expires <= ?2 ORDER BY created",
        params![status, to_sql(now)],
    )
}

pub(super) fn update(
    tx: &Transaction<'_>,
    id: &str,
    rule: super::super::Rule<RequestRow>,
) -> Result<Option<RequestRow>, StoreError> {
    let Some(before) = load(tx, id)? else {
        return Ok(None);
    };
    let mut row = before.clone();
    rule(&mut row);
    if row.status != before.status || row.expires != before.expires {
        tx.execute(
            "UPDATE requests SET status = ?2, expires = ?3 WHERE id = ?1",
            params![id, row.status, to_sql(row.expires)],
        )?;
    }
    for verdict in row.verdicts.iter().skip(before.verdicts.len()) {
        insert_verdict(tx, id, verdict)?;
    }
    Ok(Some(row))
}

fn insert_verdict(tx: &Transaction<'_>, id: &str, v: &VerdictRow) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO verdicts (id, approver, approve, comment, at, confirmed) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, v.approver, v.approve, v.comment, to_sql(v.at), v.confirmed],
    )?;
    Ok(())
}

fn ids(
    tx: &Transaction<'_>,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = tx.prepare(sql)?;
    let ids = stmt
        .query_map(args, |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

fn loaded(tx: &Transaction<'_>, ids: &[String]) -> Result<Vec<RequestRow>, StoreError> {
    Ok(ids
        .iter()
        .map(|id| load(tx, id))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .collect())
}

pub(super) fn load(tx: &Transaction<'_>, id: &str) -> Result<Option<RequestRow>, StoreError> {
    let row = tx
        .query_row(
            "SELECT binding, call, status, created, expires FROM requests WHERE id = ?1",
            params![id],
            |r| {
                Ok(RequestRow {
                    id: id.to_string(),
                    binding: r.get(0)?,
                    call: r.get(1)?,
                    status: r.get(2)?,
                    created: from_sql(r.get(3)?),
                    expires: from_sql(r.get(4)?),
                    verdicts: Vec::new(),
                })
            },
        )
        .optional()?;
    let Some(mut row) = row else { return Ok(None) };
    let mut stmt = tx.prepare(
        "SELECT approver, approve, comment, at, confirmed FROM verdicts WHERE id = ?1 ORDER BY at, rowid",
    )?;
    row.verdicts = stmt
        .query_map(params![id], |r| {
            Ok(VerdictRow {
                approver: r.get(0)?,
                approve: r.get(1)?,
                comment: r.get(2)?,
                at: from_sql(r.get(3)?),
                confirmed: r.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(row))
}
