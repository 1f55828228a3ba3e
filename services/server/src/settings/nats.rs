//! `[nats]`: the event log published to NATS JetStream (builds with the
//! cargo feature `nats`).

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// The NATS JetStream sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSettings {
    /// Publish every tenant's events to JetStream.
    pub enabled: bool,
    /// The server, `nats://host:4222` (credentials in the URL if any).
    pub url: String,
    /// The stream events are stored in; made when missing if
    /// `create_stream` (subjects `<subject_prefix>.>`).
    pub stream: String,
    /// Subjects are `<subject_prefix>.<tenant>.<event type>`, for instance
    /// `omniroute.acme.message_accepted`.
    pub subject_prefix: String,
    /// Make the stream when it does not exist.
    pub create_stream: bool,
    /// The stream's duplicate window a new stream gets: within it, an event
    /// published twice (after a failure or a restart) is stored once.
    pub duplicate_window_secs: u64,
    /// How often to look for new events when no change was signalled.
    pub poll_interval_ms: u64,
    /// How long a replica holds a tenant's position without renewing it.
    pub lease_secs: u64,
}

impl Default for NatsSettings {
    fn default() -> NatsSettings {
        NatsSettings {
            enabled: false,
            url: "nats://127.0.0.1:4222".to_owned(),
            stream: "OMNIROUTE".to_owned(),
            subject_prefix: "omniroute".to_owned(),
            create_stream: true,
            duplicate_window_secs: 120,
            poll_interval_ms: 1000,
            lease_secs: 30,
        }
    }
}

impl NatsSettings {
    /// Checks the section.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, reason: &str| {
            Err(SettingsError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if !self.enabled {
            return Ok(());
        }
        if !cfg!(feature = "nats") {
            return invalid(
                "nats.enabled",
                "this build has no NATS support: build with `--features nats`",
            );
        }
        if !self.url.starts_with("nats://") && !self.url.starts_with("tls://") {
            return invalid("nats.url", "a nats:// or tls:// URL");
        }
        let token = |t: &str| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !token(&self.stream) {
            return invalid("nats.stream", "letters, digits, _ and - only");
        }
        if !self.subject_prefix.split('.').all(token) {
            return invalid(
                "nats.subject_prefix",
                "dot-separated tokens of letters, digits, _ and -",
            );
        }
        if self.poll_interval_ms == 0 || self.lease_secs < 3 {
            return invalid(
                "nats.lease_secs",
                "nats.poll_interval_ms must be at least 1 and nats.lease_secs at least 3",
            );
        }
        Ok(())
    }
}
