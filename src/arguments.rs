//! Argument checks: a tool's own `inputSchema` plus its manifest's per-argument
//! constraints (JSON Schema, compiled once, offline: a `$ref` is never fetched) and path
//! and URL rules (see `rules`), applied to every call. This module does not know tiers,
//! callers or policy.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::rules::ArgRule;

/// The compiled argument checks of one tool.
#[derive(Clone)]
pub struct ArgumentCheck {
    schema: Arc<jsonschema::Validator>,
    constraints: Option<Arc<jsonschema::Validator>>,
    rules: Arc<[(String, ArgRule)]>,
}

impl std::fmt::Debug for ArgumentCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgumentCheck").finish_non_exhaustive()
    }
}

/// Why a schema could not be compiled, or why arguments were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgumentsError {
    #[error("the tool's input schema cannot be used: {0}")]
    ToolSchema(String),
    #[error("the manifest's argument constraints cannot be used: {0}")]
    Constraints(String),
    #[error("argument `{pointer}` is invalid: {message}")]
    Invalid { pointer: String, message: String },
    #[error("argument `{pointer}` violates the tool owner's constraint: {message}")]
    Violates { pointer: String, message: String },
}

/// Compile a JSON Schema with no network or file access.
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .offline()
        .build(schema)
        .map_err(|e| e.masked().to_string())
}

/// The schema that applies the manifest's per-argument constraints: every constrained
/// argument must be present and satisfy its constraint.
pub fn constraints_schema(constraints: &Map<String, Value>) -> Value {
    let required: Vec<&String> = constraints.keys().collect();
    json!({ "type": "object", "properties": constraints, "required": required })
}

impl ArgumentCheck {
    /// Compile a tool's input schema and its manifest constraints and rules.
    pub fn compile(
        input_schema: &Value,
        constraints: &Map<String, Value>,
        rules: &[(String, ArgRule)],
    ) -> Result<Self, ArgumentsError> {
        let schema = compile(input_schema).map_err(ArgumentsError::ToolSchema)?;
        let constraints = if constraints.is_empty() {
            None
        } else {
            let compiled =
                compile(&constraints_schema(constraints)).map_err(ArgumentsError::Constraints)?;
            Some(Arc::new(compiled))
        };
        Ok(Self {
            schema: Arc::new(schema),
            constraints,
            rules: rules.into(),
        })
    }

    /// Check arguments (an object, intent already removed). The first violation is
    /// reported, naming the argument but never echoing its value.
    pub fn check(&self, args: &Value) -> Result<(), ArgumentsError> {
        // The common case, valid arguments, without collecting errors.
        let constraints_hold = || self.constraints.as_ref().is_none_or(|c| c.is_valid(args));
        if self.schema.is_valid(args) && constraints_hold() {
            return self.check_rules(args);
        }
        if let Some(e) = self.schema.iter_errors(args).next() {
            return Err(ArgumentsError::Invalid {
                pointer: pointer_of(&e),
                message: e.masked().to_string(),
            });
        }
        if let Some(e) = self
            .constraints
            .as_ref()
            .and_then(|c| c.iter_errors(args).next())
        {
            return Err(ArgumentsError::Violates {
                pointer: pointer_of(&e),
                message: e.masked().to_string(),
            });
        }
        Ok(())
    }
}

impl ArgumentCheck {
    /// The path and URL rules, on arguments the schemas already passed (each ruled
    /// argument is required by them).
    fn check_rules(&self, args: &Value) -> Result<(), ArgumentsError> {
        for (arg, rule) in self.rules.iter() {
            let Some(value) = args.get(arg) else {
                continue;
            };
            if let Err((index, message)) = rule.check(value) {
                let pointer = match index {
                    Some(i) => format!("/{arg}/{i}"),
                    None => format!("/{arg}"),
                };
                let kind = match rule {
                    ArgRule::Path(_) => "path",
                    ArgRule::Url(_) => "url",
                };
                return Err(ArgumentsError::Violates {
                    pointer,
                    message: format!("the value {message} (`{kind}` rule)"),
                });
            }
        }
        Ok(())
    }
}

fn pointer_of(e: &jsonschema::ValidationError<'_>) -> String {
    let p = e.instance_path().as_str().to_string();
    if p.is_empty() { "/".into() } else { p }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constraints(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn tool_schema_and_constraints_both_apply() {
        let schema = json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]});
        let check = ArgumentCheck::compile(
            &schema,
            &constraints(json!({"path": {"pattern": "^/srv/"}})),
            &[],
        )
        .unwrap();
        assert!(check.check(&json!({"path": "/srv/a"})).is_ok());
        let own = check.check(&json!({"path": 3})).unwrap_err();
        assert!(
            matches!(own, ArgumentsError::Invalid { ref pointer, .. } if pointer == "/path"),
            "{own:?}"
        );
        let owner = check.check(&json!({"path": "/etc/passwd"})).unwrap_err();
        assert!(
            matches!(owner, ArgumentsError::Violates { ref pointer, .. } if pointer == "/path"),
            "{owner:?}"
        );
        assert!(
            !owner.to_string().contains("passwd"),
            "values are never echoed: {owner}"
        );
    }

    #[test]
    fn a_constrained_argument_must_be_present() {
        let schema = json!({"type": "object"});
        let check = ArgumentCheck::compile(
            &schema,
            &constraints(json!({"path": {"pattern": "^/srv/"}})),
            &[],
        )
        .unwrap();
        assert!(check.check(&json!({})).is_err());
    }

    #[test]
    fn remote_refs_are_never_fetched() {
        let schema = json!({"$ref": "http://127.0.0.1:9/schema.json"});
        assert!(matches!(
            ArgumentCheck::compile(&schema, &Map::new(), &[]),
            Err(ArgumentsError::ToolSchema(_))
        ));
    }
}
