//! What the 2026-07-28 revision asks of the gateway beyond the pipeline: `server/discover`
//! answers with the capabilities this caller can use here, derived from what the
//! running upstreams declare and from the tools policy lets this caller see.

use rmcp::RoleServer;
use rmcp::model::ServerCapabilities;
use rmcp::service::RequestContext;

use super::{Gateway, Snapshot, State};
use crate::identity::Caller;

/// The gateway's capabilities for `caller`: tools when policy lets it see any, logging
/// always; prompts, resources (and their subscriptions), completions and tasks when a
/// running upstream offers them (their lists are filtered per caller as every list is).
pub async fn capabilities_for(
    gateway: &Gateway,
    state: &State,
    now: &Snapshot,
    caller: &Caller,
) -> ServerCapabilities {
    let declared = state.upstreams.declared().await;
    let any = |offers: fn(&ServerCapabilities) -> bool| declared.iter().any(offers);
    let mut caps = every_capability();
    if gateway.visible_tools(now, caller).is_empty() {
        caps.tools = None;
    }
    if !any(|c| c.prompts.is_some()) {
        caps.prompts = None;
    }
    if !any(|c| c.completions.is_some()) {
        caps.completions = None;
    }
    if !any(ServerCapabilities::supports_tasks) {
        drop_tasks(&mut caps);
    }
    match any(|c| c.resources.is_some()) {
        false => caps.resources = None,
        true => {
            let subscribe = any(|c| {
                c.resources
                    .as_ref()
                    .is_some_and(|r| r.subscribe == Some(true))
            });
            if let Some(r) = caps.resources.as_mut() {
                r.subscribe = subscribe.then_some(true);
            }
        }
    }
    caps
}

/// `caps` without the tasks extension when no running upstream makes tasks.
pub async fn without_unoffered_tasks(state: &State, caps: &mut ServerCapabilities) {
    let declared = state.upstreams.declared().await;
    if !declared.iter().any(ServerCapabilities::supports_tasks) {
        drop_tasks(caps);
    }
}

fn drop_tasks(caps: &mut ServerCapabilities) {
    if let Some(extensions) = caps.extensions.as_mut() {
        extensions.remove(rmcp::model::TASKS_EXTENSION_ID);
        if extensions.is_empty() {
            caps.extensions = None;
        }
    }
}

/// Whether the caller speaks 2026-07-28 or later on this request: it has no session, is
/// asked by a result (`InputRequiredResult`), never by a request of ours, and sets its
/// log level per request.
pub fn modern(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| !v.has_initialize())
}

/// Everything the gateway can serve (what `initialize` declares).
#[allow(deprecated)] // logging is deprecated by SEP-2577 but clients still use it
pub fn every_capability() -> ServerCapabilities {
    ServerCapabilities::builder()
        .enable_tools()
        .enable_tool_list_changed()
        .enable_prompts()
        .enable_completions()
        .enable_logging()
        .enable_resources()
        .enable_resources_subscribe()
        .enable_resources_list_changed()
        .enable_prompts_list_changed()
        .enable_tasks()
        .build()
}
