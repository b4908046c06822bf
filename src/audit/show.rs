//! `mcp-warden audit show`: the audit log as a story a person can read, one line a
//! record (who, for whom, what, the decision and why, who approved, what happened),
//! with agent-supplied text escaped. It reads records; it never checks the chain (that
//! is `verify`).

use serde_json::Value;

use crate::escape::visible;

/// One record in words.
pub fn describe(r: &Value) -> String {
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
    let ts: String = s("ts").chars().take(19).collect();
    let tool = format!("{}/{}", s("server"), s("tool"));
    let who = caller(r);
    let what = match s("kind") {
        "attempt" => format!("ALLOWED  {tool} by {who}{}{}", approval(r), rule(r)),
        "outcome" => format!(
            "{:<8} {tool} in {:.1} ms",
            s("outcome").to_uppercase(),
            r.get("latency_ms").and_then(Value::as_f64).unwrap_or(0.0)
        ),
        "decision" => format!(
            "REFUSED  {} by {who} at {}: {}",
            s("requested"),
            s("stage"),
            s("error")
        ),
        "approval" => event(r, &tool, &who),
        "access" if s("decision") == "deny" => format!(
            "REFUSED  {} {}/{} by {who}: {}",
            s("method"),
            s("server"),
            s("name"),
            s("error")
        ),
        "access" => format!(
            "ALLOWED  {} {}/{} by {who}{}",
            s("method"),
            s("server"),
            s("name"),
            rule(r)
        ),
        "grant" => grant(r),
        "drift" => format!(
            "QUARANTINED {} (upstream `{}`): changed {}",
            s("tool"),
            s("server"),
            list(r, "changed").unwrap_or_else(|| "fields unknown".into())
        ),
        "reload" if s("outcome") == "ok" => format!(
            "RELOADED by {} (generation {})",
            s("by"),
            r.get("generation").and_then(Value::as_u64).unwrap_or(0)
        ),
        "reload" => format!(
            "RELOAD REFUSED by {}: {}",
            s("by"),
            list(r, "errors").unwrap_or_default()
        ),
        other => format!("{other} record"),
    };
    let intent = r
        .get("intent")
        .and_then(Value::as_str)
        .filter(|_| matches!(s("kind"), "attempt" | "decision") || s("event") == "requested")
        .map(|i| format!("  intent: \"{i}\""))
        .unwrap_or_default();
    visible(&format!("{ts}  {what}{intent}"))
}

/// The strings of array field `key`, joined.
fn list(r: &Value, key: &str) -> Option<String> {
    let items: Vec<&str> = r
        .get(key)?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    Some(items.join("; "))
}

/// A grant's step: `GRANTED`, `REVOKED`, `EXPIRED`, or a refused request for one.
fn grant(r: &Value) -> String {
    let g = |k: &str| {
        r.pointer(&format!("/grant/{k}"))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let actor = r.get("actor").and_then(Value::as_str).unwrap_or("?");
    let what = format!("{} ({}) to {}", g("tools"), g("tier"), g("to"));
    match r.get("event").and_then(Value::as_str).unwrap_or("") {
        "created" => format!(
            "GRANTED  {what} by {actor} (grant {}): {}",
            g("id"),
            g("reason")
        ),
        "revoked" => format!("REVOKED  grant {} ({what}) by {actor}", g("id")),
        "expired" => format!("EXPIRED  grant {} ({what})", g("id")),
        "refused" => format!(
            "REFUSED  a grant of {what} by {actor}: {}",
            r.get("error").and_then(Value::as_str).unwrap_or("")
        ),
        other => format!("{other} on grant {}", g("id")),
    }
}

fn caller(r: &Value) -> String {
    let agent = r.get("agent").and_then(Value::as_str).unwrap_or("?");
    let chain: Vec<&str> = r
        .get("chain")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match chain.first() {
        Some(p) if chain.len() > 1 => format!("{agent} for {p}"),
        _ => agent.to_string(),
    }
}

fn approval(r: &Value) -> String {
    let names: Vec<&str> = r
        .pointer("/approval/approvers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        return String::new();
    }
    format!(", approved by {}", names.join(" and "))
}

fn rule(r: &Value) -> String {
    r.get("rule")
        .and_then(Value::as_str)
        .map(|rule| format!(" (rule {rule})"))
        .unwrap_or_default()
}

fn event(r: &Value, tool: &str, who: &str) -> String {
    let s = |p: &str| r.pointer(p).and_then(Value::as_str).unwrap_or("");
    let id: String = s("/approval/id").chars().take(8).collect();
    let actor = s("/actor");
    let comment = r
        .pointer("/approval/verdicts")
        .and_then(Value::as_array)
        .and_then(|v| {
            v.iter()
                .rev()
                .find(|v| v.get("approver").and_then(Value::as_str) == Some(actor))
        })
        .and_then(|v| v.get("comment").and_then(Value::as_str))
        .map(|c| format!(": \"{c}\""))
        .unwrap_or_default();
    match s("/event") {
        "requested" => format!("WAITING  {tool} by {who} for approval (request {id})"),
        "approved" | "approved-partly" | "denied" => {
            format!(
                "{:<8} request {id} by {actor}{comment}",
                s("/event").to_uppercase()
            )
        }
        "refused-decision" => format!(
            "IGNORED  decision by {actor} on request {id}: {}",
            s("/error")
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
}
