//! The voice channel: a message routed to voice becomes a call that speaks
//! its text and can gather one confirmation digit, placed through a
//! telephony provider ([`provider::VoiceProvider`]; Twilio Programmable
//! Voice in `twilio/`). The call's progress comes back as signed callbacks
//! to `/webhooks/voice`: answered and completed is delivered; busy and no
//! answer are transient failures (routing calls again while attempts
//! remain); failed and canceled are permanent; a pressed digit is an inbound
//! reply to the message.
//!
//! Files, by role (as in `omniroute-whatsapp`): `config.rs` the account,
//! the public callback URL, the numbers per tenant; `provider.rs` the
//! neutral provider contract; `twilio/` its Twilio implementation (REST
//! client and errors, TwiML, signatures, callbacks); `fake.rs` (feature
//! `fake`) a local Twilio REST API that records calls and posts signed
//! callbacks back.
//!
//! A call speaks in the customer's locale (as routing saw it), else in the
//! configured language.
//!
//! What is not here yet (issue 13): scheduled callbacks (CallbackService),
//! bridging to an agent with `<Dial>`, inbound calls and answering-machine
//! handling.

pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod provider;
pub mod twilio;

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use omniroute_channel::capabilities::{Capabilities, ContentKind};
use omniroute_channel::content::Choice;
use omniroute_channel::{
    Adapter, AdapterError, Address, Channel, Content, ContentViolation, DeliveryStatus, ErrorClass,
    InboundMessage, MediaDownload, OutboundMessage, PhoneRegion, SendReceipt, StatusUpdate,
    WebhookEvent, WebhookRequest,
};

pub use config::{VoiceConfig, VoiceNumber};
use provider::{CallState, Callback, PlaceCall, Script, VoiceProvider};

/// The longest text a call speaks (a spoken minute is about 150 words).
pub const MAX_SPOKEN_CHARS: usize = 1000;

/// What voice carries: text, spoken; it rings, so never in quiet hours.
const CAPABILITIES: Capabilities = Capabilities {
    kinds: &[ContentKind::Text],
    max_text_chars: Some(MAX_SPOKEN_CHARS),
    interactive: false,
    service_window: None,
    rings: true,
};

/// The voice adapter.
#[derive(Debug)]
pub struct VoiceAdapter {
    config: VoiceConfig,
    provider: Arc<dyn VoiceProvider>,
}

impl VoiceAdapter {
    /// An adapter calling through Twilio.
    pub fn new(config: VoiceConfig) -> Result<VoiceAdapter, AdapterError> {
        let provider = Arc::new(twilio::Twilio::new(&config)?);
        Ok(VoiceAdapter { config, provider })
    }

    /// An adapter calling through another provider.
    pub fn with_provider(config: VoiceConfig, provider: Arc<dyn VoiceProvider>) -> VoiceAdapter {
        VoiceAdapter { config, provider }
    }
}

/// The language a call speaks for a customer's locale: a tag with a region
/// as it is (`pt_BR` → `pt-BR`); a bare language with its most spoken
/// region (`de` → `de-DE`); `None` for one calls do not speak.
pub fn spoken_language(locale: &str) -> Option<String> {
    let locale = locale.trim().replace('_', "-");
    let (language, region) = match locale.split_once('-') {
        Some((l, r)) => (l.to_ascii_lowercase(), Some(r.to_ascii_uppercase())),
        None => (locale.to_ascii_lowercase(), None),
    };
    if language.len() != 2 || !language.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    if let Some(region) = region.filter(|r| r.len() == 2) {
        return Some(format!("{language}-{region}"));
    }
    let region = match language.as_str() {
        "de" => "DE",
        "en" => "US",
        "fr" => "FR",
        "es" => "ES",
        "it" => "IT",
        "pt" => "BR",
        "nl" => "NL",
        "pl" => "PL",
        "sv" => "SE",
        "da" => "DK",
        "nb" | "no" => "NO",
        "fi" => "FI",
        "tr" => "TR",
        "ja" => "JP",
        "ko" => "KR",
        "zh" => "CN",
        "ru" => "RU",
        _ => return None,
    };
    Some(format!("{language}-{region}"))
}

/// What a call's state says of the message it carried; `None` for the
/// states on the way (queued, ringing, answered).
fn status_of(
    call_id: &str,
    state: CallState,
    raw: &str,
    error_code: &str,
    time: SystemTime,
) -> Option<StatusUpdate> {
    let failed = |class: ErrorClass, why: &str| {
        let code = if error_code.is_empty() {
            format!("call-{raw}")
        } else {
            format!("call-{raw}-{error_code}")
        };
        (
            DeliveryStatus::Failed,
            Some(AdapterError::new(class, code, why)),
        )
    };
    let (status, error) = match state {
        CallState::Queued | CallState::Ringing | CallState::InProgress => return None,
        CallState::Completed => (DeliveryStatus::Delivered, None),
        CallState::Busy => failed(ErrorClass::Transient, "the line was busy"),
        CallState::NoAnswer => failed(ErrorClass::Transient, "nobody answered"),
        CallState::Failed => failed(ErrorClass::Permanent, "the call could not be placed"),
        CallState::Canceled => failed(ErrorClass::Permanent, "the call was canceled"),
    };
    Some(StatusUpdate {
        channel: Channel::Voice,
        message_id: None,
        provider_message_id: call_id.to_owned(),
        status,
        time,
        error,
    })
}

#[async_trait]
impl Adapter for VoiceAdapter {
    fn channel(&self) -> Channel {
        Channel::Voice
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn sending_line(&self, tenant: &str) -> &str {
        self.config
            .number_for(tenant)
            .map_or("", |n| n.number.as_str())
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, AdapterError> {
        let Content::Text(text) = &message.content else {
            return Err(AdapterError::unsupported(
                Channel::Voice,
                message.content.kind(),
            ));
        };
        let from = self.config.number_for(&message.tenant).ok_or_else(|| {
            AdapterError::new(
                ErrorClass::Configuration,
                "no_number",
                format!(
                    "no voice number is configured for tenant {}",
                    message.tenant
                ),
            )
        })?;
        let webhook = self.config.webhook_url();
        let call = PlaceCall {
            from: from.number.clone(),
            to: message.to.value().to_owned(),
            script: Script {
                say: text.body.clone(),
                language: message
                    .locale
                    .as_deref()
                    .and_then(spoken_language)
                    .unwrap_or_else(|| self.config.default_language.clone()),
                gather_url: self.config.gather_digit.then(|| webhook.clone()),
            },
            status_url: webhook,
            ring_seconds: self.config.ring_timeout.as_secs(),
        };
        let call_id = self.provider.place_call(&call).await?;
        tracing::debug!(to = %message.to, "call placed");
        Ok(SendReceipt {
            provider_message_id: call_id,
        })
    }

    async fn fetch_status(&self, call_id: &str) -> Result<Option<StatusUpdate>, AdapterError> {
        let (state, raw) = self.provider.call_state(call_id).await?;
        Ok(status_of(call_id, state, &raw, "", SystemTime::now()))
    }

    fn check_content(&self, _tenant: &str, content: &Content) -> Vec<ContentViolation> {
        match content {
            Content::Text(text) if text.body.trim().is_empty() => vec![ContentViolation {
                field: "text.body".into(),
                description: "a call needs something to say".into(),
            }],
            _ => Vec::new(),
        }
    }

    fn verify_signature(&self, request: &WebhookRequest<'_>) -> Result<(), AdapterError> {
        let url = format!(
            "{}{}",
            self.config.public_base_url.trim_end_matches('/'),
            request.uri
        );
        self.provider.verify(&url, request)
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<Vec<WebhookEvent>, AdapterError> {
        Ok(vec![match self.provider.parse(body)? {
            Callback::Status {
                call_id,
                state,
                raw,
                time,
                error_code,
                ..
            } => match status_of(&call_id, state, &raw, &error_code, time) {
                Some(update) => WebhookEvent::Status(update),
                None => WebhookEvent::Ignored(format!("call {raw}")),
            },
            Callback::Digits {
                call_id,
                business,
                customer,
                digits,
            } => {
                let Ok(from) = Address::parse(Channel::Voice, &customer, PhoneRegion::default())
                else {
                    return Ok(vec![WebhookEvent::Ignored(
                        "digits from a caller without a number".into(),
                    )]);
                };
                WebhookEvent::Inbound(InboundMessage {
                    channel: Channel::Voice,
                    account: business,
                    provider_message_id: format!("{call_id}#digits"),
                    from,
                    profile_name: None,
                    provider_user_id: None,
                    time: SystemTime::now(),
                    content: Content::ChoiceReply(Choice {
                        id: digits.clone(),
                        title: digits,
                        description: String::new(),
                    }),
                    reply_to: Some(call_id),
                    automatic: false,
                    media_bytes: None,
                })
            }
            Callback::Other(why) => WebhookEvent::Ignored(why),
        }])
    }

    fn webhook_answer(&self) -> (&'static str, String) {
        // A `<Gather>` action is answered with what the call does next.
        ("text/xml", twilio::twiml::HANG_UP.to_owned())
    }

    async fn mark_read(&self, _: &str, _: &str) -> Result<(), AdapterError> {
        Err(AdapterError::unsupported(Channel::Voice, "read receipts"))
    }

    async fn fetch_media(&self, _: &str, _: &str) -> Result<MediaDownload, AdapterError> {
        Err(AdapterError::unsupported(Channel::Voice, "media"))
    }

    async fn health(&self) -> Result<(), AdapterError> {
        self.provider.health().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_become_spoken_languages() {
        assert_eq!(spoken_language("de").as_deref(), Some("de-DE"));
        assert_eq!(spoken_language("pt_br").as_deref(), Some("pt-BR"));
        assert_eq!(spoken_language("en-GB").as_deref(), Some("en-GB"));
        assert_eq!(spoken_language("xx"), None);
        assert_eq!(spoken_language(""), None);
        assert_eq!(spoken_language("deutsch"), None);
    }
}
