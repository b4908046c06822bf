//! The demo server's prompts: one that reads (a note summary request) and one a tool
//! owner may tier higher (a customer reply draft), so prompt policy can be shown and
//! tested. It knows nothing of the gateway.

use std::collections::BTreeMap;

use rmcp::ErrorData;
use rmcp::model::{GetPromptResult, Prompt, PromptArgument, PromptMessage, Role};
use serde_json::{Map, Value};

pub fn list() -> Vec<Prompt> {
    let title = || {
        Some(vec![
            PromptArgument::new("title")
                .with_description("the note's title")
                .with_required(true),
        ])
    };
    vec![
        Prompt::new(
            "summarize_note",
            Some("Ask for a one-line summary of a note."),
            title(),
        ),
        Prompt::new(
            "customer_reply",
            Some("Draft a reply to a customer about a note's subject."),
            title(),
        ),
    ]
}

/// The prompt's messages, or an error a client can act on.
pub fn get(
    name: &str,
    args: &Map<String, Value>,
    notes: &BTreeMap<String, String>,
) -> Result<GetPromptResult, ErrorData> {
    let title = args
        .get("title")
        .and_then(Value::as_str)
        .ok_or_else(|| ErrorData::invalid_params("argument `title` is required", None))?;
    let note = notes
        .get(title)
        .ok_or_else(|| ErrorData::invalid_params(format!("no note `{title}`"), None))?;
    let text = match name {
        "summarize_note" => format!("Summarize this note in one line:\n\n{note}"),
        "customer_reply" => format!("Draft a friendly reply to the customer about:\n\n{note}"),
        other => {
            return Err(ErrorData::invalid_params(
                format!("unknown prompt `{other}`"),
                None,
            ));
        }
    };
    Ok(GetPromptResult::new(vec![PromptMessage::new_text(
        Role::User,
        text,
    )]))
}
