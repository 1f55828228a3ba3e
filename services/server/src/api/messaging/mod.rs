//! MessagingService: accepting messages for durable delivery (the send
//! path is [`send`]) and reading them: messages, timelines paged by count
//! and size, a customer's media, previews of a route.

use omniroute_proto::v1 as pb;
use pb::messaging_service_server::MessagingService;
use prost::Message as _;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::convert;
use super::message_convert::parse_message_name;
use super::{ApiContext, message_convert};
use crate::app::AppError;

mod validate;

pub(super) use validate::send_request;

/// Most sends in one BatchSendMessages call.
pub const MAX_BATCH: usize = 500;

/// The MessagingService implementation.
#[derive(Debug, Clone)]
pub struct MessagingApi {
    ctx: ApiContext,
}

fn message_id(field: &str, name: &str) -> Result<Uuid, AppError> {
    parse_message_name(name).map_err(|e| AppError::invalid(field, e))
}

impl MessagingApi {
    /// The service over a context.
    pub fn new(ctx: ApiContext) -> MessagingApi {
        MessagingApi { ctx }
    }
}

/// A batch item's error, as a unary call would have answered it.
fn item_error(error: AppError) -> pb::BatchItemError {
    let field_violations = match &error {
        AppError::Invalid(violations) => violations
            .iter()
            .map(|v| pb::FieldViolation {
                field: v.field.clone(),
                description: v.description.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let status = Status::from(error);
    pb::BatchItemError {
        code: status.code() as i32,
        message: status.message().to_owned(),
        field_violations,
    }
}

/// Chunk size of media downloads.
const MEDIA_CHUNK: usize = 64 * 1024;

/// The most a page of ListMessages holds, encoded: under the bound every
/// answer keeps, with room for the page token.
const PAGE_BYTES: usize = omniroute_channel::bounds::MAX_ANSWER_BYTES - 4096;

type MediaStream = std::pin::Pin<
    Box<
        dyn tokio_stream::Stream<Item = Result<pb::GetMessageMediaResponse, Status>>
            + std::marker::Send,
    >,
>;

#[tonic::async_trait]
impl MessagingService for MessagingApi {
    type GetMessageMediaStream = MediaStream;

    #[tracing::instrument(skip_all)]
    async fn mark_message_read(
        &self,
        request: Request<pb::MarkMessageReadRequest>,
    ) -> Result<Response<pb::MarkMessageReadResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = message_id("name", &request.get_ref().name)?;
        let message = self.ctx.app.mark_read(&tenant, id).await?;
        Ok(Response::new(pb::MarkMessageReadResponse {
            message: Some(message_convert::message_to_pb(&message)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_message_media(
        &self,
        request: Request<pb::GetMessageMediaRequest>,
    ) -> Result<Response<Self::GetMessageMediaStream>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = message_id("name", &request.get_ref().name)?;
        let (download, filename) = self.ctx.app.media(&tenant, id).await?;
        let size = i64::try_from(download.bytes.len()).unwrap_or(i64::MAX);
        let mut chunks: Vec<pb::GetMessageMediaResponse> = download
            .bytes
            .chunks(MEDIA_CHUNK)
            .map(|chunk| pb::GetMessageMediaResponse {
                data: chunk.to_vec(),
                ..Default::default()
            })
            .collect();
        if chunks.is_empty() {
            chunks.push(pb::GetMessageMediaResponse::default());
        }
        chunks[0].mime_type = download.mime_type;
        chunks[0].filename = filename;
        chunks[0].size_bytes = size;
        tracing::info!(message_id = %id, bytes = size, "media downloaded");
        Ok(Response::new(Box::pin(tokio_stream::iter(
            chunks.into_iter().map(Ok),
        ))))
    }

    #[tracing::instrument(skip_all)]
    async fn preview_route(
        &self,
        request: Request<pb::PreviewRouteRequest>,
    ) -> Result<Response<pb::PreviewRouteResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let Some(send) = request.get_ref().send.as_ref() else {
            return Err(AppError::invalid("send", "the send to preview is required").into());
        };
        let send = send_request(self.ctx.region, send).map_err(|e| match e {
            AppError::Invalid(violations) => AppError::Invalid(
                violations
                    .into_iter()
                    .map(|v| crate::app::Violation::new(format!("send.{}", v.field), v.description))
                    .collect(),
            ),
            other => other,
        })?;
        let crate::app::send::Preview { routed, contact } =
            self.ctx.app.preview(&tenant, &send).await?;
        Ok(Response::new(pb::PreviewRouteResponse {
            route: Some(message_convert::route_to_pb(contact, &routed.route)),
            category: convert::category_to_pb(routed.category) as i32,
            contact: contact.map(convert::contact_name).unwrap_or_default(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let message = self
            .ctx
            .app
            .send(
                &tenant,
                vec![send_request(self.ctx.region, request.get_ref())],
            )
            .await
            .pop()
            .unwrap_or_else(|| Err(AppError::Precondition("not routed".into())))?;
        Ok(Response::new(pb::SendMessageResponse {
            message: Some(message_convert::message_to_pb(&message)),
        }))
    }

    #[tracing::instrument(skip_all, fields(items = request.get_ref().requests.len()))]
    async fn batch_send_messages(
        &self,
        request: Request<pb::BatchSendMessagesRequest>,
    ) -> Result<Response<pb::BatchSendMessagesResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let requests = &request.get_ref().requests;
        if requests.is_empty() || requests.len() > MAX_BATCH {
            return Err(
                AppError::invalid("requests", format!("1 to {MAX_BATCH} sends per call")).into(),
            );
        }
        let sends = requests
            .iter()
            .map(|r| send_request(self.ctx.region, r))
            .collect();
        let results = self
            .ctx
            .app
            .send(&tenant, sends)
            .await
            .into_iter()
            .map(|result| pb::BatchSendResult {
                result: Some(match result {
                    Ok(message) => pb::batch_send_result::Result::Message(
                        message_convert::message_to_pb(&message),
                    ),
                    Err(error) => pb::batch_send_result::Result::Error(item_error(error)),
                }),
            })
            .collect();
        Ok(Response::new(pb::BatchSendMessagesResponse { results }))
    }

    async fn get_message(
        &self,
        request: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = message_id("name", &request.get_ref().name)?;
        let message = self
            .ctx
            .store
            .get_message(&tenant, id)
            .await
            .map_err(AppError::from)?;
        Ok(Response::new(pb::GetMessageResponse {
            message: Some(message_convert::message_to_pb(&message)),
        }))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let contact = convert::contact_id("contact", &req.contact)?;
        let limit = self.ctx.page_size(req.page_size)?;
        let query_key = [&*tenant, "ListMessages", req.contact.as_str()];
        let before = self.ctx.tokens.check(&query_key, &req.page_token)?;
        let mut messages = self
            .ctx
            .store
            .list_messages(&tenant, contact, before, limit + 1)
            .await
            .map_err(AppError::from)?;
        let more = messages.len() > limit;
        messages.truncate(limit);
        // A page ends at `limit` messages or before it would pass the size
        // every answer keeps under, whichever comes first (always at least
        // one message: each fits on its own).
        let mut page = Vec::with_capacity(messages.len());
        let mut bytes = 0;
        for message in &messages {
            let shown = message_convert::message_to_pb(message);
            let size = prost::length_delimiter_len(shown.encoded_len()) + 1 + shown.encoded_len();
            if !page.is_empty() && bytes + size > PAGE_BYTES {
                break;
            }
            bytes += size;
            page.push(shown);
        }
        let next_page_token = if more || page.len() < messages.len() {
            messages[..page.len()]
                .last()
                .map(|m| self.ctx.tokens.issue(&query_key, m.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListMessagesResponse {
            messages: page,
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn cancel_message(
        &self,
        request: Request<pb::CancelMessageRequest>,
    ) -> Result<Response<pb::CancelMessageResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = message_id("name", &request.get_ref().name)?;
        let message = self
            .ctx
            .store
            .cancel_message(&tenant, id)
            .await
            .map_err(AppError::from)?;
        tracing::info!(message_id = %id, "message canceled");
        Ok(Response::new(pb::CancelMessageResponse {
            message: Some(message_convert::message_to_pb(&message)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn retry_message(
        &self,
        request: Request<pb::RetryMessageRequest>,
    ) -> Result<Response<pb::RetryMessageResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = message_id("name", &request.get_ref().name)?;
        let message = self
            .ctx
            .store
            .retry_message(&tenant, id)
            .await
            .map_err(AppError::from)?;
        tracing::info!(message_id = %id, "message requeued by operator");
        Ok(Response::new(pb::RetryMessageResponse {
            message: Some(message_convert::message_to_pb(&message)),
        }))
    }
}
