//! `[endpoints]`: outbound webhook endpoints (EndpointService): the key
//! their signing secrets are sealed with, and which URLs may be
//! registered.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::{Secret, SettingsError};

/// The length of `secret_key` once decoded (AES-256).
pub const SECRET_KEY_LEN: usize = 32;

/// Endpoints' secrets, URL rules and deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointSettings {
    /// Base64 of 32 random bytes: the AES-256-GCM key endpoints' signing
    /// secrets are sealed with in the store. Empty: EndpointService
    /// answers FAILED_PRECONDITION (no secret is ever stored in clear).
    pub secret_key: Secret,
    /// Whether `http://` URLs to loopback hosts (localhost, 127.0.0.0/8,
    /// ::1) may be registered: for tests and sidecars.
    pub allow_http_loopback: bool,
    /// Whether URLs whose host is a literal private, loopback, link-local,
    /// unique-local, unspecified or multicast address may be registered.
    pub allow_private_targets: bool,
    /// Whether this replica delivers events to endpoints (any number of
    /// replicas may: each endpoint is held by one at a time).
    pub deliver: bool,
    /// How long one delivery may take, connecting included.
    pub timeout_secs: u64,
    /// The waits after 1, 2, … failed rounds in a row (the last repeats),
    /// each spread by ±20%.
    pub retry_schedule_secs: Vec<u64>,
    /// An endpoint whose every delivery failed for this long is disabled
    /// (with an `EVENT_TYPE_ENDPOINT_DISABLED` event).
    pub disable_after_secs: u64,
    /// The longest `Retry-After` (on 429 and 503) honoured.
    pub max_retry_after_secs: u64,
    /// Deliveries in flight to one endpoint at a time (different contacts'
    /// events; one contact's go in order, one at a time).
    pub concurrency: usize,
    /// Endpoints delivered at once by this replica.
    pub max_endpoints: usize,
    /// How often to look for new events when no change was signalled.
    pub poll_interval_ms: u64,
    /// How long a replica holds an endpoint it delivers to without renewing
    /// (renewed every third of it): after a crash, the time until another
    /// replica takes over.
    pub lease_secs: u64,
    /// Names pinned to addresses, like curl's `--resolve` (for sidecars
    /// and tests): `{ "hooks.internal" = "10.0.0.7" }`. A pinned address
    /// is checked like a resolved one.
    pub resolve: BTreeMap<String, IpAddr>,
}

impl Default for EndpointSettings {
    fn default() -> EndpointSettings {
        let policy = omniroute_domain::RetryPolicy::default();
        EndpointSettings {
            secret_key: Secret::default(),
            allow_http_loopback: false,
            allow_private_targets: false,
            deliver: true,
            timeout_secs: 15,
            retry_schedule_secs: policy.schedule.iter().map(|d| d.as_secs()).collect(),
            disable_after_secs: policy.disable_after.as_secs(),
            max_retry_after_secs: policy.max_retry_after.as_secs(),
            concurrency: 8,
            max_endpoints: 64,
            poll_interval_ms: 1000,
            lease_secs: 30,
            resolve: BTreeMap::new(),
        }
    }
}

impl EndpointSettings {
    /// The decoded key, when one is set (validated at load).
    pub fn key(&self) -> Option<[u8; SECRET_KEY_LEN]> {
        if self.secret_key.is_empty() {
            return None;
        }
        STANDARD
            .decode(self.secret_key.expose().trim())
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
    }

    /// Checks the section.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !self.secret_key.is_empty() && self.key().is_none() {
            return Err(SettingsError::Invalid {
                key: "endpoints.secret_key",
                reason: "must be the base64 of 32 bytes (e.g. `openssl rand -base64 32`)"
                    .to_owned(),
            });
        }
        let invalid = |key, reason: &str| {
            Err(SettingsError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.retry_schedule_secs.is_empty() || self.retry_schedule_secs.contains(&0) {
            return invalid(
                "endpoints.retry_schedule_secs",
                "must list at least one wait, each of at least 1 second",
            );
        }
        if self.timeout_secs == 0 {
            return invalid("endpoints.timeout_secs", "must be at least 1");
        }
        if self.concurrency == 0 || self.max_endpoints == 0 {
            return invalid(
                "endpoints.concurrency",
                "endpoints.concurrency and endpoints.max_endpoints must be at least 1",
            );
        }
        if self.poll_interval_ms == 0 {
            return invalid("endpoints.poll_interval_ms", "must be at least 1");
        }
        if self.lease_secs < 3 {
            return invalid("endpoints.lease_secs", "must be at least 3");
        }
        Ok(())
    }

    /// The retry policy these settings give.
    pub fn retry_policy(&self) -> omniroute_domain::RetryPolicy {
        omniroute_domain::RetryPolicy {
            schedule: self
                .retry_schedule_secs
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            disable_after: Duration::from_secs(self.disable_after_secs),
            max_retry_after: Duration::from_secs(self.max_retry_after_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_must_be_32_bytes_of_base64() {
        let ok = EndpointSettings {
            secret_key: Secret::new(STANDARD.encode([7u8; 32])),
            ..EndpointSettings::default()
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.key(), Some([7u8; 32]));
        assert!(EndpointSettings::default().validate().is_ok());
        assert_eq!(EndpointSettings::default().key(), None);
        for bad in [STANDARD.encode([7u8; 16]), "not base64!".to_owned()] {
            let s = EndpointSettings {
                secret_key: Secret::new(bad),
                ..EndpointSettings::default()
            };
            assert!(s.validate().is_err());
        }
        // Debug never shows it.
        assert!(!format!("{ok:?}").contains(&STANDARD.encode([7u8; 32])));
    }
}
