//! The SMTP transport to the relay: lettre's async transport with a
//! connection pool, the TLS mode, credentials and timeouts from the
//! settings.

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use omniroute_channel::{AdapterError, ErrorClass};

use crate::config::{RelayConfig, TlsMode};

/// A pooled SMTP transport.
pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// Builds the transport (no connection is opened yet).
pub fn transport(relay: &RelayConfig) -> Result<Transport, AdapterError> {
    let config_error = |e: lettre::transport::smtp::Error| {
        AdapterError::new(ErrorClass::Configuration, "smtp-config", e.to_string())
    };
    let mut builder = match relay.tls {
        TlsMode::Implicit => Transport::relay(&relay.host).map_err(config_error)?,
        TlsMode::StartTlsRequired => {
            Transport::starttls_relay(&relay.host).map_err(config_error)?
        }
        TlsMode::None => Transport::builder_dangerous(relay.host.clone()).tls(Tls::None),
    };
    if relay.tls != TlsMode::None {
        // The same checks as `relay` makes, kept explicit: the relay's
        // certificate must name its host.
        let parameters = TlsParameters::new(relay.host.clone()).map_err(config_error)?;
        builder = builder.tls(match relay.tls {
            TlsMode::Implicit => Tls::Wrapper(parameters),
            _ => Tls::Required(parameters),
        });
    }
    builder = builder
        .port(relay.port)
        .timeout(Some(relay.timeout))
        .hello_name(ClientId::Domain(relay.hello_name.clone()))
        .pool_config(PoolConfig::new().max_size(relay.pool_size.max(1)));
    if !relay.username.is_empty() {
        builder = builder.credentials(Credentials::new(
            relay.username.clone(),
            relay.password.clone(),
        ));
    }
    Ok(builder.build())
}

/// Sends one email: one SMTP transaction, one recipient.
pub async fn send(transport: &Transport, email: Message) -> Result<(), AdapterError> {
    transport
        .send(email)
        .await
        .map(|_| ())
        .map_err(|e| crate::error::classify(&e))
}
