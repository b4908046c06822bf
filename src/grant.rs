//! Just-in-time grants: a time-boxed permission for one identity (optionally only while
//! it acts for one principal), on the tools a pattern names, at one tier, with a reason.
//! A grant works like a temporary `p, TO, TOOLS, TIER, allow` row that policy consults
//! after its own rules, under three limits (enforced where grants are made, in the admin
//! API): it never overrides a `deny`; whoever grants must hold the `approve` permission on
//! the pattern (so grants only pre-approve what that person could approve one call at a
//! time) and may not grant to themselves; and it covers `read`, `transform` or `act`,
//! never the right to approve. Grants live in the state database (`store`), expire by
//! themselves (a decision never honours an expired grant), and can be revoked.

mod kept;

use std::sync::RwLock;

use serde::Serialize;

use crate::identity::Task;
use crate::manifest::Tier;
pub use kept::{Grants, StoreError};

/// One grant as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub id: String,
    /// The identity the grant is for (`agent:x`).
    pub to: String,
    /// Only while `to` acts for this principal.
    pub on_behalf_of: Option<String>,
    /// `server/tool` pattern; `*` matches anything (`crm/*`).
    pub tools: String,
    pub tier: Tier,
    pub reason: String,
    /// Who granted it.
    pub by: String,
    /// Milliseconds since the epoch (the approval clock).
    pub created: u64,
    pub expires: u64,
    pub status: GrantStatus,
    /// Who revoked it, when revoked.
    pub revoked_by: Option<String>,
    /// Only for calls of this task (or a sub-task of it); it ends with the task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GrantStatus {
    Active,
    Revoked,
    /// Past its expiry (recorded by the sweep that audits it; decisions check the time).
    Expired,
}

impl GrantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Active => "active",
            GrantStatus::Revoked => "revoked",
            GrantStatus::Expired => "expired",
        }
    }
}

impl Grant {
    /// Whether this grant allows `identity` (acting for `principal`) to use `object` at
    /// `tier` at time `now`.
    pub fn covers(
        &self,
        identity: &str,
        principal: Option<&str>,
        task: Option<&Task>,
        object: &str,
        tier: Tier,
        now: u64,
    ) -> bool {
        let in_task = self
            .task
            .as_deref()
            .is_none_or(|t| task.is_some_and(|c| crate::identity::task::within(&c.id, t)));
        in_task
            && self.status == GrantStatus::Active
            && now < self.expires
            && self.to == identity
            && self.tier == tier
            && self
                .on_behalf_of
                .as_deref()
                .is_none_or(|p| Some(p) == principal)
            && matches(&self.tools, object)
    }
}

/// What a new grant says, checked by whoever makes it.
pub struct NewGrant {
    pub to: String,
    pub on_behalf_of: Option<String>,
    pub tools: String,
    pub tier: Tier,
    pub reason: String,
    pub by: String,
    pub ttl_ms: u64,
    pub task: Option<String>,
}

impl NewGrant {
    /// The grant, made now, active until `now + ttl`.
    pub fn into_grant(self, now: u64) -> Grant {
        Grant {
            id: uuid::Uuid::new_v4().to_string(),
            to: self.to,
            on_behalf_of: self.on_behalf_of,
            tools: self.tools,
            tier: self.tier,
            reason: self.reason,
            by: self.by,
            created: now,
            expires: now.saturating_add(self.ttl_ms),
            status: GrantStatus::Active,
            revoked_by: None,
            task: self.task,
        }
    }
}

/// The grants decisions consult: the active ones, kept in memory, replaced whenever the
/// store changes.
#[derive(Default)]
pub struct GrantBook {
    active: RwLock<Vec<Grant>>,
}

impl GrantBook {
    pub fn replace(&self, grants: Vec<Grant>) {
        if let Ok(mut active) = self.active.write() {
            *active = grants;
        }
    }

    /// How many grants are in force.
    pub fn count(&self) -> usize {
        self.active.read().map_or(0, |a| a.len())
    }

    /// The grant that allows this, if any. A poisoned lock grants nothing.
    pub fn find(
        &self,
        identity: &str,
        principal: Option<&str>,
        task: Option<&Task>,
        object: &str,
        tier: Tier,
        now: u64,
    ) -> Option<Grant> {
        let active = self.active.read().ok()?;
        active
            .iter()
            .find(|g| g.covers(identity, principal, task, object, tier, now))
            .cloned()
    }
}

/// `*` matches any run of characters (like Casbin's `keyMatch` on whole objects).
pub fn matches(pattern: &str, object: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = object.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = parts.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(i) => rest = rest.get(i + piece.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_key_match() {
        assert!(matches("crm/*", "crm/refund"));
        assert!(matches("*", "crm/refund"));
        assert!(matches("crm/refund", "crm/refund"));
        assert!(!matches("crm/refund", "crm/refunds"));
        assert!(!matches("crm/*", "demo/echo"));
        assert!(matches("*/read_*", "fs/read_file"));
        assert!(!matches("*/read_*", "fs/write_file"));
    }

    fn grant(expires: u64) -> Grant {
        Grant {
            id: "g".into(),
            to: "agent:x".into(),
            on_behalf_of: Some("user:y".into()),
            tools: "crm/*".into(),
            tier: Tier::Transform,
            reason: "r".into(),
            by: "user:carol".into(),
            created: 0,
            expires,
            status: GrantStatus::Active,
            revoked_by: None,
            task: None,
        }
    }

    /// A task-bound grant covers only calls of its task or a sub-task of it.
    #[test]
    fn a_task_bound_grant_covers_only_its_tasks_calls() {
        let g = Grant {
            task: Some("T-42".into()),
            ..grant(100)
        };
        let task = |id: &str| Task {
            id: id.into(),
            objective: None,
        };
        let covers =
            |t: Option<&Task>| g.covers("agent:x", Some("user:y"), t, "crm/a", Tier::Transform, 1);
        assert!(covers(Some(&task("T-42"))));
        assert!(covers(Some(&task("T-42/step-1"))));
        assert!(!covers(Some(&task("T-420"))));
        assert!(!covers(Some(&task("T-43"))));
        assert!(!covers(None));
    }

    #[test]
    fn a_grant_covers_only_its_identity_principal_tools_tier_and_time() {
        let g = grant(100);
        assert!(g.covers(
            "agent:x",
            Some("user:y"),
            None,
            "crm/a",
            Tier::Transform,
            99
        ));
        assert!(!g.covers(
            "agent:x",
            Some("user:y"),
            None,
            "crm/a",
            Tier::Transform,
            100
        ));
        assert!(!g.covers("agent:z", Some("user:y"), None, "crm/a", Tier::Transform, 1));
        assert!(!g.covers("agent:x", Some("user:q"), None, "crm/a", Tier::Transform, 1));
        assert!(!g.covers("agent:x", None, None, "crm/a", Tier::Transform, 1));
        assert!(!g.covers("agent:x", Some("user:y"), None, "crm/a", Tier::Act, 1));
        assert!(!g.covers("agent:x", Some("user:y"), None, "fs/a", Tier::Transform, 1));
        let revoked = Grant {
            status: GrantStatus::Revoked,
            ..grant(100)
        };
        assert!(!revoked.covers("agent:x", Some("user:y"), None, "crm/a", Tier::Transform, 1));
    }
}
