//! The gRPC API: omniroute.v1 services over the store.
//!
//! Each service validates its whole request before it touches the store, so a
//! refused request changes nothing; errors become statuses in [`error`] only.
//! The tenant of every call comes from the caller's API key (`crate::auth`),
//! never from the request body; with authentication off every caller
//! belongs to `api.default_tenant`.

mod admin;
mod callbacks;
mod contacts;
mod convert;
mod endpoints;
mod error;
mod event_json;
pub use event_json::event_json;
mod events;
pub mod health;
pub mod layer;
mod observe;
pub use observe::Observe;
mod message_convert;
mod message_validate;
mod messaging;
mod overload;
pub use overload::Overload;
mod page_token;
mod preferences;

use std::sync::Arc;
use std::time::Duration;

use omniroute_channel::PhoneRegion;
use omniroute_proto::v1 as pb;
use omniroute_store::prelude::*;

pub use admin::AdminApi;
pub use callbacks::CallbackApi;
pub use contacts::ContactApi;
pub use endpoints::EndpointApi;

pub use events::EventApi;
pub use messaging::{MAX_BATCH, MessagingApi};
pub use preferences::PreferenceApi;

use crate::app::{App, AppError};
use crate::settings::Settings;
use page_token::PageTokens;

/// What every service needs: the application core, the store for plain
/// reads, and the API settings.
#[derive(Debug, Clone)]
pub struct ApiContext {
    /// The use cases.
    app: App,
    store: Arc<dyn Store>,
    region: PhoneRegion,
    tokens: PageTokens,
    default_page_size: u32,
    max_page_size: u32,
    default_tenant: Arc<str>,
    /// Sends test events to endpoints (none when its HTTP client could not
    /// be built).
    courier: Option<Arc<crate::deliveries::courier::Courier>>,
}

impl ApiContext {
    /// The API over the application core, from validated settings.
    pub fn new(app: App, settings: &Settings) -> ApiContext {
        let courier =
            crate::deliveries::courier::Courier::new(app.endpoint_url_rules(), &settings.endpoints)
                .map_err(|e| tracing::error!(error = %e, "no HTTP client for test events"))
                .ok()
                .map(Arc::new);
        ApiContext {
            courier,
            store: Arc::clone(app.store()),
            app,
            region: settings.phone_region(),
            tokens: PageTokens::new(settings.api.page_token_secret.expose()),
            default_page_size: settings.api.default_page_size,
            max_page_size: settings.api.max_page_size,
            default_tenant: Arc::from(settings.api.default_tenant.as_str()),
        }
    }

    /// The tenant of the caller: its API key's (put on the request by the
    /// authentication layer), never the request body's; with
    /// authentication off, the configured default tenant.
    fn tenant<T>(&self, request: &tonic::Request<T>) -> Arc<str> {
        match request.extensions().get::<crate::auth::Caller>() {
            Some(caller) => Arc::clone(&caller.tenant),
            None => Arc::clone(&self.default_tenant),
        }
    }

    /// The page size to use for a requested one.
    fn page_size(&self, requested: i32) -> Result<usize, AppError> {
        match requested {
            n if n < 0 => Err(AppError::invalid("page_size", "must not be negative")),
            0 => Ok(self.default_page_size as usize),
            n => Ok((n as u32).min(self.max_page_size) as usize),
        }
    }
}

/// Every gRPC service the server answers: omniroute.v1's, each taking
/// requests up to `max_message` bytes, gRPC health (`health`, whose
/// statuses `health::init` and `health::follow_store` set) and server
/// reflection (v1 and v1alpha). The layers around them (metrics, overload,
/// authentication) are the server's.
pub fn routes(
    ctx: ApiContext,
    event_poll: Duration,
    max_message: usize,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
) -> anyhow::Result<tonic::service::Routes> {
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(omniroute_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(omniroute_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    Ok(tonic::service::Routes::new(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            pb::contact_service_server::ContactServiceServer::new(ContactApi::new(ctx.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            pb::preference_service_server::PreferenceServiceServer::new(PreferenceApi::new(
                ctx.clone(),
            ))
            .max_decoding_message_size(max_message),
        )
        .add_service(
            pb::messaging_service_server::MessagingServiceServer::new(MessagingApi::new(
                ctx.clone(),
            ))
            .max_decoding_message_size(max_message),
        )
        .add_service(
            pb::callback_service_server::CallbackServiceServer::new(CallbackApi::new(ctx.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            pb::endpoint_service_server::EndpointServiceServer::new(EndpointApi::new(ctx.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            pb::admin_service_server::AdminServiceServer::new(AdminApi::new(ctx.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            pb::event_service_server::EventServiceServer::new(EventApi::new(ctx, event_poll))
                .max_decoding_message_size(max_message),
        ))
}
