//! What sessions have done, in SQLite: one document a key, kept until it expires.

use rusqlite::{OptionalExtension, Transaction, params};

use super::super::{Rule, StoreError, to_sql};

pub(super) fn read(
    tx: &Transaction<'_>,
    keys: &[String],
    now: u64,
) -> Result<Vec<String>, StoreError> {
    let mut docs = Vec::with_capacity(keys.len());
    let mut stmt = tx.prepare("SELECT doc FROM memories WHERE key = ?1 AND expires > ?2")?;
    for key in keys {
        let doc: Option<String> = stmt
            .query_row(params![key, to_sql(now)], |r| r.get(0))
            .optional()?;
        docs.extend(doc);
    }
    Ok(docs)
}

pub(super) fn update(
    tx: &Transaction<'_>,
    key: &str,
    now: u64,
    expires: u64,
    rule: Rule<String>,
) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM memories WHERE expires <= ?1",
        params![to_sql(now)],
    )?;
    let mut doc: String = tx
        .query_row("SELECT doc FROM memories WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?
        .unwrap_or_default();
    rule(&mut doc);
    tx.execute(
        "INSERT INTO memories (key, doc, expires) VALUES (?1, ?2, ?3) ON CONFLICT (key) DO UPDATE SET doc = excluded.doc, expires = excluded.expires",
        params![key, doc, to_sql(expires)],
    )?;
    Ok(())
}
