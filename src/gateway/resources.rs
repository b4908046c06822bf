//! `resources/list`, `resources/templates/list` and `resources/read` through the gateway.
//! A resource's URI is namespaced by putting its upstream's id before its scheme
//! (`note://plan` on upstream `demo` is `demo+note://plan`; ids cannot contain `+`, so
//! the first `+` always splits correctly). Resources are `read`, shown only when policy
//! allows the caller's whole chain (object `server/resources/URI`), and every read is
//! decided and audited (one `access` record) before it is forwarded.

use rmcp::model::{ReadResourceRequestParams, ReadResourceResponse, Resource, ResourceTemplate};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::answer::Failure;
use super::{Snapshot, State};
use crate::identity::Caller;
use crate::manifest::Tier;
use crate::policy::{Access, AccessKind, Effect};

/// The URI a client sees for an upstream's `uri` (unchanged for the upstream without a
/// namespace).
pub(super) fn outer(now: &Snapshot, server: &str, uri: &str) -> String {
    match now.config.upstream(server) {
        Some(u) if !u.namespace => uri.to_string(),
        _ => format!("{server}+{uri}"),
    }
}

/// The resources this caller may read, from every upstream that answers.
pub async fn list(state: &State, now: &Snapshot, caller: &Caller) -> Vec<Resource> {
    let mut visible = Vec::new();
    for server in state.upstreams.ids() {
        match state.upstreams.list_resources(server).await {
            Ok(items) => visible.extend(renamed(now, caller, server, items, "uri")),
            Err(e) => {
                tracing::warn!(server = %server, error = %e, "cannot list upstream resources")
            }
        }
    }
    visible
}

/// The resource templates this caller may use, from every upstream that answers.
pub async fn templates(state: &State, now: &Snapshot, caller: &Caller) -> Vec<ResourceTemplate> {
    let mut visible = Vec::new();
    for server in state.upstreams.ids() {
        match state.upstreams.list_resource_templates(server).await {
            Ok(items) => visible.extend(renamed(now, caller, server, items, "uriTemplate")),
            Err(e) => {
                tracing::warn!(server = %server, error = %e, "cannot list upstream resource templates")
            }
        }
    }
    visible
}

/// Items whose `key` (a URI or URI template) policy lets this caller read, renamed.
fn renamed<T: DeserializeOwned>(
    now: &Snapshot,
    caller: &Caller,
    server: &str,
    items: Vec<Value>,
    key: &str,
) -> Vec<T> {
    items
        .into_iter()
        .filter_map(|mut item| {
            let uri = item.get(key)?.as_str()?.to_string();
            let wanted = access(now, caller, server, &uri);
            let decision = now.policy.decide(caller, &wanted.object(), wanted.tier);
            if decision.effect != Effect::Allow {
                return None;
            }
            *item.get_mut(key)? = Value::String(outer(now, server, &uri));
            serde_json::from_value(item).ok()
        })
        .collect()
}

/// Decide, audit, then read one resource (in rounds, when its upstream asks first: see
/// `inputs`); the contents' URIs are renamed too.
pub async fn read(
    state: &State,
    now: &Snapshot,
    caller: Caller,
    request: ReadResourceRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<ReadResourceResponse, ErrorData> {
    let wanted = access_by_uri(now, &caller, &request.uri)?;
    let server = wanted.server.clone();
    let server = server.as_str();
    let (answers, sealed) = (request.input_responses, request.request_state);
    let read = super::inputs::rounds(state, now, wanted, answers, sealed, context).await?;
    let mut result = match read {
        ReadResourceResponse::Complete(result) => result,
        asks => return Ok(asks),
    };
    result.result_type = Some(rmcp::model::ResultType::COMPLETE);
    let mut value = serde_json::to_value(&result).unwrap_or_default();
    if let Some(contents) = value.get_mut("contents").and_then(Value::as_array_mut) {
        for c in contents {
            if let Some(uri) = c.get_mut("uri") {
                let inner = uri.as_str().unwrap_or_default().to_string();
                *uri = Value::String(outer(now, server, &inner));
            }
        }
    }
    serde_json::from_value(value)
        .map(ReadResourceResponse::Complete)
        .map_err(|e| {
            let message = format!("cannot rename the resource's contents: {e}");
            Failure::Unrelayable(message).into()
        })
}

/// A read of the resource (or template) the client calls `uri`, routed to its upstream.
pub(super) fn access_by_uri(
    now: &Snapshot,
    caller: &Caller,
    uri: &str,
) -> Result<Access, ErrorData> {
    let unknown = || {
        let message = format!(
            "unknown resource `{uri}`: call resources/list to see the resources you may read"
        );
        ErrorData::from(Failure::UnknownResource(message))
    };
    let (upstream, inner) = now.config.route(uri, '+').ok_or_else(unknown)?;
    Ok(access(now, caller, upstream.id.as_str(), inner))
}

/// A read of `uri` on `server`, at the tier the owner's manifest gives it (`read`
/// unless a `[resources."PREFIX"]` entry says otherwise).
pub(super) fn access(now: &Snapshot, caller: &Caller, server: &str, uri: &str) -> Access {
    let tier = now
        .manifests
        .get(server)
        .map_or(Tier::Read, |m| m.resource_tier(uri));
    Access {
        caller: caller.clone(),
        kind: AccessKind::Resource,
        server: server.to_string(),
        name: uri.to_string(),
        tier,
        args: Default::default(),
    }
}

/// `value` with the URIs of its resource links and embedded resources renamed for
/// `server` (tool results, prompt messages), so a client can read what it is pointed at.
/// `structuredContent` is the tool's own data and is left alone.
pub(super) fn rename_links<T>(now: &Snapshot, server: &str, value: T) -> T
where
    T: serde::Serialize + DeserializeOwned,
{
    if now.config.upstream(server).is_some_and(|u| !u.namespace) {
        return value;
    }
    let Ok(mut json) = serde_json::to_value(&value) else {
        return value;
    };
    rename_in(now, server, &mut json);
    serde_json::from_value(json).unwrap_or(value)
}

fn rename_in(now: &Snapshot, server: &str, json: &mut Value) {
    match json {
        Value::Array(items) => items.iter_mut().for_each(|i| rename_in(now, server, i)),
        Value::Object(map) => {
            let kind = map.get("type").and_then(Value::as_str).map(str::to_string);
            let target = match kind.as_deref() {
                Some("resource_link") => map.get_mut("uri"),
                Some("resource") => map.get_mut("resource").and_then(|r| r.get_mut("uri")),
                _ => None,
            };
            if let Some(uri) = target {
                let inner = uri.as_str().unwrap_or_default().to_string();
                *uri = Value::String(outer(now, server, &inner));
            }
            for (key, v) in map.iter_mut() {
                if key != "structuredContent" {
                    rename_in(now, server, v);
                }
            }
        }
        _ => {}
    }
}
