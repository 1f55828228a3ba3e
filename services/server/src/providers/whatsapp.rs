//! WhatsApp Business through Meta's Cloud API (`[whatsapp]`): the adapter
//! over the business numbers, each number's tenant, the template catalogue
//! refreshed in the background. Webhooks arrive at `/webhooks/whatsapp`.

use std::sync::Arc;

use omniroute_channel::{Adapter, Channel};
use omniroute_whatsapp::WhatsAppAdapter;

use super::Provider;
use crate::pipeline::statuses::StatusChannel;
use crate::settings::Settings;

/// The WhatsApp Cloud API provider.
#[derive(Debug)]
pub struct WhatsApp;

impl Provider for WhatsApp {
    fn channel(&self) -> Channel {
        Channel::Whatsapp
    }

    fn enabled(&self, settings: &Settings) -> bool {
        settings.whatsapp.enabled
    }

    fn adapter(
        &self,
        settings: &Settings,
        _sink: &StatusChannel,
    ) -> anyhow::Result<Arc<dyn Adapter>> {
        let whatsapp = WhatsAppAdapter::new(settings.whatsapp.config())
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
