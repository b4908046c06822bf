//! Prompts on the upstreams: listing them (when the server offers prompts at all),
//! getting one and completing arguments (of prompts and resource templates), which take an [`AttestedAccess`]: decided by policy and audited first.

use rmcp::model::{
    ArgumentInfo, ClientRequest, CompleteRequestParams, CompleteResult, CompletionContext,
    GetPromptRequest, GetPromptRequestParams, GetPromptResponse, Prompt, Reference, ServerResult,
};

use super::{Round, UpstreamError, Upstreams, failed, unexpected};
use crate::audit::AttestedAccess;
use crate::policy::AccessKind;

impl Upstreams {
    /// The prompts one upstream offers; none when it does not offer prompts.
    pub async fn list_prompts(&self, server: &str) -> Result<Vec<Prompt>, UpstreamError> {
        let Some(service) = self.offering(server, |c| c.prompts.is_some()).await? else {
            return Ok(Vec::new());
        };
        let listed = service.peer().list_all_prompts().await;
        listed.map_err(|e| failed(server, e))
    }

    /// Complete an argument of an attested prompt or resource template; nothing when the
    /// upstream offers no completions.
    pub async fn complete(
        &self,
        attested: &AttestedAccess,
        argument: ArgumentInfo,
        context: Option<CompletionContext>,
    ) -> Result<CompleteResult, UpstreamError> {
        let access = attested.access();
        let server = access.server.as_str();
        let Some(service) = self.offering(server, |c| c.completions.is_some()).await? else {
            return Ok(CompleteResult::default());
        };
        let reference = match access.kind {
            AccessKind::ResourceCompletion => Reference::for_resource(access.name.clone()),
            _ => Reference::for_prompt(access.name.clone()),
        };
        let mut params = CompleteRequestParams::new(reference, argument);
        params.context = context;
        let completed = service.peer().complete(params).await;
        completed.map_err(|e| failed(server, e))
    }

    /// Get an attested prompt from its upstream: its messages, or (from a 2026-07-28
    /// upstream) what it asks first.
    pub async fn get_prompt(
        &self,
        attested: &AttestedAccess,
        round: Round,
    ) -> Result<GetPromptResponse, UpstreamError> {
        let access = attested.access();
        let server = access.server.as_str();
        let mut params = GetPromptRequestParams::new(access.name.clone());
        if !access.args.is_empty() {
            params = params.with_arguments(access.args.clone());
        }
        params.input_responses = round.answers;
        params.request_state = round.state;
        let request = ClientRequest::GetPromptRequest(GetPromptRequest::new(params));
        match self.once(server, request, round.offers).await? {
            ServerResult::GetPromptResult(r) => Ok(GetPromptResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(GetPromptResponse::InputRequired(r)),
            _ => Err(unexpected(server, "prompts/get")),
        }
    }
}
