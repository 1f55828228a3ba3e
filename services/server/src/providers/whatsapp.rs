//! WhatsApp Business through Meta's Cloud API (`[whatsapp]`): the adapter
//! over the business numbers, each number's tenant, the template catalogue
//! refreshed in the background. Webhooks arrive at `/webhooks/whatsapp`.

use std::sync::Arc;
use std::time::Duration;

use omniroute_channel::{Adapter, Channel};
use omniroute_whatsapp::{BusinessNumber, WhatsAppAdapter, WhatsAppConfig};

use super::Provider;
use crate::pipeline::statuses::StatusChannel;
use crate::settings::{Settings, SettingsError};

/// The WhatsApp Cloud API provider.
#[derive(Debug)]
pub struct WhatsApp;

/// The adapter's configuration from the settings.
pub fn config(settings: &Settings) -> WhatsAppConfig {
    let w = &settings.whatsapp;
    WhatsAppConfig {
        base_url: w.base_url.trim_end_matches('/').to_owned(),
        api_version: w.api_version.clone(),
        access_token: w.access_token.expose().to_owned(),
        app_secret: w.app_secret.expose().to_owned(),
        verify_token: w.verify_token.expose().to_owned(),
        numbers: w
            .numbers
            .iter()
            .map(|n| BusinessNumber {
                phone_number_id: n.phone_number_id.clone(),
                waba_id: n.waba_id.clone(),
                tenant: n.tenant.clone(),
                line: n.line.clone(),
                throughput_per_second: n.throughput_per_second,
            })
            .collect(),
        template_refresh: Duration::from_secs(w.template_refresh_secs),
        request_timeout: Duration::from_secs(w.request_timeout_secs),
    }
}

impl Provider for WhatsApp {
    fn channel(&self) -> Channel {
        Channel::Whatsapp
    }

    fn enabled(&self, settings: &Settings) -> bool {
        settings.whatsapp.enabled
    }

    fn validate(&self, settings: &Settings) -> Result<(), SettingsError> {
        if !settings.whatsapp.enabled {
            return Ok(());
        }
        if let Err(reason) = config(settings).validate() {
            return Err(SettingsError::Invalid {
                key: "whatsapp",
                reason,
            });
        }
        if settings.whatsapp.numbers.is_empty() {
            return Err(SettingsError::Invalid {
                key: "whatsapp.numbers",
                reason: "at least one business number is needed".to_owned(),
            });
        }
        Ok(())
    }

    fn adapter(
        &self,
        settings: &Settings,
        _sink: &StatusChannel,
    ) -> anyhow::Result<Arc<dyn Adapter>> {
        let whatsapp = WhatsAppAdapter::new(config(settings))
            .map_err(|e| anyhow::anyhow!("invalid setting: {}", e.message()))?;
        // The approved template catalogue loads now and refreshes in the
        // background; the task ends with the adapter.
        whatsapp.spawn_refresh();
        tracing::info!(
            numbers = settings.whatsapp.numbers.len(),
            "whatsapp cloud api enabled"
        );
        Ok(Arc::new(whatsapp))
    }

    fn accounts(&self, settings: &Settings) -> Vec<(String, String)> {
        settings
            .whatsapp
            .numbers
            .iter()
            .map(|n| (n.phone_number_id.clone(), n.tenant.clone()))
            .collect()
    }
}
