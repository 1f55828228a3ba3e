//! EndpointService: outbound webhook endpoints (see `app/endpoints.rs`).
//!
//! Checks each request whole (the name, the URL against the URL rules in
//! force, event types, the contact filter, the update mask, the grace of a
//! rotation) before anything is stored, then calls the use case. A secret
//! appears in the answers of CreateEndpoint and RotateEndpointSecret only.

use std::time::{Duration, SystemTime};

use omniroute_domain::{Cursor, DeliveryAttempt, DeliveryOutcome, Endpoint, EndpointPatch};
use omniroute_proto::v1 as pb;
use pb::endpoint_service_server::EndpointService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::ApiContext;
use super::convert::{self, contact_name, parse_resource_name};
use super::message_convert::event_type_to_pb;
use super::message_validate::event_types;
use crate::app::endpoints::{DEFAULT_GRACE, EndpointDraft, MAX_GRACE, ReplayFrom, check_url};
use crate::app::{AppError, Violations};
use crate::deliveries::courier::Posted;

/// The longest description accepted.
const MAX_DESCRIPTION: usize = 1000;

/// The fields UpdateEndpoint changes.
const ENDPOINT_FIELDS: [&str; 5] = ["url", "description", "event_types", "contact", "disabled"];

/// The EndpointService implementation.
#[derive(Debug, Clone)]
pub struct EndpointApi {
    ctx: ApiContext,
}

impl EndpointApi {
    /// The service over the application core.
    pub fn new(ctx: ApiContext) -> EndpointApi {
        EndpointApi { ctx }
    }
}

/// `endpoints/{id}`.
pub(super) fn endpoint_name(id: Uuid) -> String {
    format!("endpoints/{id}")
}

fn parse_endpoint_name(name: &str) -> Result<Uuid, &'static str> {
    parse_resource_name("endpoints", name)
        .ok_or("expected an endpoint name like \"endpoints/0190f5c2-8a4e-7cc1-9c1e-2f8f4d1a2b3c\"")
}

fn endpoint_id(field: &str, name: &str) -> Result<Uuid, AppError> {
    parse_endpoint_name(name).map_err(|e| AppError::invalid(field, e))
}

/// The etag of a version.
fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

fn parse_etag(etag: &str) -> Result<i64, &'static str> {
    etag.strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .and_then(|v| v.parse().ok())
        .ok_or("not an etag this service gave")
}

/// The wire form of an endpoint (never its secrets).
fn endpoint_to_pb(e: &Endpoint) -> pb::Endpoint {
    pb::Endpoint {
        name: endpoint_name(e.id),
        url: e.url.clone(),
        description: e.description.clone(),
        event_types: e
            .event_types
            .iter()
            .map(|t| event_type_to_pb(*t) as i32)
            .collect(),
        contact: e.contact.map(contact_name).unwrap_or_default(),
        disabled: e.disabled,
        disabled_reason: e.disabled_reason.clone(),
        create_time: convert::timestamp(e.create_time),
        update_time: convert::timestamp(e.update_time),
        etag: etag(e.version),
        previous_secret_expire_time: e.previous_secret_expire_time.and_then(convert::timestamp),
    }
}

impl EndpointApi {
    fn check_url(&self, v: &mut Violations, field: &str, url: &str) -> Option<String> {
        let url = url.trim();
        v.check(field, check_url(url, self.ctx.app.endpoint_url_rules()))
            .map(|()| url.to_owned())
    }

    fn check_description(v: &mut Violations, field: &str, description: &str) -> String {
        if description.chars().count() > MAX_DESCRIPTION {
            v.add(field, format!("at most {MAX_DESCRIPTION} characters"));
        }
        description.trim().to_owned()
    }

    fn check_contact(v: &mut Violations, field: &str, contact: &str) -> Option<Uuid> {
        match contact.trim() {
            "" => None,
            name => v.check(field, convert::parse_contact_name(name)),
        }
    }
}

#[tonic::async_trait]
impl EndpointService for EndpointApi {
    #[tracing::instrument(skip_all)]
    async fn create_endpoint(
        &self,
        request: Request<pb::CreateEndpointRequest>,
    ) -> Result<Response<pb::CreateEndpointResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let Some(e) = request.into_inner().endpoint else {
            return Err(AppError::invalid("endpoint", "an endpoint is required").into());
        };
        let mut v = Violations::default();
        let url = self.check_url(&mut v, "endpoint.url", &e.url);
        let description = Self::check_description(&mut v, "endpoint.description", &e.description);
        let types = event_types(&mut v, "endpoint.event_types", &e.event_types);
        let contact = Self::check_contact(&mut v, "endpoint.contact", &e.contact);
        v.finish()?;
        let draft = EndpointDraft {
            url: url.unwrap_or_default(),
            description,
            event_types: types,
            contact,
            disabled: e.disabled,
        };
        let (endpoint, secret) = self.ctx.app.create_endpoint(&tenant, draft).await?;
        Ok(Response::new(pb::CreateEndpointResponse {
            endpoint: Some(endpoint_to_pb(&endpoint)),
            secret: secret.expose().to_owned(),
        }))
    }

    async fn get_endpoint(
        &self,
        request: Request<pb::GetEndpointRequest>,
    ) -> Result<Response<pb::GetEndpointResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = endpoint_id("name", &request.get_ref().name)?;
        let endpoint = self.ctx.app.get_endpoint(&tenant, id).await?;
        Ok(Response::new(pb::GetEndpointResponse {
            endpoint: Some(endpoint_to_pb(&endpoint)),
        }))
    }

    async fn list_endpoints(
        &self,
        request: Request<pb::ListEndpointsRequest>,
    ) -> Result<Response<pb::ListEndpointsResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let limit = self.ctx.page_size(req.page_size)?;
        let query_key = [&*tenant, "ListEndpoints"];
        let after = self.ctx.tokens.check(&query_key, &req.page_token)?;
        let mut endpoints = self
            .ctx
            .app
            .list_endpoints(&tenant, after, limit + 1)
            .await?;
        let next_page_token = if endpoints.len() > limit {
            endpoints.truncate(limit);
            endpoints
                .last()
                .map(|e| self.ctx.tokens.issue(&query_key, e.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListEndpointsResponse {
            endpoints: endpoints.iter().map(endpoint_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_endpoint(
        &self,
        request: Request<pb::UpdateEndpointRequest>,
    ) -> Result<Response<pb::UpdateEndpointResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let Some(e) = req.endpoint else {
            return Err(AppError::invalid("endpoint", "an endpoint is required").into());
        };
        let mut v = Violations::default();
        let id = v.check("endpoint.name", parse_endpoint_name(&e.name));
        let fields = convert::update_mask(&mut v, req.update_mask.as_ref(), &ENDPOINT_FIELDS);
        let mut patch = EndpointPatch::default();
        if !e.etag.is_empty() {
            patch.version = v.check("endpoint.etag", parse_etag(&e.etag));
        }
        for field in fields {
            match field {
                "url" => patch.url = self.check_url(&mut v, "endpoint.url", &e.url),
                "description" => {
                    patch.description = Some(Self::check_description(
                        &mut v,
                        "endpoint.description",
                        &e.description,
                    ))
                }
                "event_types" => {
                    patch.event_types =
                        Some(event_types(&mut v, "endpoint.event_types", &e.event_types))
                }
                "contact" => {
                    patch.contact =
                        Some(Self::check_contact(&mut v, "endpoint.contact", &e.contact))
                }
                _ => patch.disabled = Some(e.disabled),
            }
        }
        v.finish()?;
        let id = id.ok_or_else(|| AppError::invalid("endpoint.name", "required"))?;
        let updated = self.ctx.app.update_endpoint(&tenant, id, patch).await?;
        Ok(Response::new(pb::UpdateEndpointResponse {
            endpoint: Some(endpoint_to_pb(&updated)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_endpoint(
        &self,
        request: Request<pb::DeleteEndpointRequest>,
    ) -> Result<Response<pb::DeleteEndpointResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = endpoint_id("name", &request.get_ref().name)?;
        self.ctx.app.delete_endpoint(&tenant, id).await?;
        Ok(Response::new(pb::DeleteEndpointResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_endpoint_secret(
        &self,
        request: Request<pb::RotateEndpointSecretRequest>,
    ) -> Result<Response<pb::RotateEndpointSecretResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::default();
        let id = v.check("name", parse_endpoint_name(&req.name));
        let grace = match req.previous_secret_grace {
            None => Some(DEFAULT_GRACE),
            Some(d) => v.check(
                "previous_secret_grace",
                Duration::try_from(d)
                    .ok()
                    .filter(|d| *d <= MAX_GRACE)
                    .ok_or("must be between 0 and 7 days"),
            ),
        };
        v.finish()?;
        let (Some(id), Some(grace)) = (id, grace) else {
            return Err(AppError::invalid("name", "required").into());
        };
        let (endpoint, secret) = self
            .ctx
            .app
            .rotate_endpoint_secret(&tenant, id, grace)
            .await?;
        Ok(Response::new(pb::RotateEndpointSecretResponse {
            endpoint: Some(endpoint_to_pb(&endpoint)),
            secret: secret.expose().to_owned(),
        }))
    }

    async fn list_endpoint_deliveries(
        &self,
        request: Request<pb::ListEndpointDeliveriesRequest>,
    ) -> Result<Response<pb::ListEndpointDeliveriesResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let id = endpoint_id("name", &req.name)?;
        let limit = self.ctx.page_size(req.page_size)?;
        let endpoint = id.to_string();
        let query_key = [&*tenant, "ListEndpointDeliveries", &endpoint];
        let before = self.ctx.tokens.check(&query_key, &req.page_token)?;
        let mut attempts = self
            .ctx
            .app
            .list_endpoint_deliveries(&tenant, id, before, limit + 1)
            .await?;
        let next_page_token = if attempts.len() > limit {
            attempts.truncate(limit);
            attempts
                .last()
                .map(|a| self.ctx.tokens.issue(&query_key, a.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListEndpointDeliveriesResponse {
            deliveries: attempts.iter().map(delivery_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn replay_endpoint(
        &self,
        request: Request<pb::ReplayEndpointRequest>,
    ) -> Result<Response<pb::ReplayEndpointResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let req = request.into_inner();
        let mut v = Violations::default();
        let id = v.check("name", parse_endpoint_name(&req.name));
        let from = match (req.after_cursor.as_str(), req.start_time) {
            ("", None) => v.check(
                "after_cursor",
                Err::<ReplayFrom, _>("after_cursor or start_time is required"),
            ),
            (cursor, None) => v.check(
                "after_cursor",
                Cursor::decode(cursor)
                    .map(ReplayFrom::After)
                    .ok_or("not a cursor from an event of this service"),
            ),
            ("", Some(time)) => v.check(
                "start_time",
                SystemTime::try_from(time)
                    .map(ReplayFrom::Time)
                    .map_err(|_| "not a valid time"),
            ),
            (_, Some(_)) => v.check(
                "start_time",
                Err::<ReplayFrom, _>("give after_cursor or start_time, not both"),
            ),
        };
        v.finish()?;
        let (Some(id), Some(from)) = (id, from) else {
            return Err(AppError::invalid("name", "required").into());
        };
        let endpoint = self.ctx.app.replay_endpoint(&tenant, id, from).await?;
        Ok(Response::new(pb::ReplayEndpointResponse {
            endpoint: Some(endpoint_to_pb(&endpoint)),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn send_test_event(
        &self,
        request: Request<pb::SendTestEventRequest>,
    ) -> Result<Response<pb::SendTestEventResponse>, Status> {
        let tenant = self.ctx.tenant(&request);
        let id = endpoint_id("name", &request.get_ref().name)?;
        let endpoint = self.ctx.app.get_endpoint(&tenant, id).await?;
        let Some(courier) = &self.ctx.courier else {
            return Err(AppError::Precondition("no HTTP client for deliveries".to_owned()).into());
        };
        let (id, posted) = courier.send_test(&self.ctx.app, &endpoint).await?;
        Ok(Response::new(pb::SendTestEventResponse {
            delivery: Some(test_delivery_to_pb(id, &posted)),
        }))
    }
}

/// A test delivery as the API shows it.
fn test_delivery_to_pb(id: String, p: &Posted) -> pb::EndpointDelivery {
    pb::EndpointDelivery {
        event_cursor: id,
        event_type: pb::EventType::EndpointTest as i32,
        attempt_time: convert::timestamp(p.time),
        outcome: outcome_to_pb(p.outcome) as i32,
        status_code: p.status_code.map(i32::from).unwrap_or_default(),
        latency: prost_types::Duration::try_from(p.latency).ok(),
        error: p.error.clone(),
        next_try_time: None,
    }
}

fn outcome_to_pb(outcome: DeliveryOutcome) -> pb::DeliveryOutcome {
    match outcome {
        DeliveryOutcome::Delivered => pb::DeliveryOutcome::Delivered,
        DeliveryOutcome::Failed => pb::DeliveryOutcome::Failed,
    }
}

/// A delivery attempt as the API shows it.
fn delivery_to_pb(a: &DeliveryAttempt) -> pb::EndpointDelivery {
    pb::EndpointDelivery {
        event_cursor: a.event.encode(),
        event_type: event_type_to_pb(a.event_type) as i32,
        attempt_time: convert::timestamp(a.time),
        outcome: outcome_to_pb(a.outcome) as i32,
        status_code: a.status_code.map(i32::from).unwrap_or_default(),
        latency: prost_types::Duration::try_from(a.latency).ok(),
        error: a.error.clone(),
        next_try_time: a.next_try_time.and_then(convert::timestamp),
    }
}
