//! The email adapter's configuration: the relay it sends through and the
//! senders (from address and name, reply domain) per tenant and business
//! line. Secrets never print.

use std::fmt;
use std::time::Duration;

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// Plain first, then STARTTLS, which must succeed (usually port 587);
    /// nothing (credentials included) is sent unencrypted.
    StartTlsRequired,
    /// No TLS: only for a relay on the same host or network (a local
    /// Postfix, a test server).
    None,
}

impl TlsMode {
    /// Parses the settings' spelling: `implicit`, `starttls`, `none`.
    pub fn parse(text: &str) -> Option<TlsMode> {
        match text {
            "implicit" => Some(TlsMode::Implicit),
            "starttls" => Some(TlsMode::StartTlsRequired),
            "none" => Some(TlsMode::None),
            _ => None,
        }
    }
}

/// The SMTP relay.
#[derive(Clone)]
pub struct RelayConfig {
    /// Host name (also the name its TLS certificate must carry).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Transport security.
    pub tls: TlsMode,
    /// AUTH user; empty for none.
    pub username: String,
    /// AUTH password.
    pub password: String,
    /// Timeout of each SMTP command, the connection included.
    pub timeout: Duration,
    /// Connections kept open to the relay, at most.
    pub pool_size: u32,
    /// The name we greet the relay with (EHLO).
    pub hello_name: String,
}

impl fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelayConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &"***")
            .field("timeout", &self.timeout)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Who a tenant's mail comes from on one business line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The tenant.
    pub tenant: String,
    /// The business line (the mailbox replies come to).
    pub line: String,
    /// The From address.
    pub from_address: String,
    /// The From display name.
    pub from_name: String,
    /// The domain of Message-IDs and reply addresses (`reply+token@domain`).
    pub reply_domain: String,
    /// The categories this sender sends (marketing from a newsletter
    /// address and domain, say, so that its reputation is its own); empty:
    /// any category no other sender of the tenant names.
    pub categories: Vec<omniroute_channel::Category>,
}

/// The whole adapter configuration.
#[derive(Clone)]
pub struct EmailConfig {
    /// The relay.
    pub relay: RelayConfig,
    /// The senders: per tenant, one per business line (each receives its
    /// mail); a message goes from the tenant's sender for its category.
    pub senders: Vec<Sender>,
    /// The shared secret of mail posted to `/webhooks/email`
    /// (`X-Omniroute-Signature: sha256=<HMAC-SHA256 of the body>`); empty
    /// refuses every post.
    pub webhook_secret: String,
    /// The folder of email templates (see `templates.rs`); `None`: none.
    pub template_dir: Option<std::path::PathBuf>,
    /// One-click unsubscribe for marketing email; `None`: no such headers.
    pub unsubscribe: Option<crate::unsubscribe::Unsubscribe>,
    /// The largest media file attached, in bytes; larger ones (all, with 0)
    /// go as links.
    pub attachment_max_bytes: usize,
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("relay", &self.relay)
            .field("senders", &self.senders)
            .field("webhook_secret", &"***")
            .field("template_dir", &self.template_dir)
            .field("unsubscribe", &self.unsubscribe)
            .field("attachment_max_bytes", &self.attachment_max_bytes)
            .finish()
    }
}

impl EmailConfig {
    /// The tenant's main sender: its first one for any category (else its
    /// first).
    pub fn sender(&self, tenant: &str) -> Option<&Sender> {
        let mut own = self.senders.iter().filter(|s| s.tenant == tenant);
        own.clone()
            .find(|s| s.categories.is_empty())
            .or_else(|| own.next())
    }

    /// The sender a message of `category` goes from for `tenant`: the first
    /// that names the category, else the main one.
    pub fn sender_for(
        &self,
        tenant: &str,
        category: omniroute_channel::Category,
    ) -> Option<&Sender> {
        self.senders
            .iter()
            .find(|s| s.tenant == tenant && s.categories.contains(&category))
            .or_else(|| self.sender(tenant))
    }
}
