//! The adapter's settings: where the Graph API is, the secrets it needs, and
//! which business phone numbers belong to which tenant.
//!
//! Guarantees: secrets (`access_token`, `app_secret`, `verify_token`) never
//! appear in `Debug` output, so a settings dump or an error log cannot leak
//! them; [`WhatsAppConfig::validate`] names the field at fault.

use std::fmt;
use std::time::Duration;

/// The default Graph API host.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// The Graph API version used when none is configured.
pub const DEFAULT_API_VERSION: &str = "v24.0";
/// Messages per second a business number may send by default (PROTOCOLS §1,
/// "Throughput"): Meta raises eligible numbers to 1,000/s.
pub const DEFAULT_THROUGHPUT_PER_SECOND: u32 = 80;

/// Settings of the WhatsApp Cloud API adapter.
#[derive(Clone)]
pub struct WhatsAppConfig {
    /// The Graph API host, without a trailing slash; a fake's URL in tests.
    pub base_url: String,
    /// The Graph API version path segment, for example `v24.0`.
    pub api_version: String,
    /// The system user access token (Bearer). Secret.
    pub access_token: String,
    /// The app secret: the HMAC key of webhook signatures. Secret.
    pub app_secret: String,
    /// The token Meta echoes in the webhook subscription handshake. Secret.
    pub verify_token: String,
    /// The business phone numbers messages are sent from.
    pub numbers: Vec<BusinessNumber>,
    /// How often the template catalogue is fetched again.
    pub template_refresh: Duration,
    /// The limit of one Graph API request, connection included.
    pub request_timeout: Duration,
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        WhatsAppConfig {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_version: DEFAULT_API_VERSION.to_owned(),
            access_token: String::new(),
            app_secret: String::new(),
            verify_token: String::new(),
            numbers: Vec::new(),
            template_refresh: Duration::from_secs(600),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for WhatsAppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppConfig")
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("access_token", &"***")
            .field("app_secret", &"***")
            .field("verify_token", &"***")
            .field("numbers", &self.numbers)
            .field("template_refresh", &self.template_refresh)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl WhatsAppConfig {
    /// Checks what the adapter cannot work without; the message names the
    /// field at fault.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(format!(
                "whatsapp.base_url must be an http:// or https:// URL, got {:?}",
                self.base_url
            ));
        }
        if self.api_version.trim().is_empty() || self.api_version.contains('/') {
            return Err("whatsapp.api_version must be a version like \"v24.0\"".to_owned());
        }
        if self.access_token.is_empty() {
            return Err("whatsapp.access_token must be set".to_owned());
        }
        if self.app_secret.is_empty() {
            return Err("whatsapp.app_secret must be set".to_owned());
        }
        if self.request_timeout.is_zero() {
            return Err("whatsapp.request_timeout must be positive".to_owned());
        }
        if self.template_refresh.is_zero() {
            return Err("whatsapp.template_refresh must be positive".to_owned());
        }
        for (i, number) in self.numbers.iter().enumerate() {
            let segment_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
            if !segment_ok(&number.phone_number_id) {
                return Err(format!(
                    "whatsapp.numbers[{i}].phone_number_id must be the numeric Graph id"
                ));
            }
            if !segment_ok(&number.waba_id) {
                return Err(format!(
                    "whatsapp.numbers[{i}].waba_id must be the numeric Graph id"
                ));
            }
            if number.tenant.is_empty() {
                return Err(format!("whatsapp.numbers[{i}].tenant must be set"));
            }
            if number.throughput_per_second == 0 {
                return Err(format!(
                    "whatsapp.numbers[{i}].throughput_per_second must be positive"
                ));
            }
        }
        Ok(())
    }

    /// The first number whose tenant is `tenant`: the one it sends from.
    pub fn number_for(&self, tenant: &str) -> Option<&BusinessNumber> {
        self.numbers.iter().find(|n| n.tenant == tenant)
    }

    /// The number with this Graph id, which names the tenant of inbound events.
    pub fn number_by_id(&self, phone_number_id: &str) -> Option<&BusinessNumber> {
        self.numbers
            .iter()
            .find(|n| n.phone_number_id == phone_number_id)
    }
}

/// A WhatsApp business phone number registered on the Cloud API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessNumber {
    /// The Graph id of the number (not the phone number itself): the path
    /// segment of sends and `metadata.phone_number_id` of webhooks.
    pub phone_number_id: String,
    /// The WhatsApp Business Account owning it, whose template catalogue
    /// applies.
    pub waba_id: String,
    /// The tenant that sends from it and receives its inbound messages.
    pub tenant: String,
    /// A free label for operators (for example "support-de").
    pub line: String,
    /// Meta's throughput cap for this number; the adapter stays under it.
    pub throughput_per_second: u32,
}

impl Default for BusinessNumber {
    fn default() -> Self {
        BusinessNumber {
            phone_number_id: String::new(),
            waba_id: String::new(),
            tenant: String::new(),
            line: String::new(),
            throughput_per_second: DEFAULT_THROUGHPUT_PER_SECOND,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WhatsAppConfig {
        WhatsAppConfig {
            access_token: "EAAG-token".into(),
            app_secret: "app-secret".into(),
            verify_token: "verify-me".into(),
            numbers: vec![BusinessNumber {
                phone_number_id: "106540352242922".into(),
                waba_id: "102290129340398".into(),
                tenant: "acme".into(),
                ..BusinessNumber::default()
            }],
            ..WhatsAppConfig::default()
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let printed = format!("{:?}", config());
        assert!(!printed.contains("EAAG-token"), "{printed}");
        assert!(!printed.contains("app-secret"), "{printed}");
        assert!(!printed.contains("verify-me"), "{printed}");
        assert!(printed.contains("106540352242922"));
    }

    #[test]
    fn defaults_follow_the_documentation() {
        let c = WhatsAppConfig::default();
        assert_eq!(c.base_url, "https://graph.facebook.com");
        assert_eq!(c.api_version, "v24.0");
        assert_eq!(c.template_refresh, Duration::from_secs(600));
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert_eq!(BusinessNumber::default().throughput_per_second, 80);
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(config().validate(), Ok(()));
        let mut c = config();
        c.access_token.clear();
        assert!(c.validate().unwrap_err().contains("access_token"));
        let mut c = config();
        c.numbers[0].phone_number_id = "12/../x".into();
        assert!(
            c.validate()
                .unwrap_err()
                .contains("numbers[0].phone_number_id")
        );
        let mut c = config();
        c.base_url = "graph.facebook.com".into();
        assert!(c.validate().unwrap_err().contains("base_url"));
    }

    #[test]
    fn the_first_number_of_a_tenant_sends() {
        let mut c = config();
        c.numbers.push(BusinessNumber {
            phone_number_id: "2".into(),
            waba_id: "3".into(),
            tenant: "acme".into(),
            ..BusinessNumber::default()
        });
        assert_eq!(
            c.number_for("acme").unwrap().phone_number_id,
            "106540352242922"
        );
        assert!(c.number_for("other").is_none());
        assert_eq!(c.number_by_id("2").unwrap().waba_id, "3");
    }
}
