//! Services of the v1 API whose implementation lands with later work: the
//! messaging pipeline (MessagingService, EventService) and voice callbacks
//! (CallbackService). They answer UNIMPLEMENTED, saying so, rather than
//! pretending to work.

use std::pin::Pin;

use omniroute_proto::v1 as pb;
use pb::callback_service_server::CallbackService;
use pb::event_service_server::EventService;
use pb::messaging_service_server::MessagingService;
use tonic::{Request, Response, Status};

fn pending(rpc: &str) -> Status {
    Status::unimplemented(format!(
        "{rpc} is part of the v1 API but not implemented yet (see the README's API status)"
    ))
}

/// MessagingService: not yet implemented.
#[derive(Debug, Default, Clone)]
pub struct MessagingApi;

#[tonic::async_trait]
impl MessagingService for MessagingApi {
    async fn send_message(
        &self,
        _: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        Err(pending("SendMessage"))
    }

    async fn batch_send_messages(
        &self,
        _: Request<pb::BatchSendMessagesRequest>,
    ) -> Result<Response<pb::BatchSendMessagesResponse>, Status> {
        Err(pending("BatchSendMessages"))
    }

    async fn get_message(
        &self,
        _: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        Err(pending("GetMessage"))
    }

    async fn list_messages(
        &self,
        _: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        Err(pending("ListMessages"))
    }

    async fn cancel_message(
        &self,
        _: Request<pb::CancelMessageRequest>,
    ) -> Result<Response<pb::CancelMessageResponse>, Status> {
        Err(pending("CancelMessage"))
    }

    async fn retry_message(
        &self,
        _: Request<pb::RetryMessageRequest>,
    ) -> Result<Response<pb::RetryMessageResponse>, Status> {
        Err(pending("RetryMessage"))
    }
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

/// EventService: not yet implemented.
#[derive(Debug, Default, Clone)]
pub struct EventApi;

type EventStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for EventApi {
    type SubscribeStream = EventStream;

    async fn subscribe(
        &self,
        _: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(pending("Subscribe"))
    }
}
