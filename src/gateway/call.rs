//! The `tools/call` pipeline: catalog → integrity → intent → arguments → policy → audit
//! "attempt" → upstream → audit "outcome". Every refusal is audited and answered in
//! [`reply`], the one place that turns a refusal into an MCP answer.

use std::sync::Arc;

use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, MetaObject};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Map, Value, json};

use super::State;
use crate::arguments::ArgumentsError;
use crate::audit::{AuditError, Outcome, Refusal, Stage};
use crate::catalog::{CatalogError, ToolRef, ToolState};
use crate::digest;
use crate::identity::Caller;
use crate::intent::{self, IntentError};
use crate::policy::{Call, Decision, Effect};
use crate::upstream::UpstreamError;

/// Why a call was not made (or did not finish).
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error(transparent)]
    Unknown(#[from] CatalogError),
    /// A tool whose definition no longer matches its pin (the message says what changed
    /// and how the owner re-pins).
    #[error("{0}")]
    Quarantined(String),
    #[error("`{tool}` cannot be called: {reason}; ask the tool owner to fix its schema")]
    Unusable { tool: String, reason: String },
    #[error(transparent)]
    Intent(#[from] IntentError),
    #[error(transparent)]
    Arguments(#[from] ArgumentsError),
    #[error("{0}")]
    Denied(String),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl CallError {
    fn stage(&self) -> Stage {
        match self {
            CallError::Unknown(_) => Stage::Catalog,
            CallError::Quarantined(_) | CallError::Unusable { .. } => Stage::Integrity,
            CallError::Intent(_) => Stage::Intent,
            CallError::Arguments(_) => Stage::Arguments,
            CallError::Denied(_) => Stage::Policy,
            CallError::Audit(_) => Stage::Audit,
            CallError::Upstream(_) => Stage::Upstream,
        }
    }
}

/// Run one `tools/call` through every stage.
pub async fn run(
    state: &Arc<State>,
    caller: Caller,
    request: CallToolRequestParams,
    context: RequestContext<RoleServer>,
) -> Result<CallToolResult, ErrorData> {
    let call_id = uuid::Uuid::new_v4().to_string();
    let meta = request
        .meta
        .as_ref()
        .map(|m| &m.0.0)
        .unwrap_or(&context.meta.0.0);
    let mut args = request.arguments.clone().unwrap_or_default();
    // The whole call is decided under this one snapshot, whatever a reload does meanwhile.
    let now = state.current();
    let tool = match now.catalog.resolve(&request.name) {
        Ok(tool) => tool,
        Err(e) => {
            return refuse(
                state,
                Pending::new(&call_id, &caller, &request.name),
                e.into(),
                None,
            )
            .await;
        }
    };
    let pending = Pending {
        tool: Some(&tool),
        ..Pending::new(&call_id, &caller, &request.name)
    };
    if let Err(e) = integrity(&tool) {
        return refuse(
            state,
            Pending {
                args: Some(&args),
                ..pending
            },
            e,
            None,
        )
        .await;
    }
    let intent = match intent::take(
        &mut args,
        meta.get(intent::META_KEY),
        &now.config.intent_field,
        tool.intent_injected,
        tool.tier,
    ) {
        Ok(intent) => intent,
        Err(e) => {
            return refuse(
                state,
                Pending {
                    args: Some(&args),
                    ..pending
                },
                e.into(),
                None,
            )
            .await;
        }
    };
    let (checked, args) = check_args(&tool, args);
    let pending = Pending {
        args: Some(&args),
        intent: intent.as_deref(),
        ..pending
    };
    if let Err(e) = checked {
        return refuse(state, pending, e.into(), None).await;
    }
    let call = Call {
        id: call_id.clone(),
        caller: caller.clone(),
        tool: tool.clone(),
        args: args.clone(),
        intent: intent.clone(),
        trace: trace(meta),
    };
    let authorized = match now.policy.authorize(call, None) {
        Err(r) if r.decision.effect == Effect::Approve => {
            super::approve::obtain(state, &now.policy, r, &context).await
        }
        other => other,
    };
    let permitted = match authorized {
        Ok(p) => p,
        Err(refused) => {
            return refuse(
                state,
                pending,
                CallError::Denied(refused.message.clone()),
                Some(&refused.decision),
            )
            .await;
        }
    };
    let attested = match state.audit.attempt(permitted).await {
        Ok(a) => a,
        Err((p, e)) => return refuse(state, pending, e.into(), Some(p.decision())).await,
    };
    let result = super::asks::forward(state, &attested, &context)
        .await
        .map(|r| {
            let links = r
                .content
                .iter()
                .any(|c| c.as_resource_link().is_some() || c.as_resource().is_some());
            match links {
                true => super::resources::rename_links(state, &tool.server, r),
                false => r,
            }
        });
    let outcome = match &result {
        Ok(r) => Outcome::Result {
            is_error: r.is_error == Some(true),
            digest: digest::canonical(&serde_json::to_value(r).unwrap_or_default()),
        },
        Err(e) => Outcome::Unknown {
            reason: e.to_string(),
        },
    };
    if let Err(e) = state.audit.outcome(&attested, &outcome).await {
        tracing::error!(call = %call_id, error = %e, "the outcome of a forwarded call could not be audited");
    }
    match result {
        Ok(r) => Ok(r),
        Err(e) => reply(&call_id, CallError::Upstream(e)),
    }
}

/// What is known about a call when it is refused.
struct Pending<'a> {
    call_id: &'a str,
    caller: &'a Caller,
    requested: &'a str,
    tool: Option<&'a ToolRef>,
    args: Option<&'a Map<String, Value>>,
    intent: Option<&'a str>,
}

impl<'a> Pending<'a> {
    fn new(call_id: &'a str, caller: &'a Caller, requested: &'a str) -> Self {
        Self {
            call_id,
            caller,
            requested,
            tool: None,
            args: None,
            intent: None,
        }
    }
}

/// Check the arguments against the tool's schema and its owner's constraints (moved into
/// a JSON value for the check and back out, not copied).
fn check_args(
    tool: &ToolRef,
    args: Map<String, Value>,
) -> (Result<(), ArgumentsError>, Map<String, Value>) {
    let Some(check) = tool.args.as_ref() else {
        return (Ok(()), args);
    };
    let value = Value::Object(args);
    let checked = check.check(&value);
    match value {
        Value::Object(args) => (checked, args),
        _ => (checked, Map::new()),
    }
}

fn integrity(tool: &ToolRef) -> Result<(), CallError> {
    match &tool.state {
        ToolState::Ready => Ok(()),
        ToolState::Quarantined {
            pinned,
            live,
            changed,
        } => Err(CallError::Quarantined(quarantined(
            tool,
            pinned,
            live,
            changed.as_deref(),
        ))),
        ToolState::Unusable(reason) => Err(CallError::Unusable {
            tool: tool.name.clone(),
            reason: reason.clone(),
        }),
    }
}

/// What a caller is told about a quarantined tool: which fields changed (names only: the
/// new text may be an injection aimed at the model) and how its owner re-pins it.
fn quarantined(tool: &ToolRef, pinned: &str, live: &str, changed: Option<&[String]>) -> String {
    let changed = changed
        .map(|c| format!("changed: {}", c.join(", ")))
        .unwrap_or_else(|| "which fields changed is not known here".into());
    let file = tool
        .manifest_file
        .as_ref()
        .map(|f| format!("`{f}`"))
        .unwrap_or_else(|| "its manifest".into());
    format!(
        "`{}` is quarantined: its definition changed since its owner pinned it ({changed}; pinned {pinned}, now {live}); \
         ask the tool owner to review the change with `mcp-warden manifest pin --upstream {} --tool {}`, \
         update `pin` in {file} if it is safe, and reload the gateway",
        tool.name, tool.server, tool.tool
    )
}

/// W3C trace context from the request `_meta`, kept in the audit record.
fn trace(meta: &Map<String, Value>) -> Map<String, Value> {
    ["traceparent", "tracestate", "baggage"]
        .iter()
        .filter_map(|k| meta.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

/// Audit a refusal, then answer it.
async fn refuse(
    state: &State,
    p: Pending<'_>,
    error: CallError,
    decision: Option<&Decision>,
) -> Result<CallToolResult, ErrorData> {
    let message = error.to_string();
    let refusal = Refusal {
        call_id: p.call_id,
        caller: p.caller,
        requested: p.requested,
        tool: p.tool,
        args: p.args,
        intent: p.intent,
        stage: error.stage(),
        decision,
        error: &message,
    };
    if let Err(e) = state.audit.refusal(&refusal).await {
        tracing::error!(call = %p.call_id, error = %e, "a refused call could not be audited");
    }
    tracing::info!(call = %p.call_id, tool = %p.requested, agent = %p.caller.agent(), stage = ?error.stage(), "refused: {message}");
    reply(p.call_id, error)
}

/// The one place a refusal becomes an MCP answer: an unknown tool is a protocol error
/// (the request cannot be routed); everything else is a tool error the caller can read
/// and act on, with `isError: true`.
fn reply(call_id: &str, error: CallError) -> Result<CallToolResult, ErrorData> {
    let stage = error.stage();
    match error {
        CallError::Unknown(e) => Err(ErrorData::invalid_params(
            e.to_string(),
            Some(json!({ "call_id": call_id })),
        )),
        other => {
            let mut result = CallToolResult::error(vec![ContentBlock::text(other.to_string())]);
            let mut meta = Map::new();
            meta.insert(
                "io.mcp-warden/refusal".into(),
                json!({ "call_id": call_id, "stage": stage }),
            );
            result.meta = Some(MetaObject(meta));
            Ok(result)
        }
    }
}
