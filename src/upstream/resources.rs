//! Resources on the upstreams: listing resources and templates (when the server offers
//! resources at all), and reading or subscribing to one, which takes an
//! [`AttestedAccess`]: decided by policy and audited first. Lists come back as JSON for
//! the gateway to rename.

use rmcp::model::{
    ClientRequest, ReadResourceRequest, ReadResourceRequestParams, ReadResourceResponse,
    ServerNotification, ServerResult, SubscribeRequestParams, SubscriptionFilter,
    UnsubscribeRequestParams,
};
use serde::Serialize;
use serde_json::Value;

use super::{Round, UpstreamError, UpstreamEvent, Upstreams, failed, unexpected};
use crate::audit::AttestedAccess;

fn as_json<T: Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|r| serde_json::to_value(r).ok())
        .collect()
}

impl Upstreams {
    /// The resources one upstream lists, as JSON; none when it offers no resources.
    pub async fn list_resources(&self, server: &str) -> Result<Vec<Value>, UpstreamError> {
        let Some(service) = self.offering(server, |c| c.resources.is_some()).await? else {
            return Ok(Vec::new());
        };
        let listed = service.peer().list_all_resources().await;
        listed
            .map(|items| as_json(&items))
            .map_err(|e| failed(server, e))
    }

    /// The resource templates one upstream lists, as JSON.
    pub async fn list_resource_templates(&self, server: &str) -> Result<Vec<Value>, UpstreamError> {
        let Some(service) = self.offering(server, |c| c.resources.is_some()).await? else {
            return Ok(Vec::new());
        };
        let listed = service.peer().list_all_resource_templates().await;
        listed
            .map(|items| as_json(&items))
            .map_err(|e| failed(server, e))
    }

    /// Subscribe to an attested resource's updates (when the upstream offers resources;
    /// otherwise nothing will come, which is not an error).
    #[allow(deprecated)] // upstreams speak 2025-11-25, where this is the way to subscribe
    pub async fn subscribe(&self, attested: &AttestedAccess) -> Result<(), UpstreamError> {
        let access = attested.access();
        let server = access.server.as_str();
        let Some(service) = self.offering(server, |c| c.resources.is_some()).await? else {
            return Ok(());
        };
        if super::modern(&service) {
            return self.listen(server, &service, &access.name).await;
        }
        let params = SubscribeRequestParams::new(access.name.clone());
        let done = service.peer().subscribe(params).await;
        done.map_err(|e| failed(server, e))
    }

    /// On a 2026-07-28 upstream a subscription is a `subscriptions/listen` held open:
    /// its updates are reported as any upstream's are, until it is ended.
    async fn listen(
        &self,
        server: &str,
        service: &super::Service,
        uri: &str,
    ) -> Result<(), UpstreamError> {
        let filter = SubscriptionFilter::builder()
            .resource_subscription(uri)
            .build();
        let mut listening = service
            .peer()
            .listen(filter)
            .await
            .map_err(|e| failed(server, e))?;
        let (events, id) = (self.events.clone(), server.to_string());
        let task = tokio::spawn(async move {
            while let Ok(Some(note)) = listening.next().await {
                if let ServerNotification::ResourceUpdatedNotification(n) = note {
                    let _ = events.send(UpstreamEvent::ResourceUpdated(id.clone(), n.params.uri));
                }
            }
        });
        let key = (server.to_string(), uri.to_string());
        if let Ok(mut listens) = self.listens.lock()
            && let Some(old) = listens.insert(key, task.abort_handle())
        {
            old.abort();
        }
        Ok(())
    }

    /// Stop an upstream's updates for `uri` (nobody is subscribed any more).
    #[allow(deprecated)] // upstreams speak 2025-11-25, where this is the way to unsubscribe
    pub async fn unsubscribe(&self, server: &str, uri: &str) -> Result<(), UpstreamError> {
        let key = (server.to_string(), uri.to_string());
        if let Some(listen) = self.listens.lock().ok().and_then(|mut l| l.remove(&key)) {
            listen.abort();
            return Ok(());
        }
        let Some(service) = self.offering(server, |c| c.resources.is_some()).await? else {
            return Ok(());
        };
        let params = UnsubscribeRequestParams::new(uri.to_string());
        let done = service.peer().unsubscribe(params).await;
        done.map_err(|e| failed(server, e))
    }

    /// Read an attested resource (its name is the upstream's own URI): its contents, or
    /// (from a 2026-07-28 upstream) what it asks first.
    pub async fn read_resource(
        &self,
        attested: &AttestedAccess,
        round: Round,
    ) -> Result<ReadResourceResponse, UpstreamError> {
        let access = attested.access();
        let server = access.server.as_str();
        let mut params = ReadResourceRequestParams::new(access.name.clone());
        params.input_responses = round.answers;
        params.request_state = round.state;
        let request = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(params));
        match self.once(server, request, round.offers).await? {
            ServerResult::ReadResourceResult(r) => Ok(ReadResourceResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
            _ => Err(unexpected(server, "resources/read")),
        }
    }
}
