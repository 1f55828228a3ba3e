//! The WhatsApp Business Platform (Cloud API) adapter: sends through the
//! Graph API, reads its webhooks, and keeps each account's template catalogue.
//!
//! [`WhatsAppAdapter`] implements [`Adapter`] exactly as PROTOCOLS §1
//! describes the Cloud API. It owns:
//!
//! - sending (`POST /{phone-number-id}/messages`) from the tenant's first
//!   configured business number, with our message id in
//!   `biz_opaque_callback_data` so that status webhooks name it;
//! - the classification of every Graph error code (error.rs), which is all
//!   the dispatcher reads;
//! - client-side rate limits (limiter.rs): sends wait for the number's
//!   throughput, and a customer messaged too often is answered rate limited
//!   with the delay until the pair limit allows another message;
//! - the approved template catalogue per WhatsApp Business Account
//!   (templates.rs), refreshed by [`WhatsAppAdapter::spawn_refresh`] and
//!   [`WhatsAppAdapter::refresh_templates`], against which
//!   [`Adapter::check_content`] refuses unknown templates, languages and
//!   parameter counts before a message is accepted;
//! - webhooks (webhook.rs): the subscription handshake, the signature over
//!   the raw body, and the envelope → inbound messages and statuses.
//!
//! Guarantees: Graph API types never leave this crate; secrets never reach
//! `Debug` output or logs; customer addresses are logged masked.
//!
//! File roles: config.rs (settings), client.rs (HTTP plumbing),
//! transformers.rs (content ↔ Graph objects), checks.rs (size rules of
//! content), webhook.rs, error.rs, limiter.rs, templates.rs, and fake.rs (a
//! fake Graph API for tests, behind the `fake` feature).

mod checks;
mod client;
mod config;
mod error;
#[cfg(feature = "fake")]
pub mod fake;
mod limiter;
mod templates;
mod transformers;
mod webhook;

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use omniroute_channel::{
    Adapter, AdapterError, Category, Channel, Content, ContentViolation, ErrorClass, MediaDownload,
    OutboundMessage, SendReceipt, StatusUpdate, WebhookEvent, WebhookRequest,
};

/// The largest media download accepted: WhatsApp documents go up to 100 MB.
pub const MAX_MEDIA_BYTES: usize = 100 * 1024 * 1024;
use serde::Deserialize;

pub use checks::check_limits;
pub use config::{
    BusinessNumber, DEFAULT_API_VERSION, DEFAULT_BASE_URL, DEFAULT_THROUGHPUT_PER_SECOND,
    WhatsAppConfig,
};
pub use error::{SPAM_LIMIT_BACKOFF, class_of};
pub use limiter::{PAIR_BURST, PAIR_INTERVAL};
pub use templates::{TemplateButton, TemplateInfo};
pub use webhook::{SIGNATURE_HEADER, signature_hex, verify_signature as verify_hub_signature};

/// How long a customer's message keeps the customer service window open
/// (PROTOCOLS §1): free-form messages only inside it, templates always.
pub const SERVICE_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What the Cloud API carries (PROTOCOLS §1, "Sending"): text of at most
/// 4096 characters, templates, media, native reply buttons and lists
/// (within `checks::CHOICE_LIMITS`); free form only inside the 24-hour
/// customer service window. No callback requests: a call is the voice
/// channel's.
pub fn capabilities() -> omniroute_channel::Capabilities {
    use omniroute_channel::ContentKind;
    omniroute_channel::Capabilities {
        kinds: &[
            ContentKind::Text,
            ContentKind::Template,
            ContentKind::Media,
            ContentKind::Interactive,
        ],
        max_text_chars: Some(checks::MAX_TEXT),
        interactive: true,
        service_window: Some(SERVICE_WINDOW),
        rings: false,
        choice_limits: Some(checks::CHOICE_LIMITS),
    }
}

use client::GraphClient;
use limiter::Limiter;
use templates::TemplateCache;
use transformers::{MarkReadRequest, SendRequest, SendResponse};

/// The code of the rate-limited error `send` answers when the pair limit
/// (same business number → same customer) would be exceeded: ours, not
/// Meta's 131056, since nothing was sent.
pub const PAIR_LIMIT_CODE: &str = "pair_rate_limit";

/// The WhatsApp Cloud API adapter. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct WhatsAppAdapter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: WhatsAppConfig,
    client: GraphClient,
    limiter: Limiter,
    templates: TemplateCache,
}

/// Metadata of an inbound media object (`GET /{media-id}`): download `url`
/// with the same access token (the URL expires after a few minutes).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MediaInfo {
    /// The media id.
    #[serde(default)]
    pub id: String,
    /// Where to download it.
    #[serde(default)]
    pub url: String,
    /// Its MIME type.
    #[serde(default)]
    pub mime_type: String,
    /// Its SHA-256, hex.
    #[serde(default)]
    pub sha256: String,
    /// Its size in bytes.
    #[serde(default)]
    pub file_size: u64,
}

impl WhatsAppAdapter {
    /// An adapter for `config` (validated here). Loads no templates: call
    /// [`WhatsAppAdapter::spawn_refresh`] (or `refresh_templates`) once a
    /// Tokio runtime runs.
    pub fn new(config: WhatsAppConfig) -> Result<Self, AdapterError> {
        config
            .validate()
            .map_err(|e| AdapterError::new(ErrorClass::Configuration, "config", e))?;
        let client = GraphClient::new(&config)?;
        let limiter = Limiter::new(
            config
                .numbers
                .iter()
                .map(|n| (n.phone_number_id.as_str(), n.throughput_per_second)),
        );
        Ok(WhatsAppAdapter {
            inner: Arc::new(Inner {
                config,
                client,
                limiter,
                templates: TemplateCache::default(),
            }),
        })
    }

    /// The settings it runs with.
    pub fn config(&self) -> &WhatsAppConfig {
        &self.inner.config
    }

    fn number_for(&self, tenant: &str) -> Result<&BusinessNumber, AdapterError> {
        self.inner.config.number_for(tenant).ok_or_else(|| {
            AdapterError::new(
                ErrorClass::Configuration,
                "no_business_number",
                format!("no whatsapp business number configured for tenant {tenant:?}"),
            )
        })
    }

    fn waba_ids(&self) -> BTreeSet<&str> {
        self.inner
            .config
            .numbers
            .iter()
            .map(|n| n.waba_id.as_str())
            .collect()
    }

    /// Marks a customer's message as read (blue ticks) from the tenant's
    /// number. Not rate limited: it is not a message.
    pub async fn mark_read(&self, tenant: &str, wamid: &str) -> Result<(), AdapterError> {
        let number = self.number_for(tenant)?;
        let url = self
            .inner
            .client
            .url(&format!("{}/messages", number.phone_number_id));
        let _: serde_json::Value = self
            .inner
            .client
            .post(&url, &MarkReadRequest::new(wamid), "")
            .await?;
        Ok(())
    }

    /// Metadata (and the download URL) of an inbound media object.
    pub async fn media_info(&self, media_id: &str) -> Result<MediaInfo, AdapterError> {
        if media_id.is_empty() || !media_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(AdapterError::new(
                ErrorClass::Permanent,
                "invalid_media_id",
                "a media id is alphanumeric",
            ));
        }
        self.inner
            .client
            .get(&self.inner.client.url(media_id))
            .await
    }

    /// Fetches the template catalogue of every configured account now. An
    /// account whose fetch fails keeps its previous catalogue; the first
    /// failure is returned after all accounts were tried.
    pub async fn refresh_templates(&self) -> Result<(), AdapterError> {
        let mut first_error = None;
        for waba_id in self.waba_ids() {
            match templates::fetch(&self.inner.client, waba_id).await {
                Ok(list) => {
                    tracing::debug!(waba_id, templates = list.len(), "template catalogue loaded");
                    self.inner.templates.replace(waba_id, list);
                }
                Err(e) => {
                    tracing::warn!(
                        waba_id,
                        code = e.code(),
                        class = e.class().as_str(),
                        "template catalogue refresh failed, keeping the previous one"
                    );
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Refreshes the catalogues now and then every `template_refresh`, in a
    /// task that ends by itself when the last clone of the adapter is
    /// dropped (or when the handle is aborted). Needs a Tokio runtime.
    pub fn spawn_refresh(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.config.template_refresh;
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { break };
                // Failures are logged inside; the next round tries again.
                let _ = WhatsAppAdapter { inner }.refresh_templates().await;
                tokio::time::sleep(period).await;
            }
        })
    }

    /// The approved templates of the tenant's account, as last loaded.
    pub fn templates(&self, tenant: &str) -> Vec<TemplateInfo> {
        match self.inner.config.number_for(tenant) {
            Some(number) => self.inner.templates.all(&number.waba_id),
            None => Vec::new(),
        }
    }

    /// The category of an approved template, for routing: UTILITY is
    /// transactional, MARKETING marketing, AUTHENTICATION authentication.
    /// `None` when the template is unknown (or the catalogue not loaded).
    pub fn approved_category(&self, tenant: &str, name: &str, language: &str) -> Option<Category> {
        let number = self.inner.config.number_for(tenant)?;
        self.inner
            .templates
            .get(&number.waba_id, name, language)?
            .category
    }
}

#[async_trait]
impl Adapter for WhatsAppAdapter {
    fn channel(&self) -> Channel {
        Channel::Whatsapp
    }

    #[tracing::instrument(skip_all, fields(message_id = %message.message_id, channel = "whatsapp", to = %message.to))]
    async fn send(&self, message: &OutboundMessage) -> Result<SendReceipt, AdapterError> {
        let number = self.number_for(&message.tenant)?;
        let request = SendRequest::try_from(message)?;
        if let Err(wait) = self
            .inner
            .limiter
            .try_pair(&number.phone_number_id, message.to.key())
        {
            tracing::debug!(wait_ms = wait.as_millis() as u64, "pair rate limit reached");
            return Err(AdapterError::rate_limited(
                PAIR_LIMIT_CODE,
                "too many messages to this customer from this number",
                Some(wait),
            ));
        }
        self.inner
            .limiter
            .acquire_number(&number.phone_number_id)
            .await;
        let url = self
            .inner
            .client
            .url(&format!("{}/messages", number.phone_number_id));
        let response: SendResponse = self
            .inner
            .client
            .post(&url, &request, &message.trace_parent)
            .await?;
        let wamid = response
            .messages
            .into_iter()
            .next()
            .map(|m| m.id)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                AdapterError::new(
                    ErrorClass::Transient,
                    "malformed_response",
                    "the graph api accepted the message without naming it",
                )
            })?;
        tracing::debug!(wamid = %wamid, "whatsapp message accepted");
        Ok(SendReceipt {
            provider_message_id: wamid,
        })
    }

    fn capabilities(&self) -> omniroute_channel::Capabilities {
        capabilities()
    }

    fn sending_line(&self, tenant: &str) -> &str {
        self.number_for(tenant)
            .map_or("", |n| n.phone_number_id.as_str())
    }

    async fn fetch_status(
        &self,
        _provider_message_id: &str,
    ) -> Result<Option<StatusUpdate>, AdapterError> {
        Err(AdapterError::new(
            ErrorClass::Unsupported,
            "unsupported",
            "the whatsapp cloud api has no status query: statuses arrive by webhook",
        ))
    }

    fn check_content(&self, tenant: &str, content: &Content) -> Vec<ContentViolation> {
        let mut violations = checks::check_limits(content);
        if let Content::Template(template) = content
            && let Some(number) = self.inner.config.number_for(tenant)
        {
            violations.extend(self.inner.templates.check(&number.waba_id, template));
        }
        violations
    }

    fn template_category(&self, tenant: &str, name: &str, language: &str) -> Option<Category> {
        self.approved_category(tenant, name, language)
    }

    fn verify_subscription(&self, request: &WebhookRequest<'_>) -> Result<String, AdapterError> {
        webhook::verify_subscription(&self.inner.config, request)
    }

    fn verify_signature(&self, request: &WebhookRequest<'_>) -> Result<(), AdapterError> {
        webhook::verify_signature(&self.inner.config.app_secret, request)
    }

    fn parse_webhook(&self, body: &[u8]) -> Result<Vec<WebhookEvent>, AdapterError> {
        webhook::parse(&self.inner.config, body)
    }

    async fn mark_read(&self, tenant: &str, provider_message_id: &str) -> Result<(), AdapterError> {
        // The inherent method: POST {"status":"read","message_id":…}.
        WhatsAppAdapter::mark_read(self, tenant, provider_message_id).await
    }

    async fn fetch_media(
        &self,
        tenant: &str,
        media_id: &str,
    ) -> Result<MediaDownload, AdapterError> {
        self.number_for(tenant)?;
        let info = self.media_info(media_id).await?;
        if !(info.url.starts_with("https://") || info.url.starts_with("http://")) {
            return Err(AdapterError::new(
                ErrorClass::Permanent,
                "no_media_url",
                "the Graph API gave no download URL for the media",
            ));
        }
        let (content_type, bytes) = self
            .inner
            .client
            .get_bytes(&info.url, MAX_MEDIA_BYTES)
            .await?;
        let mime_type = if info.mime_type.is_empty() {
            content_type
        } else {
            info.mime_type
        };
        Ok(MediaDownload { mime_type, bytes })
    }

    async fn health(&self) -> Result<(), AdapterError> {
        if self.inner.config.numbers.is_empty() {
            return Err(AdapterError::new(
                ErrorClass::Configuration,
                "no_business_number",
                "no whatsapp business number configured",
            ));
        }
        for number in &self.inner.config.numbers {
            let url = self
                .inner
                .client
                .url(&format!("{}?fields=id", number.phone_number_id));
            let _: serde_json::Value = self.inner.client.get(&url).await?;
        }
        Ok(())
    }
}
