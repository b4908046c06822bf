//! A tool owner's approval rule: `approval = { approvers = "role:…", quorum = N,
//! timeout = "…", when = { …JSON Schema over the arguments… } }`. Checked and compiled at
//! load; [`ApprovalRule::applies`] says whether a call's arguments need approval under it.
//! Who may approve and what the policy says are not decided here.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::arguments;

/// The most approvers a rule may require.
pub const MAX_QUORUM: u32 = 10;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApprovalRule {
    approvers: Option<String>,
    quorum: Option<i64>,
    timeout: Option<String>,
    when: Option<toml::Value>,
}

/// When a call to a tool needs approval, and whose.
#[derive(Clone)]
pub struct ApprovalRule {
    /// An identity or role (`role:data-owner`) every approver must have, on top of the
    /// `approve` permission.
    pub approvers: Option<String>,
    /// How many distinct approvers must approve.
    pub quorum: u32,
    /// How long a request waits; default: `[approval] timeout`.
    pub timeout: Option<Duration>,
    /// Only arguments matching this JSON Schema need approval; `None`: every call.
    when: Option<(Value, Arc<jsonschema::Validator>)>,
}

impl std::fmt::Debug for ApprovalRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalRule")
            .field("approvers", &self.approvers)
            .field("quorum", &self.quorum)
            .field("timeout", &self.timeout)
            .field("when", &self.when.as_ref().map(|(v, _)| v))
            .finish()
    }
}

impl ApprovalRule {
    /// Whether a call with these arguments needs approval under this rule.
    pub fn applies(&self, args: &Value) -> bool {
        self.when.as_ref().is_none_or(|(_, v)| v.is_valid(args))
    }

    /// The condition, as written, for messages.
    pub fn condition(&self) -> Option<&Value> {
        self.when.as_ref().map(|(v, _)| v)
    }
}

/// Check and compile a raw rule; every problem is a message for the tool's line.
pub(super) fn check(raw: RawApprovalRule) -> Result<ApprovalRule, Vec<String>> {
    let mut problems = Vec::new();
    let quorum = match raw.quorum {
        None => 1,
        Some(q) if (1..=i64::from(MAX_QUORUM)).contains(&q) => u32::try_from(q).unwrap_or(1),
        Some(q) => {
            problems.push(format!(
                "`approval.quorum` {q} must be between 1 and {MAX_QUORUM}"
            ));
            1
        }
    };
    let timeout = raw
        .timeout
        .as_deref()
        .and_then(|t| match humantime::parse_duration(t) {
            Ok(d) if d >= Duration::from_secs(1) => Some(d),
            Ok(_) => {
                problems.push(format!("`approval.timeout` `{t}` must be at least 1s"));
                None
            }
            Err(e) => {
                problems.push(format!(
                    "`approval.timeout` `{t}`: {e} (write e.g. \"10m\")"
                ));
                None
            }
        });
    if let Some(who) = &raw.approvers
        && !crate::config::valid_identity_name(who)
    {
        problems.push(format!(
            "`approval.approvers` `{who}` must be an identity or role such as `role:data-owner`"
        ));
    }
    let when = raw.when.map(|w| serde_json::to_value(&w)).transpose();
    let when = match when {
        Ok(Some(schema @ Value::Object(_))) => match arguments::compile(&schema) {
            Ok(v) => Some((schema, Arc::new(v))),
            Err(e) => {
                problems.push(format!("`approval.when` is not a usable JSON Schema: {e}"));
                None
            }
        },
        Ok(None) => None,
        Ok(Some(_)) | Err(_) => {
            problems.push("`approval.when` must be a table of JSON Schema keywords over the arguments, e.g. { properties = { amount_cents = { minimum = 10000 } }, required = [\"amount_cents\"] }".into());
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ApprovalRule {
        approvers: raw.approvers,
        quorum,
        timeout,
        when,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(text: &str) -> Result<ApprovalRule, Vec<String>> {
        #[derive(Deserialize)]
        struct T {
            approval: RawApprovalRule,
        }
        check(toml::from_str::<T>(text).unwrap().approval)
    }

    #[test]
    fn a_condition_decides_which_calls_need_approval() {
        let r = rule("approval = { quorum = 2, when = { properties = { amount_cents = { minimum = 10000 } }, required = [\"amount_cents\"] } }").unwrap();
        assert_eq!(r.quorum, 2);
        assert!(r.applies(&json!({"amount_cents": 25000})));
        assert!(!r.applies(&json!({"amount_cents": 900})));
        assert!(!r.applies(&json!({})));
        assert!(rule("approval = {}").unwrap().applies(&json!({})));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let errs = rule("approval = { quorum = 0, timeout = \"soon\", approvers = \"data owners\", when = { type = 5 } }").unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].contains("quorum"));
        assert!(errs[1].contains("timeout"));
        assert!(errs[2].contains("role:data-owner"));
        assert!(errs[3].contains("JSON Schema"));
    }
}
