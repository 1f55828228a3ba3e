//! The email channel: messages routed to email go out through the company's
//! SMTP relay (lettre's async SMTP transport, pooled; implicit TLS,
//! STARTTLS required, or plain for a local relay).
//!
//! Customers' mail comes back two ways: by SMTP, to the listener a relay
//! forwards it to (`listener/`), or by HTTP, a relay (or a mail
//! provider's inbound hook) posting the raw message to `/webhooks/email`,
//! signed with `X-Omniroute-Signature: sha256=<HMAC-SHA256 of the body>`.
//!
//! Files, by role (as in `omniroute-whatsapp`): `config.rs` the relay and
//! the senders per tenant; `client.rs` the transport; `transformers.rs`
//! neutral content → MIME (headers, Message-ID, threading, text with an HTML
//! alternative); `inbound.rs` raw MIME → an inbound message, threaded;
//! `bounces.rs` delivery status notifications → statuses of our messages;
//! `listener/` the SMTP listener for inbound mail;
//! `error.rs` SMTP replies → error classes; `fake.rs`
//! (feature `fake`) a local SMTP server that records what it receives and
//! answers scripted replies.
//!
//! Marketing email carries a one-click unsubscribe (`unsubscribe.rs`).
//!
//! Media goes out as an attachment fetched from its URL, or as a link when
//! it is large (`attachments.rs`); customers' attachments come in as media
//! messages whose bytes the router keeps.

pub mod attachments;
pub mod bounces;
pub mod choices;
pub mod client;
pub mod config;
pub mod error;
#[cfg(feature = "fake")]
pub mod fake;
pub mod inbound;
pub mod listener;
pub mod templates;
pub mod transformers;
pub mod unsubscribe;

use async_trait::async_trait;
use omniroute_channel::capabilities::{Capabilities, ContentKind};
use omniroute_channel::{
    Adapter, AdapterError, Channel, Content, ContentViolation, DeliveryReports, ErrorClass,
    MediaDownload, OutboundMessage, SendReceipt, StatusUpdate, WebhookEvent, WebhookRequest,
};

pub use config::{EmailConfig, RelayConfig, Sender, TlsMode};
pub use unsubscribe::Unsubscribe;

/// The header that signs mail posted to `/webhooks/email`.
pub const SIGNATURE_HEADER: &str = "x-omniroute-signature";

/// What email carries: text (with an HTML alternative), the tenant's email
/// templates, media by URL (attached, or linked when large), and choices
/// (numbered, each a link that picks it when links are configured); no
/// length cap. The email sandbox declares the same.
pub fn capabilities() -> Capabilities {
    Capabilities {
        kinds: &[
            ContentKind::Text,
            ContentKind::Template,
            ContentKind::Media,
            ContentKind::Interactive,
        ],
        max_text_chars: None,
        interactive: true,
        service_window: None,
        rings: false,
        choice_limits: None,
    }
}

/// Email's rules for `content` that need no templates: a mail needs a text,
/// and media goes by URL (a provider's media id names nothing here). The
/// adapter's [`Adapter::check_content`] adds the tenant's templates; the
/// email sandbox checks these alone.
pub fn check_limits(content: &Content) -> Vec<ContentViolation> {
    match content {
        Content::Text(text) if text.body.trim().is_empty() && text.html_body.is_empty() => {
            vec![ContentViolation {
                field: "text.body".into(),
                description: "an email needs a text".into(),
            }]
        }
        Content::Media(media) if media.url.is_empty() => vec![ContentViolation {
            field: "media.url".into(),
            description: "email sends media by URL (attached or linked); a provider media id names nothing here".into(),
        }],
        _ => Vec::new(),
    }
}

/// The email adapter.
#[derive(Debug)]
pub struct EmailAdapter {
    config: EmailConfig,
    transport: client::Transport,
    templates: templates::Templates,
    fetcher: attachments::Fetcher,
}

impl EmailAdapter {
    /// An adapter on `config` (no connection is opened until the first send).
    pub fn new(config: EmailConfig) -> Result<EmailAdapter, AdapterError> {
        let transport = client::transport(&config.relay)?;
        let templates = templates::Templates::load(config.template_dir.as_deref())
            .map_err(|e| AdapterError::new(ErrorClass::Configuration, "templates", e))?;
        let fetcher = attachments::Fetcher::new(config.attachment_max_bytes, config.relay.timeout)?;
        Ok(EmailAdapter {
            config,
            transport,
            templates,
            fetcher,
        })
    }

    /// Learns what the relay offers (DSN) by connecting once, for the
    /// routing decisions made before the first mail; run it in the
    /// background at start.
    pub fn learn_relay(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let transport = self.transport.clone();
        async move { transport.learn().await }
    }
}

#[async_trait]
impl Adapter for EmailAdapter {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn capabilities(&self) -> Capabilities {
        capabilities()
    }

    fn delivery_reports(&self) -> DeliveryReports {
        // Where the relay offers DSN, each mail asks for a report of its
        // delivery; without it, the relay's 250 is the last word.
        self.transport.delivery_reports()
    }

    fn sending_line(&self, tenant: &str) -> &str {
        self.config.sender(tenant).map_or("", |s| s.line.as_str())
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, AdapterError> {
        let sender = self
            .config
            .sender_for(&message.tenant, message.category)
            .ok_or_else(|| {
                AdapterError::new(
                    ErrorClass::Configuration,
                    "no-sender",
                    format!(
                        "no email sender is configured for tenant {}",
                        message.tenant
                    ),
                )
            })?;
        // A template is rendered into a text first (checked at accept
        // time by `check_content`; a template removed since is refused); a
        // media message's file is fetched now and attached, or linked.
        let (text, attachment) = match &message.content {
            Content::Text(text) => (text.clone(), None),
            Content::Template(template) => {
                let text = self
                    .templates
                    .render(&message.tenant, template)
                    .map_err(|v| {
                        AdapterError::new(ErrorClass::Permanent, "template", v.description)
                    })?;
                (text, None)
            }
            Content::Media(media) => {
                let body = self.fetcher.body(media).await?;
                (body.text, body.attachment)
            }
            Content::Interactive(interactive) => (
                choices::render(
                    interactive,
                    self.config.unsubscribe.as_ref(),
                    &message.tenant,
                    &message.message_id,
                ),
                None,
            ),
            other => return Err(AdapterError::unsupported(Channel::Email, other.kind())),
        };
        let email = transformers::build(
            message,
            &text,
            attachment.as_ref(),
            sender,
            self.config.unsubscribe.as_ref(),
        )?;
        let sent = self
            .transport
            .send(email.envelope(), &email.formatted(), &message.message_id)
            .await?;
        tracing::debug!(to = %message.to, dsn = sent.dsn, "email accepted by the relay");
        Ok(SendReceipt {
            provider_message_id: transformers::message_id(&message.message_id, sender),
        })
    }

    async fn fetch_status(&self, _: &str) -> Result<Option<StatusUpdate>, AdapterError> {
        // SMTP has no status query: failures after acceptance come back as
        // bounces.
        Err(AdapterError::unsupported(Channel::Email, "status queries"))
    }

    fn check_content(&self, tenant: &str, content: &Content) -> Vec<ContentViolation> {
        match content {
            Content::Template(template) => match self.templates.render(tenant, template) {
                Ok(_) => Vec::new(),
                Err(violation) => vec![violation],
            },
            other => check_limits(other),
        }
    }

    fn verify_signature(&self, request: &WebhookRequest<'_>) -> Result<(), AdapterError> {
        omniroute_channel::signature::verify_sha256(
            &self.config.webhook_secret,
            SIGNATURE_HEADER,
            request,
        )
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<Vec<WebhookEvent>, AdapterError> {
        inbound::parse(&self.config, body)
    }

    async fn mark_read(&self, _: &str, _: &str) -> Result<(), AdapterError> {
        Err(AdapterError::unsupported(Channel::Email, "read receipts"))
    }

    async fn fetch_media(&self, _: &str, _: &str) -> Result<MediaDownload, AdapterError> {
        // A customer's attachments come with their mail; the router keeps
        // them (GetMessageMedia reads them there), no provider does.
        Err(AdapterError::new(
            ErrorClass::Unsupported,
            "unsupported",
            "email attachments are kept by the router, not by a provider",
        ))
    }

    async fn health(&self) -> Result<(), AdapterError> {
        self.transport.health().await
    }
}
