//! Approval requests: what they record, and the rules of their lifecycle (in
//! `lifecycle`, applied atomically by the state `store`) — separation of duties,
//! permission, quorum of distinct approvers, expiry, single use, binding to the exact
//! tool + argument digest + caller. It does not decide
//! whether a call needs approval (policy and manifests do) nor wait on one (the gateway
//! does); it only records and enforces decisions. Times are passed in, so tests control
//! the clock.

mod lifecycle;
pub mod webhook;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::digest;
pub use lifecycle::Approvals;

/// Where a request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Expired,
    /// Approved and used: the call was forwarded.
    Executed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Executed => "executed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Status::Pending,
            Status::Approved,
            Status::Denied,
            Status::Expired,
            Status::Executed,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// What a new request records about the parked call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRequest {
    pub call_id: String,
    pub session: String,
    pub agent: String,
    /// Principal first, acting agent last.
    pub chain: Vec<String>,
    pub intent: Option<String>,
    /// The audit log keeps only the intent's digest (approvers still see it on the page).
    #[serde(default)]
    pub intent_redacted: bool,
    pub server: String,
    pub tool: String,
    pub tier: String,
    /// The arguments with redacted values hidden, for display.
    pub args_display: Value,
    /// RFC 8785 digest of the exact arguments: what an approval binds to.
    pub args_digest: String,
    pub quorum: u32,
    pub timeout: Duration,
    /// An identity or role every approver must have (the tool owner's rule), on top of
    /// the `approve` permission.
    #[serde(default)]
    pub approvers: Option<String>,
    /// Who may confirm the call themselves, and where (policy `confirm`): the principal
    /// the agent acts for. Approvers may still approve it.
    #[serde(default)]
    pub confirm: Option<Confirm>,
    /// Why it waits, when a flow rule (not the policy alone) asked for the approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The task the call is for, shown beside its intent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::identity::Task>,
}

/// Personal mode: the principal confirms their own agent's call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirm {
    /// The principal (the first identity of the chain).
    pub by: String,
    /// Whether an answer in the principal's own MCP client counts (policy
    /// `confirm_in_client`), beside the approvals page, CLI and API.
    pub in_client: bool,
}

/// Where a principal confirmed their own agent's call. The two are not equally strong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The approvals page, CLI or API, signed in with the principal's own approver
    /// credential, which no agent holds.
    Approvals,
    /// An elicitation answered in the principal's MCP client, on the call's own request:
    /// it proves only that the client said its user answered.
    Client,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Approvals => "approvals",
            Channel::Client => "client",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Channel::Approvals, Channel::Client]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

impl NewRequest {
    /// The binding key: an approval is good only for this tool, these exact arguments and
    /// this caller.
    pub fn binding(&self) -> String {
        binding(&self.server, &self.tool, &self.args_digest, &self.chain)
    }
}

/// The binding key of a call (see [`NewRequest::binding`]).
pub fn binding(server: &str, tool: &str, args_digest: &str, chain: &[String]) -> String {
    digest::canonical(
        &json!({"server": server, "tool": tool, "args_digest": args_digest, "chain": chain}),
    )
}

/// One approver's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub approver: String,
    pub approve: bool,
    pub comment: Option<String>,
    /// Unix milliseconds.
    pub at: u64,
    /// Set when this is the principal confirming (or refusing) their own agent's call:
    /// where they did it. Never set on an approver's verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<Channel>,
}

/// A stored approval request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub id: String,
    #[serde(flatten)]
    pub call: NewRequest,
    pub binding: String,
    pub status: Status,
    /// Unix milliseconds.
    pub created: u64,
    /// Until when approvers may decide; also, once approved, until when the caller may
    /// use the approval (unix milliseconds).
    pub expires: u64,
    pub verdicts: Vec<Verdict>,
}

impl Request {
    /// The distinct approvers who approved (a principal's confirmation is not one).
    pub fn approvers(&self) -> Vec<&str> {
        self.verdicts
            .iter()
            .filter(|v| v.approve && v.confirmed.is_none())
            .map(|v| v.approver.as_str())
            .collect()
    }

    /// The principal's confirmation, when they confirmed: who, and where.
    pub fn confirmation(&self) -> Option<(&str, Channel)> {
        self.verdicts
            .iter()
            .filter(|v| v.approve)
            .find_map(|v| Some((v.approver.as_str(), v.confirmed?)))
    }

    /// Whether `identity` may confirm this request themselves through `channel`.
    pub fn confirmable_by(&self, identity: &str, channel: Channel) -> bool {
        self.call
            .confirm
            .as_ref()
            .is_some_and(|c| c.by == identity && (channel == Channel::Approvals || c.in_client))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("no approval request `{0}`")]
    NotFound(String),
    #[error(
        "`{approver}` may not decide request `{id}`: an approver can never be the requesting agent or anyone it acts for"
    )]
    SeparationOfDuties { id: String, approver: String },
    #[error(
        "`{approver}` may not approve calls to `{object}`: ask for the `approve` permission on it"
    )]
    NotPermitted { approver: String, object: String },
    #[error(
        "`{approver}` may not approve calls to `{object}`: its owner requires approvers with `{role}`"
    )]
    NotInRole {
        approver: String,
        role: String,
        object: String,
    },
    #[error(
        "`{approver}` may not confirm request `{id}` {how}: the policy rule that asks for the confirmation does not accept it"
    )]
    NotConfirmable {
        id: String,
        approver: String,
        how: &'static str,
    },
    #[error("`{approver}` has already decided request `{id}`; quorum needs distinct approvers")]
    AlreadyDecided { id: String, approver: String },
    #[error("request `{id}` is already {status}; a late decision changes nothing")]
    Closed { id: String, status: &'static str },
    #[error("the approval store failed: {0}")]
    Store(String),
}

pub use crate::clock::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn call(args_digest: &str, quorum: u32) -> NewRequest {
        NewRequest {
            call_id: "c1".into(),
            session: "s".into(),
            agent: "agent:desktop".into(),
            chain: vec!["user:alice".into(), "agent:desktop".into()],
            intent: Some("refund the order".into()),
            intent_redacted: false,
            server: "demo".into(),
            tool: "issue_refund".into(),
            tier: "act".into(),
            args_display: json!({"order_id": "1001"}),
            args_digest: args_digest.into(),
            quorum,
            timeout: Duration::from_secs(600),
            approvers: None,
            confirm: None,
            reason: None,
            task: None,
        }
    }

    fn verdict(approver: &str, approve: bool, at: u64) -> Verdict {
        Verdict {
            approver: approver.into(),
            approve,
            comment: None,
            at,
            confirmed: None,
        }
    }

    #[tokio::test]
    async fn an_approval_is_bound_to_its_call_and_used_once() {
        let store = Approvals::in_memory().unwrap();
        let r = store.create(call("sha256:a", 1), 0).await.unwrap();
        let approved = store
            .decide(&r.id, verdict("user:carol", true, 1), true, 1)
            .await
            .unwrap();
        assert_eq!(approved.status, Status::Approved);
        assert!(
            store
                .find_approved(&call("sha256:b", 1).binding(), 2)
                .await
                .unwrap()
                .is_none(),
            "other arguments need their own approval"
        );
        let found = store
            .find_approved(&call("sha256:a", 1).binding(), 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, r.id);
        assert_eq!(
            store.consume(&r.id, 3).await.unwrap().status,
            Status::Executed
        );
        assert!(
            matches!(
                store.consume(&r.id, 4).await,
                Err(ApprovalError::Closed {
                    status: "executed",
                    ..
                })
            ),
            "single use"
        );
        assert!(store.find_approved(&r.binding, 5).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_requester_and_its_chain_can_never_approve() {
        let store = Approvals::in_memory().unwrap();
        let r = store.create(call("sha256:a", 1), 0).await.unwrap();
        for who in ["agent:desktop", "user:alice"] {
            let err = store
                .decide(&r.id, verdict(who, true, 1), true, 1)
                .await
                .unwrap_err();
            assert!(
                matches!(err, ApprovalError::SeparationOfDuties { .. }),
                "{who}: {err}"
            );
        }
        assert_eq!(store.get(&r.id).await.unwrap().status, Status::Pending);
    }

    #[tokio::test]
    async fn an_approver_without_permission_is_refused() {
        let store = Approvals::in_memory().unwrap();
        let r = store.create(call("sha256:a", 1), 0).await.unwrap();
        let err = store
            .decide(&r.id, verdict("user:dave", true, 1), false, 1)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            ApprovalError::NotPermitted {
                approver: "user:dave".into(),
                object: "demo/issue_refund".into()
            }
        );
    }

    #[tokio::test]
    async fn quorum_needs_distinct_approvers_and_a_deny_closes() {
        let store = Approvals::in_memory().unwrap();
        let r = store.create(call("sha256:a", 2), 0).await.unwrap();
        assert_eq!(
            store
                .decide(&r.id, verdict("user:carol", true, 1), true, 1)
                .await
                .unwrap()
                .status,
            Status::Pending
        );
        let twice = store
            .decide(&r.id, verdict("user:carol", true, 2), true, 2)
            .await
            .unwrap_err();
        assert!(matches!(twice, ApprovalError::AlreadyDecided { .. }));
        let done = store
            .decide(&r.id, verdict("user:erin", true, 3), true, 3)
            .await
            .unwrap();
        assert_eq!(
            (done.status, done.approvers()),
            (Status::Approved, vec!["user:carol", "user:erin"])
        );

        let d = store.create(call("sha256:b", 2), 0).await.unwrap();
        assert_eq!(
            store
                .decide(&d.id, verdict("user:carol", false, 1), true, 1)
                .await
                .unwrap()
                .status,
            Status::Denied
        );
        let late = store
            .decide(&d.id, verdict("user:erin", true, 2), true, 2)
            .await
            .unwrap_err();
        assert!(matches!(
            late,
            ApprovalError::Closed {
                status: "denied",
                ..
            }
        ));
    }

    #[tokio::test]
    async fn expiry_closes_a_request_and_late_decisions_change_nothing() {
        let store = Approvals::in_memory().unwrap();
        let r = store.create(call("sha256:a", 1), 0).await.unwrap();
        assert_eq!(r.expires, 10 * MIN);
        let late = store
            .decide(&r.id, verdict("user:carol", true, 10 * MIN), true, 10 * MIN)
            .await
            .unwrap_err();
        assert!(matches!(
            late,
            ApprovalError::Closed {
                status: "expired",
                ..
            }
        ));
        assert_eq!(store.get(&r.id).await.unwrap().status, Status::Expired);
        let other = store.create(call("sha256:b", 1), 0).await.unwrap();
        let expired = store.expire_due(10 * MIN).await.unwrap();
        assert_eq!(
            expired.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            vec![other.id.as_str()]
        );
    }

    #[tokio::test]
    async fn requests_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/approvals.db");
        let id = {
            let store = Approvals::new(std::sync::Arc::new(
                crate::store::Store::open(&path).unwrap(),
            ));
            store.create(call("sha256:a", 1), 0).await.unwrap().id
        };
        let store = Approvals::new(std::sync::Arc::new(
            crate::store::Store::open(&path).unwrap(),
        ));
        let pending = store.list(Some(Status::Pending)).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].id, id);
        assert_eq!(pending[0].call.intent.as_deref(), Some("refund the order"));
        assert_eq!(
            store
                .decide(&id, verdict("user:carol", true, 1), true, 1)
                .await
                .unwrap()
                .status,
            Status::Approved
        );
    }
}
