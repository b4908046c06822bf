//! The tasks methods on a 2026-07-28 upstream (`tasks/get`, `tasks/update`,
//! `tasks/cancel`), sent for a caller whose task it is (see `gateway::tasks`): each says
//! the caller takes tasks and what else it can be asked.

use super::{Offers, UpstreamError, Upstreams};
use rmcp::model::{
    CancelTaskParams, CancelTaskRequest, ClientRequest, ErrorCode, GetTaskParams, GetTaskRequest,
    GetTaskResult, InputResponses, ServerResult, UpdateTaskParams, UpdateTaskRequest,
};

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
        match self.once(server, request, offers).await? {
            ServerResult::GetTaskResult(got) => Ok(Some(got)),
            ServerResult::TaskAckResult(_) | ServerResult::EmptyResult(_) => Ok(None),
            _ => Err(UpstreamError::Refused {
                server: server.into(),
                code: ErrorCode::INTERNAL_ERROR,
                message: "unexpected answer to a tasks request".into(),
            }),
        }
    }
}
