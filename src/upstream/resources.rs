//! Resources on the upstreams: listing resources and templates (when the server offers
//! resources at all) and reading one, which takes an [`AttestedAccess`]: decided by
//! policy and audited first. Lists come back as JSON for the gateway to rename.

use rmcp::model::{ReadResourceRequestParams, ReadResourceResult};
use rmcp::service::ServiceError;
use serde_json::Value;

use super::{Service, UpstreamError, Upstreams, unavailable};
use crate::audit::AttestedAccess;

impl Upstreams {
    /// The running connection, if the upstream offers resources.
    async fn with_resources(
        &self,
        server: &str,
    ) -> Result<Option<std::sync::Arc<Service>>, UpstreamError> {
        let service = self.service(server).await?;
        let offers = service
            .peer()
            .peer_info()
            .is_some_and(|info| info.capabilities.resources.is_some());
        Ok(offers.then_some(service))
    }

    /// The resources one upstream lists, as JSON; none when it offers no resources.
    pub async fn list_resources(&self, server: &str) -> Result<Vec<Value>, UpstreamError> {
        let Some(service) = self.with_resources(server).await? else {
            return Ok(Vec::new());
        };
        let listed = service.peer().list_all_resources().await;
        let items = listed.map_err(|e| unavailable(server, &e))?;
        Ok(items
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect())
    }

    /// The resource templates one upstream lists, as JSON.
    pub async fn list_resource_templates(&self, server: &str) -> Result<Vec<Value>, UpstreamError> {
        let Some(service) = self.with_resources(server).await? else {
            return Ok(Vec::new());
        };
        let listed = service.peer().list_all_resource_templates().await;
        let items = listed.map_err(|e| unavailable(server, &e))?;
        Ok(items
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect())
    }

    /// Subscribe to an attested resource's updates (when the upstream offers
    /// subscriptions; otherwise nothing will come, which is not an error).
    #[allow(deprecated)] // upstreams speak 2025-11-25, where this is the way to subscribe
    pub async fn subscribe(&self, attested: &AttestedAccess) -> Result<(), UpstreamError> {
        let access = attested.access();
        let server = access.server.as_str();
        let Some(service) = self.with_resources(server).await? else {
            return Ok(());
        };
        let params = rmcp::model::SubscribeRequestParams::new(access.name.clone());
        service
            .peer()
            .subscribe(params)
            .await
            .map_err(|e| unavailable(server, &e))
    }

    /// Stop an upstream's updates for `uri` (nobody is subscribed any more).
    #[allow(deprecated)] // upstreams speak 2025-11-25, where this is the way to subscribe
    pub async fn unsubscribe(&self, server: &str, uri: &str) -> Result<(), UpstreamError> {
        let Some(service) = self.with_resources(server).await? else {
            return Ok(());
        };
        let params = rmcp::model::UnsubscribeRequestParams::new(uri.to_string());
        service
            .peer()
            .unsubscribe(params)
            .await
            .map_err(|e| unavailable(server, &e))
    }

    /// Read an attested resource (its name is the upstream's own URI).
    pub async fn read_resource(
        &self,
        attested: &AttestedAccess,
    ) -> Result<ReadResourceResult, UpstreamError> {
        let access = attested.access();
        let server = access.server.as_str();
        let service = self.service(server).await?;
        let params = ReadResourceRequestParams::new(access.name.clone());
        match service.peer().read_resource(params).await {
            Ok(result) => Ok(result),
            Err(ServiceError::McpError(e)) => Err(UpstreamError::Refused {
                server: server.into(),
                message: e.message.to_string(),
            }),
            Err(e) => Err(unavailable(server, &e)),
        }
    }
}
