//! `[quotas]`: how many messages a tenant may send.

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// Send quotas: defaults for every tenant, and per-tenant values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSettings {
    /// Messages a tenant may send per second, on each replica (bursts of
    /// up to one second's worth); 0: no limit.
    pub per_second: u32,
    /// Messages a tenant may send per UTC day, across every replica (a
    /// count in the store); 0: no limit.
    pub per_day: u64,
    /// Per-tenant values; unset keys take the defaults above.
    pub tenants: Vec<TenantQuota>,
}

/// One tenant's quotas.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantQuota {
    pub tenant: String,
    /// Its messages per second (0: none).
    pub per_second: Option<u32>,
    /// Its messages per UTC day (0: none).
    pub per_day: Option<u64>,
}

impl QuotaSettings {
    /// The quotas of `tenant`: (per second, per day), 0 for none.
    pub fn of(&self, tenant: &str) -> (u32, u64) {
        let own = self.tenants.iter().find(|t| t.tenant == tenant);
        (
            own.and_then(|t| t.per_second).unwrap_or(self.per_second),
            own.and_then(|t| t.per_day).unwrap_or(self.per_day),
        )
    }

    /// Checks the section.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (i, t) in self.tenants.iter().enumerate() {
            if t.tenant.trim().is_empty() {
                return Err(SettingsError::Invalid {
                    key: "quotas.tenants.tenant",
                    reason: "must not be empty".to_owned(),
                });
            }
            if self.tenants[..i].iter().any(|o| o.tenant == t.tenant) {
                return Err(SettingsError::Invalid {
                    key: "quotas.tenants.tenant",
                    reason: format!("names {} twice", t.tenant),
                });
            }
        }
        Ok(())
    }
}
