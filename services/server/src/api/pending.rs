//! Services of the v1 API whose implementation lands with later work: voice
//! callbacks (CallbackService). They answer UNIMPLEMENTED, saying so, rather
//! than pretending to work.

use omniroute_proto::v1 as pb;
use pb::callback_service_server::CallbackService;
use tonic::{Request, Response, Status};

fn pending(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is part of the v1 API but not implemented yet (see the README's API status)"
    ))
}

/// CallbackService: not yet implemented.
#[derive(Debug, Default, Clone)]
pub struct CallbackApi;

#[tonic::async_trait]
impl CallbackService for CallbackApi {
    async fn create_callback(
        &self,
        _: Request<pb::CreateCallbackRequest>,
    ) -> Result<Response<pb::CreateCallbackResponse>, Status> {
        Err(pending("CreateCallback"))
    }

    async fn get_callback(
        &self,
        _: Request<pb::GetCallbackRequest>,
    ) -> Result<Response<pb::GetCallbackResponse>, Status> {
        Err(pending("GetCallback"))
    }

    async fn list_callbacks(
        &self,
        _: Request<pb::ListCallbacksRequest>,
    ) -> Result<Response<pb::ListCallbacksResponse>, Status> {
        Err(pending("ListCallbacks"))
    }

    async fn cancel_callback(
        &self,
        _: Request<pb::CancelCallbackRequest>,
    ) -> Result<Response<pb::CancelCallbackResponse>, Status> {
        Err(pending("CancelCallback"))
    }
}
