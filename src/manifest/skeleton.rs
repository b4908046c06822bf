//! Writing manifests for tool owners: a skeleton for an upstream's live tools (each with
//! a suggested tier and its current pin, plus commented-out examples of constraints and
//! an approval rule), and re-pinning tools in an existing manifest's text without
//! disturbing anything else in it. The suggested tier is never laxer than the server's
//! annotations imply, and a tool that says nothing is `act`.

use serde_json::Value;

use super::Tier;
use crate::digest;

/// The tier to suggest for a live tool definition:
/// - `read` only when the server says `readOnlyHint: true`;
/// - `transform` when it says `destructiveHint: false` and not `openWorldHint: true`;
/// - `act` otherwise (annotations default to destructive, and unknown means `act`).
pub fn suggest_tier(definition: &Value) -> Tier {
    let hint = |k: &str| {
        definition
            .pointer(&format!("/annotations/{k}"))
            .and_then(Value::as_bool)
    };
    match (
        hint("readOnlyHint"),
        hint("destructiveHint"),
        hint("openWorldHint"),
    ) {
        (Some(true), _, _) => Tier::Read,
        (_, Some(false), open) if open != Some(true) => Tier::Transform,
        _ => Tier::Act,
    }
}

/// A TOML string literal.
pub fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A manifest for `server` listing every tool in `live`.
pub fn skeleton(server: &str, live: &[Value]) -> String {
    let mut out = format!(
        "# Manifest for upstream `{server}`, written by `mcp-warden manifest init`.\n\
         # Review each tool's tier (suggested from its annotations, never laxer; unknown = act)\n\
         # and its definition before shipping. After a reviewed change upstream, run\n\
         # `mcp-warden manifest pin --upstream {server}`.\n\
         server = {}\nowner = \"\"                            # the team that answers for these tools\n",
        quoted(server)
    );
    for def in live {
        let Some(name) = def.get("name").and_then(Value::as_str) else {
            continue;
        };
        let about = def
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        let key = toml_key(name);
        out.push_str(&format!(
            "\n# {}\n[tools.{key}]\ntier = \"{}\"\npin = \"{}\"\n\
             # [tools.{key}.arguments]          # extra JSON Schema per argument, e.g.\n\
             # path = {{ pattern = \"^/srv/data/\" }}\n\
             # redact = [\"/secret\"]            # JSON pointers kept out of the audit log\n\
             # approval = {{ approvers = \"role:data-owner\", quorum = 1, timeout = \"10m\" }}\n",
            one_line(about),
            suggest_tier(def).as_str(),
            digest::tool_pin(def)
        ));
    }
    out
}

fn one_line(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(100).collect()
}

/// A table key: bare when it can be, quoted otherwise.
pub fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match bare {
        true => name.to_string(),
        false => quoted(name),
    }
}

/// `text` with tool `name`'s `pin` set to `pin` (replacing its `pin` line, or adding one
/// after the table header); `None` when the manifest has no table for the tool.
pub fn repin(text: &str, name: &str, pin: &str) -> Option<String> {
    let headers = [
        format!("[tools.{}]", toml_key(name)),
        format!("[tools.{}]", quoted(name)),
    ];
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| headers.iter().any(|h| l.trim() == h))?;
    let end = lines
        .iter()
        .skip(start + 1)
        .position(|l| l.trim_start().starts_with('['))
        .map_or(lines.len(), |i| start + 1 + i);
    let line = format!("pin = \"{pin}\"");
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let existing = (start + 1..end).find(|&i| {
        out.get(i)
            .is_some_and(|l| l.trim_start().starts_with("pin") && l.contains('='))
    });
    match existing {
        Some(i) => {
            if let Some(l) = out.get_mut(i) {
                *l = line;
            }
        }
        None => out.insert(start + 1, line),
    }
    let mut joined = out.join("\n");
    if text.ends_with('\n') {
        joined.push('\n');
    }
    Some(joined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tiers_are_suggested_from_annotations_and_never_laxer() {
        let t = |a: Value| suggest_tier(&json!({"name": "x", "annotations": a}));
        assert_eq!(t(json!({"readOnlyHint": true})), Tier::Read);
        assert_eq!(t(json!({"destructiveHint": false})), Tier::Transform);
        assert_eq!(
            t(json!({"destructiveHint": false, "openWorldHint": true})),
            Tier::Act
        );
        assert_eq!(t(json!({"readOnlyHint": false})), Tier::Act);
        assert_eq!(t(json!({})), Tier::Act);
        assert_eq!(suggest_tier(&json!({"name": "x"})), Tier::Act);
    }

    #[test]
    fn repin_replaces_or_adds_the_pin_and_keeps_everything_else() {
        let text = "server = \"s\"\n# keep me\n[tools.a]\ntier = \"read\"\npin = \"sha256:old\"\n\n[tools.\"b.c\"]\ntier = \"act\"\n";
        let a = repin(text, "a", "sha256:new").unwrap();
        assert_eq!(a, text.replace("sha256:old", "sha256:new"));
        let b = repin(text, "b.c", "sha256:b").unwrap();
        assert!(
            b.contains("[tools.\"b.c\"]\npin = \"sha256:b\"\ntier = \"act\"\n"),
            "{b}"
        );
        assert!(b.contains("# keep me") && b.contains("sha256:old"));
        assert!(repin(text, "missing", "x").is_none());
    }
}
