//! The demo server's resources: each note as `note://TITLE` (listed, and as the template
//! `note://{title}`), so resource pass-through can be shown and tested. It knows nothing
//! of the gateway.

use std::collections::BTreeMap;

use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use serde_json::json;

pub fn list(notes: &BTreeMap<String, String>) -> Vec<Resource> {
    notes
        .keys()
        .filter_map(|title| {
            serde_json::from_value(json!({
                "uri": format!("note://{title}"),
                "name": title,
                "mimeType": "text/plain",
            }))
            .ok()
        })
        .collect()
}

pub fn templates() -> Vec<ResourceTemplate> {
    serde_json::from_value(json!([{
        "uriTemplate": "note://{title}",
        "name": "note",
        "description": "A note by its title.",
        "mimeType": "text/plain",
    }]))
    .unwrap_or_default()
}

pub fn read(uri: &str, notes: &BTreeMap<String, String>) -> Result<ReadResourceResult, ErrorData> {
    let note = uri
        .strip_prefix("note://")
        .and_then(|title| notes.get(title))
        .ok_or_else(|| ErrorData::resource_not_found(format!("no resource `{uri}`"), None))?;
    Ok(ReadResourceResult::new(vec![ResourceContents::text(
        note.clone(),
        uri,
    )]))
}
