//! The one place a failure becomes an MCP answer, for every method. A tool call that
//! was refused or failed is a tool result with `isError: true` (the caller can read it
//! and act on it), except an unknown tool, which cannot be routed; every other method has
//! no such result and answers a JSON-RPC error. The stages say what went wrong; this
//! module alone says how a client hears it.

use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock, MetaObject};
use serde_json::{Map, json};

use crate::audit::{AuditError, Stage};
use crate::policy::AccessKind;
use crate::upstream::UpstreamError;

/// Why a request other than a successful one got no answer from its upstream.
#[derive(Debug)]
pub enum Failure {
    /// A tool no upstream offers this caller (the request cannot be routed), or a call
    /// carrying a `requestState` that is not ours for it: invalid params, with the call id.
    UnknownTool { message: String, call_id: String },
    /// A prompt no upstream offers this caller.
    UnknownPrompt(String),
    /// A resource no upstream offers this caller.
    UnknownResource(String),
    /// Parameters the gateway cannot use (what is wrong is in the message).
    Malformed(String),
    /// Refused by policy (the refusal is already audited).
    Refused {
        message: String,
        object: String,
        kind: AccessKind,
    },
    /// Its audit record could not be written, so it was not forwarded.
    NotAudited(AuditError),
    /// The upstream failed, or could not be reached.
    Upstream(UpstreamError),
    /// The upstream's answer could not be passed on.
    Unrelayable(String),
    /// What a relayed request needs from the calling client it lacks or withholds:
    /// a capability it did not declare, or a call it cancelled.
    ClientCannot(String),
    /// The calling client failed to answer a relayed request.
    ClientFailed(String),
    /// Gateway state that is unavailable (a poisoned lock): refused, nothing forwarded.
    Unavailable(&'static str),
}

impl From<Failure> for ErrorData {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::UnknownTool { message, call_id } => {
                ErrorData::invalid_params(message, Some(json!({ "call_id": call_id })))
            }
            Failure::UnknownPrompt(message) | Failure::Malformed(message) => {
                ErrorData::invalid_params(message, None)
            }
            Failure::UnknownResource(message) => ErrorData::resource_not_found(message, None),
            // A refused request answers as the method answers what it cannot give: a
            // prompt or completion the caller may not have is invalid params (MCP's code
            // for an unknown prompt), a resource it may not read is "resource not found";
            // an upstream's request the policy refuses is not a request it may make.
            Failure::Refused {
                message,
                object,
                kind,
            } => {
                let data = Some(json!({ "object": object }));
                match kind {
                    AccessKind::Prompt
                    | AccessKind::PromptCompletion
                    | AccessKind::ResourceCompletion
                    | AccessKind::TaskGet
                    | AccessKind::TaskUpdate
                    | AccessKind::TaskCancel => ErrorData::invalid_params(message, data),
                    AccessKind::Resource | AccessKind::Subscription => {
                        ErrorData::resource_not_found(message, data)
                    }
                    AccessKind::Sampling | AccessKind::Elicitation | AccessKind::Roots => {
                        ErrorData::invalid_request(message, data)
                    }
                }
            }
            Failure::NotAudited(e) => {
                ErrorData::internal_error(format!("{e}; the request was not forwarded"), None)
            }
            // The upstream's own refusal keeps its code; a failure to reach it is ours.
            Failure::Upstream(e @ UpstreamError::Refused { code, .. }) => {
                ErrorData::new(code, e.to_string(), None)
            }
            Failure::Upstream(UpstreamError::NeedsCapability { message, data, .. }) => {
                ErrorData::new(
                    rmcp::model::ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY,
                    message,
                    data,
                )
            }
            Failure::Upstream(e) => ErrorData::internal_error(e.to_string(), None),
            Failure::ClientCannot(message) => ErrorData::invalid_request(message, None),
            Failure::Unrelayable(message) | Failure::ClientFailed(message) => {
                ErrorData::internal_error(message, None)
            }
            Failure::Unavailable(what) => ErrorData::internal_error(what, None),
        }
    }
}

/// A refused or failed tool call as the tool result the caller reads: the message, and
/// `_meta["io.mcp-warden/refusal"]` with the call's id and the stage that stopped it.
pub fn tool_refusal(call_id: &str, stage: Stage, message: String) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(message)]);
    let mut meta = Map::new();
    meta.insert(
        "io.mcp-warden/refusal".into(),
        json!({ "call_id": call_id, "stage": stage }),
    );
    result.meta = Some(MetaObject(meta));
    result
}
