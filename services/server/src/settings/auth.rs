//! `[auth]`: API keys on every gRPC call (see `crate::auth`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// Authentication of gRPC callers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Every call needs an API key (`authorization: Bearer omr_…`) whose
    /// tenant and scopes decide what it may do. Off: every call belongs to
    /// `api.default_tenant`, which is allowed on a loopback `grpc.listen`
    /// only.
    pub enabled: bool,
    /// Health checks and server reflection answer without a key (false:
    /// they need a key with the admin scope).
    pub public_health: bool,
    /// Seconds a key read from the store is trusted before it is read
    /// again: a revocation takes effect within this time (0: read on every
    /// call).
    pub cache_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            enabled: false,
            public_health: true,
            cache_secs: 5,
        }
    }
}

impl AuthSettings {
    /// Refuses serving without keys where other hosts can reach the
    /// listener.
    pub fn validate(&self, grpc_listen: SocketAddr) -> Result<(), SettingsError> {
        if !self.enabled && !grpc_listen.ip().is_loopback() {
            return Err(SettingsError::Invalid {
                key: "auth.enabled",
                reason: format!(
                    "grpc.listen {grpc_listen} is reachable from other hosts: set auth.enabled = true \
                     (and make API keys with `omniroute keys create`), or listen on a loopback address"
                ),
            });
        }
        if self.cache_secs > 300 {
            return Err(SettingsError::Invalid {
                key: "auth.cache_secs",
                reason: "at most 300 (a revoked key must stop working soon)".to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_keys_only_on_loopback() {
        let off = AuthSettings::default();
        assert!(off.validate("127.0.0.1:50051".parse().unwrap()).is_ok());
        assert!(off.validate("[::1]:50051".parse().unwrap()).is_ok());
        assert_eq!(
            crate::settings::refused_key(off.validate("0.0.0.0:50051".parse().unwrap())),
            "auth.enabled"
        );
        let on = AuthSettings {
            enabled: true,
            ..AuthSettings::default()
        };
        assert!(on.validate("0.0.0.0:50051".parse().unwrap()).is_ok());
    }
}
