//! `prompts/list`, `prompts/get` and prompt-argument `completion/complete` through the gateway: prompts are namespaced like
//! tools (`server_prompt`), tiered by the owner's manifest (`read` unless it says
//! otherwise), shown only when policy allows the whole chain, and every get is decided
//! and audited (one `access` record) before it is forwarded. A refusal is a JSON-RPC
//! error: prompts have no tool-error result.

use rmcp::model::{
    CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResponse, Prompt,
    Reference,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::json;

use super::answer::Failure;
use super::{Snapshot, State};
use crate::config::SEPARATOR;
use crate::identity::Caller;
use crate::manifest::Tier;
use crate::policy::{Access, AccessKind, Effect};

/// The prompts this caller may get, from every upstream that answers.
pub async fn list(state: &State, now: &Snapshot, caller: &Caller) -> Vec<Prompt> {
    let mut visible = Vec::new();
    for server in state.upstreams.ids() {
        let prompts = match state.upstreams.list_prompts(server).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(server = %server, error = %e, "cannot list upstream prompts");
                continue;
            }
        };
        for mut prompt in prompts {
            let kind = AccessKind::Prompt;
            let access = access(now, caller, server, &prompt.name, kind, Default::default());
            let decision = now.policy.decide(caller, &access.object(), access.tier);
            if decision.effect == Effect::Allow {
                if now.config.upstream(server).is_none_or(|u| u.namespace) {
                    prompt.name = format!("{server}{SEPARATOR}{}", prompt.name);
                }
                visible.push(prompt);
            }
        }
    }
    visible
}

/// Decide, audit, then get one prompt (in rounds, when its upstream asks first: see
/// `inputs`).
pub async fn get(
    state: &State,
    now: &Snapshot,
    caller: Caller,
    request: GetPromptRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<GetPromptResponse, ErrorData> {
    let args = request.arguments.clone().unwrap_or_default();
    let (server, name) = route(now, &request.name)?;
    let access = access(now, &caller, &server, name, AccessKind::Prompt, args);
    let (answers, sealed) = (request.input_responses, request.request_state);
    let got = super::inputs::rounds(state, now, access, answers, sealed, context).await?;
    Ok(match got {
        GetPromptResponse::Complete(mut r) => {
            r = super::resources::rename_links(now, &server, r);
            r.result_type = Some(rmcp::model::ResultType::COMPLETE);
            GetPromptResponse::Complete(r)
        }
        asks => asks,
    })
}

/// Decide (as a get of the prompt, or a read of the resource template), audit, then
/// complete one of its arguments.
pub async fn complete(
    state: &State,
    now: &Snapshot,
    caller: Caller,
    request: CompleteRequestParams,
) -> Result<CompleteResult, ErrorData> {
    let mut args = serde_json::Map::new();
    args.insert(request.argument.name.clone(), json!(request.argument.value));
    let access = match &request.r#ref {
        Reference::Prompt(prompt) => {
            let (server, name) = route(now, &prompt.name)?;
            let kind = AccessKind::PromptCompletion;
            access(now, &caller, &server, name, kind, args)
        }
        Reference::Resource(template) => {
            let mut read = super::resources::access_by_uri(now, &caller, &template.uri)?;
            read.kind = AccessKind::ResourceCompletion;
            read.args = args;
            read
        }
        _ => {
            let message = "unknown kind of completion reference: use ref/prompt or ref/resource";
            return Err(Failure::Malformed(message.into()).into());
        }
    };
    let attested = super::attest(state, now, access).await?;
    state
        .upstreams
        .complete(&attested, request.argument, request.context)
        .await
        .map_err(|e| Failure::Upstream(e).into())
}

/// `server_prompt` → (server, prompt) for a configured server.
fn route<'a>(now: &Snapshot, name: &'a str) -> Result<(String, &'a str), ErrorData> {
    let unknown = || {
        let message =
            format!("unknown prompt `{name}`: call prompts/list to see the prompts you may use");
        ErrorData::from(Failure::UnknownPrompt(message))
    };
    let (upstream, prompt) = now.config.route(name, SEPARATOR).ok_or_else(unknown)?;
    Ok((upstream.id.clone(), prompt))
}

fn access(
    now: &Snapshot,
    caller: &Caller,
    server: &str,
    name: &str,
    kind: AccessKind,
    args: serde_json::Map<String, serde_json::Value>,
) -> Access {
    let tier = now
        .manifests
        .get(server)
        .and_then(|m| m.prompts.get(name).copied())
        .unwrap_or(Tier::Read);
    Access {
        caller: caller.clone(),
        kind,
        server: server.to_string(),
        name: name.to_string(),
        tier,
        args,
    }
}
