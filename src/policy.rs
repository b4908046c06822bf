//! The policy stage: Casbin decides `allow`, `deny` or `approve` for every identity in
//! the caller's delegation chain, and [`Policy::authorize`] turns the combined decision
//! into a [`Permitted`] call — the only value forwarding accepts — or a refusal.
//!
//! Semantics that hold whatever the model file says: default deny; a matching `deny`
//! wins over everything; `approve` wins over `allow`; every identity in the chain must be
//! allowed; a Casbin error is a deny. The model's `[policy_effect]` is not used: each
//! effect is asked of its own enforcer, built fresh from the checked rules (never
//! reloaded in place, never disabled).

mod access;
mod narrow;
mod rules;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi, RbacApi};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::approval;
use crate::catalog::ToolRef;
use crate::config::ActDefault;
use crate::identity::Caller;
use crate::manifest::Tier;
use crate::problem::Problem;
pub use access::{Access, AccessKind, PermittedAccess, RefusedAccess};
use narrow::{Enforcers, Narrow, Which};
pub use rules::Rule;

/// What the policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    Allow,
    Deny,
    /// Allowed only with a human approval.
    Approve,
    /// Allowed when the principal the agent acts for confirms it on the approvals page,
    /// CLI or API with their own approver credential (or an approver approves it).
    Confirm,
    /// As `Confirm`, and the principal may also confirm in their own MCP client (an
    /// elicitation on the call's request), which proves less.
    #[serde(rename = "confirm_in_client")]
    ConfirmInClient,
}

impl Effect {
    /// Whether the call waits for a human: an approver, or the principal.
    pub fn waits(self) -> bool {
        matches!(
            self,
            Effect::Approve | Effect::Confirm | Effect::ConfirmInClient
        )
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::Approve => "approve",
            Effect::Confirm => "confirm",
            Effect::ConfirmInClient => "confirm_in_client",
        })
    }
}

/// The policy's answer for one identity in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub identity: String,
    /// `None`: no rule matched (default deny) or Casbin failed (see `error`).
    pub effect: Option<Effect>,
    pub rule: Option<Arc<Rule>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The combined decision for a whole chain, with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub effect: Effect,
    /// The rule that decided (the deny, the approve, or the acting agent's allow).
    pub rule: Option<Arc<Rule>>,
    /// One verdict per identity, principal first.
    pub verdicts: Vec<Verdict>,
    /// Why, in words, when the call is not simply allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The flow rule that made the decision stricter, given what the session had read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow: Option<crate::flows::FlowHit>,
}

/// A call that passed every check before policy; what is being decided.
#[derive(Debug, Clone)]
pub struct Call {
    pub id: String,
    pub caller: Caller,
    pub tool: Arc<ToolRef>,
    /// Arguments to forward, intent removed.
    pub args: Map<String, Value>,
    pub intent: Option<String>,
    /// The intent is recorded as its digest only (the tool's manifest, or the gateway,
    /// redacts it).
    pub intent_redacted: bool,
    /// The caller's trace context (`traceparent`, `tracestate`) and the call's
    /// `trace_id`, kept in the audit records (shared with them, not copied into each).
    pub trace: Arc<Map<String, Value>>,
    /// The request's span (empty when spans are not exported).
    pub span: crate::telemetry::trace::CallSpan,
    /// When the request arrived (for the call's duration in `/metrics`).
    pub arrived: std::time::Instant,
    /// What the caller's session has done so far (for flow rules and budgets).
    pub held: Arc<crate::flows::SessionView>,
}

/// A decided call that may go upstream. Only [`Policy::authorize`] makes one.
#[derive(Debug)]
pub struct Permitted {
    call: Call,
    decision: Decision,
    approval: Option<Grant>,
}

/// The approval a permitted call was granted under: by approvers, or confirmed by the
/// principal (who, and where).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub id: String,
    pub approvers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<approval::Channel>,
}

impl Grant {
    pub fn of(r: &approval::Request) -> Self {
        let confirmed = r.confirmation();
        Self {
            id: r.id.clone(),
            approvers: r.approvers().into_iter().map(String::from).collect(),
            confirmed_by: confirmed.map(|(who, _)| who.to_string()),
            channel: confirmed.map(|(_, channel)| channel),
        }
    }

    /// Who decided, in words.
    pub fn describe(&self) -> String {
        match (&self.confirmed_by, self.channel) {
            (Some(who), Some(approval::Channel::Client)) => {
                format!("`{who}` confirming in their own client")
            }
            (Some(who), _) => format!("`{who}` confirming on the approvals page"),
            (None, _) => format!("approvers {}", self.approvers.join(", ")),
        }
    }
}

impl Permitted {
    pub fn call(&self) -> &Call {
        &self.call
    }

    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    pub fn approval(&self) -> Option<&Grant> {
        self.approval.as_ref()
    }

    /// The just-in-time grants this call is allowed by.
    pub fn grants(&self) -> Vec<String> {
        self.decision
            .verdicts
            .iter()
            .filter_map(|v| v.rule.as_ref()?.grant.clone())
            .collect()
    }

    /// Take the permission back (a grant it rested on is no longer in force, or could not
    /// be confirmed): a deny that says `why`.
    pub fn withdraw(self, why: String) -> Box<Refused> {
        let mut decision = self.decision;
        decision.effect = Effect::Deny;
        decision.reason = Some(why.clone());
        Box::new(Refused {
            call: self.call,
            decision,
            message: why,
        })
    }
}

/// A call the policy refused, with the decision that refused it.
#[derive(Debug)]
pub struct Refused {
    pub call: Call,
    pub decision: Decision,
    /// What the caller is told.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{}", crate::problem::render(.0))]
    Invalid(Vec<Problem>),
}

/// A loaded, checked policy. Immutable: a reload builds a new one.
pub struct Policy {
    /// Every row, one enforcer per effect.
    enforcers: Enforcers,
    /// The rows by subject, for cold decisions, when the matcher allows it.
    narrow: Option<Narrow>,
    rules: HashMap<Vec<String>, Arc<Rule>>,
    eft_index: usize,
    act_default: ActDefault,
    cache: RwLock<HashMap<String, Verdict>>,
    /// Whether an identity's allow for an object names the `act` tier itself.
    act_cache: RwLock<HashMap<String, bool>>,
    /// Just-in-time grants, consulted after the rules (never cached: they expire).
    grants: Arc<crate::grant::GrantBook>,
    /// Flow rules over what a session has read (`flows.toml`), applied after Casbin.
    flows: Arc<crate::flows::Flows>,
}

const CACHE_LIMIT: usize = 100_000;

impl Policy {
    /// Load a model and a policy file. Every problem in either is reported.
    pub async fn load(model: (&Path, &str), policy: (&Path, &str)) -> Result<Self, PolicyError> {
        let (model_file, model_text) = model;
        let (policy_file, policy_text) = policy;
        let shape = rules::model_shape(model_file, model_text)
            .await
            .map_err(|p| PolicyError::Invalid(vec![p]))?;
        let (checked, problems) = rules::parse(policy_file, policy_text, &shape);
        if problems.iter().any(Problem::is_error) {
            return Err(PolicyError::Invalid(problems));
        }
        let err = |e: casbin::Error| {
            PolicyError::Invalid(vec![Problem::error(
                model_file,
                None,
                format!("invalid model: {e}"),
            )])
        };
        let full = enforcers(model_text, &checked).await.map_err(err)?;
        probe(model_file, model_text, &checked, &full)?;
        let narrow = match checked.subject_index {
            Some(subject) => {
                let empty = rules::Checked {
                    eft_index: checked.eft_index,
                    act_index: checked.act_index,
                    subject_index: checked.subject_index,
                    ..rules::Checked::default()
                };
                let scratch = enforcers(model_text, &empty).await.map_err(err)?;
                Some(Narrow::new(checked.clone(), subject, scratch))
            }
            None => None,
        };
        let eft_index = checked.eft_index;
        let rules = checked
            .policies
            .into_iter()
            .map(|r| (r.fields.clone(), Arc::new(r)))
            .collect();
        Ok(Self {
            enforcers: full,
            narrow,
            rules,
            eft_index,
            act_default: ActDefault::Approve,
            cache: RwLock::new(HashMap::new()),
            act_cache: RwLock::new(HashMap::new()),
            grants: Arc::default(),
            flows: Arc::default(),
        })
    }

    /// Decide with these flow rules too.
    pub fn with_flows(self, flows: crate::flows::Flows) -> Self {
        Self {
            flows: Arc::new(flows),
            ..self
        }
    }

    /// The flow rules.
    pub fn flows(&self) -> &crate::flows::Flows {
        &self.flows
    }

    /// Whether any flow rule exists (a call then needs its session's labels).
    pub fn has_flows(&self) -> bool {
        !self.flows.is_empty()
    }

    /// Whether a flow rule or budget could apply to a call to `tool` (see
    /// [`Flows::could_hit`](crate::flows::Flows::could_hit)).
    pub fn flows_could_apply(&self, tool: &ToolRef) -> bool {
        self.flows.could_hit(tool)
    }

    /// What an `act` call that policy simply allows needs (`[approval] act`).
    pub fn with_act_default(mut self, act: ActDefault) -> Self {
        self.act_default = act;
        self
    }

    /// The decision for a caller's whole chain on `server/tool` at `tier`.
    pub fn decide(&self, caller: &Caller, object: &str, tier: Tier) -> Decision {
        let now = crate::clock::now_ms();
        let verdicts: Vec<Verdict> = caller
            .chain()
            .into_iter()
            .map(|id| self.verdict(id, object, tier.as_str()))
            .map(|v| self.granted(v, caller, object, tier, now))
            .collect();
        combine(verdicts, object, tier)
    }

    /// Whether cold decisions see only the requester's share of the rows (the matcher
    /// requires `g(r.sub, p.sub)`), rather than every row.
    pub fn indexed(&self) -> bool {
        self.narrow.is_some()
    }

    /// Every `p` row, as written.
    pub fn rows(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.rules.values()
    }

    /// Decide with these grants too.
    pub fn with_grants(self, grants: Arc<crate::grant::GrantBook>) -> Self {
        Self { grants, ..self }
    }

    /// A verdict with no rule, or one that asks for approval, becomes an allow when an
    /// active grant covers it; a deny or a Casbin error never does.
    fn granted(&self, v: Verdict, caller: &Caller, object: &str, tier: Tier, now: u64) -> Verdict {
        let open = v.error.is_none() && v.effect.is_none_or(Effect::waits);
        let (principal, task) = (caller.principal.as_deref(), caller.task.as_ref());
        let grant = open
            .then(|| {
                self.grants
                    .find(&v.identity, principal, task, object, tier, now)
            })
            .flatten();
        match grant {
            Some(g) => Verdict {
                effect: Some(Effect::Allow),
                rule: Some(Arc::new(Rule::of_grant(&g))),
                ..v
            },
            None => v,
        }
    }

    /// Whether `identity` may approve calls to `object` (permission `approve`).
    pub fn may_approve(&self, identity: &str, object: &str) -> bool {
        self.verdict(identity, object, "approve").effect == Some(Effect::Allow)
    }

    /// Whether some rule asks for `identity`'s own confirmation of calls to `object` made
    /// on its behalf (`confirm`, `confirm_in_client`), at any tier.
    pub fn asks_to_confirm(&self, identity: &str, object: &str) -> bool {
        [Tier::Read, Tier::Transform, Tier::Act].iter().any(|t| {
            matches!(
                self.verdict(identity, object, t.as_str()).effect,
                Some(Effect::Confirm | Effect::ConfirmInClient)
            )
        })
    }

    /// Whether `identity` is `who` or holds role `who` (directly or through other roles).
    pub fn is_or_has_role(&self, identity: &str, who: &str) -> bool {
        identity == who
            || self
                .enforcers
                .get(Which::Allow)
                .get_implicit_roles_for_user(identity, None)
                .iter()
                .any(|r| r == who)
    }

    /// Decide a call: [`Permitted`] when the whole chain allows it, or when policy asks
    /// for approval and `approval` is a used (executed) approval bound to exactly this
    /// call; else [`Refused`]. Policy is asked afresh each time, so a rule changed while a
    /// call waited still applies.
    pub fn authorize(
        &self,
        call: Call,
        approval: Option<&approval::Request>,
    ) -> Result<Permitted, Box<Refused>> {
        let object = object_of(&call.tool);
        let decision = self.escalate(self.decide(&call.caller, &object, call.tool.tier), &call);
        let decision = self.flow(decision, &call);
        let bound = approval
            .filter(|r| r.status == approval::Status::Executed && r.binding == binding_of(&call));
        let enough = bound.filter(|r| decided_enough(r, decision.effect));
        let refuse = |call, decision: Decision, message| {
            Err(Box::new(Refused {
                call,
                decision,
                message,
            }))
        };
        match (decision.effect, bound, enough) {
            // A deny, a missing rule, or a Casbin error somewhere in the chain: nothing
            // overrides it, not even an approval.
            (Effect::Deny, _, _) => {
                let message = decision
                    .reason
                    .clone()
                    .unwrap_or_else(|| "denied by policy".into());
                refuse(call, decision, message)
            }
            // Every identity in the chain allows it; no approval is needed.
            (Effect::Allow, _, _) => Ok(Permitted {
                call,
                decision,
                approval: None,
            }),
            // A human decision required, and this call carries one bound to it, made by
            // whom and where the policy accepts now.
            (Effect::Approve | Effect::Confirm | Effect::ConfirmInClient, Some(_), Some(r)) => {
                let grant = Grant::of(r);
                Ok(Permitted {
                    call,
                    decision,
                    approval: Some(grant),
                })
            }
            // A decision bound to this call, but not one the policy accepts now (it was
            // changed while the call waited, e.g. from `confirm_in_client` to `approve`).
            (Effect::Approve | Effect::Confirm | Effect::ConfirmInClient, Some(r), None) => {
                let message = format!(
                    "request `{}` was decided by {}, which the policy no longer accepts for `{}`: {}; the call was not made",
                    r.id,
                    Grant::of(r).describe(),
                    call.tool.name,
                    decision.reason.clone().unwrap_or_default()
                );
                refuse(call, decision, message)
            }
            // Approval required and none (or none for this exact call) was given.
            (Effect::Approve, None, _) => {
                let why = match (&decision.flow, &decision.reason) {
                    (Some(_), Some(reason)) => reason.clone(),
                    _ => format!(
                        "`{}` requires approval by a human approver{}",
                        call.tool.name,
                        rule_note(&decision)
                    ),
                };
                let message = format!("{why}; no approval was given, so the call was not made");
                refuse(call, decision, message)
            }
            // The principal's confirmation required and not given.
            (Effect::Confirm | Effect::ConfirmInClient, None, _) => {
                let message = format!(
                    "`{}` requires the confirmation of the user the agent acts for{}; none was given, so the call was not made",
                    call.tool.name,
                    rule_note(&decision)
                );
                refuse(call, decision, message)
            }
        }
    }

    /// Turn an `allow` into `approve` when the tool owner's approval rule applies to these
    /// arguments, or, with no owner rule, when the tier is `act`, the `act` default is
    /// `approve`, and not every identity's allowing rule names the `act` tier itself.
    /// Make the decision stricter when a flow rule applies: the session holds a label the
    /// rule names and the call is one it covers. Never laxer: a deny stays a deny, and an
    /// `approve` flow leaves an `approve` as it is.
    fn flow(&self, decision: Decision, call: &Call) -> Decision {
        let Some(hit) = self.flows.hit(&call.held, &call.tool) else {
            return decision;
        };
        let object = object_of(&call.tool);
        let reason = hit.describe(&object, call.tool.egress);
        let effect = match (decision.effect, hit.effect) {
            (Effect::Deny, _) | (_, crate::flows::FlowEffect::Deny) => Effect::Deny,
            (
                Effect::Allow | Effect::Approve | Effect::Confirm | Effect::ConfirmInClient,
                crate::flows::FlowEffect::Approve,
            ) => Effect::Approve,
        };
        match decision.effect {
            // Already refused: the flow adds nothing to say.
            Effect::Deny => decision,
            _ => Decision {
                effect,
                reason: Some(reason),
                flow: Some(hit),
                ..decision
            },
        }
    }

    /// A `confirm` becomes `approve` when the owner's rule applies and asks for approvers
    /// (a role, or more than one): separation of duties stays mandatory there.
    fn escalate(&self, decision: Decision, call: &Call) -> Decision {
        match decision.effect {
            Effect::Allow => self.escalate_allow(decision, call),
            Effect::Confirm | Effect::ConfirmInClient => {
                let args = Value::Object(call.args.clone());
                let owner = call
                    .tool
                    .approval
                    .as_deref()
                    .filter(|r| r.applies(&args) && (r.approvers.is_some() || r.quorum > 1));
                match owner {
                    Some(_) => Decision {
                        effect: Effect::Approve,
                        reason: Some("requires approval: its owner's approval rule asks for approvers, so the principal's own confirmation is not enough".into()),
                        ..decision
                    },
                    None => decision,
                }
            }
            Effect::Deny | Effect::Approve => decision,
        }
    }

    fn escalate_allow(&self, decision: Decision, call: &Call) -> Decision {
        let reason = match &call.tool.approval {
            Some(rule) if rule.applies(&Value::Object(call.args.clone())) => Some(match rule.condition() {
                Some(c) => format!("requires approval: its owner's approval rule applies to these arguments (`when` {c})"),
                None => "requires approval: its owner's approval rule covers every call".into(),
            }),
            // The owner's rule says when approval is needed, and it is not needed now.
            Some(_) => None,
            None if call.tool.tier == Tier::Act
                && self.act_default == ActDefault::Approve
                && !self.names_act(&decision, &object_of(&call.tool)) =>
            {
                Some("requires approval: `act` calls need a human approver unless a policy rule for the `act` tier itself allows them".into())
            }
            None => None,
        };
        match reason {
            Some(r) => Decision {
                effect: Effect::Approve,
                reason: Some(r),
                ..decision
            },
            None => decision,
        }
    }

    /// Whether every identity in the chain is allowed by a rule that names the `act` tier
    /// itself (not `*`). A Casbin error counts as no.
    fn names_act(&self, decision: &Decision, object: &str) -> bool {
        decision.verdicts.iter().all(|v| {
            // A grant at the `act` tier is an approver's decision made in advance.
            v.rule.as_ref().is_some_and(|r| r.grant.is_some())
                || self.allows_act(&v.identity, object)
        })
    }

    /// Whether a rule that names the `act` tier itself allows `identity` to use `object`
    /// (cached like verdicts). A Casbin error counts as no.
    fn allows_act(&self, identity: &str, object: &str) -> bool {
        let key = format!("{identity}\0{object}");
        if let Some(v) = self
            .act_cache
            .read()
            .ok()
            .and_then(|c| c.get(&key).copied())
        {
            return v;
        }
        let allowed = self.with_enforcers(identity, &[Which::AllowAct], |e| {
            e.get(Which::AllowAct)
                .enforce((identity, object, "act"))
                .unwrap_or(false)
        });
        if let Ok(mut cache) = self.act_cache.write() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key, allowed);
        }
        allowed
    }

    /// Run `ask` on the enforcers that hold `identity`'s share of the rows when the
    /// policy is indexed, else (or when that fails) on those that hold every row.
    fn with_enforcers<T>(
        &self,
        identity: &str,
        needed: &[Which],
        ask: impl Fn(&Enforcers) -> T,
    ) -> T {
        match self
            .narrow
            .as_ref()
            .map(|n| n.with(&self.enforcers, identity, needed, &ask))
        {
            Some(Some(Ok(answer))) => answer,
            Some(Some(Err(e))) => {
                tracing::warn!(error = %e, "cannot narrow the policy for a decision; asking every row");
                ask(&self.enforcers)
            }
            Some(None) | None => ask(&self.enforcers),
        }
    }

    fn verdict(&self, identity: &str, object: &str, act: &str) -> Verdict {
        let key = format!("{identity}\0{object}\0{act}");
        if let Some(v) = self.cache.read().ok().and_then(|c| c.get(&key).cloned()) {
            return v;
        }
        let verdict = self.evaluate(identity, object, act);
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key, verdict.clone());
        }
        verdict
    }

    fn evaluate(&self, identity: &str, object: &str, act: &str) -> Verdict {
        let ask = |e: &Enforcer| {
            e.enforce_ex((identity, object, act))
                .map(|(hit, rules)| hit.then(|| rules.into_iter().next()))
        };
        // Strictest first: the first effect with a matching row is the verdict.
        const ORDER: [(Which, Effect); 5] = [
            (Which::Deny, Effect::Deny),
            (Which::Approve, Effect::Approve),
            (Which::Confirm, Effect::Confirm),
            (Which::ConfirmInClient, Effect::ConfirmInClient),
            (Which::Allow, Effect::Allow),
        ];
        let needed = ORDER.map(|(which, _)| which);
        let results = self.with_enforcers(identity, &needed, |e| {
            ORDER.map(|(which, _)| ask(e.get(which)))
        });
        let mut verdict = Verdict {
            identity: identity.to_string(),
            effect: None,
            rule: None,
            error: None,
        };
        // Any Casbin error is the verdict (a deny), whatever else matched.
        if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
            verdict.error = Some(format!("policy evaluation failed: {e}"));
            return verdict;
        }
        let first = ORDER
            .iter()
            .zip(results)
            .find_map(|((_, effect), r)| r.ok().flatten().map(|rule| (*effect, rule)));
        if let Some((effect, rule)) = first {
            verdict.effect = Some(effect);
            verdict.rule = self.original(rule, effect);
        }
        verdict
    }

    /// The policy-file rule behind a rule an enforcer matched (whose effect it had
    /// rewritten to `allow`).
    fn original(&self, matched: Option<Vec<String>>, effect: Effect) -> Option<Arc<Rule>> {
        let mut fields = matched?;
        if let Some(f) = fields.get_mut(self.eft_index) {
            *f = effect.to_string();
        }
        self.rules.get(&fields).cloned()
    }
}

/// Whether a used request's decision is one `effect` accepts: the quorum of approvers
/// for every effect; the principal's own confirmation only for `confirm` (made on the
/// approvals page, CLI or API) and `confirm_in_client` (made there or in their client).
fn decided_enough(r: &approval::Request, effect: Effect) -> bool {
    let approved = r.approvers().len() >= r.call.quorum as usize;
    let confirmed = r.confirmation().map(|(_, channel)| channel);
    match effect {
        Effect::Approve => approved,
        Effect::Confirm => approved || confirmed == Some(approval::Channel::Approvals),
        Effect::ConfirmInClient => approved || confirmed.is_some(),
        Effect::Allow | Effect::Deny => false,
    }
}

fn rule_note(decision: &Decision) -> String {
    decision
        .rule
        .as_ref()
        .map(|r| format!(" (rule {r})"))
        .unwrap_or_default()
}

/// The approval binding of a call: tool, exact-argument digest and caller chain.
pub fn binding_of(call: &Call) -> String {
    binding(&call.tool, &call.args, &call.caller)
}

/// The binding of `caller` calling `tool` with exactly `args`.
pub fn binding(tool: &ToolRef, args: &Map<String, Value>, caller: &Caller) -> String {
    let digest = crate::digest::canonical(&Value::Object(args.clone()));
    let chain: Vec<String> = caller.chain().into_iter().map(String::from).collect();
    approval::binding(&tool.server, &tool.tool, &digest, &chain)
}

/// The Casbin object of a tool: `server/tool`.
pub fn object_of(tool: &ToolRef) -> String {
    format!("{}/{}", tool.server, tool.tool)
}

/// Combine per-identity verdicts: any error or deny or missing rule denies; then any
/// approve requires approval; otherwise allow.
fn combine(verdicts: Vec<Verdict>, object: &str, tier: Tier) -> Decision {
    if verdicts.is_empty() {
        // No identity at all: nobody to allow it (fail closed, never "all of none").
        return Decision {
            effect: Effect::Deny,
            rule: None,
            verdicts,
            reason: Some("denied: the call has no caller identity".into()),
            flow: None,
        };
    }
    let failed = verdicts.iter().find(|v| v.error.is_some());
    let denied = verdicts.iter().find(|v| v.effect == Some(Effect::Deny));
    let unruled = verdicts.iter().find(|v| v.effect.is_none());
    // The strictest wait any identity's verdict asks for.
    let waits = [Effect::Approve, Effect::Confirm, Effect::ConfirmInClient]
        .into_iter()
        .find_map(|effect| verdicts.iter().find(|v| v.effect == Some(effect)));
    let (effect, rule, reason) = match (failed, denied, unruled, waits) {
        (Some(v), _, _, _) => (
            Effect::Deny,
            None,
            format!(
                "denied: {} (for `{}`)",
                v.error.clone().unwrap_or_default(),
                v.identity
            ),
        ),
        (None, Some(v), _, _) => (
            Effect::Deny,
            v.rule.clone(),
            format!(
                "denied by policy rule {} for `{}`",
                describe(&v.rule),
                v.identity
            ),
        ),
        (None, None, Some(v), _) => (
            Effect::Deny,
            None,
            format!(
                "denied: no policy rule allows `{}` to use `{object}` (tier `{tier}`); ask your administrator for a rule",
                v.identity
            ),
        ),
        (None, None, None, Some(v)) => {
            let effect = v.effect.unwrap_or(Effect::Approve);
            let what = match effect {
                Effect::Confirm | Effect::ConfirmInClient => "the principal's confirmation",
                _ => "approval",
            };
            (
                effect,
                v.rule.clone(),
                format!("requires {what} by policy rule {}", describe(&v.rule)),
            )
        }
        (None, None, None, None) => (
            Effect::Allow,
            verdicts.last().and_then(|v| v.rule.clone()),
            String::new(),
        ),
    };
    let reason = (!reason.is_empty()).then_some(reason);
    Decision {
        effect,
        rule,
        verdicts,
        reason,
        flow: None,
    }
}

fn describe(rule: &Option<Arc<Rule>>) -> String {
    rule.as_ref()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "(unknown)".into())
}

/// Ask every enforcer a question before the policy is accepted: one no rule is about,
/// and each enforcer's first rule asked of itself (so a matcher's later terms run too).
/// A model Casbin cannot evaluate (no `[matchers]`, an unknown function, a type error)
/// then fails here, at start, `check` or reload, instead of denying every call after.
fn probe(
    file: &Path,
    model_text: &str,
    checked: &rules::Checked,
    enforcers: &Enforcers,
) -> Result<(), PolicyError> {
    let line = model_text
        .lines()
        .position(|l| l.trim_start().starts_with("[matchers]"))
        .map(|n| n + 1);
    for which in Which::ALL {
        let own = checked
            .policies
            .iter()
            .find_map(|r| which.select(checked, &r.fields))
            .map(|mut fields| {
                fields.remove(checked.eft_index.min(fields.len().saturating_sub(1)));
                fields
            });
        let mut questions = vec![vec![
            "probe:nobody".to_string(),
            "probe/nothing".into(),
            "read".into(),
        ]];
        questions.extend(
            own.filter(|f| f.len() >= 3)
                .map(|f| f.into_iter().take(3).collect()),
        );
        for q in questions {
            let [sub, obj, act, ..] = q.as_slice() else {
                continue;
            };
            if let Err(e) = enforcers
                .get(which)
                .enforce((sub.as_str(), obj.as_str(), act.as_str()))
            {
                return Err(PolicyError::Invalid(vec![Problem::error(
                    file,
                    line,
                    format!(
                        "the model cannot decide a request ({e}): every call would be denied; fix the matcher"
                    ),
                )]));
            }
        }
    }
    Ok(())
}

/// One enforcer per [`Which`], each holding the `p` rules it is for (as plain allows) and
/// every grouping rule, under the model's request, policy, role and matcher definitions.
async fn enforcers(model_text: &str, checked: &rules::Checked) -> casbin::Result<Enforcers> {
    let [a, b, c, d, e, f] = Which::ALL;
    Ok(Enforcers::new([
        enforcer(model_text, checked, a).await?,
        enforcer(model_text, checked, b).await?,
        enforcer(model_text, checked, c).await?,
        enforcer(model_text, checked, d).await?,
        enforcer(model_text, checked, e).await?,
        enforcer(model_text, checked, f).await?,
    ]))
}

async fn enforcer(
    model_text: &str,
    checked: &rules::Checked,
    which: Which,
) -> casbin::Result<Enforcer> {
    let mut model = DefaultModel::from_str(model_text).await?;
    casbin::Model::add_def(&mut model, "e", "e", "some(where (p.eft == allow))");
    let mut e = Enforcer::new(model, MemoryAdapter::default()).await?;
    e.set_logger(Box::new(Quiet));
    let policies: Vec<Vec<String>> = checked
        .policies
        .iter()
        .filter_map(|r| which.select(checked, &r.fields))
        .collect();
    if !policies.is_empty() {
        e.add_named_policies("p", policies).await?;
    }
    for (ptype, rows) in &checked.groupings {
        e.add_named_grouping_policies(ptype, rows.clone()).await?;
    }
    Ok(e)
}

/// Casbin's default logger starts a thread with a 4,096-entry queue (about 0.4 MB) for
/// each enforcer, to log nothing: logging is never enabled here. Each enforcer gets this
/// one instead, which holds nothing.
struct Quiet;

impl casbin::Logger for Quiet {
    fn enable_log(&mut self, _enabled: bool) {}

    fn is_enabled(&self) -> bool {
        false
    }

    fn print_enforce_log(&self, _rvals: Vec<String>, _authorized: bool, _cached: bool) {}

    fn print_mgmt_log(&self, _d: &casbin::EventData) {}

    fn print_explain_log(&self, _rules: Vec<String>) {}

    fn print_status_log(&self, _enabled: bool) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROWS: &str = "p, role:a, demo/*, read, allow\np, role:a, demo/send, act, deny\np, role:a, demo/pay, act, approve\ng, agent:x, role:a\n";

    async fn load(model: &str) -> Result<Policy, PolicyError> {
        Policy::load(
            (Path::new("model.conf"), model),
            (Path::new("policy.csv"), ROWS),
        )
        .await
    }

    /// Which decisions each waiting effect accepts: approvers always; the principal's
    /// own confirmation only where the effect asks for one, and from the client only
    /// under `confirm_in_client` (so a rule tightened while the call waited holds).
    #[test]
    fn each_effect_accepts_only_the_decisions_it_asks_for() {
        use approval::{Channel, Confirm, NewRequest, Request, Status, Verdict};
        let request = |verdict: Verdict| Request {
            id: "r".into(),
            call: NewRequest {
                call_id: "c".into(),
                session: "s".into(),
                agent: "agent:laptop".into(),
                chain: vec!["user:dana".into(), "agent:laptop".into()],
                intent: None,
                intent_redacted: false,
                server: "demo".into(),
                tool: "send".into(),
                tier: "act".into(),
                args_display: Value::Null,
                args_digest: "d".into(),
                quorum: 1,
                timeout: std::time::Duration::from_secs(1),
                approvers: None,
                confirm: Some(Confirm {
                    by: "user:dana".into(),
                    in_client: true,
                }),
                reason: None,
                task: None,
            },
            binding: "b".into(),
            status: Status::Executed,
            created: 0,
            expires: 1,
            verdicts: vec![verdict],
        };
        let by = |approver: &str, confirmed| Verdict {
            approver: approver.into(),
            approve: true,
            comment: None,
            at: 0,
            confirmed,
        };
        let approved = request(by("user:carol", None));
        let on_page = request(by("user:dana", Some(Channel::Approvals)));
        let in_client = request(by("user:dana", Some(Channel::Client)));
        let accepts = |r: &Request| {
            [Effect::Approve, Effect::Confirm, Effect::ConfirmInClient]
                .map(|e| decided_enough(r, e))
        };
        assert_eq!(accepts(&approved), [true, true, true]);
        assert_eq!(accepts(&on_page), [false, true, true]);
        assert_eq!(accepts(&in_client), [false, false, true]);
        for r in [&approved, &on_page, &in_client] {
            assert!(!decided_enough(r, Effect::Allow) && !decided_enough(r, Effect::Deny));
        }
    }

    /// A model Casbin reads but cannot evaluate would deny every call: it is refused at
    /// load (so a reload keeps the last good policy), on its `[matchers]` line.
    #[tokio::test]
    async fn a_model_casbin_cannot_evaluate_is_refused_on_its_matchers_line() {
        let shipped = include_str!("../policies/model.conf");
        assert!(load(shipped).await.is_ok());
        let line = shipped
            .lines()
            .position(|l| l.starts_with("[matchers]"))
            .unwrap()
            + 1;
        for broken in [
            shipped.replace("keyMatch(r.obj, p.obj)", "keyMatch9(r.obj, p.obj)"),
            shipped.replace("r.act == p.act", "r.act == p.act.missing"),
            shipped.replace("m = g(r.sub, p.sub)", "m = 1 + g(r.sub, p.sub)"),
        ] {
            let Err(PolicyError::Invalid(problems)) = load(&broken).await else {
                panic!("accepted: {broken}");
            };
            let shown = problems[0].to_string();
            assert!(
                shown.contains("the model cannot decide a request"),
                "{shown}"
            );
            assert_eq!(problems[0].line, Some(line), "{shown}");
        }
        let no_matchers = &shipped[..shipped.find("[matchers]").unwrap()];
        assert!(load(no_matchers).await.is_err(), "a model without matchers");
    }
}
