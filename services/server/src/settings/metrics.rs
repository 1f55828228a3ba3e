//! `[metrics]`: the Prometheus endpoint.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// Where metrics are served.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Address of the metrics listener (`GET /metrics`, Prometheus text);
    /// empty: no metrics listener. Keep it off the public webhook listener:
    /// a private address or loopback behind the scraper.
    pub listen: String,
}

impl MetricsSettings {
    /// The listener's address, if metrics are on.
    pub fn address(&self) -> Result<Option<SocketAddr>, SettingsError> {
        match self.listen.trim() {
            "" => Ok(None),
            text => text.parse().map(Some).map_err(|_| SettingsError::Invalid {
                key: "metrics.listen",
                reason: format!("{text:?} is not an address like 127.0.0.1:9090"),
            }),
        }
    }

    /// Checks the section; `http_listen` is the webhook listener's address,
    /// which metrics must not share.
    pub fn validate(&self, http_listen: SocketAddr) -> Result<(), SettingsError> {
        if let Some(address) = self.address()?
            && address.port() != 0
            && address == http_listen
        {
            return Err(SettingsError::Invalid {
                key: "metrics.listen",
                reason: "must not be the webhook listener's address (http.listen)".to_owned(),
            });
        }
        Ok(())
    }
}
