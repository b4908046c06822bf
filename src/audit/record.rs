//! The fields of each kind of audit record: `decision` (a refused call), `attempt`
//! (written before forwarding) and `outcome` (after). Arguments are stored redacted, with
//! the digest of the exact arguments.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::approval;
use crate::catalog::ToolRef;
use crate::digest;
use crate::identity::Caller;
use crate::policy::{Access, Decision, Permitted};

/// The stage that refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Catalog,
    Integrity,
    Intent,
    Arguments,
    Policy,
    Audit,
    Upstream,
}

/// A call refused before it was forwarded.
#[derive(Debug)]
pub struct Refusal<'a> {
    pub call_id: &'a str,
    pub caller: &'a Caller,
    /// The name the caller asked for.
    pub requested: &'a str,
    pub tool: Option<&'a ToolRef>,
    pub args: Option<&'a Map<String, Value>>,
    pub intent: Option<&'a str>,
    pub stage: Stage,
    pub decision: Option<&'a Decision>,
    pub error: &'a str,
}

/// What happened upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The tool ran and returned a result (`is_error` when the tool itself failed).
    Result { is_error: bool, digest: String },
    /// The upstream did not answer: unavailable, timed out, or the caller cancelled.
    Unknown { reason: String },
}

fn base(kind: &str, call_id: &str, caller: &Caller) -> Map<String, Value> {
    let mut m = Map::new();
    let ts = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    m.insert("ts".into(), json!(ts));
    m.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("kind".into(), json!(kind));
    m.insert("call_id".into(), json!(call_id));
    m.insert("session".into(), json!(caller.session));
    m.insert("agent".into(), json!(caller.agent()));
    m.insert("chain".into(), json!(caller.chain()));
    if let Some(credential) = &caller.credential {
        m.insert("credential".into(), json!(credential));
    }
    m
}

fn tool_fields(m: &mut Map<String, Value>, tool: &ToolRef) {
    m.insert("server".into(), json!(tool.server));
    m.insert("tool".into(), json!(tool.tool));
    m.insert("tier".into(), json!(tool.tier));
}

fn args_fields(m: &mut Map<String, Value>, args: &Map<String, Value>, redact: &[String]) {
    let exact = Value::Object(args.clone());
    m.insert("args_digest".into(), json!(digest::canonical(&exact)));
    m.insert("args".into(), redacted(exact, redact));
}

/// The arguments with every pointer in `redact` replaced by `"[redacted]"`.
pub fn redacted(mut args: Value, redact: &[String]) -> Value {
    for pointer in redact {
        if let Some(v) = args.pointer_mut(pointer) {
            *v = json!("[redacted]");
        }
    }
    args
}

fn decision_fields(m: &mut Map<String, Value>, decision: &Decision) {
    m.insert("decision".into(), json!(decision.effect));
    m.insert("rule".into(), json!(decision.rule));
    m.insert("verdicts".into(), json!(decision.verdicts));
    // The grants this decision used (the "used" record of a grant).
    let grants: Vec<&String> = decision
        .verdicts
        .iter()
        .filter_map(|v| v.rule.as_ref()?.grant.as_ref())
        .collect();
    if !grants.is_empty() {
        m.insert("grants".into(), json!(grants));
    }
}

/// A step in a grant's life: `created`, `revoked`, `expired`, or a refused request for
/// one (`refused`, with the reason), by `actor`.
pub fn grant(
    grant: &crate::grant::Grant,
    event: &str,
    actor: &str,
    error: Option<&str>,
) -> Map<String, Value> {
    let mut m = Map::new();
    let ts = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    m.insert("ts".into(), json!(ts));
    m.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("kind".into(), json!("grant"));
    m.insert("event".into(), json!(event));
    m.insert("actor".into(), json!(actor));
    m.insert("grant".into(), json!(grant));
    if let Some(e) = error {
        m.insert("error".into(), json!(e));
    }
    m
}

/// A record about the gateway itself rather than a call (`drift`, `reload`): a
/// timestamp, an id and `kind`, then `fields`.
pub fn event(kind: &str, fields: Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    let ts = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    m.insert("ts".into(), json!(ts));
    m.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("kind".into(), json!(kind));
    m.extend(fields);
    m
}

pub fn refusal(r: &Refusal<'_>) -> Map<String, Value> {
    let mut m = base("decision", r.call_id, r.caller);
    m.insert("requested".into(), json!(r.requested));
    if let Some(tool) = r.tool {
        tool_fields(&mut m, tool);
    }
    if let Some(args) = r.args {
        args_fields(
            &mut m,
            args,
            r.tool.map(|t| t.redact.as_slice()).unwrap_or_default(),
        );
    }
    m.insert("intent".into(), json!(r.intent));
    match r.decision {
        Some(d) => {
            decision_fields(&mut m, d);
            m.insert("policy_effect".into(), json!(d.effect));
        }
        None => {
            m.insert("rule".into(), Value::Null);
        }
    }
    // Whatever the policy said, this call was not made.
    m.insert("decision".into(), json!("deny"));
    m.insert("stage".into(), json!(r.stage));
    m.insert("error".into(), json!(r.error));
    m
}

fn permitted_fields(kind: &str, p: &Permitted) -> Map<String, Value> {
    let call = p.call();
    let mut m = base(kind, &call.id, &call.caller);
    tool_fields(&mut m, &call.tool);
    m.insert("intent".into(), json!(call.intent));
    if !call.trace.is_empty() {
        m.insert("trace".into(), Value::Object(call.trace.clone()));
    }
    m
}

pub fn attempt(p: &Permitted) -> Map<String, Value> {
    let mut m = permitted_fields("attempt", p);
    args_fields(&mut m, &p.call().args, &p.call().tool.redact);
    decision_fields(&mut m, p.decision());
    m.insert("approval".into(), json!(p.approval()));
    m
}

/// A step in an approval's life. `actor` is who caused it (an approver), if anyone.
pub fn approval(
    request: &approval::Request,
    event: &str,
    actor: Option<&str>,
    error: Option<&str>,
) -> Map<String, Value> {
    let call = &request.call;
    let mut m = Map::new();
    m.insert(
        "ts".into(),
        json!(humantime::format_rfc3339_micros(SystemTime::now()).to_string()),
    );
    m.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("kind".into(), json!("approval"));
    m.insert("call_id".into(), json!(call.call_id));
    m.insert("session".into(), json!(call.session));
    m.insert("agent".into(), json!(call.agent));
    m.insert("chain".into(), json!(call.chain));
    m.insert("server".into(), json!(call.server));
    m.insert("tool".into(), json!(call.tool));
    m.insert("tier".into(), json!(call.tier));
    m.insert("intent".into(), json!(call.intent));
    m.insert("args".into(), call.args_display.clone());
    m.insert("args_digest".into(), json!(call.args_digest));
    m.insert("event".into(), json!(event));
    m.insert("actor".into(), json!(actor));
    let approval = json!({"id": request.id, "status": request.status, "expires": request.expires, "quorum": call.quorum, "verdicts": request.verdicts});
    m.insert("approval".into(), approval);
    if let Some(e) = error {
        m.insert("error".into(), json!(e));
    }
    m
}

pub fn outcome(p: &Permitted, outcome: &Outcome, latency: Duration) -> Map<String, Value> {
    let mut m = permitted_fields("outcome", p);
    match outcome {
        Outcome::Result { is_error, digest } => {
            m.insert(
                "outcome".into(),
                json!(if *is_error { "error" } else { "ok" }),
            );
            m.insert("result_digest".into(), json!(digest));
        }
        Outcome::Unknown { reason } => {
            m.insert("outcome".into(), json!("unknown"));
            m.insert("error".into(), json!(reason));
        }
    }
    m.insert("latency_ms".into(), json!(latency.as_secs_f64() * 1000.0));
    m
}

/// A prompt (or other non-tool) request: who, what, the decision and, when refused, why.
pub fn access(access: &Access, decision: &Decision, error: Option<&str>) -> Map<String, Value> {
    let call_id = uuid::Uuid::new_v4().to_string();
    let mut m = base("access", &call_id, &access.caller);
    m.insert("method".into(), json!(access.kind.method()));
    m.insert("server".into(), json!(access.server));
    m.insert("name".into(), json!(access.name));
    m.insert("tier".into(), json!(access.tier));
    let args = Value::Object(access.args.clone());
    m.insert("args_digest".into(), json!(digest::canonical(&args)));
    match error {
        None => decision_fields(&mut m, decision),
        Some(e) => {
            m.insert("policy_effect".into(), json!(decision.effect));
            m.insert("decision".into(), json!("deny"));
            m.insert("rule".into(), json!(decision.rule));
            m.insert("verdicts".into(), json!(decision.verdicts));
            m.insert("error".into(), json!(e));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_replaces_only_the_named_pointers() {
        let args = json!({"to": "bob", "body": "secret", "nested": {"token": "t"}});
        let out = redacted(
            args,
            &["/body".into(), "/nested/token".into(), "/absent".into()],
        );
        assert_eq!(
            out,
            json!({"to": "bob", "body": "[redacted]", "nested": {"token": "[redacted]"}})
        );
    }
}
