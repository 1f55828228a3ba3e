//! The real providers, and the one list that registers them.
//!
//! A provider is an adapter crate (under `adapters/`) plus what the server
//! needs to run it, in one file or folder here implementing [`Provider`]:
//! whether its settings section turns it on, how that section is checked,
//! how its adapter is built, which provider accounts (a WhatsApp phone
//! number id, a mailbox) belong to which tenant, and any HTTP routes or
//! listeners of its own. Everything else is generic: the dispatcher and
//! routing read the adapter's declared capabilities, webhooks arrive at
//! `/webhooks/{channel}` and go through the adapter's signature check and
//! parser, inbound messages and statuses are recorded the same way for all.
//!
//! Adding a provider (see ARCHITECTURE.md, "Adding a provider"): its crate,
//! its settings section (a field of [`Settings`] and a file under
//! `settings/`), its file here, and its line in [`PROVIDERS`]. Channels no
//! enabled provider serves are the sandbox's.

pub mod email;
pub mod voice;
pub mod whatsapp;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use omniroute_channel::{Adapter, Channel};
use omniroute_store::Store;
use tokio::net::TcpListener;

use crate::pipeline::dispatcher::Adapters;
use crate::pipeline::statuses::StatusChannel;
use crate::settings::{Settings, SettingsError};
use crate::webhooks::Ingress;

/// A future a provider's listener runs as.
pub type Serving = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a provider's routes and listeners may use.
#[derive(Debug, Clone)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    /// Every channel's adapter.
    pub adapters: Adapters,
    /// The ingestion every delivery goes through.
    pub ingress: Ingress,
}

/// A real provider, as the server registers it.
pub trait Provider: Send + Sync + 'static {
    /// The channel it serves.
    fn channel(&self) -> Channel;

    /// Whether its settings section turns it on (the sandbox serves its
    /// channel otherwise).
    fn enabled(&self, settings: &Settings) -> bool;

    /// Checks its settings section (on or off: an off section may still be
    /// inconsistent).
    fn validate(&self, settings: &Settings) -> Result<(), SettingsError>;

    /// Builds its adapter; called when enabled.
    fn adapter(
        &self,
        settings: &Settings,
        sink: &StatusChannel,
    ) -> anyhow::Result<Arc<dyn Adapter>>;

    /// The provider accounts it receives on, each with its tenant; called
    /// when enabled.
    fn accounts(&self, settings: &Settings) -> Vec<(String, String)>;

    /// HTTP routes of its own on the webhook listener, beyond
    /// `/webhooks/{channel}`; called when enabled.
    fn routes(&self, settings: &Settings, shared: &Shared) -> axum::Router {
        let _ = (settings, shared);
        axum::Router::new()
    }

    /// A listener of its own (a port from its settings), bound when the
    /// application is built so that its address is known before it runs;
    /// called when enabled.
    fn bind(&self, settings: &Settings) -> anyhow::Result<Option<TcpListener>> {
        let _ = settings;
        Ok(None)
    }

    /// Serves the listener [`Provider::bind`] returned until `stop`
    /// completes.
    fn serve(
        &self,
        settings: &Settings,
        listener: TcpListener,
        shared: Shared,
        stop: Serving,
    ) -> Serving {
        let _ = (settings, listener, shared);
        stop
    }
}

/// Every provider the server knows, in one list.
pub static PROVIDERS: &[&dyn Provider] = &[&whatsapp::WhatsApp, &email::Email, &voice::Voice];

/// The providers the settings turn on.
pub fn enabled(settings: &Settings) -> impl Iterator<Item = &'static dyn Provider> + '_ {
    PROVIDERS
        .iter()
        .copied()
        .filter(move |p| p.enabled(settings))
}

/// Checks every provider's settings section.
pub fn validate(settings: &Settings) -> Result<(), SettingsError> {
    PROVIDERS.iter().try_for_each(|p| p.validate(settings))
}

/// The enabled providers' adapters, over `base` (the sandbox's).
pub fn adapters(
    settings: &Settings,
    sink: &StatusChannel,
    mut base: HashMap<Channel, Arc<dyn Adapter>>,
) -> anyhow::Result<HashMap<Channel, Arc<dyn Adapter>>> {
    for provider in enabled(settings) {
        base.insert(provider.channel(), provider.adapter(settings, sink)?);
    }
    Ok(base)
}

/// The enabled providers' accounts and their tenants.
pub fn accounts(settings: &Settings) -> Vec<((Channel, String), String)> {
    enabled(settings)
        .flat_map(|p| {
            p.accounts(settings)
                .into_iter()
                .map(move |(account, tenant)| ((p.channel(), account), tenant))
        })
        .collect()
}

/// The enabled providers' own routes, merged.
pub fn routes(settings: &Settings, shared: &Shared) -> axum::Router {
    enabled(settings).fold(axum::Router::new(), |router, p| {
        router.merge(p.routes(settings, shared))
    })
}

/// The enabled providers' own listeners, bound.
pub fn bind(settings: &Settings) -> anyhow::Result<Vec<(Channel, TcpListener)>> {
    let mut listeners = Vec::new();
    for provider in enabled(settings) {
        if let Some(listener) = provider.bind(settings)? {
            listeners.push((provider.channel(), listener));
        }
    }
    Ok(listeners)
}

/// The provider serving `channel`, when enabled.
pub fn of(settings: &Settings, channel: Channel) -> Option<&'static dyn Provider> {
    enabled(settings).find(|p| p.channel() == channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_has_at_most_one_provider_and_off_is_the_default() {
        let mut channels: Vec<Channel> = PROVIDERS.iter().map(|p| p.channel()).collect();
        channels.sort();
        channels.dedup();
        assert_eq!(channels.len(), PROVIDERS.len(), "one provider per channel");
        let defaults = Settings::default();
        assert_eq!(
            enabled(&defaults).count(),
            0,
            "the sandbox serves by default"
        );
        assert!(validate(&defaults).is_ok());
        assert!(accounts(&defaults).is_empty());
        assert!(bind(&defaults).unwrap().is_empty());
    }
}
