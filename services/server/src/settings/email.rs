//! `[email]`: the SMTP relay mail goes out through, and who each tenant's
//! mail comes from.

use serde::{Deserialize, Serialize};

use super::{Secret, SettingsError};

/// Email through an SMTP relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailSettings {
    /// Send through the relay (otherwise the sandbox serves email).
    pub enabled: bool,
    /// The relay's host name (its TLS certificate must name it).
    pub relay_host: String,
    /// The relay's port: 465 for implicit TLS, 587 for STARTTLS, 25 locally.
    pub relay_port: u16,
    /// `starttls` (required: nothing goes out unencrypted), `implicit`, or
    /// `none` (only for a relay on this host or network).
    pub tls: String,
    /// SMTP AUTH user; empty for none.
    pub username: String,
    /// SMTP AUTH password. Better: `OMNIROUTE__EMAIL__PASSWORD`.
    pub password: Secret,
    /// Seconds each SMTP command (and the connection) may take.
    pub timeout_secs: u64,
    /// Connections kept open to the relay, at most.
    pub pool_size: u32,
    /// The name we greet the relay with (EHLO); empty: the first sender's
    /// reply domain.
    pub hello_name: String,
    /// Who each tenant's mail comes from.
    pub senders: Vec<EmailSender>,
    /// The shared secret that signs customers' mail posted to
    /// `/webhooks/email` (`X-Omniroute-Signature: sha256=<hex HMAC-SHA256
    /// of the body>`). Better: `OMNIROUTE__EMAIL__WEBHOOK_SECRET`.
    pub webhook_secret: Secret,
    /// The folder of the tenants' email templates
    /// (`<folder>/<tenant>/<name>.<language>.subject|.txt|.html`); empty for
    /// none.
    pub template_dir: std::path::PathBuf,
    /// The public base URL of the HTTP listener (`https://router.acme.example`):
    /// marketing email then carries a one-click unsubscribe to
    /// `<base>/unsubscribe/email/<token>` (RFC 8058). Empty: none.
    pub unsubscribe_base_url: String,
    /// The key that signs unsubscribe tokens. Better:
    /// `OMNIROUTE__EMAIL__UNSUBSCRIBE_SECRET`.
    pub unsubscribe_secret: Secret,
    /// Where the SMTP listener for inbound mail listens (for example
    /// `127.0.0.1:2525`), for the relay that forwards customers' mail; unset:
    /// no listener (mail comes by `/webhooks/email` only). Plain SMTP
    /// without AUTH: listen on loopback or a private network only.
    pub smtp_listen: Option<std::net::SocketAddr>,
    /// The largest mail the SMTP listener takes, in bytes (offered as
    /// `SIZE`; a `MAIL FROM` declaring more, or a larger mail: 552).
    pub smtp_max_message_bytes: usize,
    /// Seconds an SMTP client may stay silent before it is disconnected
    /// (421).
    pub smtp_idle_timeout_secs: u64,
    /// SMTP sessions served at once; when all are taken, the longest idle
    /// one is closed (421) to make room for a new client.
    pub smtp_max_connections: usize,
    /// The largest media file attached to an email, in bytes (fetched from
    /// the media's URL when the message is sent); larger files, and every
    /// file with 0, go as a link.
    pub attachment_max_bytes: usize,
}

impl Default for EmailSettings {
    fn default() -> Self {
        EmailSettings {
            enabled: false,
            relay_host: String::new(),
            relay_port: 587,
            tls: "starttls".to_owned(),
            username: String::new(),
            password: Secret::default(),
            timeout_secs: 30,
            pool_size: 8,
            hello_name: String::new(),
            senders: Vec::new(),
            webhook_secret: Secret::default(),
            template_dir: std::path::PathBuf::new(),
            unsubscribe_base_url: String::new(),
            unsubscribe_secret: Secret::default(),
            smtp_listen: None,
            smtp_max_message_bytes: 25 * 1024 * 1024,
            smtp_idle_timeout_secs: 60,
            smtp_max_connections: 64,
            attachment_max_bytes: 10 * 1024 * 1024,
        }
    }
}

/// A tenant's sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailSender {
    pub tenant: String,
    /// The From address, for example `support@acme.example`.
    pub from_address: String,
    /// The From name, for example `ACME Support`.
    pub from_name: String,
    /// The domain of Message-IDs and reply addresses
    /// (`reply+<token>@<reply_domain>`): its mail must reach omniroute.
    pub reply_domain: String,
    /// The categories this sender sends (`marketing`, `transactional`,
    /// `authentication`, `service`); empty: every category no other sender
    /// of the tenant names.
    pub categories: Vec<omniroute_channel::Category>,
}

impl Default for EmailSender {
    fn default() -> Self {
        EmailSender {
            tenant: "default".to_owned(),
            from_address: String::new(),
            from_name: String::new(),
            reply_domain: String::new(),
            categories: Vec::new(),
        }
    }
}

impl EmailSettings {
    /// The adapter's configuration (checked by [`EmailSettings::validate`]).
    pub fn config(&self) -> omniroute_email::EmailConfig {
        let hello_name = self.hello_name();
        omniroute_email::EmailConfig {
            relay: omniroute_email::RelayConfig {
                host: self.relay_host.clone(),
                port: self.relay_port,
                tls: omniroute_email::TlsMode::parse(&self.tls)
                    .unwrap_or(omniroute_email::TlsMode::StartTlsRequired),
                username: self.username.clone(),
                password: self.password.expose().to_owned(),
                timeout: std::time::Duration::from_secs(self.timeout_secs),
                pool_size: self.pool_size,
                hello_name,
            },
            senders: self
                .senders
                .iter()
                .map(|s| omniroute_email::Sender {
                    tenant: s.tenant.clone(),
                    line: s.from_address.to_ascii_lowercase(),
                    from_address: s.from_address.clone(),
                    from_name: s.from_name.clone(),
                    reply_domain: s.reply_domain.clone(),
                    categories: s.categories.clone(),
                })
                .collect(),
            webhook_secret: self.webhook_secret.expose().to_owned(),
            template_dir: Some(self.template_dir.clone()).filter(|d| !d.as_os_str().is_empty()),
            unsubscribe: self.unsubscribe(),
            attachment_max_bytes: self.attachment_max_bytes,
        }
    }

    /// One-click unsubscribe, when configured.
    pub fn unsubscribe(&self) -> Option<omniroute_email::Unsubscribe> {
        (!self.unsubscribe_base_url.is_empty()).then(|| omniroute_email::Unsubscribe {
            base_url: self.unsubscribe_base_url.clone(),
            secret: self.unsubscribe_secret.expose().to_owned(),
        })
    }

    /// The name we greet with (EHLO) and the SMTP listener greets with:
    /// `hello_name`, else the first sender's reply domain.
    fn hello_name(&self) -> String {
        if self.hello_name.is_empty() {
            self.senders
                .first()
                .map(|s| s.reply_domain.clone())
                .unwrap_or_else(|| "localhost".to_owned())
        } else {
            self.hello_name.clone()
        }
    }

    /// The SMTP listener's behaviour.
    pub fn listener(&self) -> omniroute_email::listener::ListenerConfig {
        omniroute_email::listener::ListenerConfig {
            hostname: self.hello_name(),
            max_message_bytes: self.smtp_max_message_bytes,
            idle_timeout: std::time::Duration::from_secs(self.smtp_idle_timeout_secs),
            max_connections: self.smtp_max_connections,
        }
    }

    /// Checks the section when email is enabled.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key: &'static str, reason: &str| {
            Err(SettingsError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if !self.enabled {
            if self.smtp_listen.is_some() {
                return invalid("email.smtp_listen", "inbound SMTP needs email.enabled");
            }
            return Ok(());
        }
        if self.smtp_max_message_bytes < 1024 {
            return invalid("email.smtp_max_message_bytes", "at least 1024");
        }
        if self.smtp_idle_timeout_secs == 0 || self.smtp_max_connections == 0 {
            return invalid(
                "email.smtp_idle_timeout_secs",
                "the idle timeout and smtp_max_connections must be at least 1",
            );
        }
        if self.relay_host.trim().is_empty() {
            return invalid("email.relay_host", "the relay's host is needed");
        }
        if omniroute_email::TlsMode::parse(&self.tls).is_none() {
            return invalid("email.tls", "one of starttls, implicit, none");
        }
        if self.timeout_secs == 0 {
            return invalid("email.timeout_secs", "must be at least 1");
        }
        if !self.username.is_empty() && self.password.expose().is_empty() {
            return invalid("email.password", "a username needs its password");
        }
        if self.senders.is_empty() {
            return invalid("email.senders", "at least one sender is needed");
        }
        if !self.unsubscribe_base_url.is_empty() {
            if !super::is_callback_url(&self.unsubscribe_base_url) {
                return invalid(
                    "email.unsubscribe_base_url",
                    "mailbox providers only follow https:// one-click links",
                );
            }
            if self.unsubscribe_secret.expose().len() < 16 {
                return invalid(
                    "email.unsubscribe_secret",
                    "at least 16 characters, to sign unsubscribe tokens",
                );
            }
        }
        for sender in &self.senders {
            if !sender.from_address.contains('@') {
                return invalid(
                    "email.senders.from_address",
                    "an address like support@acme.example",
                );
            }
            if sender.reply_domain.trim().is_empty() || sender.reply_domain.contains('@') {
                return invalid(
                    "email.senders.reply_domain",
                    "a domain like reply.acme.example",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> EmailSettings {
        EmailSettings {
            enabled: true,
            relay_host: "smtp.acme.example".into(),
            senders: vec![EmailSender {
                tenant: "default".into(),
                from_address: "support@acme.example".into(),
                from_name: "ACME".into(),
                reply_domain: "reply.acme.example".into(),
                categories: Vec::new(),
            }],
            ..EmailSettings::default()
        }
    }

    #[test]
    fn an_enabled_relay_needs_a_host_a_mode_and_senders() {
        crate::settings::check_refusals(
            EmailSettings::validate,
            enabled,
            &[
                ("email.relay_host", |s| s.relay_host = String::new()),
                ("email.tls", |s| s.tls = "maybe".into()),
                ("email.senders", |s| s.senders = vec![]),
                ("email.password", |s| s.username = "u".into()),
                ("email.senders.reply_domain", |s| {
                    s.senders[0].reply_domain = "x@y".into();
                }),
            ],
        );
    }

    #[test]
    fn the_adapter_config_follows_the_settings() {
        let mut s = enabled();
        s.password = Secret::new("hunter2");
        let config = s.config();
        assert_eq!(config.relay.tls, omniroute_email::TlsMode::StartTlsRequired);
        assert_eq!(config.relay.hello_name, "reply.acme.example");
        assert_eq!(config.senders[0].line, "support@acme.example");
        assert!(!format!("{:?}", config.relay).contains("hunter2"));
    }
}
