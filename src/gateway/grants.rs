//! Making, revoking and expiring just-in-time grants, under the rules in [`crate::grant`]:
//! the grantor holds `approve` on the tools pattern and is not in the grant's chain; the
//! tier is `read`, `transform` or `act`; the lifetime is 1 s to 24 h. Each step is
//! audited; a refused request for a grant is audited too. The admin API and the CLI
//! come through here.

use std::time::Duration;

use serde::Deserialize;

use super::State;
use crate::clock::now_ms;
use crate::grant::{Grant, GrantStatus, NewGrant};
use crate::manifest::Tier;

/// The longest a grant may last.
pub const MAX_GRANT: Duration = Duration::from_secs(24 * 3600);

/// A request for a grant, as the API receives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub to: String,
    pub on_behalf_of: Option<String>,
    pub tools: String,
    pub tier: String,
    pub ttl: String,
    pub reason: String,
    /// Only for calls of this task (or a sub-task of it); the grant ends with the task.
    #[serde(default)]
    pub task: Option<String>,
}

/// What ending a task did: the grants it ended, and those the one ending it may not
/// revoke (left as they were).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskEnded {
    pub task: String,
    pub ended: Vec<String>,
    pub left: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotPermitted(String),
    #[error("no active grant `{0}`")]
    Unknown(String),
    #[error("{0}; nothing was changed")]
    Failed(String),
}

/// The grant a request describes (tier `act` and no lifetime until checked).
fn new_grant(r: &GrantRequest, by: &str) -> NewGrant {
    NewGrant {
        to: r.to.clone(),
        on_behalf_of: r.on_behalf_of.clone(),
        tools: r.tools.clone(),
        tier: r.tier.parse().unwrap_or(Tier::Act),
        reason: r.reason.clone(),
        by: by.to_string(),
        ttl_ms: 0,
        task: r.task.clone(),
    }
}

impl State {
    /// Make a grant for `by` (an approver), after checking every rule.
    pub async fn grant(&self, by: &str, request: GrantRequest) -> Result<Grant, GrantError> {
        let new = match self.check_grant(by, &request) {
            Ok(n) => n,
            Err(e) => {
                let refused = new_grant(&request, by).into_grant(now_ms());
                let _ = self
                    .audit
                    .grant(&refused, "refused", by, Some(&e.to_string()))
                    .await;
                return Err(e);
            }
        };
        let grant = new.into_grant(now_ms());
        // Audited before it takes effect.
        self.audit
            .grant(&grant, "created", by, None)
            .await
            .map_err(|e| GrantError::Failed(e.to_string()))?;
        self.grants
            .insert(&grant)
            .await
            .map_err(|e| GrantError::Failed(e.to_string()))?;
        tracing::info!(grant = %grant.id, to = %grant.to, tools = %grant.tools, by = %by, "grant created");
        Ok(grant)
    }

    fn check_grant(&self, by: &str, r: &GrantRequest) -> Result<NewGrant, GrantError> {
        let invalid = |m: String| Err(GrantError::Invalid(m));
        let names = std::iter::once(&r.to).chain(r.on_behalf_of.iter());
        if let Some(bad) = names
            .into_iter()
            .find(|n| !crate::config::valid_identity_name(n))
        {
            return invalid(format!(
                "`{bad}` must look like `kind:name`, e.g. `agent:helpdesk`"
            ));
        }
        if !r.tools.contains('/') {
            return invalid(format!(
                "`tools` `{}` must be `server/tool` (`*` matches anything), e.g. `crm/*`",
                r.tools
            ));
        }
        let tier: Tier = r.tier.parse().map_err(|_| {
            GrantError::Invalid(format!(
                "`tier` `{}` must be `read`, `transform` or `act`",
                r.tier
            ))
        })?;
        let ttl = humantime::parse_duration(&r.ttl).map_err(|e| {
            GrantError::Invalid(format!("`ttl` `{}`: {e} (write e.g. \"30m\")", r.ttl))
        })?;
        if ttl < Duration::from_secs(1) || ttl > MAX_GRANT {
            return invalid(format!("`ttl` must be between 1s and 24h, not {}", r.ttl));
        }
        if let Some(task) = &r.task
            && crate::identity::Task::parse(&serde_json::json!({ "id": task })).is_err()
        {
            return invalid(format!(
                "`task` `{}` must be 1-128 of A-Z a-z 0-9 . _ : / -",
                task.escape_default()
            ));
        }
        if r.reason.trim().is_empty() {
            return invalid("`reason` is required: say why the grant is needed".into());
        }
        if by == r.to || r.on_behalf_of.as_deref() == Some(by) {
            return Err(GrantError::NotPermitted(format!(
                "`{by}` cannot grant to itself or to a chain it is part of"
            )));
        }
        if !self.current().policy.may_approve(by, &r.tools) {
            return Err(GrantError::NotPermitted(format!(
                "`{by}` may not grant on `{}`: a grant needs the `approve` permission on that pattern (e.g. `p, {by}, {}, approve, allow`)",
                r.tools, r.tools
            )));
        }
        let mut new = new_grant(r, by);
        new.tier = tier;
        new.ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        Ok(new)
    }

    /// Revoke an active grant; the next decision no longer honours it.
    pub async fn revoke_grant(&self, by: &str, id: &str) -> Result<Grant, GrantError> {
        let current = self
            .grants
            .get(id)
            .await
            .map_err(|e| GrantError::Failed(e.to_string()))?
            .filter(|g| g.status == GrantStatus::Active)
            .ok_or_else(|| GrantError::Unknown(id.into()))?;
        if by != current.by && !self.current().policy.may_approve(by, &current.tools) {
            return Err(GrantError::NotPermitted(format!(
                "`{by}` may not revoke a grant on `{}`",
                current.tools
            )));
        }
        let revoked = self
            .grants
            .revoke(id, by)
            .await
            .map_err(|e| GrantError::Failed(e.to_string()))?
            .ok_or_else(|| GrantError::Unknown(id.into()))?;
        if let Err(e) = self.audit.grant(&revoked, "revoked", by, None).await {
            tracing::error!(grant = %id, error = %e, "a revoked grant could not be audited");
        }
        Ok(revoked)
    }

    /// End a task: revoke every active grant bound to it (or to a sub-task of it) that
    /// `by` may revoke, and record the end (`task` record: who, which grants ended, which
    /// `by` could not end). The next call of the task no longer has them.
    pub async fn end_task(&self, by: &str, task: &str) -> Result<TaskEnded, GrantError> {
        let all = self
            .grants
            .list()
            .await
            .map_err(|e| GrantError::Failed(e.to_string()))?;
        let within = |t: &str| crate::identity::task::within(t, task);
        let bound = all
            .into_iter()
            .filter(|g| g.status == GrantStatus::Active && g.task.as_deref().is_some_and(within));
        let mut ended = TaskEnded {
            task: task.to_string(),
            ended: Vec::new(),
            left: Vec::new(),
        };
        for g in bound {
            match self.revoke_grant(by, &g.id).await {
                Ok(revoked) => ended.ended.push(revoked.id),
                Err(_) => ended.left.push(g.id),
            }
        }
        let fields = serde_json::json!({
            "event": "ended", "task": task, "by": by, "grants": ended.ended, "left": ended.left,
        });
        let fields = fields.as_object().cloned().unwrap_or_default();
        self.audit
            .event("task", fields)
            .await
            .map_err(|e| GrantError::Failed(e.to_string()))?;
        Ok(ended)
    }

    /// Record grants that ran out (decisions already ignore them) in the store and the
    /// audit log.
    pub async fn sweep_grants(&self) {
        let expired = match self.grants.sweep(now_ms()).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot sweep expired grants");
                return;
            }
        };
        for g in expired {
            let marked = Grant {
                status: GrantStatus::Expired,
                ..g
            };
            if let Err(e) = self
                .audit
                .grant(&marked, "expired", "mcp-warden", None)
                .await
            {
                tracing::error!(grant = %marked.id, error = %e, "an expired grant could not be audited");
            }
        }
    }
}
