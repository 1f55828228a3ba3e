//! CallbackService: calls from an agent to a customer, placed by the router.
//!
//! A callback is a voice message whose content is a `CallbackRequest`:
//! CreateCallback takes MessagingService's path (validation, the contact,
//! routing, one commit with its dispatch job and event), so a callback is
//! durable, leased and placed once across replicas like any message, and
//! its every step is an event on the stream. Routing schedules it (inside
//! the tenant's business hours, outside the customer's quiet hours, before
//! its latest time) and decides its retries (`routing::fallback`); the
//! voice adapter bridges an answered call to the agent line. A callback's
//! state is the store's reading of its message and the call's reported
//! progress (`omniroute_domain::CallbackState`): between two calls it is
//! scheduled again, at its next call's time. CancelCallback cancels it
//! while it waits for a call or its call rings (the store cancels the
//! message in one transaction, then the ringing call is ended through the
//! voice adapter).

use std::sync::Arc;

use omniroute_channel::Content;
use omniroute_domain::{
    Callback, CallbackFilter, CallbackMark, CallbackState, callback_due, statuses_in,
};
use omniroute_proto::v1 as pb;
use pb::callback_service_server::CallbackService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::ApiContext;
use super::convert::{self, contact_name};
use super::message_convert::{message_name, parse_message_name};
use crate::app::callbacks::CallbackOrder;
use crate::app::send::Recipient;
use crate::app::{AppError, Violations};

/// The CallbackService implementation.
#[derive(Debug, Clone)]
pub struct CallbackApi {
    ctx: ApiContext,
}

impl CallbackApi {
    /// The service over the application core.
    pub fn new(ctx: ApiContext) -> CallbackApi {
        CallbackApi { ctx }
    }
}

/// `callbacks/{id}` (the id of its message).
pub fn callback_name(id: Uuid) -> String {
    format!("callbacks/{id}")
}

fn callback_id(field: &str, name: &str) -> Result<Uuid, AppError> {
    let id = name
        .strip_prefix("callbacks/")
        .map(|rest| format!("messages/{rest}"))
        .ok_or("expected a callback name like \"callbacks/0190f5c2-8a4e-7cc1-9c1e-2f8f4d1a2b3c\"")
        .and_then(|m| parse_message_name(&m).map_err(|_| "not a callback id"));
    id.map_err(|e| AppError::invalid(field, e))
}

/// The send a CreateCallback request is, to be checked as SendMessage's
/// (its errors renamed to the callback's fields by [`renamed`]): the agent
/// line's number, the greeting, the times and references are checked
/// there, once; the idempotency key as the application will keep it.
fn to_send(req: &pb::CreateCallbackRequest) -> Result<pb::SendMessageRequest, AppError> {
    let Some(c) = req.callback.as_ref() else {
        return Err(AppError::invalid("callback", "a callback is required"));
    };
    let mut v = Violations::default();
    v.check("callback.contact", convert::parse_contact_name(&c.contact));
    if c.agent_address.trim().is_empty() {
        v.add(
            "callback.agent_address",
            "the agent line to bridge to is required, for example \"+4930123456\"",
        );
    }
    v.finish()?;
    let key = req.idempotency_key.trim();
    Ok(pb::SendMessageRequest {
        recipient: Some(pb::send_message_request::Recipient::Contact(
            c.contact.clone(),
        )),
        message: Some(pb::Message {
            // The customer asked to be called: a service call, in their
            // conversation with the business.
            category: pb::Category::Service as i32,
            content: Some(pb::Content {
                kind: Some(pb::content::Kind::CallbackRequest(
                    pb::CallbackRequestContent {
                        agent_address: c.agent_address.clone(),
                        greeting: c.greeting.clone(),
                        language: String::new(),
                        reason: c.reason.clone(),
                    },
                )),
            }),
            channel: pb::Channel::Voice as i32,
            correlation_ref: c.correlation_ref.clone(),
            send_time: c.schedule_time,
            expire_time: c.latest_time,
            ..pb::Message::default()
        }),
        // Apart from SendMessage's keys: the same key on both is two
        // requests.
        idempotency_key: match key {
            "" => String::new(),
            key => format!("callback:{key}"),
        },
    })
}

/// A send's field paths as the callback's.
fn renamed(error: AppError) -> AppError {
    const NAMES: [(&str, &str); 6] = [
        ("message.content.callback_request.", "callback."),
        ("message.send_time", "callback.schedule_time"),
        ("message.expire_time", "callback.latest_time"),
        ("message.correlation_ref", "callback.correlation_ref"),
        ("message.", "callback."),
        ("contact", "callback.contact"),
    ];
    let rename = |field: String| match NAMES.iter().find(|(from, _)| field.starts_with(from)) {
        Some((from, to)) => format!("{to}{}", &field[from.len()..]),
        None => field,
    };
    match error {
        AppError::Invalid(violations) => AppError::Invalid(
            violations
                .into_iter()
                .map(|mut v| {
                    v.field = rename(std::mem::take(&mut v.field));
                    v
                })
                .collect(),
        ),
        AppError::Route(crate::routing::RouteError::Invalid(violations)) => {
            AppError::Route(crate::routing::RouteError::Invalid(
                violations
                    .into_iter()
                    .map(|(field, why)| (rename(field), why))
                    .collect(),
            ))
        }
        other => other,
    }
}

/// A callback's state on the wire.
fn state_to_pb(state: CallbackState) -> pb::CallbackState {
    use pb::CallbackState as P;
    match state {
        CallbackState::Scheduled => P::Scheduled,
        CallbackState::Dialing => P::Dialing,
        CallbackState::InProgress => P::InProgress,
        CallbackState::Completed => P::Completed,
        CallbackState::NoAnswer => P::NoAnswer,
        CallbackState::Busy => P::Busy,
        CallbackState::Failed => P::Failed,
        CallbackState::Canceled => P::Canceled,
        CallbackState::Expired => P::Expired,
    }
}

/// A state filter from the wire (`None`: any).
fn state_from_pb(state: pb::CallbackState) -> Option<CallbackState> {
    use pb::CallbackState as P;
    Some(match state {
        P::Unspecified => return None,
        P::Scheduled => CallbackState::Scheduled,
        P::Dialing => CallbackState::Dialing,
        P::InProgress => CallbackState::InProgress,
        P::Completed => CallbackState::Completed,
        P::NoAnswer => CallbackState::NoAnswer,
        P::Busy => CallbackState::Busy,
        P::Failed => CallbackState::Failed,
        P::Canceled => CallbackState::Canceled,
        P::Expired => CallbackState::Expired,
    })
}

/// The wire form of a callback.
pub fn callback_to_pb(callback: &Callback) -> pb::Callback {
    let message = &callback.message;
    let omniroute_channel::Content::CallbackRequest(request) = &message.content else {
        return pb::Callback::default();
    };
    pb::Callback {
        name: callback_name(message.id),
        contact: contact_name(message.contact_id),
        agent_address: request.agent_address.clone(),
        greeting: request.greeting.clone(),
        schedule_time: convert::timestamp(callback.schedule_time()),
        state: state_to_pb(callback.state()) as i32,
        message: message_name(message.id),
        duration_seconds: callback
            .current_progress()
            .and_then(|p| p.bridged_seconds)
            .and_then(|s| i32::try_from(s).ok())
            .unwrap_or(0),
        answered_by: callback
            .progress
            .as_ref()
            .map(|p| p.answered_by.clone())
            .unwrap_or_default(),
        correlation_ref: message.correlation_ref.clone(),
        create_time: convert::timestamp(message.create_time),
        update_time: convert::timestamp(message.update_time),
        reason: request.reason.clone(),
        latest_time: message.expire_time.and_then(convert::timestamp),
        attempt_count: i32::try_from(message.attempts.len()).unwrap_or(i32::MAX),
        status_reason: callback.status_reason(),
    }
}

impl CallbackApi {
    /// CreateCallback's request as the order the application schedules:
    /// checked as the send it is (its errors renamed to the callback's
    /// fields by [`renamed`]).
    fn order(&self, request: &pb::CreateCallbackRequest) -> Result<CallbackOrder, AppError> {
        let send =
            super::messaging::send_request(self.ctx.region, &to_send(request)?).map_err(renamed)?;
        let (Recipient::Contact(contact), Content::CallbackRequest(callback)) =
            (send.recipient, send.content)
        else {
            return Err(AppError::invalid("callback", "incomplete"));
        };
        Ok(CallbackOrder {
            contact,
            request: callback,
            schedule_time: send.send_time,
            latest_time: send.expire_time,
            correlation_ref: send.correlation_ref,
            idempotency_key: Some(request.idempotency_key.trim().to_owned())
                .filter(|key| !key.is_empty()),
        })
    }
}

#[tonic::async_trait]
impl CallbackService for CallbackApi {
    #[tracing::instrument(skip_all)]
    async fn create_callback(
        &self,
        request: Request<pb::CreateCallbackRequest>,
    ) -> Result<Response<pb::CreateCallbackResponse>, Status> {
        let tenant: Arc<str> = self.ctx.tenant(&request);
        let order = self.order(request.get_ref())?;
        let message = self
            .ctx
            .app
            .schedule_callback(&tenant, order)
            .await
            .map_err(renamed)?;
        let callback = Callback {
            message,
            progress: None,
            next_call: None,
        };
        Ok(Response::new(pb::CreateCallbackResponse {
            callback: Some(callback_to_pb(&callback)),
        }))
    }

    async fn get_callback(
        &self,
        request: Request<pb::GetCallbackRequest>,
    ) -> Result<Response<pb::GetCallbackResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = callback_id("name", &request.get_ref().name)?;
        Ok(Response::new(pb::GetCallbackResponse {
            callback: Some(callback_to_pb(
                &self
                    .ctx
                    .store
                    .get_callback(&tenant, id)
                    .await
                    .map_err(AppError::from)?,
            )),
        }))
    }

    async fn list_callbacks(
        &self,
        request: Request<pb::ListCallbacksRequest>,
    ) -> Result<Response<pb::ListCallbacksResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let contact_id = match req.contact.as_str() {
            "" => None,
            name => Some(convert::contact_id("contact", name)?),
        };
        let state = pb::CallbackState::try_from(req.state)
            .map_err(|_| AppError::invalid("state", "not a callback state"))?;
        let limit = self.ctx.page_size(req.page_size)?;
        let state_key = req.state.to_string();
        let query_key = [
            &*tenant,
            "ListCallbacks",
            req.contact.as_str(),
            state_key.as_str(),
        ];
        let after = match self.ctx.tokens.check(&query_key, &req.page_token)? {
            Some(id) => {
                let last = self
                    .ctx
                    .store
                    .get_callback(&tenant, id)
                    .await
                    .map_err(AppError::from)?;
                Some(CallbackMark {
                    due: callback_due(&last.message),
                    id,
                })
            }
            None => None,
        };
        let state = state_from_pb(state);
        let filter = CallbackFilter {
            contact_id,
            statuses: state.map(statuses_in).unwrap_or_default(),
        };
        let mut page = self
            .ctx
            .store
            .list_callbacks(&tenant, &filter, after, limit + 1)
            .await
            .map_err(AppError::from)?;
        let more = page.len() > limit;
        page.truncate(limit);
        // The page's last row, matching or not, is where the next starts.
        let next_page_token = match (more, page.last()) {
            (true, Some(last)) => self.ctx.tokens.issue(&query_key, last.message.id),
            _ => String::new(),
        };
        let callbacks = page
            .iter()
            .filter(|c| state.is_none_or(|state| c.state() == state))
            .map(callback_to_pb)
            .collect();
        Ok(Response::new(pb::ListCallbacksResponse {
            callbacks,
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn cancel_callback(
        &self,
        request: Request<pb::CancelCallbackRequest>,
    ) -> Result<Response<pb::CancelCallbackResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = callback_id("name", &request.get_ref().name)?;
        Ok(Response::new(pb::CancelCallbackResponse {
            callback: Some(callback_to_pb(
                &self.ctx.app.cancel_callback(&tenant, id).await?,
            )),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_its_wire_value() {
        for state in [
            CallbackState::Scheduled,
            CallbackState::Dialing,
            CallbackState::InProgress,
            CallbackState::Completed,
            CallbackState::NoAnswer,
            CallbackState::Busy,
            CallbackState::Failed,
            CallbackState::Canceled,
            CallbackState::Expired,
        ] {
            assert_eq!(state_from_pb(state_to_pb(state)), Some(state));
        }
        assert_eq!(state_from_pb(pb::CallbackState::Unspecified), None);
    }

    #[test]
    fn send_errors_name_the_callback_fields() {
        let error = renamed(AppError::Invalid(vec![
            crate::app::Violation::new("message.content.callback_request.greeting", "long"),
            crate::app::Violation::new("message.expire_time", "past"),
            crate::app::Violation::new("idempotency_key", "long"),
        ]));
        let AppError::Invalid(violations) = error else {
            panic!("{error:?}")
        };
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "callback.greeting",
                "callback.latest_time",
                "idempotency_key"
            ]
        );
        assert!(to_send(&pb::CreateCallbackRequest::default()).is_err());
    }
}
