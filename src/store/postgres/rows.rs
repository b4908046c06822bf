//! Requests, verdicts, grants, buckets and memories in PostgreSQL: plain functions over a connection or a
//! transaction, which the engine opens.

use tokio_postgres::{GenericClient, Row, Transaction};

use super::failed;
use crate::store::rows::{Bucket, spend};
use crate::store::{
    BucketAsk, GrantRow, RequestRow, Rule, StoreError, VerdictRow, from_sql, to_sql,
};

const REQUEST: &str = "id, binding, call, status, created, expires";
const GRANT: &str = "id, grantee, on_behalf_of, tools, tier, reason, granted_by, created, expires, status, revoked_by, task";

fn request_of(r: &Row) -> RequestRow {
    RequestRow {
        id: r.get(0),
        binding: r.get(1),
        call: r.get(2),
        status: r.get(3),
        created: from_sql(r.get(4)),
        expires: from_sql(r.get(5)),
        verdicts: Vec::new(),
    }
}

fn verdict_of(r: &Row) -> (String, VerdictRow) {
    (
        r.get(0),
        VerdictRow {
            approver: r.get(1),
            approve: r.get(2),
            comment: r.get(3),
            at: from_sql(r.get(4)),
            confirmed: r.get(5),
        },
    )
}

fn grant_of(r: &Row) -> GrantRow {
    GrantRow {
        id: r.get(0),
        grantee: r.get(1),
        on_behalf_of: r.get(2),
        tools: r.get(3),
        tier: r.get(4),
        reason: r.get(5),
        granted_by: r.get(6),
        created: from_sql(r.get(7)),
        expires: from_sql(r.get(8)),
        status: r.get(9),
        revoked_by: r.get(10),
        task: r.get(11),
    }
}

/// `rows` with their verdicts, in the order given.
async fn with_verdicts(
    c: &impl GenericClient,
    mut rows: Vec<RequestRow>,
) -> Result<Vec<RequestRow>, StoreError> {
    if rows.is_empty() {
        return Ok(rows);
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let verdicts = c
        .query(
            "SELECT id, approver, approve, comment, at, confirmed FROM mcp_warden_verdicts WHERE id = ANY($1) ORDER BY at, seq",
            &[&ids],
        )
        .await
        .map_err(failed)?;
    for v in &verdicts {
        let (id, verdict) = verdict_of(v);
        if let Some(row) = rows.iter_mut().find(|r| r.id == id) {
            row.verdicts.push(verdict);
        }
    }
    Ok(rows)
}

async fn insert_verdict(tx: &Transaction<'_>, id: &str, v: &VerdictRow) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO mcp_warden_verdicts (id, approver, approve, comment, at, confirmed) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&id, &v.approver, &v.approve, &v.comment, &to_sql(v.at), &v.confirmed],
    )
    .await
    .map_err(failed)?;
    Ok(())
}

pub(super) async fn insert_request(
    tx: &Transaction<'_>,
    row: &RequestRow,
) -> Result<(), StoreError> {
    tx.execute(
        &format!("INSERT INTO mcp_warden_requests ({REQUEST}) VALUES ($1, $2, $3, $4, $5, $6)"),
        &[
            &row.id,
            &row.binding,
            &row.call,
            &row.status,
            &to_sql(row.created),
            &to_sql(row.expires),
        ],
    )
    .await
    .map_err(failed)?;
    for verdict in &row.verdicts {
        insert_verdict(tx, &row.id, verdict).await?;
    }
    Ok(())
}

/// Request `id`; `lock`: hold its row until the transaction ends.
pub(super) async fn request(
    c: &impl GenericClient,
    id: &str,
    lock: bool,
) -> Result<Option<RequestRow>, StoreError> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let found = c
        .query_opt(
            &format!("SELECT {REQUEST} FROM mcp_warden_requests WHERE id = $1{lock}"),
            &[&id],
        )
        .await
        .map_err(failed)?;
    let rows = found.iter().map(request_of).collect();
    Ok(with_verdicts(c, rows).await?.pop())
}

pub(super) async fn requests(
    c: &impl GenericClient,
    status: Option<&str>,
) -> Result<Vec<RequestRow>, StoreError> {
    let rows = c
        .query(
            &format!("SELECT {REQUEST} FROM mcp_warden_requests WHERE $1::TEXT IS NULL OR status = $1 ORDER BY created DESC"),
            &[&status],
        )
        .await
        .map_err(failed)?;
    with_verdicts(c, rows.iter().map(request_of).collect()).await
}

pub(super) async fn find_request(
    c: &impl GenericClient,
    binding: &str,
    status: &str,
    now: u64,
) -> Result<Option<RequestRow>, StoreError> {
    let rows = c
        .query(
            &format!("SELECT {REQUEST} FROM mcp_warden_requests WHERE binding = $1 AND status = $2 AND expires > $3 ORDER BY created LIMIT 1"),
            &[&binding, &status, &to_sql(now)],
        )
        .await
        .map_err(failed)?;
    Ok(with_verdicts(c, rows.iter().map(request_of).collect())
        .await?
        .pop())
}

pub(super) async fn due_requests(
    c: &impl GenericClient,
    status: &str,
    now: u64,
) -> Result<Vec<String>, StoreError> {
    let rows = c
        .query(
            "SELECT id FROM mcp_warden_requests WHERE status = $1 AND expires <= $2 ORDER BY created",
            &[&status, &to_sql(now)],
        )
        .await
        .map_err(failed)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(super) async fn update_request(
    tx: &Transaction<'_>,
    id: &str,
    rule: Rule<RequestRow>,
) -> Result<Option<RequestRow>, StoreError> {
    let Some(before) = request(tx, id, true).await? else {
        return Ok(None);
    };
    let mut row = before.clone();
    rule(&mut row);
    if row.status != before.status || row.expires != before.expires {
        tx.execute(
            "UPDATE mcp_warden_requests SET status = $2, expires = $3 WHERE id = $1",
            &[&id, &row.status, &to_sql(row.expires)],
        )
        .await
        .map_err(failed)?;
    }
    for verdict in row.verdicts.iter().skip(before.verdicts.len()) {
        insert_verdict(tx, id, verdict).await?;
    }
    Ok(Some(row))
}

pub(super) async fn insert_grant(tx: &Transaction<'_>, g: &GrantRow) -> Result<(), StoreError> {
    tx.execute(
        &format!("INSERT INTO mcp_warden_grants ({GRANT}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"),
        &[
            &g.id, &g.grantee, &g.on_behalf_of, &g.tools, &g.tier, &g.reason, &g.granted_by,
            &to_sql(g.created), &to_sql(g.expires), &g.status, &g.revoked_by, &g.task,
        ],
    )
    .await
    .map_err(failed)?;
    Ok(())
}

pub(super) async fn grant(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<GrantRow>, StoreError> {
    let found = c
        .query_opt(
            &format!("SELECT {GRANT} FROM mcp_warden_grants WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(failed)?;
    Ok(found.as_ref().map(grant_of))
}

pub(super) async fn grants(c: &impl GenericClient) -> Result<Vec<GrantRow>, StoreError> {
    let rows = c
        .query(
            &format!("SELECT {GRANT} FROM mcp_warden_grants ORDER BY created DESC"),
            &[],
        )
        .await
        .map_err(failed)?;
    Ok(rows.iter().map(grant_of).collect())
}

pub(super) async fn update_grant(
    tx: &Transaction<'_>,
    id: &str,
    rule: Rule<GrantRow>,
) -> Result<Option<GrantRow>, StoreError> {
    let found = tx
        .query_opt(
            &format!("SELECT {GRANT} FROM mcp_warden_grants WHERE id = $1 FOR UPDATE"),
            &[&id],
        )
        .await
        .map_err(failed)?;
    let Some(before) = found.as_ref().map(grant_of) else {
        return Ok(None);
    };
    let mut changed = before.clone();
    rule(&mut changed);
    if changed.status != before.status || changed.revoked_by != before.revoked_by {
        tx.execute(
            "UPDATE mcp_warden_grants SET status = $2, revoked_by = $3 WHERE id = $1",
            &[&id, &changed.status, &changed.revoked_by],
        )
        .await
        .map_err(failed)?;
    }
    Ok(Some(changed))
}

/// Take a token from each bucket asked, or from none (see `Store::take_tokens`); the
/// buckets are locked in one order, so replicas taking the same ones never deadlock.
pub(super) async fn take_tokens(
    tx: &Transaction<'_>,
    asks: &[BucketAsk],
    now: u64,
) -> Result<Option<(usize, f64)>, StoreError> {
    let mut order: Vec<usize> = (0..asks.len()).collect();
    order.sort_by(|a, b| {
        let key = |i: &usize| asks.get(*i).map(|x| (x.rule.as_str(), x.identity.as_str()));
        key(a).cmp(&key(b))
    });
    let mut buckets = vec![
        Bucket {
            tokens: 0.0,
            at: now
        };
        asks.len()
    ];
    for &i in &order {
        let Some(ask) = asks.get(i) else { continue };
        tx.execute(
            "INSERT INTO mcp_warden_buckets (rule, identity, tokens, at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &[&ask.rule, &ask.identity, &ask.burst, &to_sql(now)],
        )
        .await
        .map_err(failed)?;
        let kept = tx
            .query_one(
                "SELECT tokens, at FROM mcp_warden_buckets WHERE rule = $1 AND identity = $2 FOR UPDATE",
                &[&ask.rule, &ask.identity],
            )
            .await
            .map_err(failed)?;
        let kept = Bucket {
            tokens: kept.get(0),
            at: from_sql(kept.get(1)),
        };
        if let Some(b) = buckets.get_mut(i) {
            *b = Bucket::at(Some(kept), ask, now);
        }
    }
    if let Some(empty) = spend(&mut buckets) {
        return Ok(Some(empty));
    }
    for (ask, b) in asks.iter().zip(&buckets) {
        tx.execute(
            "UPDATE mcp_warden_buckets SET tokens = $3, at = $4 WHERE rule = $1 AND identity = $2",
            &[&ask.rule, &ask.identity, &b.tokens, &to_sql(b.at)],
        )
        .await
        .map_err(failed)?;
    }
    Ok(None)
}

/// The documents under `keys` that have not expired at `now`.
pub(super) async fn memories(
    c: &impl GenericClient,
    keys: &[String],
    now: u64,
) -> Result<Vec<String>, StoreError> {
    let rows = c
        .query(
            "SELECT doc FROM mcp_warden_memories WHERE key = ANY($1) AND expires > $2",
            &[&keys, &to_sql(now)],
        )
        .await
        .map_err(failed)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub(super) async fn sweep_memories(c: &impl GenericClient, now: u64) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM mcp_warden_memories WHERE expires <= $1",
        &[&to_sql(now)],
    )
    .await
    .map_err(failed)?;
    Ok(())
}

/// Apply `rule` to the document under `key` (empty when absent or expired), the row held
/// (made first when absent, so that two replicas making it both wait on one row).
pub(super) async fn update_memory(
    tx: &Transaction<'_>,
    key: &str,
    now: u64,
    expires: u64,
    rule: Rule<String>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO mcp_warden_memories (key, doc, expires) VALUES ($1, '', 0) ON CONFLICT DO NOTHING",
        &[&key],
    )
    .await
    .map_err(failed)?;
    let kept = tx
        .query_one(
            "SELECT doc, expires FROM mcp_warden_memories WHERE key = $1 FOR UPDATE",
            &[&key],
        )
        .await
        .map_err(failed)?;
    let mut doc: String = match from_sql(kept.get(1)) > now {
        true => kept.get(0),
        false => String::new(),
    };
    rule(&mut doc);
    tx.execute(
        "UPDATE mcp_warden_memories SET doc = $2, expires = $3 WHERE key = $1",
        &[&key, &doc, &to_sql(expires)],
    )
    .await
    .map_err(failed)?;
    Ok(())
}
