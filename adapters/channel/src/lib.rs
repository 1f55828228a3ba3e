//! The channel-neutral model shared by the router core and every adapter.
//!
//! This crate owns the words of the domain that do not depend on storage or on
//! the wire: [`Channel`], [`Category`], and [`Address`], the normalized form of
//! a customer's phone number, WhatsApp id or email address. It guarantees that
//! two spellings of the same address normalize to the same [`Address::key`], so
//! that identity uniqueness can be enforced by a plain unique index.
//!
//! It also holds the channel-neutral [`Content`] of a message and the
//! [`Adapter`] contract every channel implements.
//!
//! It does no I/O and knows nothing of SQL, gRPC or any provider's format.

mod adapter;
mod address;
pub mod bounds;
pub mod capabilities;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod content;
pub mod signature;

pub use adapter::{
    Adapter, AdapterError, AskedMessage, CallProgress, ContentViolation, DeliveryReports,
    DeliveryStatus, ErrorClass, InboundMessage, MediaDownload, MissedCall, OptOut, OutboundMessage,
    SendReceipt, StatusSink, StatusUpdate, WebhookEvent, WebhookRequest, provider_time,
};
pub use address::{Address, AddressError, PhoneRegion, lookup_keys, mask};
pub use capabilities::{Capabilities, ChoiceLimits, ContentKind, Fit};
pub use content::Content;

use serde::{Deserialize, Serialize};

/// A channel through which a customer is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// WhatsApp Business; addresses are wa_ids (E.164 digits without plus).
    Whatsapp,
    /// Email over SMTP.
    Email,
    /// Voice calls; addresses are E.164 phone numbers.
    Voice,
}

impl Channel {
    /// Every channel, in a stable order.
    pub const ALL: [Channel; 3] = [Channel::Whatsapp, Channel::Email, Channel::Voice];

    /// The stable lower-case name used in storage, logs and settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Whatsapp => "whatsapp",
            Channel::Email => "email",
            Channel::Voice => "voice",
        }
    }

    /// Parses [`Channel::as_str`] back.
    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message is sent; decides consents, opt-outs and priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Order, shipping, billing and account notices.
    Transactional,
    /// Promotions and newsletters.
    Marketing,
    /// One-time codes and verification.
    Authentication,
    /// Replies within a customer-initiated conversation.
    Service,
}

impl Category {
    /// Every category, in a stable order.
    pub const ALL: [Category; 4] = [
        Category::Transactional,
        Category::Marketing,
        Category::Authentication,
        Category::Service,
    ];

    /// The stable lower-case name used in storage and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Transactional => "transactional",
            Category::Marketing => "marketing",
            Category::Authentication => "authentication",
            Category::Service => "service",
        }
    }

    /// Parses [`Category::as_str`] back.
    pub fn parse(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
