//! The adapter contract: how the dispatcher hands a message to a channel and
//! learns how it went.
//!
//! An adapter translates an [`OutboundMessage`] to one provider's wire format
//! and classifies every failure into an [`ErrorClass`]. The dispatcher reads
//! only the class (`is_retryable`, `retry_after`), never message text. Later
//! outcomes (delivered, read, failed after acceptance) arrive asynchronously
//! as [`StatusUpdate`]s through the [`StatusSink`] an adapter is built with,
//! whether they come from a provider webhook or from the sandbox.

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{Address, Capabilities, Category, Channel, Content};

/// What the dispatcher does about a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Will fail again: try the next channel of the plan, else fail.
    Permanent,
    /// May work later: retry with back-off.
    Transient,
    /// Too fast: retry after the provider's delay.
    RateLimited,
    /// WhatsApp's customer service window is closed: needs a template or
    /// another channel.
    WindowClosed,
    /// The customer opted out on the provider's side.
    OptedOut,
    /// Our credentials or settings are wrong: alert, do not spin.
    Configuration,
    /// The channel cannot do this at all (for example media on voice).
    Unsupported,
}

impl ErrorClass {
    /// A stable lower-case name for storage and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Permanent => "permanent",
            ErrorClass::Transient => "transient",
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::WindowClosed => "window_closed",
            ErrorClass::OptedOut => "opted_out",
            ErrorClass::Configuration => "configuration",
            ErrorClass::Unsupported => "unsupported",
        }
    }

    /// Parses [`ErrorClass::as_str`] back.
    pub fn parse(name: &str) -> Option<ErrorClass> {
        [
            ErrorClass::Permanent,
            ErrorClass::Transient,
            ErrorClass::RateLimited,
            ErrorClass::WindowClosed,
            ErrorClass::OptedOut,
            ErrorClass::Configuration,
            ErrorClass::Unsupported,
        ]
        .into_iter()
        .find(|c| c.as_str() == name)
    }
}

/// A classified failure of one attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} error {code}: {message}", class.as_str())]
pub struct AdapterError {
    class: ErrorClass,
    code: String,
    message: String,
    retry_after: Option<Duration>,
}

impl AdapterError {
    /// A failure of `class` with the provider's code and text.
    pub fn new(class: ErrorClass, code: impl Into<String>, message: impl Into<String>) -> Self {
        AdapterError {
            class,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// Rate limited; retry no earlier than `retry_after` when the provider said so.
    pub fn rate_limited(
        code: impl Into<String>,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        AdapterError {
            retry_after,
            ..AdapterError::new(ErrorClass::RateLimited, code, message)
        }
    }

    /// What the channel cannot do.
    pub fn unsupported(channel: Channel, what: &str) -> Self {
        AdapterError::new(
            ErrorClass::Unsupported,
            "unsupported",
            format!("{channel} cannot send {what}"),
        )
    }

    /// The class.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// The provider's error code (or ours, for local checks).
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The provider's error text.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether another attempt on the same channel may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.class, ErrorClass::Transient | ErrorClass::RateLimited)
    }

    /// The delay the provider asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// One attempt to send a message on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    /// The tenant sending it (adapters with several business accounts pick
    /// the tenant's).
    pub tenant: String,
    /// Our message id; adapters carry it where the provider echoes it back.
    pub message_id: String,
    /// The recipient.
    pub to: Address,
    /// Why it is sent.
    pub category: Category,
    /// What it says, with any override for this channel already applied.
    pub content: Content,
    /// The provider id of the message this one replies to.
    pub reply_to: Option<String>,
    /// The message's attempt number, counted across channels and operator
    /// retries: 1 for the first.
    pub attempt: u32,
    /// Until when the customer's service window on this channel is open, as
    /// the router knows it (WhatsApp: 24 hours after the customer's last
    /// message). Providers enforce their own; the sandbox enforces this one,
    /// so that what works against the sandbox works in production.
    pub window_open_until: Option<SystemTime>,
    /// The customer's locale (BCP 47, `de-DE`, `fr`) as routing saw it, when
    /// the contact has one: voice speaks in it.
    pub locale: Option<String>,
    /// The W3C trace context (`traceparent`) of this attempt's provider
    /// call, empty when traces are off. Adapters that call their provider
    /// over HTTP send it as the `traceparent` header, so that the
    /// provider's side of the call joins the message's trace.
    pub trace_parent: String,
}

/// The provider accepted a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// The provider's id for it (a wamid, a Message-ID, a CallSid).
    pub provider_message_id: String,
}

/// A delivery status a provider reports after acceptance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Handed on by the provider.
    Sent,
    /// On the customer's device, in the mailbox, or the call was answered.
    Delivered,
    /// Read (or played).
    Read,
    /// Failed after acceptance.
    Failed,
    /// The attempt is over (a call hung up, or ended busy or unanswered):
    /// a failure unless the message has its outcome already (delivered
    /// first: a callback's bridge to the agent is its delivery; or failed
    /// or canceled), when it changes nothing.
    Ended,
    /// Handed on to a system that reports no further (an email relayed
    /// to a server without delivery status notifications): no delivery
    /// report will follow.
    Relayed,
}

/// Whether a channel's provider reports that a message reached the
/// customer, as its adapter declares it (routing decides what a delivery
/// deadline waits for on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryReports {
    /// Delivery is reported (WhatsApp's `delivered`, an answered call, an
    /// email relay that sends success notifications).
    Reported,
    /// Only acceptance and failures are known (an email relay without
    /// DSN: its `250` is the last thing it says of a delivered mail).
    NotReported,
}

/// A status reported for a message the provider accepted earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    /// The channel it came from.
    pub channel: Channel,
    /// Our message id, when the provider echoes it back (WhatsApp's
    /// `biz_opaque_callback_data`, the sandbox).
    pub message_id: Option<String>,
    /// The provider's id from the [`SendReceipt`].
    pub provider_message_id: String,
    /// The new status.
    pub status: DeliveryStatus,
    /// When the provider says it happened.
    pub time: SystemTime,
    /// For failures: the classified error.
    pub error: Option<AdapterError>,
}

/// A request to a channel's webhook URL, exactly as received.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The path and query string as the client sent them (Twilio signs the
    /// whole public URL).
    pub uri: &'a str,
    /// Query parameters, percent-decoded.
    pub query: &'a [(String, String)],
    /// Headers, names in lower case.
    pub headers: &'a [(String, String)],
    /// The raw body bytes (signatures are computed over these).
    pub body: &'a [u8],
}

impl WebhookRequest<'_> {
    /// The first header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter with this name.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One of our messages, as the router has it, for the answer to a
/// call-control request that asked about it ([`Adapter::answer_reads`]).
#[derive(Debug, Clone, PartialEq)]
pub struct AskedMessage {
    /// What it says on the adapter's channel (its step's content).
    pub content: Content,
    /// Whether it still waits for an outcome: not canceled, failed or
    /// delivered (a call for a callback canceled meanwhile is not bridged).
    pub pending: bool,
    /// The provider's id of its latest send (the call placed for it), once
    /// recorded.
    pub provider_id: Option<String>,
}

/// A message a customer sent, as an adapter parsed it from a webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The channel.
    pub channel: Channel,
    /// The business account it came to (a WhatsApp phone number id, a
    /// mailbox), which names the tenant.
    pub account: String,
    /// The provider's id of the message (deduplication key).
    pub provider_message_id: String,
    /// The sender.
    pub from: Address,
    /// The sender's profile name, when the provider tells it.
    pub profile_name: Option<String>,
    /// A provider-scoped user id, when the provider tells it.
    pub provider_user_id: Option<String>,
    /// When the customer sent it.
    pub time: std::time::SystemTime,
    /// What it says.
    pub content: Content,
    /// The provider id of the message this one replies to or reacts to.
    pub reply_to: Option<String>,
    /// Sent by a machine on the customer's behalf (an out-of-office reply,
    /// RFC 3834 `Auto-Submitted`): recorded, but it does not show the
    /// customer is there.
    pub automatic: bool,
    /// The bytes of the content's media when the message carries them
    /// itself and no provider holds them (an email attachment): the router
    /// keeps them and GetMessageMedia serves them. `None` otherwise.
    pub media_bytes: Option<Vec<u8>>,
}

/// What one webhook delivery contained, item by item.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    /// A customer's message.
    Inbound(InboundMessage),
    /// A status of a message we sent.
    Status(StatusUpdate),
    /// The customer asked, in reply to one of our messages, to receive no
    /// more of its category on this channel (an unsubscribe mail): the
    /// router records the revocation in the consent ledger.
    OptOut(OptOut),
    /// How a call went (who answered, how long the bridge lasted): kept
    /// with the callback the call belongs to.
    CallProgress(CallProgress),
    /// A customer's call to the business that nobody took (the router may
    /// call them back, per the tenant's settings).
    MissedCall(MissedCall),
    /// Something we do not act on (an unknown event kind, an unknown
    /// account), with why; acknowledged, not stored.
    Ignored(String),
}

/// A customer's call nobody took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissedCall {
    /// The channel.
    pub channel: Channel,
    /// The business number called, which names the tenant.
    pub account: String,
    /// The provider's call id.
    pub call_id: String,
    /// Who called.
    pub from: Address,
}

/// What a telephony provider told of a call beyond its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallProgress {
    /// The channel.
    pub channel: Channel,
    /// The provider's call id (the message's provider id).
    pub call_id: String,
    /// Who answered, as the provider detected it (`human`,
    /// `machine_start`, `unknown`); `None` when this report does not say.
    pub answered_by: Option<String>,
    /// How long the customer and the agent were connected.
    pub bridged_seconds: Option<u32>,
}

/// A customer's request to stop a category of messages on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOut {
    /// The channel.
    pub channel: Channel,
    /// The business account it came to, which names the tenant.
    pub account: String,
    /// Our id of the message it answers (whose contact opts out).
    pub message_id: String,
    /// The category to stop.
    pub category: Category,
    /// How the customer asked, for the ledger's evidence.
    pub evidence: String,
}

/// A problem with a message's content that this channel's rules reveal
/// before sending (limits, an unknown template).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentViolation {
    /// The path inside the content, for example `template.language`.
    pub field: String,
    /// What is wrong.
    pub description: String,
}

/// Media a customer sent, downloaded from the provider on request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDownload {
    /// Its MIME type.
    pub mime_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Where adapters report asynchronous statuses.
pub trait StatusSink: Send + Sync + fmt::Debug + 'static {
    /// Hands over one status; must not block.
    fn report(&self, update: StatusUpdate);
}

/// A channel adapter.
#[async_trait]
pub trait Adapter: Send + Sync + fmt::Debug + 'static {
    /// The channel it serves.
    fn channel(&self) -> Channel;

    /// What the channel carries and how it must be used; routing decides
    /// content fit, windows and quiet hours on it.
    fn capabilities(&self) -> Capabilities;

    /// The business line it sends from for `tenant` (the WhatsApp phone
    /// number id, the mailbox, the phone line), the same value inbound
    /// messages name as their account: service windows are kept per line.
    /// Empty when the channel has one line for everyone.
    fn sending_line(&self, tenant: &str) -> &str {
        let _ = tenant;
        ""
    }

    /// Whether the provider reports delivery (most do; an email relay
    /// may not).
    fn delivery_reports(&self) -> DeliveryReports {
        DeliveryReports::Reported
    }

    /// Sends one message. Ok means the provider accepted it; delivery is
    /// reported later through the [`StatusSink`].
    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, AdapterError>;

    /// Asks the provider for the current status of an accepted message, for
    /// reconciliation when its reports were lost. `Ok(None)`: nothing new.
    /// Providers without a status query answer [`ErrorClass::Unsupported`].
    async fn fetch_status(
        &self,
        provider_message_id: &str,
    ) -> Result<Option<StatusUpdate>, AdapterError>;

    /// Checks content against this channel's rules before it is accepted
    /// (sizes, the approved template catalogue). Empty when it may be sent.
    fn check_content(&self, tenant: &str, content: &Content) -> Vec<ContentViolation>;

    /// The category the provider approved for a template (WhatsApp bills and
    /// enforces marketing, utility and authentication templates by it), or
    /// `None` when the channel has no such catalogue or does not know it
    /// (the default).
    fn template_category(&self, tenant: &str, name: &str, language: &str) -> Option<Category> {
        let _ = (tenant, name, language);
        None
    }

    /// Answers a webhook subscription handshake (an HTTP GET); the returned
    /// text is the response body. Errors are refusals (HTTP 403): the
    /// default, for providers without a handshake.
    fn verify_subscription(&self, request: &WebhookRequest<'_>) -> Result<String, AdapterError> {
        let _ = request;
        Err(AdapterError::new(
            ErrorClass::Configuration,
            "no_subscription",
            format!("{} webhooks need no subscription handshake", self.channel()),
        ))
    }

    /// Verifies a webhook delivery's signature over the exact body bytes, in
    /// constant time, before anything is parsed. Errors are HTTP 401.
    fn verify_signature(&self, request: &WebhookRequest<'_>) -> Result<(), AdapterError>;

    /// Parses a verified webhook body into events; unknown kinds become
    /// [`WebhookEvent::Ignored`]. Errors (malformed bodies) are HTTP 400.
    fn parse_webhook(&self, body: &[u8]) -> Result<Vec<WebhookEvent>, AdapterError>;

    /// Parses a verified webhook request: [`Adapter::parse_webhook`] of its
    /// body, unless the provider's request says more in its URL (a
    /// telephony provider's call-control requests). `asked` is the message
    /// of ours the request names ([`Adapter::answer_reads`]), as the router
    /// has it: what it carries may only count for that message (digits
    /// pressed in our call).
    fn parse_request(
        &self,
        request: &WebhookRequest<'_>,
        asked: Option<&AskedMessage>,
    ) -> Result<Vec<WebhookEvent>, AdapterError> {
        let _ = asked;
        self.parse_webhook(request.body)
    }

    /// The message of ours a call-control request asks about (the script
    /// of a call fetched when it is answered, the callback a call was
    /// placed for): the business account it came to, which names the
    /// tenant, and our message id. The router reads it and hands it to
    /// [`Adapter::webhook_answer`]. `None` (the default): the answer needs
    /// no message.
    fn answer_reads(&self, request: &WebhookRequest<'_>) -> Option<(String, String)> {
        let _ = request;
        None
    }

    /// The body (content type and text) a recorded webhook delivery is
    /// answered with: `ok` for most providers; a telephony provider reads
    /// the answer to a call-control request as what the call does next.
    /// `asked` is the message [`Adapter::answer_reads`] named, as the
    /// router has it (`None` when it named none, or the router has no such
    /// message).
    fn webhook_answer(
        &self,
        request: &WebhookRequest<'_>,
        asked: Option<&AskedMessage>,
    ) -> (&'static str, String) {
        let _ = (request, asked);
        ("text/plain", "ok".to_owned())
    }

    /// Ends a send the provider is still carrying out (a call that rings,
    /// or is up), by the provider's id: its sender canceled it. Channels
    /// whose sends cannot be ended answer [`ErrorClass::Unsupported`].
    async fn end(&self, provider_message_id: &str) -> Result<(), AdapterError> {
        let _ = provider_message_id;
        Err(AdapterError::unsupported(self.channel(), "ending a send"))
    }

    /// Tells the provider that a customer's message was read (WhatsApp's blue
    /// ticks). Channels without read receipts answer
    /// [`ErrorClass::Unsupported`].
    async fn mark_read(&self, tenant: &str, provider_message_id: &str) -> Result<(), AdapterError>;

    /// Downloads media a customer sent (by the provider's media id), for a
    /// tenant whose account received it. Channels without provider-held
    /// media answer [`ErrorClass::Unsupported`].
    async fn fetch_media(
        &self,
        tenant: &str,
        media_id: &str,
    ) -> Result<MediaDownload, AdapterError>;

    /// Whether the adapter can reach its provider with its settings.
    async fn health(&self) -> Result<(), AdapterError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability_is_a_property_of_the_class() {
        assert!(AdapterError::new(ErrorClass::Transient, "503", "unavailable").is_retryable());
        let limited =
            AdapterError::rate_limited("130429", "slow down", Some(Duration::from_secs(2)));
        assert!(limited.is_retryable());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));
        for class in [
            ErrorClass::Permanent,
            ErrorClass::WindowClosed,
            ErrorClass::OptedOut,
            ErrorClass::Configuration,
            ErrorClass::Unsupported,
        ] {
            assert!(!AdapterError::new(class, "x", "y").is_retryable());
            assert_eq!(ErrorClass::parse(class.as_str()), Some(class));
        }
    }
}

/// A provider's Unix timestamp (seconds) as a time, when it is one this
/// system can hold and believe: not before 2000, not more than a day ahead
/// of our clock. Anything else (a garbled or hostile webhook) is `None`, and
/// the caller uses the time of receipt, rather than overflowing or storing
/// a date a database refuses.
pub fn provider_time(seconds: u64) -> Option<SystemTime> {
    const Y2K: u64 = 946_684_800;
    let time = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))?;
    let latest = SystemTime::now() + Duration::from_secs(86_400);
    (seconds >= Y2K && time <= latest).then_some(time)
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn provider_times_outside_the_believable_range_are_refused() {
        assert!(provider_time(1_749_416_383).is_some());
        assert_eq!(
            provider_time(u64::MAX),
            None,
            "found by the webhook fuzz targets"
        );
        assert_eq!(provider_time(i64::MAX as u64 + 1), None);
        assert_eq!(provider_time(0), None);
        let next_year = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 365 * 86_400;
        assert_eq!(provider_time(next_year), None);
    }
}
