//! The voice adapter's configuration: the telephony account, the public
//! URL its callbacks reach us at, and the phone numbers per tenant. Secrets
//! never print.

use std::fmt;
use std::time::Duration;

/// A business phone number calls are placed from (and customers call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceNumber {
    /// The tenant calling from it.
    pub tenant: String,
    /// The number, E.164 (`+4930123456`): the caller id, and the line
    /// inbound calls name.
    pub number: String,
    /// Where a customer's call to the number is put through (an agent line
    /// or queue, E.164); `None`: nobody takes it (a missed call).
    pub forward_to: Option<String>,
    /// Said to a customer who calls, before they are put through (or
    /// before the call ends when nobody takes calls).
    pub greeting: String,
}

/// What a callback does about answering machines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MachineDetection {
    /// Nothing is detected: whoever answers is bridged.
    Off,
    /// Detected and recorded; the call is bridged anyway.
    Record,
    /// Detected; a machine counts as not reached: the call hangs up and is
    /// tried again as if nobody answered.
    #[default]
    NotReached,
}

impl MachineDetection {
    /// Parses a settings value (`off`, `record`, `not_reached`).
    pub fn parse(text: &str) -> Option<MachineDetection> {
        Some(match text {
            "off" => MachineDetection::Off,
            "record" => MachineDetection::Record,
            "not_reached" => MachineDetection::NotReached,
            _ => return None,
        })
    }
}

/// The whole configuration.
#[derive(Clone)]
pub struct VoiceConfig {
    /// The REST API's base URL (`https://api.twilio.com`).
    pub api_base: String,
    /// The account id (`AC…`), the Basic auth user.
    pub account_sid: String,
    /// The auth token: the Basic auth password and the key of
    /// `X-Twilio-Signature`.
    pub auth_token: String,
    /// The public base URL of the router's HTTP listener, as the provider
    /// calls it (`https://router.acme.example`): status callbacks and
    /// gathered digits go to `<base>/webhooks/voice`, and signatures are
    /// computed over that exact URL.
    pub public_base_url: String,
    /// The numbers calls go out from, per tenant.
    pub numbers: Vec<VoiceNumber>,
    /// How long a call rings before it counts as not answered.
    pub ring_timeout: Duration,
    /// How long a request to the API may take.
    pub request_timeout: Duration,
    /// The language of spoken text when the message names none (BCP 47).
    pub default_language: String,
    /// Whether a notification call asks for one confirmation digit.
    pub gather_digit: bool,
    /// What a callback does about answering machines.
    pub machine_detection: MachineDetection,
}

impl fmt::Debug for VoiceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoiceConfig")
            .field("api_base", &self.api_base)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &"***")
            .field("public_base_url", &self.public_base_url)
            .field("numbers", &self.numbers)
            .field("ring_timeout", &self.ring_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("default_language", &self.default_language)
            .field("gather_digit", &self.gather_digit)
            .field("machine_detection", &self.machine_detection)
            .finish()
    }
}

impl VoiceConfig {
    /// The number `tenant` calls from.
    pub fn number_for(&self, tenant: &str) -> Option<&VoiceNumber> {
        self.numbers.iter().find(|n| n.tenant == tenant)
    }

    /// The configured number `number` (as a provider writes it, E.164).
    pub fn number(&self, number: &str) -> Option<&VoiceNumber> {
        self.numbers.iter().find(|n| n.number == number)
    }

    /// The public URL of the voice webhook.
    pub fn webhook_url(&self) -> String {
        format!(
            "{}/webhooks/voice",
            self.public_base_url.trim_end_matches('/')
        )
    }
}
