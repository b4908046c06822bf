//! `mcp-warden audit show`: the audit log as a story a person can read, one line a
//! record (who, for whom, what, the decision and why, who approved, what happened),
//! with agent-supplied text escaped. It reads each record into [`Shown`], a typed view
//! of the fields it tells (every one optional, so records from older versions read
//! too); it never checks the chain (that is `verify`).

use serde::Deserialize;
use serde_json::Value;

use crate::escape::visible;

/// What `show` reads of a record: the fields of [`super::AuditRecord`] it tells, by the
/// names the records are written with.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Shown {
    ts: String,
    kind: String,
    agent: Option<String>,
    chain: Vec<String>,
    server: String,
    tool: String,
    /// `access`: the prompt or resource.
    name: String,
    method: String,
    /// `decision`: the name the caller asked for.
    requested: String,
    stage: String,
    decision: String,
    rule: Option<String>,
    intent: Option<String>,
    error: Option<String>,
    outcome: String,
    latency_ms: f64,
    /// `approval`, `grant`: the step.
    event: String,
    actor: Option<String>,
    approval: Option<ApprovalShown>,
    grant: Option<GrantShown>,
    /// `drift`: the fields that changed (null when unknown).
    changed: Option<Vec<String>>,
    /// `reload`, `task`: who or what triggered it.
    by: String,
    /// `task`: the task ended (a call record's `task` is an object, and not read here).
    task: serde_json::Value,
    /// `task`: the grants that ended with it.
    #[serde(rename = "grants")]
    ended_grants: Vec<serde_json::Value>,
    generation: u64,
    errors: Vec<String>,
    /// `checkpoint`: records before it, the last one's hash, and the signing key.
    count: u64,
    head: String,
    key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApprovalShown {
    id: String,
    /// An attempt's approval: who approved it, or who confirmed it and where.
    approvers: Vec<String>,
    confirmed_by: Option<String>,
    channel: Option<String>,
    /// An approval record's request: every verdict so far.
    verdicts: Vec<VerdictShown>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VerdictShown {
    approver: String,
    comment: Option<String>,
    /// The channel of the principal's own confirmation.
    confirmed: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GrantShown {
    id: String,
    to: String,
    tools: String,
    tier: String,
    reason: String,
}

/// One record in words.
pub fn describe(record: &Value) -> String {
    match Shown::deserialize(record) {
        Ok(r) => visible(&sentence(&r)),
        Err(e) => {
            let kind = record
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            visible(&format!("a `{kind}` record this version cannot read: {e}"))
        }
    }
}

fn sentence(r: &Shown) -> String {
    let ts: String = r.ts.chars().take(19).collect();
    let tool = format!("{}/{}", r.server, r.tool);
    let who = caller(r);
    let what = match r.kind.as_str() {
        "attempt" => format!("ALLOWED  {tool} by {who}{}{}", approval(r), rule(r)),
        "outcome" => format!(
            "{:<8} {tool} in {:.1} ms",
            r.outcome.to_uppercase(),
            r.latency_ms
        ),
        "decision" => format!(
            "REFUSED  {} by {who} at {}: {}",
            r.requested,
            r.stage,
            r.error.as_deref().unwrap_or("")
        ),
        "approval" => event(r, &tool, &who),
        "access" if r.decision == "deny" => format!(
            "REFUSED  {} {}/{} by {who}: {}",
            r.method,
            r.server,
            r.name,
            r.error.as_deref().unwrap_or("")
        ),
        "access" => format!(
            "ALLOWED  {} {}/{} by {who}{}",
            r.method,
            r.server,
            r.name,
            rule(r)
        ),
        "grant" => grant(r),
        "drift" => format!(
            "QUARANTINED {} (upstream `{}`): changed {}",
            r.tool,
            r.server,
            r.changed
                .as_ref()
                .map_or_else(|| "fields unknown".into(), |c| c.join("; "))
        ),
        "reload" if r.outcome == "ok" => {
            format!("RELOADED by {} (generation {})", r.by, r.generation)
        }
        "reload" => format!("RELOAD REFUSED by {}: {}", r.by, r.errors.join("; ")),
        "task" => {
            let ended: Vec<&str> = r.ended_grants.iter().filter_map(|g| g.as_str()).collect();
            format!(
                "TASK     {} ended by {}; grants ended: {}",
                r.task.as_str().unwrap_or("?"),
                r.by,
                if ended.is_empty() {
                    "none".to_string()
                } else {
                    ended.join(", ")
                }
            )
        }
        "checkpoint" => format!(
            "CHECKPOINT {} records, the last {}…, signed by {}…",
            r.count,
            r.head.chars().take(19).collect::<String>(),
            r.key.chars().take(24).collect::<String>()
        ),
        other => format!("{other} record"),
    };
    let told = matches!(r.kind.as_str(), "attempt" | "decision") || r.event == "requested";
    let intent = r
        .intent
        .as_deref()
        .filter(|_| told)
        .map(|i| format!("  intent: \"{i}\""))
        .unwrap_or_default();
    format!("{ts}  {what}{intent}")
}

/// A grant's step: `GRANTED`, `REVOKED`, `EXPIRED`, or a refused request for one.
fn grant(r: &Shown) -> String {
    let g = r.grant.as_ref();
    let field = |f: fn(&GrantShown) -> &str| g.map(f).unwrap_or("");
    let id = field(|g| &g.id);
    let actor = r.actor.as_deref().unwrap_or("?");
    let what = format!(
        "{} ({}) to {}",
        field(|g| &g.tools),
        field(|g| &g.tier),
        field(|g| &g.to)
    );
    match r.event.as_str() {
        "created" => format!(
            "GRANTED  {what} by {actor} (grant {id}): {}",
            field(|g| &g.reason)
        ),
        "revoked" => format!("REVOKED  grant {id} ({what}) by {actor}"),
        "expired" => format!("EXPIRED  grant {id} ({what})"),
        "refused" => format!(
            "REFUSED  a grant of {what} by {actor}: {}",
            r.error.as_deref().unwrap_or("")
        ),
        other => format!("{other} on grant {id}"),
    }
}

fn caller(r: &Shown) -> String {
    let agent = r.agent.as_deref().unwrap_or("?");
    match r.chain.first() {
        Some(p) if r.chain.len() > 1 => format!("{agent} for {p}"),
        _ => agent.to_string(),
    }
}

fn approval(r: &Shown) -> String {
    let Some(a) = r.approval.as_ref() else {
        return String::new();
    };
    if let Some(who) = &a.confirmed_by {
        return format!(", confirmed by {who}{}", channel(a.channel.as_deref()));
    }
    if a.approvers.is_empty() {
        return String::new();
    }
    format!(", approved by {}", a.approvers.join(" and "))
}

/// Where a user confirmed their own agent's call, in words.
fn channel(channel: Option<&str>) -> &'static str {
    match channel {
        Some("client") => " in their own client",
        Some("approvals") => " with their approver credential",
        _ => "",
    }
}

fn rule(r: &Shown) -> String {
    r.rule
        .as_deref()
        .map(|rule| format!(" (rule {rule})"))
        .unwrap_or_default()
}

fn event(r: &Shown, tool: &str, who: &str) -> String {
    let id: String = r
        .approval
        .as_ref()
        .map(|a| a.id.chars().take(8).collect())
        .unwrap_or_default();
    let actor = r.actor.as_deref().unwrap_or("");
    let comment = r
        .approval
        .iter()
        .flat_map(|a| a.verdicts.iter().rev())
        .find(|v| v.approver == actor);
    let how = channel(comment.and_then(|v| v.confirmed.as_deref()));
    let comment = comment
        .and_then(|v| v.comment.as_deref())
        .map(|c| format!(": \"{c}\""))
        .unwrap_or_default();
    match r.event.as_str() {
        "requested" => format!("WAITING  {tool} by {who} for approval (request {id})"),
        "approved" | "approved-partly" | "confirmed" | "denied" => {
            format!(
                "{:<8} request {id} by {actor}{how}{comment}",
                r.event.to_uppercase()
            )
        }
        "refused-decision" => format!(
            "IGNORED  decision by {actor} on request {id}: {}",
            r.error.as_deref().unwrap_or("")
        ),
        "expired" => format!("EXPIRED  request {id} ({tool}) without a decision"),
        "executed" => format!("USED     approval {id} for {tool}"),
        other => format!("{other} on request {id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_read_as_sentences_with_hidden_characters_escaped() {
        let attempt = json!({"ts": "2026-11-22T20:00:00.123456Z", "kind": "attempt", "agent": "agent:desktop",
            "chain": ["user:alice", "agent:desktop"], "server": "demo", "tool": "issue_refund",
            "intent": "refund\u{202e} it", "rule": "policy.csv:9: p, role:staff, demo/*, *, allow",
            "approval": {"id": "abc", "approvers": ["user:carol"]}});
        assert_eq!(
            describe(&attempt),
            "2026-11-22T20:00:00  ALLOWED  demo/issue_refund by agent:desktop for user:alice, approved by user:carol \
             (rule policy.csv:9: p, role:staff, demo/*, *, allow)  intent: \"refund\\u{202E} it\""
        );
        let denied = json!({"ts": "2026-11-22T20:00:01Z", "kind": "approval", "event": "denied", "actor": "user:carol",
            "server": "demo", "tool": "issue_refund", "approval": {"id": "0123456789", "verdicts": [{"approver": "user:carol", "comment": "no"}]}});
        assert_eq!(
            describe(&denied),
            "2026-11-22T20:00:01  DENIED   request 01234567 by user:carol: \"no\""
        );
        let access = json!({"ts": "2026-11-22T20:00:02Z", "kind": "access", "method": "prompts/get", "server": "demo",
            "name": "customer_reply", "agent": "agent:desktop", "chain": ["agent:desktop"], "decision": "deny", "error": "denied"});
        assert_eq!(
            describe(&access),
            "2026-11-22T20:00:02  REFUSED  prompts/get demo/customer_reply by agent:desktop: denied"
        );
        let granted = json!({"ts": "2026-11-22T20:00:03Z", "kind": "grant", "event": "created", "actor": "user:carol",
            "grant": {"id": "g1", "to": "agent:x", "tools": "crm/*", "tier": "transform", "reason": "migration\u{1b}[2J"}});
        assert_eq!(
            describe(&granted),
            "2026-11-22T20:00:03  GRANTED  crm/* (transform) to agent:x by user:carol (grant g1): migration\\u{001B}[2J"
        );
    }

    /// A user's own confirmation reads as one, never as an approval, and says where.
    #[test]
    fn a_confirmation_reads_as_the_users_own_with_its_channel() {
        let attempt = json!({"ts": "2026-11-22T20:00:00Z", "kind": "attempt", "agent": "agent:laptop",
            "chain": ["user:dana", "agent:laptop"], "server": "demo", "tool": "send_message",
            "approval": {"id": "abc", "approvers": [], "confirmed_by": "user:dana", "channel": "client"}});
        assert_eq!(
            describe(&attempt),
            "2026-11-22T20:00:00  ALLOWED  demo/send_message by agent:laptop for user:dana, confirmed by user:dana in their own client"
        );
        let confirmed = json!({"ts": "2026-11-22T20:00:01Z", "kind": "approval", "event": "confirmed", "actor": "user:dana",
            "server": "demo", "tool": "send_message", "approval": {"id": "0123456789", "verdicts": [
                {"approver": "user:dana", "comment": "confirmed in their client", "confirmed": "client"}]}});
        assert_eq!(
            describe(&confirmed),
            "2026-11-22T20:00:01  CONFIRMED request 01234567 by user:dana in their own client: \"confirmed in their client\""
        );
    }
}
