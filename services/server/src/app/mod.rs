//! The application core: the use cases every face calls (gRPC, webhooks,
//! the SMTP listener, pages), taking and returning domain types. No proto
//! and no HTTP here: each face translates its own wire format and maps the
//! use cases' [`AppError`]s in one place (gRPC in `api/error.rs`, HTTP in
//! `http.rs`).
//!
//! A use case is a method of [`App`], which holds what they share: the
//! store, routing, the channels' adapters, the contacts cache sends are
//! routed on and the tenants' quotas. Plain reads (a message, a list) need
//! no use case: faces read the store directly.

pub mod callbacks;
pub mod choices;
mod consents;
mod contacts;
pub mod endpoints;
mod error;
pub mod inbound;
mod messages;
pub mod quotas;
pub mod send;

use std::sync::Arc;
use std::time::Duration;

use omniroute_channel::PhoneRegion;
use omniroute_store::prelude::*;

pub use error::{AppError, Violation, Violations};

use crate::channels::Adapters;
use crate::pipeline::recipients::Recipients;
use crate::routing::Router;
use crate::settings::Settings;

/// The application core: what the use cases share.
#[derive(Debug, Clone)]
pub struct App {
    store: Arc<dyn Store>,
    /// Every decision about channels, times and fallbacks.
    router: Router,
    /// The channels' adapters (read receipts, media downloads).
    adapters: Adapters,
    /// Contacts for routing sends, cached.
    recipients: Arc<Recipients>,
    /// Per-tenant send quotas.
    quotas: Arc<quotas::Quotas>,
    /// How national phone numbers are read.
    region: PhoneRegion,
    /// Endpoints' secret sealing and URL rules.
    endpoints: Arc<endpoints::Endpoints>,
}

impl App {
    /// The core over a store, its adapters and routing, from validated
    /// settings.
    pub fn new(
        store: Arc<dyn Store>,
        settings: &Settings,
        adapters: Adapters,
        router: Router,
    ) -> App {
        let recipients = Recipients::new(
            settings.contacts.cache_size,
            Duration::from_secs(settings.contacts.cache_ttl_secs),
        );
        App {
            quotas: Arc::new(quotas::Quotas::new(
                settings.quotas.clone(),
                Arc::clone(&store),
            )),
            recipients: Arc::new(recipients),
            router,
            adapters,
            store,
            region: settings.phone_region(),
            endpoints: Arc::new(endpoints::Endpoints::new(&settings.endpoints)),
        }
    }

    /// The store, for the faces' plain reads.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The channels' adapters.
    pub fn adapters(&self) -> &Adapters {
        &self.adapters
    }
}
