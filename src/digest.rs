//! Digests: SHA-256 over RFC 8785 canonical JSON, written `sha256:<hex>`. Used for
//! argument digests, tool-definition pins and the audit hash chain; owns no policy about
//! what is digested.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `sha256:<hex>` of raw bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256:<hex>` of the RFC 8785 canonical form of a JSON value, so the digest does not
/// depend on key order or number formatting.
pub fn canonical(value: &Value) -> String {
    match serde_json_canonicalizer::to_vec(value) {
        Ok(bytes) => sha256(&bytes),
        // Only non-finite floats fail to canonicalize, and serde_json cannot hold them;
        // fall back to the plain serialization so a digest is still produced.
        Err(_) => sha256(value.to_string().as_bytes()),
    }
}

/// The fields of a tool definition its pin covers.
pub const PINNED_FIELDS: [&str; 5] = [
    "name",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];

/// The part of a tool definition its pin covers (absent and null fields left out).
pub fn pinned_part(definition: &Value) -> Value {
    let mut pinned = Map::new();
    for key in PINNED_FIELDS {
        if let Some(v) = definition.get(key).filter(|v| !v.is_null()) {
            pinned.insert(key.to_string(), v.clone());
        }
    }
    Value::Object(pinned)
}

/// The pin of a tool definition: the canonical digest of its name, description, input
/// schema, output schema and annotations (absent fields are left out).
pub fn tool_pin(definition: &Value) -> String {
    canonical(&pinned_part(definition))
}

/// The pinned fields that differ between two tool definitions, compared canonically
/// (key order and number formatting do not count as changes).
pub fn changed_fields(before: &Value, after: &Value) -> Vec<&'static str> {
    let field = |d: &Value, key: &str| d.get(key).filter(|v| !v.is_null()).map(canonical);
    PINNED_FIELDS
        .into_iter()
        .filter(|key| field(before, key) != field(after, key))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_digest_ignores_key_order() {
        assert_eq!(
            canonical(&json!({"a": 1, "b": [1, 2]})),
            canonical(&json!({"b": [1, 2], "a": 1}))
        );
        assert_ne!(canonical(&json!({"a": 1})), canonical(&json!({"a": 2})));
    }

    #[test]
    fn pin_covers_description_but_not_title() {
        let tool = json!({"name": "t", "description": "d", "inputSchema": {"type": "object"}});
        let retitled = json!({"name": "t", "title": "x", "description": "d", "inputSchema": {"type": "object"}});
        let redescribed =
            json!({"name": "t", "description": "e", "inputSchema": {"type": "object"}});
        assert_eq!(tool_pin(&tool), tool_pin(&retitled));
        assert_ne!(tool_pin(&tool), tool_pin(&redescribed));
        assert!(tool_pin(&tool).starts_with("sha256:"));
    }

    #[test]
    fn changed_fields_names_exactly_the_fields_that_differ() {
        let tool = json!({"name": "t", "description": "d", "inputSchema": {"type": "object", "properties": {"a": {}, "b": {}}}});
        let reordered = json!({"inputSchema": {"properties": {"b": {}, "a": {}}, "type": "object"}, "description": "d", "name": "t", "title": "new"});
        assert!(changed_fields(&tool, &reordered).is_empty());
        let drifted = json!({"name": "t", "description": "e", "inputSchema": {"type": "object"}, "annotations": {"readOnlyHint": true}});
        assert_eq!(
            changed_fields(&tool, &drifted),
            vec!["description", "inputSchema", "annotations"]
        );
        let nulled = json!({"name": "t", "description": "d", "inputSchema": tool["inputSchema"], "outputSchema": null});
        assert!(changed_fields(&tool, &nulled).is_empty(), "null is absent");
    }
}
