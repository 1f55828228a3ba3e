//! `[whatsapp]`: WhatsApp Business through Meta's Cloud API, the business
//! numbers and their tenants, and the adapter's configuration from them.

use std::time::Duration;

use omniroute_whatsapp::{BusinessNumber, WhatsAppConfig};
use serde::{Deserialize, Serialize};

use super::{Secret, SettingsError};

/// WhatsApp Business through Meta's Cloud API. Off: the sandbox serves
/// WhatsApp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsAppSettings {
    /// Send and receive through the Cloud API.
    pub enabled: bool,
    /// The Graph API host.
    pub base_url: String,
    /// The Graph API version.
    pub api_version: String,
    /// A system user access token with whatsapp_business_messaging and
    /// whatsapp_business_management permissions.
    pub access_token: Secret,
    /// The Meta app's secret: webhook signatures are checked with it.
    pub app_secret: Secret,
    /// The verify token entered in the app's webhook settings.
    pub verify_token: Secret,
    /// Seconds between refreshes of the approved template catalogue.
    pub template_refresh_secs: u64,
    /// Seconds one Graph API request may take.
    pub request_timeout_secs: u64,
    /// The business numbers, each serving one tenant.
    pub numbers: Vec<WhatsAppNumber>,
}

impl Default for WhatsAppSettings {
    fn default() -> Self {
        WhatsAppSettings {
            enabled: false,
            base_url: "https://graph.facebook.com".to_owned(),
            api_version: "v24.0".to_owned(),
            access_token: Secret::default(),
            app_secret: Secret::default(),
            verify_token: Secret::default(),
            template_refresh_secs: 600,
            request_timeout_secs: 10,
            numbers: Vec::new(),
        }
    }
}

/// One WhatsApp business number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsAppNumber {
    /// The number's Graph id (WhatsApp Manager → API setup), not the number.
    pub phone_number_id: String,
    /// The WhatsApp Business Account id, whose templates apply.
    pub waba_id: String,
    /// The tenant sending from it and receiving its messages.
    pub tenant: String,
    /// A label for operators, for example "service-de".
    pub line: String,
    /// Messages per second Meta allows the number (80 unless raised).
    pub throughput_per_second: u32,
}

impl Default for WhatsAppNumber {
    fn default() -> Self {
        WhatsAppNumber {
            phone_number_id: String::new(),
            waba_id: String::new(),
            tenant: "default".to_owned(),
            line: String::new(),
            throughput_per_second: 80,
        }
    }
}

impl WhatsAppSettings {
    /// The adapter's configuration.
    pub fn config(&self) -> WhatsAppConfig {
        WhatsAppConfig {
            base_url: self.base_url.trim_end_matches('/').to_owned(),
            api_version: self.api_version.clone(),
            access_token: self.access_token.expose().to_owned(),
            app_secret: self.app_secret.expose().to_owned(),
            verify_token: self.verify_token.expose().to_owned(),
            numbers: self
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
            template_refresh: Duration::from_secs(self.template_refresh_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
        }
    }

    /// Checks the section when WhatsApp is on.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !self.enabled {
            return Ok(());
        }
        if let Err(reason) = self.config().validate() {
            return Err(SettingsError::Invalid {
                key: "whatsapp",
                reason,
            });
        }
        if self.numbers.is_empty() {
            return Err(SettingsError::Invalid {
                key: "whatsapp.numbers",
                reason: "at least one business number is needed".to_owned(),
            });
        }
        Ok(())
    }
}
