//! Sandbox channels: stand-ins for WhatsApp, email and voice that need no
//! provider account, so that a newcomer (and the test suite) sees messages
//! dispatched, retried, failed and delivered.
//!
//! A sandbox adapter accepts a send at once and later reports the statuses a
//! real provider would: `delivered` after [`SandboxConfig::delivery_delay`],
//! then, on WhatsApp, `read` after [`SandboxConfig::read_delay`]. Magic
//! addresses choose other outcomes ([`Behaviour`]): phone numbers and wa_ids
//! by their last four digits, email addresses by their local part.
//!
//! | phone / wa_id ends in | email local part starts with | outcome |
//! |---|---|---|
//! | `0001` | `fail-permanent` | every attempt fails permanently |
//! | `0002` | `fail-twice` | the first two attempts fail transiently, then it is sent |
//! | `0003` | `no-delivery` | sent, but no delivery is ever reported |
//! | `0004` | `fail-always` | every attempt fails transiently (retries run out) |
//! | `0005` | `bounce` | sent, then reported failed (like a bounce) |
//! | `0006` | `rate-limited` | the first attempt is rate limited (retry after 1 s) |
//!
//! Like a provider, the sandbox answers status queries
//! ([`Adapter::fetch_status`]) with where its reports end, so that statuses
//! lost with a crashed process are reconciled after a restart.
//!
//! Every send can be recorded as a line in a file (for tests that count
//! provider calls across processes): `channel<TAB>message id<TAB>attempt`.
//!
//! The sandbox keeps the rules of the channel it stands in for, read from
//! the real adapter's crate rather than restated: its
//! [`Adapter::capabilities`] are what the real adapter declares
//! (`omniroute_whatsapp::capabilities`, `omniroute_email::capabilities`,
//! `omniroute_voice::capabilities`; a test holds them equal), its
//! [`Adapter::check_content`] runs the real adapter's rules that need no
//! template catalogue (each crate's `check_limits`), and sandbox WhatsApp
//! refuses free-form content outside the customer service window (error
//! `131047`, class `window_closed`), as Meta does. A customer's message is simulated with a signed webhook,
//! `POST /webhooks/{channel}` with `X-Hub-Signature-256: sha256=<hex>` (an
//! HMAC-SHA256 of the body under `sandbox.webhook_secret`, Meta's scheme) and
//! a body like
//! `{"messages":[{"id":"in-1","from":"+4915123456789","text":"Hi","name":"Anna"}]}`;
//! it resolves or creates the contact and, on WhatsApp, opens the window.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use omniroute_channel::{
    Adapter, AdapterError, Address, Capabilities, Channel, Content, ContentViolation,
    DeliveryStatus, ErrorClass, InboundMessage, MediaDownload, OutboundMessage, PhoneRegion,
    SendReceipt, StatusSink, StatusUpdate, WebhookEvent, WebhookRequest,
};

/// The account name sandbox webhooks arrive for (it maps to the default tenant).
pub const ACCOUNT: &str = "sandbox";

/// How the sandbox behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Delay before `delivered` is reported.
    pub delivery_delay: Duration,
    /// Delay between `delivered` and `read` (WhatsApp only).
    pub read_delay: Duration,
    /// Where to record every send, if anywhere.
    pub record_path: Option<PathBuf>,
    /// How long a send takes to answer, like a provider's API latency.
    pub send_delay: Duration,
    /// The key simulated customer messages are signed with.
    pub webhook_secret: String,
    /// The region of phone numbers written without a country code.
    pub region: PhoneRegion,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            delivery_delay: Duration::from_millis(200),
            read_delay: Duration::from_millis(800),
            record_path: None,
            send_delay: Duration::ZERO,
            webhook_secret: String::new(),
            region: PhoneRegion::default(),
        }
    }
}

/// A simulated delivery of customers' messages.
#[derive(Debug, serde::Deserialize)]
struct SandboxWebhook {
    #[serde(default)]
    messages: Vec<SandboxInbound>,
    /// Any other kind of event: acknowledged and ignored.
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, serde_json::Value>,
}

/// One simulated customer message.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SandboxInbound {
    /// The provider id (deduplication key).
    id: String,
    /// The sender's address on the channel.
    from: String,
    /// What the customer wrote.
    text: String,
    /// The sender's profile name.
    #[serde(default)]
    name: Option<String>,
    /// When the customer sent it, in Unix seconds; default: now.
    #[serde(default)]
    timestamp: Option<u64>,
}

/// What a magic address makes the sandbox do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Sent, delivered (and read on WhatsApp).
    Deliver,
    /// Every attempt fails permanently.
    FailPermanently,
    /// Attempts 1 and 2 fail transiently, then the message is sent.
    FailTwice,
    /// Sent, never delivered.
    NoDelivery,
    /// Every attempt fails transiently.
    FailAlways,
    /// Sent, then reported failed.
    Bounce,
    /// The first attempt is rate limited.
    RateLimited,
}

impl Behaviour {
    /// A letter for provider ids, so that a status query can answer from the
    /// id alone, as a provider answers from its own records.
    fn code(self) -> char {
        match self {
            Behaviour::Deliver => 'd',
            Behaviour::FailPermanently => 'p',
            Behaviour::FailTwice => 't',
            Behaviour::NoDelivery => 'n',
            Behaviour::FailAlways => 'a',
            Behaviour::Bounce => 'b',
            Behaviour::RateLimited => 'r',
        }
    }

    /// The behaviour an address asks for.
    pub fn of(address: &Address) -> Behaviour {
        let key = address.key();
        if address.channel() == Channel::Email {
            let local = key.split('@').next().unwrap_or_default();
            return [
                ("fail-permanent", Behaviour::FailPermanently),
                ("fail-twice", Behaviour::FailTwice),
                ("no-delivery", Behaviour::NoDelivery),
                ("fail-always", Behaviour::FailAlways),
                ("bounce", Behaviour::Bounce),
                ("rate-limited", Behaviour::RateLimited),
            ]
            .into_iter()
            .find(|(prefix, _)| local.starts_with(prefix))
            .map_or(Behaviour::Deliver, |(_, b)| b);
        }
        match key.get(key.len().saturating_sub(4)..) {
            Some("0001") => Behaviour::FailPermanently,
            Some("0002") => Behaviour::FailTwice,
            Some("0003") => Behaviour::NoDelivery,
            Some("0004") => Behaviour::FailAlways,
            Some("0005") => Behaviour::Bounce,
            Some("0006") => Behaviour::RateLimited,
            _ => Behaviour::Deliver,
        }
    }
}

/// A sandbox adapter for one channel.
#[derive(Debug)]
pub struct SandboxAdapter {
    channel: Channel,
    config: SandboxConfig,
    sink: Arc<dyn StatusSink>,
}

impl SandboxAdapter {
    /// A sandbox for `channel` reporting statuses to `sink`.
    pub fn new(channel: Channel, config: SandboxConfig, sink: Arc<dyn StatusSink>) -> Self {
        SandboxAdapter {
            channel,
            config,
            sink,
        }
    }

    fn record(&self, message: &OutboundMessage) {
        let Some(path) = &self.config.record_path else {
            return;
        };
        let line = format!(
            "{}\t{}\t{}\n",
            self.channel, message.message_id, message.attempt
        );
        // One write per line with O_APPEND: lines from several processes
        // never interleave.
        let written = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(error = %e, "sandbox cannot record a send");
        }
    }

    /// Reports the statuses that follow an accepted send.
    fn report_later(
        &self,
        message: &OutboundMessage,
        provider_message_id: String,
        behaviour: Behaviour,
    ) {
        let mut steps = match behaviour {
            Behaviour::NoDelivery => return,
            Behaviour::Bounce => vec![(self.config.delivery_delay, DeliveryStatus::Failed)],
            _ => vec![(self.config.delivery_delay, DeliveryStatus::Delivered)],
        };
        if self.channel == Channel::Whatsapp && behaviour != Behaviour::Bounce {
            steps.push((self.config.read_delay, DeliveryStatus::Read));
        }
        let sink = Arc::clone(&self.sink);
        let channel = self.channel;
        let message_id = message.message_id.clone();
        tokio::spawn(async move {
            for (delay, status) in steps {
                tokio::time::sleep(delay).await;
                let error = (status == DeliveryStatus::Failed).then(|| {
                    AdapterError::new(
                        ErrorClass::Permanent,
                        "sandbox-bounce",
                        "the sandbox bounced this message (magic address)",
                    )
                });
                sink.report(StatusUpdate {
                    channel,
                    message_id: Some(message_id.clone()),
                    provider_message_id: provider_message_id.clone(),
                    status,
                    time: SystemTime::now(),
                    error,
                });
            }
        });
    }
}

#[async_trait]
impl Adapter for SandboxAdapter {
    fn channel(&self) -> Channel {
        self.channel
    }

    fn capabilities(&self) -> Capabilities {
        capabilities(self.channel)
    }

    fn sending_line(&self, _tenant: &str) -> &str {
        ACCOUNT
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, AdapterError> {
        self.record(message);
        if !self.config.send_delay.is_zero() {
            tokio::time::sleep(self.config.send_delay).await;
        }
        let window_open = message
            .window_open_until
            .is_some_and(|until| until > SystemTime::now());
        if self.channel == Channel::Whatsapp
            && !window_open
            && !matches!(message.content, Content::Template(_))
        {
            // Meta's answer to free form outside the window.
            return Err(AdapterError::new(
                ErrorClass::WindowClosed,
                "131047",
                "re-engagement message: more than 24 hours have passed since the customer last replied",
            ));
        }
        let behaviour = Behaviour::of(&message.to);
        tracing::debug!(channel = %self.channel, to = %message.to, ?behaviour, "sandbox send");
        match behaviour {
            Behaviour::FailPermanently => {
                return Err(AdapterError::new(
                    ErrorClass::Permanent,
                    "sandbox-permanent",
                    "the sandbox refuses this address (magic address)",
                ));
            }
            Behaviour::FailAlways => {
                return Err(AdapterError::new(
                    ErrorClass::Transient,
                    "sandbox-unavailable",
                    "the sandbox is unavailable for this address (magic address)",
                ));
            }
            Behaviour::FailTwice if message.attempt <= 2 => {
                return Err(AdapterError::new(
                    ErrorClass::Transient,
                    "sandbox-unavailable",
                    format!("transient failure {} of 2 (magic address)", message.attempt),
                ));
            }
            Behaviour::RateLimited if message.attempt <= 1 => {
                return Err(AdapterError::rate_limited(
                    "sandbox-rate-limited",
                    "too many messages (magic address)",
                    Some(Duration::from_secs(1)),
                ));
            }
            _ => {}
        }
        let provider_message_id = format!(
            "sandbox.{}.{}.{}.{}",
            self.channel,
            behaviour.code(),
            message.message_id,
            message.attempt
        );
        self.report_later(message, provider_message_id.clone(), behaviour);
        Ok(SendReceipt {
            provider_message_id,
        })
    }

    async fn fetch_status(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<StatusUpdate>, AdapterError> {
        let mut parts = provider_message_id.split('.');
        let (Some("sandbox"), Some(channel), Some(code), Some(message_id)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AdapterError::new(
                ErrorClass::Permanent,
                "sandbox-unknown-id",
                "not a sandbox message id",
            ));
        };
        if channel != self.channel.as_str() {
            return Err(AdapterError::new(
                ErrorClass::Permanent,
                "sandbox-unknown-id",
                "a message id of another channel",
            ));
        }
        // Where the reports would have ended.
        let (status, error) = match code {
            "n" => return Ok(None),
            "b" => (
                DeliveryStatus::Failed,
                Some(AdapterError::new(
                    ErrorClass::Permanent,
                    "sandbox-bounce",
                    "the sandbox bounced this message (magic address)",
                )),
            ),
            _ if self.channel == Channel::Whatsapp => (DeliveryStatus::Read, None),
            _ => (DeliveryStatus::Delivered, None),
        };
        Ok(Some(StatusUpdate {
            channel: self.channel,
            message_id: Some(message_id.to_owned()),
            provider_message_id: provider_message_id.to_owned(),
            status,
            time: SystemTime::now(),
            error,
        }))
    }

    fn check_content(&self, _tenant: &str, content: &Content) -> Vec<ContentViolation> {
        // The real channel's rules; the sandbox has no template catalogue
        // (WhatsApp's approved templates, the tenant's email templates).
        match self.channel {
            Channel::Whatsapp => omniroute_whatsapp::check_limits(content),
            Channel::Email => omniroute_email::check_limits(content),
            Channel::Voice => omniroute_voice::check_limits(content),
        }
    }

    fn template_category(&self, _: &str, _: &str, _: &str) -> Option<omniroute_channel::Category> {
        // The sandbox has no template catalogue.
        None
    }

    fn verify_subscription(&self, _: &WebhookRequest<'_>) -> Result<String, AdapterError> {
        Err(AdapterError::unsupported(
            self.channel,
            "subscription handshakes (sandbox)",
        ))
    }

    fn verify_signature(&self, request: &WebhookRequest<'_>) -> Result<(), AdapterError> {
        omniroute_whatsapp::verify_hub_signature(&self.config.webhook_secret, request)
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<Vec<WebhookEvent>, AdapterError> {
        let malformed = |why: String| AdapterError::new(ErrorClass::Permanent, "malformed", why);
        let webhook: SandboxWebhook =
            serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
        let ignored = webhook.other.into_keys().map(|kind| {
            Ok(WebhookEvent::Ignored(format!(
                "unknown sandbox event {kind:?}"
            )))
        });
        webhook
            .messages
            .into_iter()
            .map(|m| {
                let from = Address::parse(self.channel, &m.from, self.config.region)
                    .map_err(|e| malformed(format!("from: {e}")))?;
                if m.id.trim().is_empty() {
                    return Err(malformed("id: must not be empty".into()));
                }
                Ok(WebhookEvent::Inbound(InboundMessage {
                    channel: self.channel,
                    account: ACCOUNT.to_owned(),
                    provider_message_id: m.id,
                    from,
                    profile_name: m.name,
                    provider_user_id: None,
                    time: m
                        .timestamp
                        .and_then(omniroute_channel::provider_time)
                        .unwrap_or_else(SystemTime::now),
                    content: Content::Text(omniroute_channel::content::Text {
                        body: m.text,
                        ..Default::default()
                    }),
                    reply_to: None,
                    automatic: false,
                    media_bytes: None,
                }))
            })
            .chain(ignored)
            .collect()
    }

    async fn mark_read(&self, _: &str, _: &str) -> Result<(), AdapterError> {
        Err(AdapterError::unsupported(
            self.channel,
            "read receipts (sandbox)",
        ))
    }

    async fn fetch_media(&self, _: &str, _: &str) -> Result<MediaDownload, AdapterError> {
        Err(AdapterError::unsupported(
            self.channel,
            "media downloads (sandbox)",
        ))
    }

    async fn health(&self) -> Result<(), AdapterError> {
        Ok(())
    }
}

/// What `channel` carries, as its real adapter declares it: the declaration
/// of its sandbox, and every channel's in one place for those who need it
/// whichever adapter serves the channel (the API's validation, routing's
/// tests).
pub fn capabilities(channel: Channel) -> Capabilities {
    match channel {
        Channel::Whatsapp => omniroute_whatsapp::capabilities(),
        Channel::Email => omniroute_email::capabilities(),
        Channel::Voice => omniroute_voice::capabilities(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use omniroute_channel::{Category, PhoneRegion};

    use super::*;

    #[derive(Debug, Default)]
    struct Collect(Mutex<Vec<StatusUpdate>>);

    impl StatusSink for Collect {
        fn report(&self, update: StatusUpdate) {
            self.0.lock().unwrap().push(update);
        }
    }

    fn message(channel: Channel, to: &str, attempt: u32) -> OutboundMessage {
        OutboundMessage {
            tenant: "default".into(),
            message_id: "m1".into(),
            to: Address::parse(channel, to, PhoneRegion::default()).unwrap(),
            category: Category::Transactional,
            content: Content::Text(Default::default()),
            reply_to: None,
            attempt,
            window_open_until: Some(SystemTime::now() + Duration::from_secs(3600)),
            locale: None,
            trace_parent: String::new(),
        }
    }

    fn config() -> SandboxConfig {
        SandboxConfig {
            delivery_delay: Duration::from_millis(10),
            read_delay: Duration::from_millis(10),
            record_path: None,
            send_delay: Duration::ZERO,
            webhook_secret: "sandbox-secret".into(),
            region: PhoneRegion::default(),
        }
    }

    #[tokio::test]
    async fn whatsapp_keeps_the_service_window() {
        let sink = Arc::new(Collect::default());
        let adapter = SandboxAdapter::new(Channel::Whatsapp, config(), sink);
        let mut closed = message(Channel::Whatsapp, "+4915123456789", 1);
        closed.window_open_until = Some(SystemTime::now() - Duration::from_secs(1));
        let err = adapter.send(&closed).await.unwrap_err();
        assert_eq!(err.class(), ErrorClass::WindowClosed);
        assert_eq!(err.code(), "131047");
        closed.window_open_until = None;
        assert_eq!(
            adapter.send(&closed).await.unwrap_err().class(),
            ErrorClass::WindowClosed
        );
        // A template goes outside the window.
        closed.content = Content::Template(omniroute_channel::content::Template {
            name: "order_shipped".into(),
            language: "en".into(),
            components: Vec::new(),
        });
        assert!(adapter.send(&closed).await.is_ok());
        // Email has no window.
        let email = SandboxAdapter::new(Channel::Email, config(), Arc::new(Collect::default()));
        let mut mail = message(Channel::Email, "anna@example.com", 1);
        mail.window_open_until = None;
        assert!(email.send(&mail).await.is_ok());
    }

    #[test]
    fn whatsapp_checks_content_like_the_cloud_api() {
        let adapter =
            SandboxAdapter::new(Channel::Whatsapp, config(), Arc::new(Collect::default()));
        let long = Content::Text(omniroute_channel::content::Text {
            body: "a".repeat(4097),
            ..Default::default()
        });
        assert_eq!(adapter.check_content("default", &long).len(), 1);
        let email = SandboxAdapter::new(Channel::Email, config(), Arc::new(Collect::default()));
        assert!(email.check_content("default", &long).is_empty());
        assert_eq!(adapter.capabilities(), omniroute_whatsapp::capabilities());
    }

    /// Every sandbox declares what its real channel's adapter declares and
    /// checks content with that adapter's rules.
    #[test]
    fn each_channel_keeps_its_real_adapters_rules() {
        use omniroute_channel::content::{CallbackRequest, Choice, Choices, Interactive, Media};
        type Check = fn(&Content) -> Vec<ContentViolation>;
        let real: [(Channel, Capabilities, Check); 3] = [
            (
                Channel::Whatsapp,
                omniroute_whatsapp::capabilities(),
                omniroute_whatsapp::check_limits,
            ),
            (
                Channel::Email,
                omniroute_email::capabilities(),
                omniroute_email::check_limits,
            ),
            (
                Channel::Voice,
                omniroute_voice::capabilities(),
                omniroute_voice::check_limits,
            ),
        ];
        let text = |body: String| {
            Content::Text(omniroute_channel::content::Text {
                body,
                ..Default::default()
            })
        };
        let button = |i: usize| Choice {
            id: format!("b{i}"),
            title: format!("Button {i}"),
            description: String::new(),
        };
        let samples = [
            text("Your order has shipped".into()),
            text(" ".into()),
            text("a".repeat(4097)),
            Content::Media(Media {
                kind: omniroute_channel::content::MediaKind::Document,
                url: String::new(),
                media_id: "1200345678".into(),
                caption: String::new(),
                filename: "invoice.pdf".into(),
                mime_type: String::new(),
                sha256: String::new(),
            }),
            Content::Interactive(Interactive {
                header: String::new(),
                body: "Pick one".into(),
                footer: String::new(),
                choices: Choices::Buttons {
                    buttons: (0..4).map(button).collect(),
                },
            }),
            Content::CallbackRequest(CallbackRequest {
                agent_address: "+4930123456".into(),
                greeting: "x".repeat(501),
                ..CallbackRequest::default()
            }),
        ];
        for (channel, declared, check) in real {
            let sandbox = SandboxAdapter::new(channel, config(), Arc::new(Collect::default()));
            assert_eq!(sandbox.capabilities(), declared, "{channel}");
            assert_eq!(capabilities(channel), declared, "{channel}");
            for content in &samples {
                assert_eq!(
                    sandbox.check_content("default", content),
                    check(content),
                    "{channel}: {content:?}"
                );
            }
        }
        // What the real channels say, so the comparison above says something:
        // email carries choices natively (as links), a call speaks at most
        // 1,000 characters, and each channel refuses a sample of its own.
        let refused = |channel: Channel, sample: usize| {
            !SandboxAdapter::new(channel, config(), Arc::new(Collect::default()))
                .check_content("default", &samples[sample])
                .is_empty()
        };
        assert_eq!(
            capabilities(Channel::Email).fit(&samples[4]),
            omniroute_channel::Fit::AsIs
        );
        assert!(matches!(
            capabilities(Channel::Voice).fit(&text("a".repeat(1001))),
            omniroute_channel::Fit::No(_)
        ));
        assert!(refused(Channel::Whatsapp, 4), "four buttons");
        assert!(refused(Channel::Email, 3), "media by a provider's id");
        assert!(refused(Channel::Voice, 5), "a greeting too long");
        assert!(!refused(Channel::Email, 0) && !refused(Channel::Voice, 0));
    }

    #[test]
    fn simulated_customer_messages_are_signed() {
        let adapter =
            SandboxAdapter::new(Channel::Whatsapp, config(), Arc::new(Collect::default()));
        let body =
            br#"{"messages":[{"id":"in-1","from":"+4915123456789","text":"Hi","name":"Anna"}]}"#;
        let good = vec![(
            "x-hub-signature-256".to_owned(),
            format!(
                "sha256={}",
                omniroute_whatsapp::signature_hex("sandbox-secret", body)
            ),
        )];
        let request = |headers: &[(String, String)]| {
            adapter.verify_signature(&WebhookRequest {
                uri: "/webhooks/test",
                query: &[],
                headers,
                body,
            })
        };
        assert!(request(&good).is_ok());
        let bad = vec![(
            "x-hub-signature-256".to_owned(),
            format!(
                "sha256={}",
                omniroute_whatsapp::signature_hex("other", body)
            ),
        )];
        assert!(request(&bad).is_err());
        assert!(request(&[]).is_err());
        let events = adapter.parse_webhook(body).unwrap();
        let [WebhookEvent::Inbound(inbound)] = events.as_slice() else {
            panic!("{events:?}");
        };
        assert_eq!(inbound.account, ACCOUNT);
        assert_eq!(inbound.from.key(), "4915123456789");
        assert_eq!(inbound.profile_name.as_deref(), Some("Anna"));
        assert!(
            adapter
                .parse_webhook(b"{\"messages\":[{\"id\":\"x\"}]}")
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn whatsapp_reports_delivered_then_read() {
        let sink = Arc::new(Collect::default());
        let adapter = SandboxAdapter::new(Channel::Whatsapp, config(), sink.clone());
        let receipt = adapter
            .send(&message(Channel::Whatsapp, "+4915123456789", 1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let updates = sink.0.lock().unwrap().clone();
        let statuses: Vec<_> = updates.iter().map(|u| u.status).collect();
        assert_eq!(
            statuses,
            vec![DeliveryStatus::Delivered, DeliveryStatus::Read]
        );
        assert!(
            updates
                .iter()
                .all(|u| u.provider_message_id == receipt.provider_message_id)
        );
        assert!(
            updates
                .iter()
                .all(|u| u.message_id.as_deref() == Some("m1"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn magic_addresses() {
        let sink = Arc::new(Collect::default());
        let email = SandboxAdapter::new(Channel::Email, config(), sink.clone());
        let err = email
            .send(&message(Channel::Email, "fail-permanent@example.com", 1))
            .await
            .unwrap_err();
        assert_eq!(err.class(), ErrorClass::Permanent);
        let voice = SandboxAdapter::new(Channel::Voice, config(), sink.clone());
        for attempt in [1, 2] {
            let err = voice
                .send(&message(Channel::Voice, "+4915123450002", attempt))
                .await
                .unwrap_err();
            assert!(err.is_retryable());
        }
        assert!(
            voice
                .send(&message(Channel::Voice, "+4915123450002", 3))
                .await
                .is_ok()
        );
        let err = voice
            .send(&message(Channel::Voice, "+4915123450006", 1))
            .await
            .unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
        assert!(
            email
                .send(&message(Channel::Email, "no-delivery@example.com", 1))
                .await
                .is_ok()
        );
        assert!(
            email
                .send(&message(Channel::Email, "bounce@example.com", 1))
                .await
                .is_ok()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let updates = sink.0.lock().unwrap().clone();
        // voice delivered (0002, attempt 3); bounce failed; no-delivery silent.
        assert_eq!(updates.len(), 2, "{updates:?}");
        assert!(
            updates
                .iter()
                .any(|u| u.status == DeliveryStatus::Failed && u.error.is_some())
        );
    }

    #[tokio::test]
    async fn status_queries_answer_where_reports_end() {
        let sink = Arc::new(Collect::default());
        let whatsapp = SandboxAdapter::new(Channel::Whatsapp, config(), sink.clone());
        let receipt = whatsapp
            .send(&message(Channel::Whatsapp, "+4915123456789", 1))
            .await
            .unwrap();
        let update = whatsapp
            .fetch_status(&receipt.provider_message_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(update.status, DeliveryStatus::Read);
        assert_eq!(update.message_id.as_deref(), Some("m1"));
        let email = SandboxAdapter::new(Channel::Email, config(), sink);
        let silent = email
            .send(&message(Channel::Email, "no-delivery@example.com", 1))
            .await
            .unwrap();
        assert_eq!(
            email
                .fetch_status(&silent.provider_message_id)
                .await
                .unwrap(),
            None
        );
        let bounced = email
            .send(&message(Channel::Email, "bounce@example.com", 1))
            .await
            .unwrap();
        let update = email
            .fetch_status(&bounced.provider_message_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(update.status, DeliveryStatus::Failed);
        assert!(email.fetch_status("wamid.HBgL").await.is_err());
    }

    struct Sandbox(SandboxAdapter);

    impl omniroute_channel::conformance::Harness for Sandbox {
        fn adapter(&self) -> &dyn Adapter {
            &self.0
        }

        async fn arrange(&mut self, outcome: omniroute_channel::conformance::Outcome) -> Address {
            use omniroute_channel::conformance::Outcome;
            let to = match outcome {
                Outcome::Accept => "anna@example.com",
                Outcome::Permanent => "fail-permanent@example.com",
                Outcome::Transient => "fail-always@example.com",
                Outcome::RateLimited => "rate-limited@example.com",
            };
            Address::parse(Channel::Email, to, PhoneRegion::default()).unwrap()
        }

        fn has_webhooks(&self) -> bool {
            true
        }

        fn signed_headers(&self, body: &[u8]) -> Vec<(String, String)> {
            vec![(
                "x-hub-signature-256".to_owned(),
                format!(
                    "sha256={}",
                    omniroute_whatsapp::signature_hex("sandbox-secret", body)
                ),
            )]
        }

        fn known_event_body(&self) -> Vec<u8> {
            br#"{"messages":[{"id":"in-1","from":"anna@example.com","text":"Hi","timestamp":1764547200}]}"#.to_vec()
        }

        fn unknown_event_body(&self) -> Vec<u8> {
            br#"{"reactions":[{"id":"r-1"}]}"#.to_vec()
        }
    }

    #[tokio::test]
    async fn passes_the_adapter_conformance_suite() {
        let sink = Arc::new(Collect::default());
        let mut harness = Sandbox(SandboxAdapter::new(Channel::Email, config(), sink));
        omniroute_channel::conformance::run(&mut harness).await;
    }

    #[tokio::test]
    async fn sends_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sends.tsv");
        let sink = Arc::new(Collect::default());
        let adapter = SandboxAdapter::new(
            Channel::Email,
            SandboxConfig {
                record_path: Some(path.clone()),
                ..config()
            },
            sink,
        );
        adapter
            .send(&message(Channel::Email, "anna@example.com", 1))
            .await
            .unwrap();
        adapter
            .send(&message(Channel::Email, "fail-always@example.com", 2))
            .await
            .unwrap_err();
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(text, "email\tm1\t1\nemail\tm1\t2\n");
    }
}
