//! Approval requests and their verdicts as rows: a request's call is kept as the JSON
//! `approval` gives it, its status as a word; verdicts are only ever added.

use rusqlite::{OptionalExtension, Transaction, params};

use super::{Store, StoreError, from_sql, to_sql};

/// One approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    pub id: String,
    /// What an approval is good for (the call's tool, arguments and caller).
    pub binding: String,
    /// The parked call, as JSON.
    pub call: String,
    pub status: String,
    pub created: u64,
    pub expires: u64,
    /// In the order they were given.
    pub verdicts: Vec<VerdictRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictRow {
    pub approver: String,
    pub approve: bool,
    pub comment: Option<String>,
    pub at: u64,
    /// The channel of the principal's own confirmation, when it is one.
    pub confirmed: Option<String>,
}

impl Store {
    pub async fn insert_request(&self, row: RequestRow) -> Result<(), StoreError> {
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO requests (id, binding, call, status, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![row.id, row.binding, row.call, row.status, to_sql(row.created), to_sql(row.expires)],
            )?;
            for verdict in &row.verdicts {
                insert_verdict(tx, &row.id, verdict)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn request(&self, id: &str) -> Result<Option<RequestRow>, StoreError> {
        let id = id.to_string();
        self.read(move |tx| load(tx, &id)).await
    }

    /// Every request, or those with `status`, newest first.
    pub async fn requests(&self, status: Option<&str>) -> Result<Vec<RequestRow>, StoreError> {
        let status = status.map(String::from);
        self.read(move |tx| {
            let ids = ids(
                tx,
                "SELECT id FROM requests WHERE ?1 IS NULL OR status = ?1 ORDER BY created DESC",
                params![status],
            )?;
            loaded(tx, &ids)
        })
        .await
    }

    /// The oldest request for `binding` with `status` that has not expired at `now`.
    pub async fn find_request(
        &self,
        binding: &str,
        status: &str,
        now: u64,
    ) -> Result<Option<RequestRow>, StoreError> {
        let (binding, status) = (binding.to_string(), status.to_string());
        self.read(move |tx| {
            let found = ids(
                tx,
                "SELECT id FROM requests WHERE binding = ?1 AND status = ?2 AND expires > ?3 ORDER BY created LIMIT 1",
                params![binding, status, to_sql(now)],
            )?;
            Ok(loaded(tx, &found)?.pop())
        })
        .await
    }

    /// The requests with `status` whose expiry is at or before `now`.
    pub async fn due_requests(&self, status: &str, now: u64) -> Result<Vec<String>, StoreError> {
        let status = status.to_string();
        self.read(move |tx| {
            ids(
                tx,
                "SELECT id FROM requests WHERE status = ?1 AND expires <= ?2 ORDER BY created",
                params![status, to_sql(now)],
            )
        })
        .await
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
        let id = id.to_string();
        self.write(move |tx| {
            let Some(before) = load(tx, &id)? else {
                return Ok(None);
            };
            let mut row = before.clone();
            let out = rule(&mut row);
            if row.status != before.status || row.expires != before.expires {
                tx.execute(
                    "UPDATE requests SET status = ?2, expires = ?3 WHERE id = ?1",
                    params![id, row.status, to_sql(row.expires)],
                )?;
            }
            for verdict in row.verdicts.iter().skip(before.verdicts.len()) {
                insert_verdict(tx, &id, verdict)?;
            }
            Ok(Some((row, out)))
        })
        .await
    }
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

fn load(tx: &Transaction<'_>, id: &str) -> Result<Option<RequestRow>, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(id: &str) -> RequestRow {
        RequestRow {
            id: id.into(),
            binding: "b".into(),
            call: "{}".into(),
            status: "pending".into(),
            created: 1,
            expires: 2,
            verdicts: Vec::new(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_updates_of_one_request_each_see_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
        store.insert_request(request("r")).await.unwrap();
        let tasks: Vec<_> = (0..24)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .update_request("r", move |row| {
                            let seen = row.verdicts.len();
                            row.verdicts.push(VerdictRow {
                                approver: format!("user:{n}"),
                                approve: true,
                                comment: None,
                                at: 10 + n,
                                confirmed: None,
                            });
                            seen
                        })
                        .await
                })
            })
            .collect();
        let mut seen = Vec::new();
        for task in tasks {
            seen.push(task.await.unwrap().unwrap().unwrap().1);
        }
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..24).collect::<Vec<_>>(),
            "each update saw every earlier one"
        );
        let row = store.request("r").await.unwrap().unwrap();
        assert_eq!(row.verdicts.len(), 24);
    }

    #[tokio::test]
    async fn an_update_writes_what_the_rule_changed_and_a_watcher_hears_of_it() {
        let store = Store::in_memory().unwrap();
        let mut changes = store.watch();
        store.insert_request(request("r")).await.unwrap();
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        let (row, out) = store
            .update_request("r", |row| {
                row.status = "approved".into();
                row.expires = 9;
                "decided"
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (row.status.as_str(), row.expires, out),
            ("approved", 9, "decided")
        );
        assert!(changes.has_changed().unwrap());
        let stored = store.request("r").await.unwrap().unwrap();
        assert_eq!((stored.status.as_str(), stored.expires), ("approved", 9));
        assert!(
            store
                .update_request("nope", |_| ())
                .await
                .unwrap()
                .is_none()
        );
        let due = store.due_requests("approved", 9).await.unwrap();
        assert_eq!(due, ["r"]);
    }
}
