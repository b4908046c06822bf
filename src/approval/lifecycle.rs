//! The life of an approval request over the store: created pending, decided by distinct
//! approvers up to its quorum (or denied by one), expired when its time is up, executed
//! once. Each step is a plain rule over a [`Request`] that the store applies atomically
//! ([`Store::update_request`]): it reads the request, the rule decides, and what it
//! changed is written in the same transaction, so two approvers (or two identical calls)
//! racing never both win.

use std::sync::Arc;

use tokio::sync::watch;

use super::{ApprovalError, Channel, NewRequest, Request, Status, Verdict};
use crate::store::{RequestRow, Store, StoreError, VerdictRow};

impl From<StoreError> for ApprovalError {
    fn from(e: StoreError) -> Self {
        ApprovalError::Store(e.to_string())
    }
}

/// Approval requests, kept in the state database so a restart loses none.
#[derive(Clone)]
pub struct Approvals {
    store: Arc<Store>,
}

impl Approvals {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    /// Requests in a database that lives as long as this value (tests).
    pub fn in_memory() -> Result<Self, ApprovalError> {
        Ok(Self::new(Arc::new(Store::in_memory()?)))
    }

    /// Sees a new value whenever any request may have changed.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.store.watch()
    }

    /// Park a call: a new pending request that expires after its timeout.
    pub async fn create(&self, call: NewRequest, now: u64) -> Result<Request, ApprovalError> {
        let expires =
            now.saturating_add(u64::try_from(call.timeout.as_millis()).unwrap_or(u64::MAX));
        let request = Request {
            id: uuid::Uuid::new_v4().to_string(),
            binding: call.binding(),
            call,
            status: Status::Pending,
            created: now,
            expires,
            verdicts: Vec::new(),
        };
        self.store.insert_request(to_row(&request)?).await?;
        Ok(request)
    }

    pub async fn get(&self, id: &str) -> Result<Request, ApprovalError> {
        let row = self.store.request(id).await?;
        from_row(row.ok_or_else(|| ApprovalError::NotFound(id.into()))?)
    }

    /// Every request, or those with `status`, newest first.
    pub async fn list(&self, status: Option<Status>) -> Result<Vec<Request>, ApprovalError> {
        let rows = self.store.requests(status.map(Status::as_str)).await?;
        rows.into_iter().map(from_row).collect()
    }

    /// Record an approver's verdict, if the rules allow it (`permitted`: the approver
    /// holds the `approve` permission). A refused verdict still writes the request's
    /// expiry when it found the request expired.
    pub async fn decide(
        &self,
        id: &str,
        verdict: Verdict,
        permitted: bool,
        now: u64,
    ) -> Result<Request, ApprovalError> {
        self.apply(id, move |r| {
            expire_if_due(r, now);
            check_decision(r, &verdict, permitted)?;
            r.verdicts.push(verdict);
            r.status = status_after(r);
            Ok(())
        })
        .await
    }

    /// An approved, unused, unexpired approval for exactly this call.
    pub async fn find_approved(
        &self,
        binding: &str,
        now: u64,
    ) -> Result<Option<Request>, ApprovalError> {
        self.find(binding, Status::Approved, now).await
    }

    /// A still-pending request for exactly this call (a retried call waits on it).
    pub async fn find_pending(
        &self,
        binding: &str,
        now: u64,
    ) -> Result<Option<Request>, ApprovalError> {
        self.find(binding, Status::Pending, now).await
    }

    async fn find(
        &self,
        binding: &str,
        status: Status,
        now: u64,
    ) -> Result<Option<Request>, ApprovalError> {
        let row = self
            .store
            .find_request(binding, status.as_str(), now)
            .await?;
        row.map(from_row).transpose()
    }

    /// Use an approval: approved and unexpired becomes executed, once.
    pub async fn consume(&self, id: &str, now: u64) -> Result<Request, ApprovalError> {
        self.apply(id, move |r| {
            if r.status != Status::Approved || r.expires <= now {
                return Err(closed(r));
            }
            r.status = Status::Executed;
            Ok(())
        })
        .await
    }

    /// Close every pending request whose time is up; the ones it closed.
    pub async fn expire_due(&self, now: u64) -> Result<Vec<Request>, ApprovalError> {
        let due = self
            .store
            .due_requests(Status::Pending.as_str(), now)
            .await?;
        let mut expired = Vec::new();
        for id in due {
            let closed = self.apply(&id, move |r| match expire_if_due(r, now) {
                true => Ok(()),
                false => Err(closed(r)),
            });
            if let Ok(r) = closed.await {
                expired.push(r);
            }
        }
        Ok(expired)
    }

    /// Apply `rule` to request `id` atomically: the request as written if the rule
    /// allowed the step, or why not (what the rule changed before refusing is kept).
    async fn apply(
        &self,
        id: &str,
        rule: impl FnOnce(&mut Request) -> Result<(), ApprovalError> + Send + 'static,
    ) -> Result<Request, ApprovalError> {
        let updated = self
            .store
            .update_request(id, move |row| {
                let mut request = from_row(row.clone())?;
                let verdict = rule(&mut request);
                *row = to_row(&request)?;
                verdict.map(|()| request)
            })
            .await?;
        let (_, result) = updated.ok_or_else(|| ApprovalError::NotFound(id.into()))?;
        result
    }
}

/// Mark a pending request whose time is up as expired; whether it did.
fn expire_if_due(r: &mut Request, now: u64) -> bool {
    let due = r.status == Status::Pending && r.expires <= now;
    if due {
        r.status = Status::Expired;
    }
    due
}

/// Whether `verdict` may count on `r`: still pending, not from the requester's chain
/// (unless it is the principal confirming where the request allows it), from someone
/// with the permission, and each approver once.
fn check_decision(r: &Request, verdict: &Verdict, permitted: bool) -> Result<(), ApprovalError> {
    if r.status != Status::Pending {
        return Err(closed(r));
    }
    let id = r.id.clone();
    let approver = verdict.approver.clone();
    match verdict.confirmed {
        // The principal, confirming their own agent's call.
        Some(channel) if !r.confirmable_by(&approver, channel) => {
            let how = match channel {
                Channel::Approvals => "on the approvals page",
                Channel::Client => "in their own client",
            };
            return Err(ApprovalError::NotConfirmable { id, approver, how });
        }
        Some(_) => {}
        // Anyone else: never the requester or anyone it acts for, and with permission.
        None if r.call.chain.contains(&approver) || r.call.agent == approver => {
            return Err(ApprovalError::SeparationOfDuties { id, approver });
        }
        None if !permitted => {
            return Err(ApprovalError::NotPermitted {
                approver,
                object: format!("{}/{}", r.call.server, r.call.tool),
            });
        }
        None => {}
    }
    if r.verdicts.iter().any(|v| v.approver == verdict.approver) {
        return Err(ApprovalError::AlreadyDecided { id, approver });
    }
    Ok(())
}

/// Where a request stands after its latest verdict: one deny closes it, the principal's
/// confirmation or the quorum of distinct approvals approves it.
fn status_after(r: &Request) -> Status {
    match r.verdicts.last() {
        Some(v) if !v.approve => Status::Denied,
        // The principal's own confirmation is the whole decision.
        Some(v) if v.confirmed.is_some() => Status::Approved,
        _ if r.approvers().len() >= r.call.quorum as usize => Status::Approved,
        _ => Status::Pending,
    }
}

fn closed(r: &Request) -> ApprovalError {
    ApprovalError::Closed {
        id: r.id.clone(),
        status: r.status.as_str(),
    }
}

fn to_row(r: &Request) -> Result<RequestRow, ApprovalError> {
    Ok(RequestRow {
        id: r.id.clone(),
        binding: r.binding.clone(),
        call: serde_json::to_string(&r.call).map_err(|e| ApprovalError::Store(e.to_string()))?,
        status: r.status.as_str().to_string(),
        created: r.created,
        expires: r.expires,
        verdicts: r
            .verdicts
            .iter()
            .map(|v| VerdictRow {
                approver: v.approver.clone(),
                approve: v.approve,
                comment: v.comment.clone(),
                at: v.at,
                confirmed: v.confirmed.map(|c| c.as_str().to_string()),
            })
            .collect(),
    })
}

fn from_row(row: RequestRow) -> Result<Request, ApprovalError> {
    let bad = |what: String| ApprovalError::Store(format!("request `{}`: {what}", row.id));
    let call: NewRequest = serde_json::from_str(&row.call).map_err(|e| bad(e.to_string()))?;
    let status = Status::parse(&row.status)
        .ok_or_else(|| bad(format!("unknown status `{}`", row.status)))?;
    let verdicts = row
        .verdicts
        .iter()
        .map(|v| {
            let confirmed = match v.confirmed.as_deref() {
                None => Ok(None),
                Some(c) => Channel::parse(c)
                    .map(Some)
                    .ok_or_else(|| bad(format!("unknown confirmation channel `{c}`"))),
            };
            Ok(Verdict {
                approver: v.approver.clone(),
                approve: v.approve,
                comment: v.comment.clone(),
                at: v.at,
                confirmed: confirmed?,
            })
        })
        .collect::<Result<_, ApprovalError>>()?;
    Ok(Request {
        id: row.id,
        call,
        binding: row.binding,
        status,
        created: row.created,
        expires: row.expires,
        verdicts,
    })
}
