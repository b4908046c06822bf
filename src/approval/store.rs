//! The SQLite store of approval requests and their verdicts. Every rule that must hold
//! under concurrency (one decision per approver, single use, no decision after close) is
//! enforced inside one transaction.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{ApprovalError, NewRequest, Request, Status, Verdict};

const SCHEMA: &str = "
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
";

/// Approval requests, kept in an SQLite database so a restart loses none.
pub struct ApprovalStore {
    conn: Mutex<Connection>,
}

fn store_err(e: impl std::fmt::Display) -> ApprovalError {
    ApprovalError::Store(e.to_string())
}

impl ApprovalStore {
    /// Open (or create) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, ApprovalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(store_err)?;
        }
        Self::init(Connection::open(path).map_err(store_err)?)
    }

    /// A store that lives only as long as this value (tests, `check`).
    pub fn in_memory() -> Result<Self, ApprovalError> {
        Self::init(Connection::open_in_memory().map_err(store_err)?)
    }

    fn init(conn: Connection) -> Result<Self, ApprovalError> {
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(store_err)?;
        conn.execute_batch(SCHEMA).map_err(store_err)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, ApprovalError>,
    ) -> Result<T, ApprovalError> {
        let mut conn = self.conn.lock().map_err(|_| store_err("lock poisoned"))?;
        let tx = conn.transaction().map_err(store_err)?;
        let out = f(&tx)?;
        tx.commit().map_err(store_err)?;
        Ok(out)
    }

    /// Park a call: a new pending request that expires after its timeout.
    pub fn create(&self, call: NewRequest, now: u64) -> Result<Request, ApprovalError> {
        let id = uuid::Uuid::new_v4().to_string();
        let expires =
            now.saturating_add(u64::try_from(call.timeout.as_millis()).unwrap_or(u64::MAX));
        let binding = call.binding();
        let text = serde_json::to_string(&call).map_err(store_err)?;
        self.with(|tx| {
            tx.execute(
                "INSERT INTO requests (id, binding, call, status, created, expires) VALUES (?1, ?2, ?3, 'pending', ?4, ?5)",
                params![id, binding, text, to_sql(now), to_sql(expires)],
            )
            .map_err(store_err)?;
            Ok(())
        })?;
        Ok(Request {
            id,
            call,
            binding,
            status: Status::Pending,
            created: now,
            expires,
            verdicts: Vec::new(),
        })
    }

    pub fn get(&self, id: &str) -> Result<Request, ApprovalError> {
        self.with(|tx| load(tx, id))
    }

    /// Requests with `status` (all when `None`), newest first.
    pub fn list(&self, status: Option<Status>) -> Result<Vec<Request>, ApprovalError> {
        self.with(|tx| {
            let mut stmt = tx
                .prepare(
                    "SELECT id FROM requests WHERE ?1 IS NULL OR status = ?1 ORDER BY created DESC",
                )
                .map_err(store_err)?;
            let ids: Vec<String> = stmt
                .query_map(params![status.map(Status::as_str)], |r| r.get(0))
                .map_err(store_err)?
                .collect::<Result<_, _>>()
                .map_err(store_err)?;
            ids.iter().map(|id| load(tx, id)).collect()
        })
    }

    /// Record one approver's decision. `permitted` says whether the approver holds the
    /// `approve` permission on the tool (the caller asks the policy). Returns the request
    /// as it stands afterwards.
    pub fn decide(
        &self,
        id: &str,
        verdict: Verdict,
        permitted: bool,
        now: u64,
    ) -> Result<Request, ApprovalError> {
        // A refused decision still commits: it may have recorded the request's expiry.
        self.with(|tx| {
            let request = expire_if_due(tx, load(tx, id)?, now)?;
            if let Err(refused) = check_decision(&request, &verdict, permitted) {
                return Ok(Err(refused));
            }
            tx.execute(
                "INSERT INTO verdicts (id, approver, approve, comment, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, verdict.approver, verdict.approve, verdict.comment, to_sql(verdict.at)],
            )
            .map_err(store_err)?;
            let decided = load(tx, id)?;
            let status = match (verdict.approve, decided.approvers().len() >= decided.call.quorum as usize) {
                (false, _) => Status::Denied,
                (true, true) => Status::Approved,
                (true, false) => Status::Pending,
            };
            set_status(tx, id, status)?;
            load(tx, id).map(Ok)
        })?
    }

    /// An approved, unused, unexpired request for exactly this call (same binding).
    pub fn find_approved(&self, binding: &str, now: u64) -> Result<Option<Request>, ApprovalError> {
        self.find(binding, Status::Approved, now)
    }

    /// A pending request for exactly this call (same binding) still open at `now`.
    pub fn find_pending(&self, binding: &str, now: u64) -> Result<Option<Request>, ApprovalError> {
        self.find(binding, Status::Pending, now)
    }

    fn find(
        &self,
        binding: &str,
        status: Status,
        now: u64,
    ) -> Result<Option<Request>, ApprovalError> {
        self.with(|tx| {
            let id: Option<String> = tx
                .query_row(
                    "SELECT id FROM requests WHERE binding = ?1 AND status = ?2 AND expires > ?3 ORDER BY created LIMIT 1",
                    params![binding, status.as_str(), to_sql(now)],
                    |r| r.get(0),
                )
                .optional()
                .map_err(store_err)?;
            id.map(|id| load(tx, &id)).transpose()
        })
    }

    /// Use an approval: `approved` → `executed`, exactly once. A second use, or a use of
    /// anything not approved, is refused.
    pub fn consume(&self, id: &str, now: u64) -> Result<Request, ApprovalError> {
        self.with(|tx| {
            let changed = tx
                .execute("UPDATE requests SET status = 'executed' WHERE id = ?1 AND status = 'approved' AND expires > ?2", params![id, to_sql(now)])
                .map_err(store_err)?;
            let request = load(tx, id)?;
            match changed {
                1 => Ok(request),
                _ => Err(ApprovalError::Closed { id: id.into(), status: request.status.as_str() }),
            }
        })
    }

    /// Mark every pending request past its expiry as expired; returns them.
    pub fn expire_due(&self, now: u64) -> Result<Vec<Request>, ApprovalError> {
        self.with(|tx| {
            let mut stmt = tx
                .prepare("SELECT id FROM requests WHERE status = 'pending' AND expires <= ?1")
                .map_err(store_err)?;
            let ids: Vec<String> = stmt
                .query_map(params![to_sql(now)], |r| r.get(0))
                .map_err(store_err)?
                .collect::<Result<_, _>>()
                .map_err(store_err)?;
            for id in &ids {
                set_status(tx, id, Status::Expired)?;
            }
            ids.iter().map(|id| load(tx, id)).collect()
        })
    }
}

/// The rules a decision must pass, in order.
fn check_decision(
    request: &Request,
    verdict: &Verdict,
    permitted: bool,
) -> Result<(), ApprovalError> {
    let id = request.id.clone();
    if request.status != Status::Pending {
        return Err(ApprovalError::Closed {
            id,
            status: request.status.as_str(),
        });
    }
    if request.call.chain.contains(&verdict.approver) || request.call.agent == verdict.approver {
        return Err(ApprovalError::SeparationOfDuties {
            id,
            approver: verdict.approver.clone(),
        });
    }
    if !permitted {
        let object = format!("{}/{}", request.call.server, request.call.tool);
        return Err(ApprovalError::NotPermitted {
            approver: verdict.approver.clone(),
            object,
        });
    }
    if request
        .verdicts
        .iter()
        .any(|v| v.approver == verdict.approver)
    {
        return Err(ApprovalError::AlreadyDecided {
            id,
            approver: verdict.approver.clone(),
        });
    }
    Ok(())
}

fn expire_if_due(
    tx: &Transaction<'_>,
    request: Request,
    now: u64,
) -> Result<Request, ApprovalError> {
    if request.status == Status::Pending && request.expires <= now {
        set_status(tx, &request.id, Status::Expired)?;
        return load(tx, &request.id);
    }
    Ok(request)
}

fn set_status(tx: &Transaction<'_>, id: &str, status: Status) -> Result<(), ApprovalError> {
    tx.execute(
        "UPDATE requests SET status = ?2 WHERE id = ?1",
        params![id, status.as_str()],
    )
    .map_err(store_err)?;
    Ok(())
}

fn load(tx: &Transaction<'_>, id: &str) -> Result<Request, ApprovalError> {
    let row: Option<(String, String, String, i64, i64)> = tx
        .query_row(
            "SELECT binding, call, status, created, expires FROM requests WHERE id = ?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()
        .map_err(store_err)?;
    let (binding, call, status, created, expires) =
        row.ok_or_else(|| ApprovalError::NotFound(id.into()))?;
    let call: NewRequest = serde_json::from_str(&call).map_err(store_err)?;
    let status =
        Status::parse(&status).ok_or_else(|| store_err(format!("unknown status `{status}`")))?;
    let mut stmt = tx.prepare("SELECT approver, approve, comment, at FROM verdicts WHERE id = ?1 ORDER BY at, approver").map_err(store_err)?;
    let verdicts = stmt
        .query_map(params![id], |r| {
            Ok(Verdict {
                approver: r.get(0)?,
                approve: r.get(1)?,
                comment: r.get(2)?,
                at: from_sql(r.get(3)?),
            })
        })
        .map_err(store_err)?
        .collect::<Result<_, _>>()
        .map_err(store_err)?;
    Ok(Request {
        id: id.into(),
        call,
        binding,
        status,
        created: from_sql(created),
        expires: from_sql(expires),
        verdicts,
    })
}

fn to_sql(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn from_sql(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}
