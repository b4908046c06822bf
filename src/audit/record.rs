//! The audit record, typed: one [`AuditRecord`] per kind (`decision` for a refused call,
//! `attempt` before forwarding, `outcome` after, `access`, `approval`, `grant`, and the
//! gateway's own events), each a struct whose fields are the record's, written as JSON
//! with `kind` first. Arguments are stored redacted, with the digest of the exact
//! arguments. It builds records; sealing them into the chain is the writer's.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::approval;
use crate::catalog::ToolRef;
use crate::digest;
use crate::identity::{Caller, Credential};
use crate::manifest::Tier;
use crate::policy::{Access, Decision, Effect, Grant, Permitted, Rule, Verdict};

/// The stage that refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Catalog,
    /// The task the call declared is malformed, or replaces its credential's.
    Task,
    Integrity,
    Intent,
    Arguments,
    Limits,
    /// The state a 2026-07-28 client carried back was not sealed for this call, or was
    /// already used.
    State,
    Policy,
    Audit,
    Upstream,
}

impl Stage {
    /// The stage's name, as in records and metric labels.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Catalog => "catalog",
            Stage::Task => "task",
            Stage::Integrity => "integrity",
            Stage::Intent => "intent",
            Stage::Arguments => "arguments",
            Stage::Limits => "limits",
            Stage::State => "state",
            Stage::Policy => "policy",
            Stage::Audit => "audit",
            Stage::Upstream => "upstream",
        }
    }
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
    /// Record the intent as its digest only.
    pub intent_redacted: bool,
    pub stage: Stage,
    pub decision: Option<&'a Decision>,
    pub error: &'a str,
    /// The caller's trace context and the call's `trace_id` (empty when neither).
    pub trace: &'a Map<String, Value>,
}

/// What happened upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The tool ran and returned a result (`is_error` when the tool itself failed).
    Result { is_error: bool, digest: String },
    /// The upstream did not answer: unavailable, timed out, or the caller cancelled.
    Unknown { reason: String },
    /// The tool ran and returned a result the caller was not given, and why.
    Withheld { digest: String, reason: String },
}

/// One audit record, tagged by `kind`.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum AuditRecord {
    /// A call refused before it was forwarded.
    Decision(Box<DecisionRecord>),
    /// A permitted call, durable before it is forwarded.
    Attempt(Box<AttemptRecord>),
    /// What a forwarded call came to.
    Outcome(Box<OutcomeRecord>),
    /// A request other than a tool call (prompt, resource, completion, relayed request).
    Access(Box<AccessRecord>),
    /// A step in an approval's life.
    Approval(Box<ApprovalRecord>),
    /// A step in a grant's life.
    Grant(Box<GrantRecord>),
    /// A signed statement of how many records came before it and the last one's hash.
    Checkpoint(Box<super::checkpoint::CheckpointRecord>),
    /// A record about the gateway itself (`drift`, `reload`): its fields as given,
    /// `ts`, `id` and `kind` among them.
    #[serde(untagged)]
    Event(Map<String, Value>),
}

/// When, which record, and who called: how every call record starts.
#[derive(Debug, Serialize)]
pub struct Header {
    pub ts: String,
    pub id: String,
    pub call_id: String,
    pub session: String,
    pub agent: String,
    pub chain: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<Credential>,
    /// The task the call is for, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::identity::Task>,
}

impl Header {
    fn new(call_id: &str, caller: &Caller) -> Self {
        Self {
            ts: now(),
            id: uuid::Uuid::new_v4().to_string(),
            call_id: call_id.to_string(),
            session: caller.session.clone(),
            agent: caller.agent().to_string(),
            chain: caller.chain().into_iter().map(String::from).collect(),
            credential: caller.credential.clone(),
            task: caller.task.clone(),
        }
    }
}

/// The tool a call went to, as the catalog knows it.
#[derive(Debug, Serialize)]
pub struct ToolFields {
    pub server: String,
    pub tool: String,
    pub tier: Tier,
}

impl From<&ToolRef> for ToolFields {
    fn from(tool: &ToolRef) -> Self {
        Self {
            server: tool.server.clone(),
            tool: tool.tool.clone(),
            tier: tool.tier,
        }
    }
}

/// The arguments: the digest of the exact ones, and the redacted ones.
#[derive(Debug, Serialize)]
pub struct ArgsFields {
    pub args_digest: String,
    pub args: Value,
}

impl ArgsFields {
    fn new(args: &Map<String, Value>, redact: &[String]) -> Self {
        let exact = Value::Object(args.clone());
        Self {
            args_digest: digest::canonical(&exact),
            args: redacted(exact, redact),
        }
    }
}

/// The caller's intent as recorded: in clear, or, where a manifest or the gateway
/// redacts it, `"[redacted]"` with the digest of the exact text.
#[derive(Debug, Serialize)]
pub struct IntentFields {
    pub intent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent_digest: Option<String>,
}

impl IntentFields {
    pub fn new(intent: Option<&str>, redacted: bool) -> Self {
        match intent {
            Some(text) if redacted => Self {
                intent: Some("[redacted]".into()),
                intent_digest: Some(digest::sha256(text.as_bytes())),
            },
            _ => Self {
                intent: intent.map(String::from),
                intent_digest: None,
            },
        }
    }
}

/// The decision's verdicts: the rule that decided, one verdict per identity, and the
/// grants the decision used (the "used" record of a grant).
#[derive(Debug, Serialize)]
pub struct Reasons {
    pub rule: Option<Arc<Rule>>,
    pub verdicts: Vec<Verdict>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
    /// The flow rule that made the decision stricter, the label and where it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<crate::flows::FlowHit>,
}

impl From<&Decision> for Reasons {
    fn from(decision: &Decision) -> Self {
        let grants = decision
            .verdicts
            .iter()
            .filter_map(|v| v.rule.as_ref()?.grant.clone())
            .collect();
        Self {
            rule: decision.rule.clone(),
            verdicts: decision.verdicts.clone(),
            grants,
            flow: decision.flow.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DecisionRecord {
    #[serde(flatten)]
    pub header: Header,
    /// The name the caller asked for.
    pub requested: String,
    #[serde(flatten)]
    pub tool: Option<ToolFields>,
    #[serde(flatten)]
    pub args: Option<ArgsFields>,
    #[serde(flatten)]
    pub intent: IntentFields,
    /// The caller's trace context and the call's `trace_id`, as in an attempt.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub trace: Map<String, Value>,
    /// The rule that decided, when the call got as far as the policy (null otherwise),
    /// and the rest of the policy's reasons.
    pub rule: Option<Arc<Rule>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdicts: Option<Vec<Verdict>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<String>,
    /// The flow rule that made the policy's decision stricter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<crate::flows::FlowHit>,
    /// What the policy said (it may have allowed a call a later stage refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_effect: Option<Effect>,
    /// Always `deny`: whatever the policy said, the call was not made.
    pub decision: Effect,
    pub stage: Stage,
    pub error: String,
}

/// What an attempt and its outcome both say of the call: who, which tool, why, and the
/// caller's trace context.
#[derive(Debug, Serialize)]
pub struct Permit {
    #[serde(flatten)]
    pub header: Header,
    #[serde(flatten)]
    pub tool: ToolFields,
    #[serde(flatten)]
    pub intent: IntentFields,
    #[serde(skip_serializing_if = "is_empty", serialize_with = "shared")]
    pub trace: Arc<Map<String, Value>>,
}

fn is_empty(map: &Arc<Map<String, Value>>) -> bool {
    map.is_empty()
}

/// A map shared with the call, written as the map.
fn shared<S: serde::Serializer>(map: &Arc<Map<String, Value>>, s: S) -> Result<S::Ok, S::Error> {
    Serialize::serialize(&**map, s)
}

impl From<&Permitted> for Permit {
    fn from(p: &Permitted) -> Self {
        let call = p.call();
        Self {
            header: Header::new(&call.id, &call.caller),
            tool: ToolFields::from(call.tool.as_ref()),
            intent: IntentFields::new(call.intent.as_deref(), call.intent_redacted),
            trace: call.trace.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AttemptRecord {
    #[serde(flatten)]
    pub permit: Permit,
    #[serde(flatten)]
    pub args: ArgsFields,
    pub decision: Effect,
    #[serde(flatten)]
    pub reasons: Reasons,
    pub approval: Option<Grant>,
}

#[derive(Debug, Serialize)]
pub struct OutcomeRecord {
    #[serde(flatten)]
    pub permit: Permit,
    /// `ok`, `error` (the tool failed), `unknown` (no answer) or `withheld` (not given to
    /// the caller).
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct AccessRecord {
    #[serde(flatten)]
    pub header: Header,
    pub method: &'static str,
    pub server: String,
    pub name: String,
    pub tier: Tier,
    pub args_digest: String,
    /// What the policy said, when the request was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_effect: Option<Effect>,
    pub decision: Effect,
    #[serde(flatten)]
    pub reasons: Reasons,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ApprovalRecord {
    /// The call's, as the request stored it (no credential: the request outlives it).
    #[serde(flatten)]
    pub header: Header,
    pub server: String,
    pub tool: String,
    pub tier: String,
    #[serde(flatten)]
    pub intent: IntentFields,
    pub args: Value,
    pub args_digest: String,
    /// `requested`, `approved`, `denied`, `expired`, `executed`, `refused-decision`.
    pub event: String,
    /// The approver who caused it, if anyone.
    pub actor: Option<String>,
    pub approval: ApprovalState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where the approval request stands after the step.
#[derive(Debug, Serialize)]
pub struct ApprovalState {
    pub id: String,
    pub status: approval::Status,
    pub expires: u64,
    pub quorum: u32,
    pub verdicts: Vec<approval::Verdict>,
}

#[derive(Debug, Serialize)]
pub struct GrantRecord {
    pub ts: String,
    pub id: String,
    /// `created`, `revoked`, `expired`, `refused`.
    pub event: String,
    pub actor: String,
    pub grant: crate::grant::Grant,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn now() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
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

/// A step in a grant's life: `created`, `revoked`, `expired`, or a refused request for
/// one (`refused`, with the reason), by `actor`.
pub fn grant(
    grant: &crate::grant::Grant,
    event: &str,
    actor: &str,
    error: Option<&str>,
) -> AuditRecord {
    AuditRecord::Grant(Box::new(GrantRecord {
        ts: now(),
        id: uuid::Uuid::new_v4().to_string(),
        event: event.to_string(),
        actor: actor.to_string(),
        grant: grant.clone(),
        error: error.map(String::from),
    }))
}

/// A record about the gateway itself rather than a call (`drift`, `reload`): a
/// timestamp, an id and `kind`, then `fields`.
pub fn event(kind: &str, fields: Map<String, Value>) -> AuditRecord {
    let mut m = Map::new();
    m.insert("ts".into(), json!(now()));
    m.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("kind".into(), json!(kind));
    m.extend(fields);
    AuditRecord::Event(m)
}

pub fn refusal(r: &Refusal<'_>) -> AuditRecord {
    let redact = r.tool.map(|t| t.redact.as_slice()).unwrap_or_default();
    let reasons = r.decision.map(Reasons::from);
    AuditRecord::Decision(Box::new(DecisionRecord {
        header: Header::new(r.call_id, r.caller),
        requested: r.requested.to_string(),
        tool: r.tool.map(ToolFields::from),
        args: r.args.map(|a| ArgsFields::new(a, redact)),
        intent: IntentFields::new(r.intent, r.intent_redacted),
        trace: r.trace.clone(),
        rule: reasons.as_ref().and_then(|r| r.rule.clone()),
        verdicts: reasons.as_ref().map(|r| r.verdicts.clone()),
        flow: reasons.as_ref().and_then(|r| r.flow.clone()),
        grants: reasons.map(|r| r.grants).unwrap_or_default(),
        policy_effect: r.decision.map(|d| d.effect),
        decision: Effect::Deny,
        stage: r.stage,
        error: r.error.to_string(),
    }))
}

pub fn attempt(p: &Permitted) -> AuditRecord {
    let call = p.call();
    AuditRecord::Attempt(Box::new(AttemptRecord {
        permit: Permit::from(p),
        args: ArgsFields::new(&call.args, &call.tool.redact),
        decision: p.decision().effect,
        reasons: Reasons::from(p.decision()),
        approval: p.approval().cloned(),
    }))
}

/// A step in an approval's life. `actor` is who caused it (an approver), if anyone.
pub fn approval(
    request: &approval::Request,
    event: &str,
    actor: Option<&str>,
    error: Option<&str>,
) -> AuditRecord {
    let call = &request.call;
    AuditRecord::Approval(Box::new(ApprovalRecord {
        header: Header {
            ts: now(),
            id: uuid::Uuid::new_v4().to_string(),
            call_id: call.call_id.clone(),
            session: call.session.clone(),
            agent: call.agent.clone(),
            chain: call.chain.clone(),
            credential: None,
            task: call.task.clone(),
        },
        server: call.server.clone(),
        tool: call.tool.clone(),
        tier: call.tier.clone(),
        intent: IntentFields::new(call.intent.as_deref(), call.intent_redacted),
        args: call.args_display.clone(),
        args_digest: call.args_digest.clone(),
        event: event.to_string(),
        actor: actor.map(String::from),
        approval: ApprovalState {
            id: request.id.clone(),
            status: request.status,
            expires: request.expires,
            quorum: call.quorum,
            verdicts: request.verdicts.clone(),
        },
        error: error.map(String::from),
    }))
}

pub fn outcome(p: &Permitted, outcome: &Outcome, latency: Duration) -> AuditRecord {
    let (word, result_digest, error) = match outcome {
        Outcome::Result { is_error, digest } => {
            let word = if *is_error { "error" } else { "ok" };
            (word, Some(digest.clone()), None)
        }
        Outcome::Unknown { reason } => ("unknown", None, Some(reason.clone())),
        Outcome::Withheld { digest, reason } => {
            ("withheld", Some(digest.clone()), Some(reason.clone()))
        }
    };
    AuditRecord::Outcome(Box::new(OutcomeRecord {
        permit: Permit::from(p),
        outcome: word,
        result_digest,
        error,
        latency_ms: latency.as_secs_f64() * 1000.0,
    }))
}

/// A prompt (or other non-tool) request: who, what, the decision and, when refused, why.
pub fn access(access: &Access, decision: &Decision, error: Option<&str>) -> AuditRecord {
    let call_id = uuid::Uuid::new_v4().to_string();
    let args = Value::Object(access.args.clone());
    AuditRecord::Access(Box::new(AccessRecord {
        header: Header::new(&call_id, &access.caller),
        method: access.kind.method(),
        server: access.server.clone(),
        name: access.name.clone(),
        tier: access.tier,
        args_digest: digest::canonical(&args),
        policy_effect: error.map(|_| decision.effect),
        decision: match error {
            None => decision.effect,
            Some(_) => Effect::Deny,
        },
        reasons: Reasons::from(decision),
        error: error.map(String::from),
    }))
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
