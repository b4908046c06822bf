//! Rate-limit buckets in SQLite: a token from each, or from none, in one transaction the
//! engine opens (its write lock held).

use rusqlite::{OptionalExtension, Transaction, params};

use super::super::rows::{Bucket, spend};
use super::super::{BucketAsk, StoreError, from_sql, to_sql};

pub(super) fn take(
    tx: &Transaction<'_>,
    asks: &[BucketAsk],
    now: u64,
) -> Result<Option<(usize, f64)>, StoreError> {
    let mut buckets = Vec::with_capacity(asks.len());
    for ask in asks {
        let kept = tx
            .query_row(
                "SELECT tokens, at FROM buckets WHERE rule = ?1 AND identity = ?2",
                params![ask.rule, ask.identity],
                |r| {
                    Ok(Bucket {
                        tokens: r.get(0)?,
                        at: from_sql(r.get(1)?),
                    })
                },
            )
            .optional()?;
        buckets.push(Bucket::at(kept, ask, now));
    }
    if let Some(empty) = spend(&mut buckets) {
        return Ok(Some(empty));
    }
    for (ask, b) in asks.iter().zip(&buckets) {
        tx.execute(
            "INSERT INTO buckets (rule, identity, tokens, at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (rule, identity) DO UPDATE SET tokens = excluded.tokens, at = excluded.at",
            params![ask.rule, ask.identity, b.tokens, to_sql(b.at)],
        )?;
    }
    Ok(None)
}
