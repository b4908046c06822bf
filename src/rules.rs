//! Argument rules that understand what they check, beside JSON Schema's text patterns: a
//! `path` rule parses its value as a path and keeps it inside the tool owner's roots; a
//! `url` rule parses its value as a URL, its host as an address in every form a resolver
//! takes, and keeps it to the owner's schemes and hosts and away from private, loopback,
//! link-local and cloud metadata addresses. Parsed once at load ([`ArgRule::parse`]),
//! applied to every call ([`ArgRule::check`]); a refusal names the rule, never the value.
//! It does not know tools, manifests or callers.

use serde_json::{Map, Value};

mod net;
mod path;

pub use net::UrlRule;
pub use path::PathRule;

/// One argument's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgRule {
    Path(PathRule),
    Url(UrlRule),
}

/// The keys of an argument's constraint table that name a rule, not JSON Schema.
pub const RULE_KEYS: [&str; 2] = ["path", "url"];

impl ArgRule {
    /// The rule in an argument's constraint table (`path = { … }` or `url = { … }`), if
    /// it has one; its other keys are JSON Schema and left alone.
    pub fn parse(constraint: &Map<String, Value>) -> Result<Option<Self>, String> {
        match (constraint.get("path"), constraint.get("url")) {
            (None, None) => Ok(None),
            (Some(p), None) => PathRule::parse(table(p, "path")?).map(|r| Some(Self::Path(r))),
            (None, Some(u)) => UrlRule::parse(table(u, "url")?).map(|r| Some(Self::Url(r))),
            (Some(_), Some(_)) => Err("an argument is a `path` or a `url`, not both".into()),
        }
    }

    /// Check an argument's value: a string, or each string of an array (a list of paths
    /// or URLs). Err names what is wrong and, for an array, which element (its index).
    pub fn check(&self, value: &Value) -> Result<(), (Option<usize>, String)> {
        let one = |s: &str| match self {
            Self::Path(rule) => rule.check(s),
            Self::Url(rule) => rule.check(s),
        };
        match value {
            Value::String(s) => one(s).map_err(|e| (None, e)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| match item {
                    Value::String(s) => one(s).map_err(|e| (Some(i), e)),
                    _ => Err((Some(i), "is not a string".into())),
                }),
            _ => Err((None, "is not a string or a list of strings".into())),
        }
    }

    /// What the rule allows, in a sentence (for `check`).
    pub fn explain(&self) -> String {
        match self {
            Self::Path(rule) => rule.explain(),
            Self::Url(rule) => rule.explain(),
        }
    }
}

fn table<'v>(value: &'v Value, name: &str) -> Result<&'v Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("`{name}` must be a table, e.g. {name} = {{ … }}"))
}

/// Keys of a rule's table that it does not know.
fn unknown(rule: &str, table: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    match table.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(format!(
            "`{rule}` has no setting `{k}`; it knows {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => Ok(()),
    }
}

/// A list of strings setting `key` of `rule`.
fn strings(rule: &str, table: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match table.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("`{rule}.{key}` must be a list of strings"))
            })
            .collect(),
        Some(_) => Err(format!("`{rule}.{key}` must be a list of strings")),
    }
}

/// Whether `s` holds a control character (C0, DEL or C1): a NUL ends a C string early,
/// a newline starts another line, and URL parsers drop tabs and newlines silently.
fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}
