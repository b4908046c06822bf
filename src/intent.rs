//! The caller's stated intent: taken out of the arguments (the property the catalog
//! added) or out of `_meta["io.mcp-warden/intent"]`, and required for `transform` and
//! `act` calls. Intent is evidence for the audit log and approvers, never authority.

use serde_json::{Map, Value};

use crate::manifest::Tier;

/// The `_meta` key a caller may use instead of the argument.
pub const META_KEY: &str = "io.mcp-warden/intent";

/// The longest intent accepted, in characters.
pub const MAX_LEN: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    #[error(
        "missing `{field}`: add the `{field}` argument with one sentence saying why you are making this \
         call (or put it in `_meta[\"{META_KEY}\"]`); `{tier}` tools require it"
    )]
    Missing { field: String, tier: Tier },
    #[error("`{field}` must be a string: one sentence saying why you are making this call")]
    NotAString { field: String },
    #[error("`{field}` is longer than {MAX_LEN} characters: say why in one sentence")]
    TooLong { field: String },
}

/// Remove the intent from `args` (when the gateway injected the property) and fall back
/// to `_meta`; then require it for tiers that need one. Returns the trimmed intent.
pub fn take(
    args: &mut Map<String, Value>,
    meta: Option<&Value>,
    field: &str,
    injected: bool,
    tier: Tier,
) -> Result<Option<String>, IntentError> {
    let from_args = if injected { args.remove(field) } else { None };
    let value = from_args.or_else(|| meta.cloned());
    let intent = match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Some(_) => {
            return Err(IntentError::NotAString {
                field: field.into(),
            });
        }
    };
    if intent.as_ref().is_some_and(|s| s.chars().count() > MAX_LEN) {
        return Err(IntentError::TooLong {
            field: field.into(),
        });
    }
    match (intent, tier) {
        (None, Tier::Transform | Tier::Act) => Err(IntentError::Missing {
            field: field.into(),
            tier,
        }),
        (intent, _) => Ok(intent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn intent_is_stripped_from_arguments() {
        let mut a = args(json!({"path": "/x", "intent": " read the plan "}));
        let intent = take(&mut a, None, "intent", true, Tier::Act).unwrap();
        assert_eq!(intent.as_deref(), Some("read the plan"));
        assert_eq!(Value::Object(a), json!({"path": "/x"}));
    }

    #[test]
    fn meta_intent_is_accepted() {
        let mut a = args(json!({}));
        let meta = json!("because");
        assert_eq!(
            take(&mut a, Some(&meta), "intent", true, Tier::Act)
                .unwrap()
                .as_deref(),
            Some("because")
        );
    }

    #[test]
    fn missing_intent_is_refused_for_transform_and_act_only() {
        for tier in [Tier::Transform, Tier::Act] {
            let err = take(
                &mut args(json!({"intent": "  "})),
                None,
                "intent",
                true,
                tier,
            )
            .unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("missing `intent`: add the `intent` argument"),
                "{err}"
            );
        }
        assert_eq!(
            take(&mut args(json!({})), None, "intent", true, Tier::Read).unwrap(),
            None
        );
    }

    #[test]
    fn a_tool_with_its_own_intent_argument_keeps_it() {
        let mut a = args(json!({"intent": "tool data"}));
        let err = take(&mut a, None, "intent", false, Tier::Act).unwrap_err();
        assert!(matches!(err, IntentError::Missing { .. }));
        assert_eq!(a["intent"], "tool data");
    }

    #[test]
    fn non_string_intent_is_refused() {
        assert!(matches!(
            take(
                &mut args(json!({"intent": 5})),
                None,
                "intent",
                true,
                Tier::Read
            ),
            Err(IntentError::NotAString { .. })
        ));
    }
}
