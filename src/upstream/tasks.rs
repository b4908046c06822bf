//! The tasks methods on a 2026-07-28 upstream (`tasks/get`, `tasks/update`,
//! `tasks/cancel`), sent for a caller whose task it is (see `gateway::tasks`): each says
//! the caller takes tasks and what else it can be asked.

use rmcp::model::{
    CancelTaskParams, CancelTaskRequest, ClientRequest, ErrorCode, GetTaskParams, GetTaskRequest,
    GetTaskResult, InputResponses, ServerResult, UpdateTaskParams, UpdateTaskRequest,
};
use rmcp::service::PeerRequestOptions;

use super::{Offers, UpstreamError, Upstreams, client, failed, unavailable};

/// One request about an upstream's task (by the upstream's own id).
pub enum TaskOp {
    Get(String),
    Update(String, InputResponses),
    Cancel(String),
}

impl Upstreams {
    /// Send `op` to `server`; the task's state for `Get`, nothing for the others.
    pub async fn task(
        &self,
        server: &str,
        op: TaskOp,
        offers: Offers,
    ) -> Result<Option<GetTaskResult>, UpstreamError> {
        let service = self.service(server).await?;
        let request = match op {
            TaskOp::Get(id) => {
                ClientRequest::GetTaskRequest(GetTaskRequest::new(GetTaskParams::new(id)))
            }
            TaskOp::Update(id, responses) => ClientRequest::UpdateTaskRequest(
                UpdateTaskRequest::new(UpdateTaskParams::new(id, responses)),
            ),
            TaskOp::Cancel(id) => {
                ClientRequest::CancelTaskRequest(CancelTaskRequest::new(CancelTaskParams::new(id)))
            }
        };
        let offers = Offers {
            tasks: true,
            ..offers
        };
        let options =
            PeerRequestOptions::with_timeout(self.timeout).with_meta(client::offering(offers));
        let handle = service
            .peer()
            .send_request_with_option(request, options)
            .await
            .map_err(|e| unavailable(server, &e))?;
        match handle.await_response().await {
            Ok(ServerResult::GetTaskResult(got)) => Ok(Some(got)),
            Ok(ServerResult::TaskAckResult(_) | ServerResult::EmptyResult(_)) => Ok(None),
            Ok(_) => Err(UpstreamError::Refused {
                server: server.into(),
                code: ErrorCode::INTERNAL_ERROR,
                message: "unexpected answer to a tasks request".into(),
            }),
            Err(e) => Err(failed(server, e)),
        }
    }
}
