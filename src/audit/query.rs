//! An auditor's question of the log: which records were made by whom, for whom, on what,
//! with which decision, approved by whom, and when. Every condition given must hold; a
//! record without the field a condition asks about (a reload has no agent) does not
//! match it. It selects records; telling them is `show`'s.

use std::time::SystemTime;

use clap::Args;
use serde_json::Value;

/// The conditions, as `mcp-warden audit show` takes them.
#[derive(Debug, Default, Clone, Args)]
pub struct Query {
    /// Records made by this agent (`agent:helpdesk`).
    #[arg(long)]
    pub agent: Option<String>,
    /// Records of calls made on behalf of this principal (the first of the chain).
    #[arg(long)]
    pub principal: Option<String>,
    /// Records whose delegation chain includes this identity, at any place.
    #[arg(long)]
    pub chain: Option<String>,
    #[arg(long)]
    pub server: Option<String>,
    /// The tool (or the prompt or resource, for `access` records), as its server names it.
    #[arg(long)]
    pub tool: Option<String>,
    /// `read`, `transform` or `act`.
    #[arg(long)]
    pub tier: Option<String>,
    /// `allow`, `approve` (a call made under an approval), `confirm` or `confirm_in_client`
    /// (a call its user confirmed), or `deny`.
    #[arg(long)]
    pub decision: Option<String>,
    /// Calls this approver approved (or, as the user, confirmed), and the approval steps
    /// they took.
    #[arg(long)]
    pub approver: Option<String>,
    /// Records of calls made for this task, or a sub-task of it (`T-42` takes `T-42/step-1`).
    #[arg(long)]
    pub task: Option<String>,
    /// From this time: RFC 3339 (`2026-11-29T00:00:00Z`) or an age (`24h`, `7d`).
    #[arg(long, value_parser = when)]
    pub since: Option<SystemTime>,
    /// Before this time, written like `--since`.
    #[arg(long, value_parser = when)]
    pub until: Option<SystemTime>,
}

/// A time as `--since` and `--until` take it.
fn when(text: &str) -> Result<SystemTime, String> {
    if let Ok(age) = humantime::parse_duration(text) {
        return SystemTime::now()
            .checked_sub(age)
            .ok_or_else(|| format!("`{text}` reaches before the epoch"));
    }
    humantime::parse_rfc3339_weak(text).map_err(|_| {
        format!("`{text}` is neither a time (`2026-11-29T00:00:00Z`) nor an age (`24h`)")
    })
}

impl Query {
    /// Whether `record` answers every condition.
    pub fn matches(&self, record: &Value) -> bool {
        let s = |k: &str| record.get(k).and_then(Value::as_str);
        let chain: Vec<&str> = record
            .get("chain")
            .and_then(Value::as_array)
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let is = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got == Some(w))
        };
        is(&self.agent, s("agent"))
            && is(
                &self.principal,
                chain.first().copied().filter(|_| chain.len() > 1),
            )
            && self
                .chain
                .as_deref()
                .is_none_or(|member| chain.contains(&member))
            && self.task.as_deref().is_none_or(|want| {
                record
                    .pointer("/task/id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| crate::identity::task::within(id, want))
            })
            && is(&self.server, s("server"))
            && is(&self.tool, s("tool").or_else(|| s("name")))
            && is(&self.tier, s("tier"))
            && is(&self.decision, s("decision"))
            && self
                .approver
                .as_deref()
                .is_none_or(|a| approved_by(record, a))
            && self.in_time(s("ts"))
    }

    fn in_time(&self, ts: Option<&str>) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(at) = ts.and_then(|t| humantime::parse_rfc3339_weak(t).ok()) else {
            return false;
        };
        self.since.is_none_or(|s| at >= s) && self.until.is_none_or(|u| at < u)
    }
}

/// Whether `approver` approved (or confirmed) the call of an `attempt`, or took an
/// `approval` step.
fn approved_by(record: &Value, approver: &str) -> bool {
    let approvers = record
        .pointer("/approval/approvers")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(approver)));
    let confirmed = record
        .pointer("/approval/confirmed_by")
        .and_then(Value::as_str)
        == Some(approver);
    let acted = record.get("kind").and_then(Value::as_str) == Some("approval")
        && record.get("actor").and_then(Value::as_str) == Some(approver);
    approvers || confirmed || acted
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attempt(agent: &str, chain: &[&str], ts: &str) -> Value {
        json!({"kind": "attempt", "ts": ts, "agent": agent, "chain": chain, "server": "demo",
               "tool": "issue_refund", "tier": "act", "decision": "approve",
               "approval": {"id": "a1", "approvers": ["user:carol"]}})
    }

    #[test]
    fn every_condition_must_hold_and_a_missing_field_never_matches() {
        let r = attempt(
            "agent:helpdesk",
            &["user:alice", "agent:helpdesk"],
            "2026-11-29T10:00:00Z",
        );
        let q = |f: fn(&mut Query)| {
            let mut q = Query::default();
            f(&mut q);
            q.matches(&r)
        };
        assert!(q(|_| {}));
        assert!(q(|q| q.agent = Some("agent:helpdesk".into())));
        assert!(!q(|q| q.agent = Some("agent:desktop".into())));
        assert!(q(|q| q.principal = Some("user:alice".into())));
        assert!(
            !q(|q| q.principal = Some("agent:helpdesk".into())),
            "the principal is first"
        );
        assert!(q(|q| q.chain = Some("agent:helpdesk".into())));
        assert!(q(|q| q.tool = Some("issue_refund".into())));
        assert!(q(|q| q.tier = Some("act".into())));
        assert!(!q(|q| q.decision = Some("allow".into())));
        assert!(q(|q| q.approver = Some("user:carol".into())));
        assert!(!q(|q| q.approver = Some("user:dave".into())));
        assert!(q(|q| q.since = Some(when("2026-11-29T00:00:00Z").unwrap())));
        assert!(
            !q(|q| q.until = Some(when("2026-11-29T10:00:00Z").unwrap())),
            "until excludes"
        );
        let reload = json!({"kind": "reload", "ts": "2026-11-29T10:00:00Z", "by": "signal"});
        let by_agent = Query {
            agent: Some("agent:helpdesk".into()),
            ..Query::default()
        };
        assert!(!by_agent.matches(&reload));
    }

    /// A user's own confirmation is found by `--approver` (them) and `--decision
    /// confirm`, and never counts as an approval by anyone else.
    #[test]
    fn a_confirmation_is_found_by_its_user_and_its_decision() {
        let confirmed = json!({"kind": "attempt", "ts": "2026-11-29T10:00:00Z", "agent": "agent:laptop",
            "chain": ["user:dana", "agent:laptop"], "decision": "confirm",
            "approval": {"id": "a2", "approvers": [], "confirmed_by": "user:dana", "channel": "approvals"}});
        let by = |approver: &str| Query {
            approver: Some(approver.into()),
            ..Query::default()
        };
        assert!(by("user:dana").matches(&confirmed));
        assert!(!by("user:carol").matches(&confirmed));
        let decided = Query {
            decision: Some("confirm".into()),
            ..Query::default()
        };
        assert!(decided.matches(&confirmed));
    }

    #[test]
    fn times_are_instants_or_ages_and_nonsense_says_what_to_write() {
        let day = when("24h").unwrap();
        let now = SystemTime::now();
        let older = now
            .checked_sub(std::time::Duration::from_secs(25 * 3600))
            .unwrap();
        assert!(day < now && day > older);
        assert!(
            when("yesterday")
                .unwrap_err()
                .contains("nor an age (`24h`)")
        );
    }
}
