//! Email through an SMTP relay (`[email]`): the adapter over the relay and
//! the senders, each sender's line and tenant, and the routes and listener
//! of its own: one-click unsubscribes and choice links on the HTTP listener
//! (`unsubscribe.rs`, `choices.rs`), and the SMTP listener for inbound mail
//! (`smtp.rs`). Mail posted by HTTP arrives at `/webhooks/email`.

pub mod choices;
pub mod smtp;
pub mod unsubscribe;

use std::sync::Arc;

use omniroute_channel::{Adapter, Channel};
use tokio::net::TcpListener;

use super::{Provider, Serving, Shared};
use crate::pipeline::statuses::StatusChannel;
use crate::settings::Settings;

/// What the pages behind the links in mail need: the application, and
/// the tokens that sign the links.
#[derive(Debug, Clone)]
struct Links {
    app: crate::app::App,
    tokens: omniroute_email::Unsubscribe,
}

/// The email provider.
#[derive(Debug)]
pub struct Email;

impl Provider for Email {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    fn enabled(&self, settings: &Settings) -> bool {
        settings.email.enabled
    }

    fn adapter(
        &self,
        settings: &Settings,
        _sink: &StatusChannel,
    ) -> anyhow::Result<Arc<dyn Adapter>> {
        let email = omniroute_email::EmailAdapter::new(settings.email.config())
            .map_err(|e| anyhow::anyhow!("invalid setting: {}", e.message()))?;
        // Whether the relay reports delivery (DSN) decides what delivery
        // deadlines on email wait for: learned before the first mail.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(email.learn_relay());
        }
        tracing::info!(
            relay = %settings.email.relay_host,
            senders = settings.email.senders.len(),
            "email through an smtp relay enabled"
        );
        Ok(Arc::new(email))
    }

    fn accounts(&self, settings: &Settings) -> Vec<(String, String)> {
        settings
            .email
            .config()
            .senders
            .into_iter()
            .map(|s| (s.line, s.tenant))
            .collect()
    }

    fn routes(&self, settings: &Settings, shared: &Shared) -> axum::Router {
        // One-click unsubscribes and choice links, signed alike: none when
        // links are not configured.
        let Some(tokens) = settings.email.unsubscribe() else {
            return axum::Router::new();
        };
        unsubscribe::routes()
            .merge(choices::routes())
            .with_state(Links {
                app: shared.app.clone(),
                tokens,
            })
    }

    fn bind(&self, settings: &Settings) -> anyhow::Result<Option<TcpListener>> {
        settings
            .email
            .smtp_listen
            .map(|addr| crate::net::listen(addr, "email.smtp_listen"))
            .transpose()
    }

    fn serve(
        &self,
        settings: &Settings,
        listener: TcpListener,
        shared: Shared,
        stop: Serving,
    ) -> Serving {
        let Some(inbox) = smtp::MailInbox::new(shared.ingress) else {
            return stop;
        };
        tracing::info!(addr = ?listener.local_addr().ok(), "smtp listener for inbound mail ready");
        Box::pin(omniroute_email::listener::serve(
            listener,
            settings.email.listener(),
            settings.email.config(),
            Arc::new(inbox),
            stop,
        ))
    }
}
