//! Voice through Twilio Programmable Voice (`[voice]`): the adapter over the
//! account and the numbers, each number's tenant. Callbacks arrive at
//! `/webhooks/voice`.

use std::sync::Arc;

use omniroute_channel::{Adapter, Channel};

use super::Provider;
use crate::pipeline::statuses::StatusChannel;
use crate::settings::Settings;

/// The Twilio voice provider.
#[derive(Debug)]
pub struct Voice;

impl Provider for Voice {
    fn channel(&self) -> Channel {
        Channel::Voice
    }

    fn enabled(&self, settings: &Settings) -> bool {
        settings.voice.enabled
    }

    fn adapter(
        &self,
        settings: &Settings,
        _sink: &StatusChannel,
    ) -> anyhow::Result<Arc<dyn Adapter>> {
        let voice = omniroute_voice::VoiceAdapter::new(settings.voice.config())
            .map_err(|e| anyhow::anyhow!("invalid setting: {}", e.message()))?;
        tracing::info!(
            numbers = settings.voice.numbers.len(),
            "voice through twilio enabled"
        );
        Ok(Arc::new(voice))
    }

    fn accounts(&self, settings: &Settings) -> Vec<(String, String)> {
        settings
            .voice
            .numbers
            .iter()
            .map(|n| (n.number.clone(), n.tenant.clone()))
            .collect()
    }
}
