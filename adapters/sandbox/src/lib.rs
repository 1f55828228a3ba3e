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

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use omniroute_channel::{
    Adapter, AdapterError, Address, Channel, Content, ContentViolation, DeliveryStatus, ErrorClass,
    MediaDownload, OutboundMessage, SendReceipt, StatusSink, StatusUpdate, WebhookEvent,
    WebhookRequest,
};

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
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            delivery_delay: Duration::from_millis(200),
            read_delay: Duration::from_millis(800),
            record_path: None,
            send_delay: Duration::ZERO,
        }
    }
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

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, AdapterError> {
        self.record(message);
        if !self.config.send_delay.is_zero() {
            tokio::time::sleep(self.config.send_delay).await;
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

    fn check_content(&self, _tenant: &str, _content: &Content) -> Vec<ContentViolation> {
        // The sandbox takes whatever the API accepted.
        Vec::new()
    }

    fn template_category(&self, _: &str, _: &str, _: &str) -> Option<omniroute_channel::Category> {
        // The sandbox has no template catalogue.
        None
    }

    fn verify_subscription(&self, _: &WebhookRequest<'_>) -> Result<String, AdapterError> {
        Err(AdapterError::unsupported(
            self.channel,
            "webhooks (sandbox)",
        ))
    }

    fn verify_signature(&self, _: &WebhookRequest<'_>) -> Result<(), AdapterError> {
        Err(AdapterError::unsupported(
            self.channel,
            "webhooks (sandbox)",
        ))
    }

    fn parse_webhook(&self, _: &[u8]) -> Result<Vec<WebhookEvent>, AdapterError> {
        Err(AdapterError::unsupported(
            self.channel,
            "webhooks (sandbox)",
        ))
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
        }
    }

    fn config() -> SandboxConfig {
        SandboxConfig {
            delivery_delay: Duration::from_millis(10),
            read_delay: Duration::from_millis(10),
            record_path: None,
            send_delay: Duration::ZERO,
        }
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
            false
        }

        fn signed_headers(&self, _: &[u8]) -> Vec<(String, String)> {
            Vec::new()
        }

        fn known_event_body(&self) -> Vec<u8> {
            Vec::new()
        }

        fn unknown_event_body(&self) -> Vec<u8> {
            Vec::new()
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
