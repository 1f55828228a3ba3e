//! MessagingService: accepting messages for durable delivery and reading them.
//!
//! A send is validated whole, its recipient resolved (an unknown address
//! creates the contact), its channel chosen by routing, and then the message,
//! its dispatch job and its event are committed in one transaction before the
//! call answers. From then on the dispatcher owns it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use omniroute_channel::{Address, Category, Channel, Content};
use omniroute_proto::v1 as pb;
use omniroute_store::{
    ChannelOverride, Contact, ContactState, NewContact, NewMessage, Priority, StoreError,
};
use pb::messaging_service_server::MessagingService;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::convert::{self, parse_contact_name};
use super::error::{ApiError, Violations};
use super::message_convert::parse_message_name;
use super::{ApiContext, message_convert, message_validate};
use crate::pipeline::routing;

/// Most sends in one BatchSendMessages call.
pub const MAX_BATCH: usize = 500;
const MAX_REF_LEN: usize = 256;
const MAX_METADATA: usize = 32;

/// The MessagingService implementation.
#[derive(Debug, Clone)]
pub struct MessagingApi {
    ctx: ApiContext,
}

/// Who a send is for, as validated.
#[derive(Debug, Clone)]
enum Recipient {
    Contact(Uuid),
    ExternalRef(String),
    Address(Address),
}

/// A validated send, before its recipient is resolved.
#[derive(Debug, Clone)]
struct Send {
    recipient: Recipient,
    category: Category,
    content: Content,
    overrides: Vec<ChannelOverride>,
    channel: Option<Channel>,
    priority: Option<Priority>,
    correlation_ref: String,
    metadata: BTreeMap<String, String>,
    send_time: Option<SystemTime>,
    expire_time: Option<SystemTime>,
    reply_to: Option<Uuid>,
    idempotency_key: Option<String>,
}

/// What makes two sends the same request, for idempotency.
#[derive(Serialize)]
struct Fingerprint<'a> {
    recipient: String,
    category: Category,
    content: &'a Content,
    overrides: &'a [ChannelOverride],
    channel: Option<Channel>,
    priority: Option<Priority>,
    correlation_ref: &'a str,
    metadata: &'a BTreeMap<String, String>,
    send_time: Option<i64>,
    expire_time: Option<i64>,
    reply_to: Option<Uuid>,
}

impl Send {
    fn request_hash(&self) -> String {
        let recipient = match &self.recipient {
            Recipient::Contact(id) => format!("contact:{id}"),
            Recipient::ExternalRef(r) => format!("ref:{r}"),
            Recipient::Address(a) => format!("address:{}:{}", a.channel(), a.key()),
        };
        let fingerprint = Fingerprint {
            recipient,
            category: self.category,
            content: &self.content,
            overrides: &self.overrides,
            channel: self.channel,
            priority: self.priority,
            correlation_ref: &self.correlation_ref,
            metadata: &self.metadata,
            send_time: self.send_time.map(omniroute_store::to_micros),
            expire_time: self.expire_time.map(omniroute_store::to_micros),
            reply_to: self.reply_to,
        };
        let bytes = serde_json::to_vec(&fingerprint).unwrap_or_default();
        Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

fn message_id(field: &str, name: &str) -> Result<Uuid, ApiError> {
    parse_message_name(name).map_err(|e| ApiError::invalid(field, e))
}

fn timestamp(
    v: &mut Violations,
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Option<SystemTime> {
    let t = value?;
    v.check(
        field,
        SystemTime::try_from(*t).map_err(|_| "not a valid timestamp"),
    )
}

impl MessagingApi {
    /// The service over a context.
    pub fn new(ctx: ApiContext) -> MessagingApi {
        MessagingApi { ctx }
    }

    /// Validates a whole send request; reports every bad field at once.
    fn validate(&self, req: &pb::SendMessageRequest) -> Result<Send, ApiError> {
        use pb::send_message_request::Recipient as R;
        let mut v = Violations::default();
        let recipient = match &req.recipient {
            None => {
                v.add(
                    "recipient",
                    "one of contact, external_ref or address is required",
                );
                None
            }
            Some(R::Contact(name)) => v
                .check("contact", parse_contact_name(name))
                .map(Recipient::Contact),
            Some(R::ExternalRef(r)) if r.trim().is_empty() => {
                v.add("external_ref", "must not be empty");
                None
            }
            Some(R::ExternalRef(r)) => Some(Recipient::ExternalRef(r.trim().to_owned())),
            Some(R::Address(identity)) => {
                convert::address(&mut v, "address", Some(identity), self.ctx.region)
                    .map(Recipient::Address)
            }
        };
        let Some(m) = req.message.as_ref() else {
            v.add("message", "a message is required");
            return Err(v.finish().unwrap_err());
        };
        let category = v.check("message.category", convert::category(m.category));
        let content = message_validate::content(&mut v, "message.content", m.content.as_ref());
        let overrides = message_validate::overrides(&mut v, "message.overrides", &m.overrides);
        let channel = match m.channel {
            0 => None,
            value => v.check("message.channel", convert::channel(value)),
        };
        let priority = v
            .check("message.priority", message_validate::priority(m.priority))
            .flatten();
        if m.correlation_ref.chars().count() > MAX_REF_LEN {
            v.add(
                "message.correlation_ref",
                format!("longer than {MAX_REF_LEN} characters"),
            );
        }
        let metadata = convert::string_map(&mut v, "message.metadata", &m.metadata, MAX_METADATA);
        let now = SystemTime::now();
        let send_time = timestamp(&mut v, "message.send_time", m.send_time.as_ref());
        let expire_time = timestamp(&mut v, "message.expire_time", m.expire_time.as_ref());
        if let Some(expire) = expire_time {
            if expire <= now {
                v.add("message.expire_time", "lies in the past");
            } else if send_time.is_some_and(|s| s >= expire) {
                v.add("message.expire_time", "must be later than send_time");
            }
        }
        let reply_to = match m.reply_to.as_str() {
            "" => None,
            name => v.check("message.reply_to", parse_message_name(name)),
        };
        let key = req.idempotency_key.trim();
        if key.chars().count() > MAX_REF_LEN || key.chars().any(char::is_control) {
            v.add(
                "idempotency_key",
                format!("at most {MAX_REF_LEN} printable characters"),
            );
        }
        // The agent line is dialled: it must be a real phone number.
        let content = match content {
            Some(Content::CallbackRequest(mut callback)) => {
                let agent = v.check(
                    "message.content.callback_request.agent_address",
                    Address::parse(Channel::Voice, &callback.agent_address, self.ctx.region),
                );
                if let Some(agent) = agent {
                    callback.agent_address = agent.value().to_owned();
                }
                Some(Content::CallbackRequest(callback))
            }
            other => other,
        };
        v.finish()?;
        let (Some(recipient), Some(category), Some(content)) = (recipient, category, content)
        else {
            return Err(ApiError::invalid("message", "incomplete"));
        };
        Ok(Send {
            recipient,
            category,
            content,
            overrides,
            channel,
            priority,
            correlation_ref: m.correlation_ref.clone(),
            metadata,
            send_time,
            expire_time,
            reply_to,
            idempotency_key: Some(key.to_owned()).filter(|k| !k.is_empty()),
        })
    }

    /// The contact a send goes to; an unknown address creates it.
    async fn resolve(&self, tenant: &str, recipient: &Recipient) -> Result<Contact, ApiError> {
        let store = &self.ctx.store;
        let contact = match recipient {
            Recipient::Contact(id) => store.get_contact(tenant, *id).await?,
            Recipient::ExternalRef(r) => {
                store
                    .find_by_external_ref(tenant, r)
                    .await?
                    .ok_or_else(|| {
                        ApiError::NotFound("no contact has this external reference".into())
                    })?
            }
            Recipient::Address(address) => {
                let keys = [(address.channel(), address.key().to_owned())];
                match store.find_by_keys(tenant, &keys).await? {
                    Some(contact) => contact,
                    None => {
                        let created = store
                            .create_contact(
                                tenant,
                                NewContact {
                                    identities: vec![address.clone()],
                                    ..NewContact::default()
                                },
                            )
                            .await;
                        match created {
                            Ok(contact) => {
                                tracing::info!(contact = %contact.id, identity = %address, "contact created by a send");
                                contact
                            }
                            // A concurrent send created it first.
                            Err(StoreError::IdentityTaken { .. }) => store
                                .find_by_keys(tenant, &keys)
                                .await?
                                .ok_or_else(|| ApiError::NotFound("contact vanished".into()))?,
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            }
        };
        if contact.state == ContactState::Erased {
            return Err(ApiError::Precondition(format!(
                "{} is erased",
                convert::contact_name(contact.id)
            )));
        }
        Ok(contact)
    }

    /// The approved category of the template the first planned channel would
    /// send, when its provider keeps a catalogue.
    fn template_category(
        &self,
        tenant: &str,
        send: &Send,
        route: &omniroute_store::RouteDecision,
    ) -> Option<Category> {
        let channel = route.plan.first()?.channel;
        let content = send
            .overrides
            .iter()
            .find(|o| o.channel == channel)
            .map_or(&send.content, |o| &o.content);
        let Content::Template(template) = content else {
            return None;
        };
        self.ctx.adapters.get(&channel)?.template_category(
            tenant,
            &template.name,
            &template.language,
        )
    }

    /// Checks the content each planned channel would send against that
    /// channel's own rules (sizes, the approved template catalogue).
    fn check_content(
        &self,
        tenant: &str,
        send: &Send,
        route: &omniroute_store::RouteDecision,
    ) -> Result<(), ApiError> {
        let mut v = Violations::default();
        for planned in &route.plan {
            let Some(adapter) = self.ctx.adapters.get(&planned.channel) else {
                continue;
            };
            let (prefix, content) = match send
                .overrides
                .iter()
                .position(|o| o.channel == planned.channel)
            {
                Some(i) => (
                    format!("message.overrides[{i}].content"),
                    &send.overrides[i].content,
                ),
                None => ("message.content".to_owned(), &send.content),
            };
            for violation in adapter.check_content(tenant, content) {
                v.add(
                    format!("{prefix}.{}", violation.field),
                    violation.description,
                );
            }
        }
        v.finish()
    }

    /// Accepts one send: validation, resolution, routing, one commit.
    async fn send(
        &self,
        tenant: &str,
        req: &pb::SendMessageRequest,
    ) -> Result<omniroute_store::Message, ApiError> {
        let mut send = self.validate(req)?;
        let contact = self.resolve(tenant, &send.recipient).await?;
        let preferences = self.ctx.store.get_preferences(tenant, contact.id).await?;
        let now = omniroute_store::now();
        let plan = |category| {
            routing::plan(
                send.channel,
                category,
                &contact,
                &preferences.channels,
                &self.ctx.channels,
                now,
            )
            .map_err(|e| ApiError::Precondition(e.to_string()))
        };
        let mut route = plan(send.category)?;
        // A template's approved category is what the provider enforces: a
        // marketing template is marketing whatever the caller said, so it
        // meets the marketing opt-outs and priority.
        if let Some(category) = self.template_category(tenant, &send, &route)
            && category != send.category
        {
            tracing::debug!(from = %send.category, to = %category, "category taken from the approved template");
            send.category = category;
            route = plan(category)?;
        }
        self.check_content(tenant, &send, &route)?;
        let request_hash = send.request_hash();
        let accepted = self
            .ctx
            .store
            .accept_message(
                tenant,
                NewMessage {
                    contact_id: contact.id,
                    category: send.category,
                    content: send.content,
                    overrides: send.overrides,
                    route,
                    priority: send
                        .priority
                        .unwrap_or(Priority::for_category(send.category)),
                    correlation_ref: send.correlation_ref,
                    metadata: send.metadata,
                    send_time: send.send_time,
                    expire_time: send.expire_time,
                    reply_to: send.reply_to,
                    idempotency_key: send.idempotency_key,
                    request_hash,
                },
            )
            .await?;
        let message = accepted.message().clone();
        match accepted {
            omniroute_store::Accepted::New(_) => {
                tracing::debug!(message_id = %message.id, contact = %message.contact_id, "message accepted")
            }
            omniroute_store::Accepted::Replayed(_) => {
                tracing::debug!(message_id = %message.id, "idempotent replay")
            }
        }
        Ok(message)
    }
}

/// A batch item's error, as a unary call would have answered it.
fn item_error(error: ApiError) -> pb::BatchItemError {
    let field_violations = match &error {
        ApiError::Invalid(violations) => violations
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
        let message = self
            .ctx
            .store
            .get_message(&tenant, id)
            .await
            .map_err(ApiError::from)?;
        let (omniroute_store::Direction::Inbound, Some(channel), Some(provider_id)) = (
            message.direction,
            message.channel,
            &message.provider_message_id,
        ) else {
            return Err(ApiError::Precondition(format!(
                "messages/{id} is not a message from a customer"
            ))
            .into());
        };
        let Some(adapter) = self.ctx.adapters.get(&channel) else {
            return Err(ApiError::Precondition(format!("{channel} is not configured")).into());
        };
        adapter
            .mark_read(&tenant, provider_id)
            .await
            .map_err(|e| match e.class() {
                omniroute_channel::ErrorClass::Unsupported
                | omniroute_channel::ErrorClass::Permanent
                | omniroute_channel::ErrorClass::Configuration => {
                    Status::failed_precondition(format!("cannot mark it read: {}", e.message()))
                }
                _ => Status::unavailable(format!(
                    "the provider did not take the read receipt: {}",
                    e.message()
                )),
            })?;
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
        let message = self
            .ctx
            .store
            .get_message(&tenant, id)
            .await
            .map_err(ApiError::from)?;
        let (Some(channel), Content::Media(media)) = (message.channel, &message.content) else {
            return Err(ApiError::Precondition(format!("messages/{id} carries no media")).into());
        };
        if media.media_id.is_empty() {
            return Err(ApiError::Precondition(format!(
                "messages/{id} links its media by URL; fetch it there"
            ))
            .into());
        }
        let Some(adapter) = self.ctx.adapters.get(&channel) else {
            return Err(ApiError::Precondition(format!("{channel} is not configured")).into());
        };
        let download = adapter
            .fetch_media(&tenant, &media.media_id)
            .await
            .map_err(|e| match e.class() {
                omniroute_channel::ErrorClass::Unsupported
                | omniroute_channel::ErrorClass::Permanent => Status::failed_precondition(format!(
                    "the provider cannot serve this media: {}",
                    e.message()
                )),
                _ => Status::unavailable(format!(
                    "the provider did not serve the media: {}",
                    e.message()
                )),
            })?;
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
        chunks[0].filename = media.filename.clone();
        chunks[0].size_bytes = size;
        tracing::info!(message_id = %id, bytes = size, "media downloaded");
        Ok(Response::new(Box::pin(tokio_stream::iter(
            chunks.into_iter().map(Ok),
        ))))
    }

    #[tracing::instrument(skip_all)]
    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let message = self.send(&tenant, request.get_ref()).await?;
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
                ApiError::invalid("requests", format!("1 to {MAX_BATCH} sends per call")).into(),
            );
        }
        let mut results = Vec::with_capacity(requests.len());
        for item in requests {
            let result = match self.send(&tenant, item).await {
                Ok(message) => {
                    pb::batch_send_result::Result::Message(message_convert::message_to_pb(&message))
                }
                Err(error) => pb::batch_send_result::Result::Error(item_error(error)),
            };
            results.push(pb::BatchSendResult {
                result: Some(result),
            });
        }
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
            .map_err(ApiError::from)?;
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
            .map_err(ApiError::from)?;
        let next_page_token = if messages.len() > limit {
            messages.truncate(limit);
            messages
                .last()
                .map(|m| self.ctx.tokens.issue(&query_key, m.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListMessagesResponse {
            messages: messages
                .iter()
                .map(message_convert::message_to_pb)
                .collect(),
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
            .map_err(ApiError::from)?;
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
            .map_err(ApiError::from)?;
        tracing::info!(message_id = %id, "message requeued by operator");
        Ok(Response::new(pb::RetryMessageResponse {
            message: Some(message_convert::message_to_pb(&message)),
        }))
    }
}
