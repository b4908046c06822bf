//! Prompts on the upstreams: listing them (when the server offers prompts at all) and
//! getting one, which takes an [`AttestedAccess`]: decided by policy and audited first.

use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, CompleteResult, CompletionContext, GetPromptRequestParams,
    GetPromptResult, Prompt, Reference,
};
use rmcp::service::ServiceError;

use super::{UpstreamError, Upstreams, unavailable};
use crate::audit::AttestedAccess;

impl Upstreams {
    /// The prompts one upstream offers; none when it does not offer prompts.
    pub async fn list_prompts(&self, server: &str) -> Result<Vec<Prompt>, UpstreamError> {
        let service = self.service(server).await?;
        let offers = service
            .peer()
            .peer_info()
            .is_some_and(|info| info.capabilities.prompts.is_some());
        if !offers {
            return Ok(Vec::new());
        }
        service
            .peer()
            .list_all_prompts()
            .await
            .map_err(|e| unavailable(server, &e))
    }

    /// Complete an argument of an attested prompt; nothing when the upstream offers no
    /// completions.
    pub async fn complete_prompt(
        &self,
        attested: &AttestedAccess,
        argument: ArgumentInfo,
        context: Option<CompletionContext>,
    ) -> Result<CompleteResult, UpstreamError> {
        let access = attested.access();
        let server = access.server.as_str();
        let service = self.service(server).await?;
        let offers = service
            .peer()
            .peer_info()
            .is_some_and(|info| info.capabilities.completions.is_some());
        if !offers {
            return Ok(CompleteResult::default());
        }
        let mut params =
            CompleteRequestParams::new(Reference::for_prompt(access.name.clone()), argument);
        params.context = context;
        match service.peer().complete(params).await {
            Ok(result) => Ok(result),
            Err(ServiceError::McpError(e)) => Err(UpstreamError::Refused {
                server: server.into(),
                message: e.message.to_string(),
            }),
            Err(e) => Err(unavailable(server, &e)),
        }
    }

    /// Get an attested prompt from its upstream.
    pub async fn get_prompt(
        &self,
        attested: &AttestedAccess,
    ) -> Result<GetPromptResult, UpstreamError> {
        let access = attested.access();
        let server = access.server.as_str();
        let service = self.service(server).await?;
        let mut params = GetPromptRequestParams::new(access.name.clone());
        if !access.args.is_empty() {
            params = params.with_arguments(access.args.clone());
        }
        match service.peer().get_prompt(params).await {
            Ok(result) => Ok(result),
            Err(ServiceError::McpError(e)) => Err(UpstreamError::Refused {
                server: server.into(),
                message: e.message.to_string(),
            }),
            Err(e) => Err(unavailable(server, &e)),
        }
    }
}
