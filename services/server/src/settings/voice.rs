//! `[voice]`: calls through Twilio Programmable Voice, and the numbers each
//! tenant calls from.

use serde::{Deserialize, Serialize};

use super::{Secret, SettingsError};

/// Voice through a telephony provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoiceSettings {
    /// Call through Twilio (otherwise the sandbox serves voice).
    pub enabled: bool,
    /// The REST API's base URL.
    pub api_base: String,
    /// The account id (`AC…`).
    pub account_sid: String,
    /// The auth token: API credentials and the key of `X-Twilio-Signature`.
    /// Better: `OMNIROUTE__VOICE__AUTH_TOKEN`.
    pub auth_token: Secret,
    /// The public base URL of the HTTP listener as Twilio calls it
    /// (`https://router.acme.example`): callbacks go to
    /// `<base>/webhooks/voice`, and their signatures are checked over that
    /// exact URL.
    pub public_base_url: String,
    /// The numbers calls go out from, per tenant.
    pub numbers: Vec<VoiceNumberSettings>,
    /// Seconds a call rings before it counts as not answered (5 to 600).
    pub ring_timeout_secs: u64,
    /// Seconds a request to the API may take.
    pub request_timeout_secs: u64,
    /// The language calls speak in (BCP 47, `en-US`, `de-DE`).
    pub language: String,
    /// Whether a notification call asks for one confirmation digit, which
    /// comes back as the customer's reply to the message.
    pub gather_digit: bool,
    /// What a callback does about answering machines: `off` (not
    /// detected; whoever answers is bridged), `record` (detected and
    /// recorded, bridged anyway) or `not_reached` (a machine counts as not
    /// reached: the call hangs up and is tried again per the retry plan).
    pub machine_detection: String,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings {
            enabled: false,
            api_base: "https://api.twilio.com".to_owned(),
            account_sid: String::new(),
            auth_token: Secret::default(),
            public_base_url: String::new(),
            numbers: Vec::new(),
            ring_timeout_secs: 30,
            request_timeout_secs: 10,
            language: "en-US".to_owned(),
            gather_digit: false,
            machine_detection: "not_reached".to_owned(),
        }
    }
}

/// A number a tenant calls from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoiceNumberSettings {
    pub tenant: String,
    /// The number, E.164 (`+4930123456`).
    pub number: String,
    /// Where customers' calls to the number are put through (an agent line
    /// or queue, E.164); empty: nobody takes them (each is a missed call).
    pub forward_to: String,
    /// Said to a customer who calls, before they are put through (or before
    /// the call ends when nobody takes calls).
    pub greeting: String,
}

impl VoiceSettings {
    /// The adapter's configuration (checked by [`VoiceSettings::validate`]).
    pub fn config(&self) -> omniroute_voice::VoiceConfig {
        omniroute_voice::VoiceConfig {
            api_base: self.api_base.clone(),
            account_sid: self.account_sid.clone(),
            auth_token: self.auth_token.expose().to_owned(),
            public_base_url: self.public_base_url.clone(),
            numbers: self
                .numbers
                .iter()
                .map(|n| omniroute_voice::VoiceNumber {
                    tenant: n.tenant.clone(),
                    number: n.number.clone(),
                    forward_to: Some(n.forward_to.clone()).filter(|f| !f.is_empty()),
                    greeting: n.greeting.clone(),
                })
                .collect(),
            ring_timeout: std::time::Duration::from_secs(self.ring_timeout_secs),
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs),
            default_language: self.language.clone(),
            gather_digit: self.gather_digit,
            machine_detection: omniroute_voice::MachineDetection::parse(&self.machine_detection)
                .unwrap_or_default(),
        }
    }

    /// Checks the section when voice is enabled.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key: &'static str, reason: &str| {
            Err(SettingsError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if !self.enabled {
            return Ok(());
        }
        if !self.account_sid.starts_with("AC") {
            return invalid("voice.account_sid", "the account id, AC…");
        }
        if self.auth_token.expose().is_empty() {
            return invalid("voice.auth_token", "needed to call and to check signatures");
        }
        if !super::is_callback_url(&self.public_base_url) {
            return invalid(
                "voice.public_base_url",
                "the https:// address Twilio reaches the HTTP listener at",
            );
        }
        if omniroute_voice::MachineDetection::parse(&self.machine_detection).is_none() {
            return invalid(
                "voice.machine_detection",
                "one of \"off\", \"record\", \"not_reached\"",
            );
        }
        if self.numbers.is_empty() {
            return invalid("voice.numbers", "at least one number is needed");
        }
        let e164 = |n: &str| {
            let digits = n.strip_prefix('+').unwrap_or("");
            digits.len() >= 8 && digits.bytes().all(|b| b.is_ascii_digit())
        };
        for number in &self.numbers {
            if !e164(&number.number) {
                return invalid("voice.numbers.number", "an E.164 number like +4930123456");
            }
            if !number.forward_to.is_empty() && !e164(&number.forward_to) {
                return invalid(
                    "voice.numbers.forward_to",
                    "an E.164 number like +4930555000111, or empty",
                );
            }
        }
        if !(5..=600).contains(&self.ring_timeout_secs) {
            return invalid("voice.ring_timeout_secs", "5 to 600 seconds");
        }
        if self.request_timeout_secs == 0 {
            return invalid("voice.request_timeout_secs", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> VoiceSettings {
        VoiceSettings {
            enabled: true,
            account_sid: "AC00000000000000000000000000000001".into(),
            auth_token: Secret::new("token"),
            public_base_url: "https://router.acme.example".into(),
            numbers: vec![VoiceNumberSettings {
                tenant: "default".into(),
                number: "+4930123456".into(),
                ..VoiceNumberSettings::default()
            }],
            ..VoiceSettings::default()
        }
    }

    #[test]
    fn an_enabled_account_needs_credentials_a_public_url_and_numbers() {
        crate::settings::check_refusals(
            VoiceSettings::validate,
            enabled,
            &[
                ("voice.account_sid", |s| s.account_sid = "x".into()),
                ("voice.auth_token", |s| s.auth_token = Secret::default()),
                ("voice.public_base_url", |s| {
                    s.public_base_url = "http://router.example".into();
                }),
                ("voice.machine_detection", |s| {
                    s.machine_detection = "maybe".into();
                }),
                ("voice.numbers.forward_to", |s| {
                    s.numbers[0].forward_to = "the desk".into();
                }),
                ("voice.numbers.number", |s| {
                    s.numbers[0].number = "030 123456".into();
                }),
            ],
        );
        assert!(
            !format!("{:?}", enabled().config()).contains("token\""),
            "the token never prints"
        );
    }
}
