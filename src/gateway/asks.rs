//! Forwarding a decided call while answering what its upstream asks the caller on the way
//! (`sampling/createMessage`, `elicitation/create`, `roots/list`). Each request is put
//! only to this call's client, only if that client offers the capability, and only if
//! policy lets the whole chain be asked for it by this tool (`server/sampling/TOOL`,
//! `server/elicitation/TOOL`, `server/roots/TOOL`, at tier `read`); it is audited as one
//! `access` record (argument digest only) before the client sees it. The client's answer
//! goes back upstream untouched. An elicitation answer comes from the caller's own side
//! and never counts as an approval.
//!
//! The request is awaited in the call's own handler task, so over Streamable HTTP it
//! travels on that call's response stream.

use rmcp::model::{CallToolResponse, ClientResult, ServerRequest};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::State;
use super::answer::Failure;
use crate::audit::Attested;
use crate::manifest::Tier;
use crate::policy::{Access, AccessKind, Call};
use crate::upstream::{AskKind, AskRoute, Downstream, Offers, UpstreamError};

/// Forward `attested` and answer its upstream's requests until the result arrives.
pub async fn forward(
    state: &State,
    attested: &Attested,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResponse, UpstreamError> {
    let call = attested.permitted().call();
    let (asks, mut asked) = mpsc::channel(4);
    let downstream = downstream(call, context, asks, context.ct.clone());
    let forwarded = state.upstreams.forward(attested, downstream);
    tokio::pin!(forwarded);
    loop {
        tokio::select! {
            result = &mut forwarded => return result,
            Some(ask) = asked.recv() => {
                let answer = tokio::select! {
                    answer = put(state, attested, context, ask.kind, ask.request) => answer,
                    // The caller gave up on the call: stop waiting for its answer too.
                    () = context.ct.cancelled() => Err(Failure::ClientCannot("the call was cancelled by the caller".into()).into()),
                };
                let _ = ask.reply.send(answer);
            }
        }
    }
}

/// Where a call forwarded for `context`'s caller reports progress, takes the upstream's
/// questions (`asks`) and learns that it is cancelled (`cancelled`).
pub fn downstream(
    call: &Call,
    context: &RequestContext<RoleServer>,
    asks: mpsc::Sender<crate::upstream::Ask>,
    cancelled: tokio_util::sync::CancellationToken,
) -> Downstream {
    Downstream {
        peer: Some(context.peer.clone()),
        progress_token: context.meta.get_progress_token(),
        cancelled,
        asks: Some(AskRoute {
            session: call.caller.session.clone(),
            asks,
        }),
        offers: offers(context),
        log_level: context.meta.log_level(),
    }
}

/// What `context`'s caller can be asked, and whether it takes tasks.
pub fn offers(context: &RequestContext<RoleServer>) -> Offers {
    context
        .client_capabilities()
        .map(|c| Offers {
            sampling: c.sampling.is_some(),
            elicitation: c.elicitation.is_some(),
            roots: c.roots.is_some(),
            tasks: c.supports_tasks(),
        })
        .unwrap_or_default()
}

/// Decide, audit, then put one request to the caller.
async fn put(
    state: &State,
    attested: &Attested,
    context: &RequestContext<RoleServer>,
    kind: AskKind,
    request: ServerRequest,
) -> Result<ClientResult, ErrorData> {
    decide(state, attested.permitted().call(), context, kind, &request).await?;
    context.peer.send_request(request).await.map_err(|e| {
        let message = format!("the calling client did not answer {}: {e}", kind.method());
        Failure::ClientFailed(message).into()
    })
}

/// Whether the caller of `call` may be asked `request`: its client offers the capability
/// (declared in this request, or when its session opened), and policy lets its whole
/// chain be asked for it by this tool. Decided as its own request, under the policy of
/// now, and audited as an `access` record.
pub async fn decide(
    state: &State,
    call: &Call,
    context: &RequestContext<RoleServer>,
    kind: AskKind,
    request: &ServerRequest,
) -> Result<(), ErrorData> {
    let asker = (call.tool.server.as_str(), call.tool.tool.as_str());
    decide_for(state, &call.caller, asker, context, kind, request).await
}

/// Whether `caller` may be asked `request` by `asker` (its server, and the tool, prompt or
/// resource whose request asked), as [`decide`] says.
pub async fn decide_for(
    state: &State,
    caller: &crate::identity::Caller,
    asker: (&str, &str),
    context: &RequestContext<RoleServer>,
    kind: AskKind,
    request: &ServerRequest,
) -> Result<(), ErrorData> {
    offered(context, kind)?;
    let args = match serde_json::to_value(request) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    let access = Access {
        caller: caller.clone(),
        kind: match kind {
            AskKind::Sampling => AccessKind::Sampling,
            AskKind::Elicitation => AccessKind::Elicitation,
            AskKind::Roots => AccessKind::Roots,
        },
        server: asker.0.to_string(),
        name: asker.1.to_string(),
        tier: Tier::Read,
        args,
    };
    super::attest(state, &state.current(), access)
        .await
        .map(drop)
}

/// Refuse what the caller's client did not say it can do.
fn offered(context: &RequestContext<RoleServer>, kind: AskKind) -> Result<(), ErrorData> {
    let offered = context.client_capabilities().is_some_and(|c| match kind {
        AskKind::Sampling => c.sampling.is_some(),
        AskKind::Elicitation => c.elicitation.is_some(),
        AskKind::Roots => c.roots.is_some(),
    });
    match offered {
        true => Ok(()),
        false => Err(Failure::ClientCannot(format!(
            "the calling client does not support {}",
            kind.method()
        ))
        .into()),
    }
}
