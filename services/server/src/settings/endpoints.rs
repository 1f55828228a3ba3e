//! `[endpoints]`: outbound webhook endpoints (EndpointService): the key
//! their signing secrets are sealed with, and which URLs may be
//! registered.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::{Secret, SettingsError};

/// The length of `secret_key` once decoded (AES-256).
pub const SECRET_KEY_LEN: usize = 32;

/// Endpoints' secrets and URL rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
        Ok(())
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
