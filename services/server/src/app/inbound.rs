//! Inbound: every delivery a provider makes, whichever way it comes (an
//! HTTP webhook, a mail by SMTP), parsed by its adapter and recorded before
//! it is acknowledged. A customer's message is bounded
//! (`omniroute_channel::bounds`) and recorded once per provider id on its
//! contact (created for a new sender), opening the channel's service
//! window; statuses and a call's progress go to status ingestion (applied
//! now, or queued behind earlier reports of the same provider message);
//! opt-outs land in the consent ledger; taps of "call me" buttons and
//! missed calls schedule callbacks ([`CustomerCallbacks`]).
//!
//! The faces map the outcome: `webhooks.rs` to HTTP (through `http.rs`),
//! the email provider's SMTP listener to SMTP replies.

use std::sync::Arc;

use omniroute_channel::{Adapter, AskedMessage, Channel, WebhookEvent, WebhookRequest};
use omniroute_domain::{MessageStatus, NewInbound, Received};
use uuid::Uuid;

use super::callbacks::{CustomerCallbacks, Tap};
use super::{App, AppError};
use crate::channels::Accounts;
use crate::pipeline::statuses::{Report, StatusChannel};

/// The inbound use case: every delivery a provider makes (a webhook, a mail
/// by SMTP), parsed by its adapter and recorded.
#[derive(Debug, Clone)]
pub struct Ingress {
    app: App,
    accounts: Accounts,
    statuses: StatusChannel,
    asked: Option<CustomerCallbacks>,
}

impl Ingress {
    /// The ingress over the application core and the account map.
    pub fn new(app: App, accounts: Accounts, statuses: StatusChannel) -> Ingress {
        Ingress {
            app,
            accounts,
            statuses,
            asked: None,
        }
    }

    /// Taps of "call me" buttons and missed calls schedule callbacks.
    pub fn with_customer_callbacks(mut self, asked: CustomerCallbacks) -> Ingress {
        self.asked = Some(asked);
        self
    }

    pub fn adapter(&self, channel: &str) -> Option<(Channel, &Arc<dyn Adapter>)> {
        let channel = Channel::parse(channel)?;
        self.app.adapters.get(&channel).map(|a| (channel, a))
    }

    /// Records one event; errors mean "deliver again".
    async fn record(&self, channel: Channel, event: WebhookEvent) -> Result<(), AppError> {
        match event {
            WebhookEvent::Inbound(mut message) => {
                // Whatever the customer sent, the message stays within the
                // bounds every answer and event keeps (a cut text is kept
                // whole as the message's media).
                message.bound();
                let Some(tenant) = self
                    .accounts
                    .get(&(channel, message.account.clone()))
                    .cloned()
                else {
                    tracing::warn!(%channel, account = %message.account, "inbound message for an unknown account; acknowledged, not stored");
                    return Ok(());
                };
                // A message opens the channel's customer service window on
                // the line it came to, if the channel has one (an automatic
                // reply does not: the customer did not write).
                let opens_window = self
                    .app
                    .adapters
                    .get(&channel)
                    .and_then(|a| a.capabilities().service_window)
                    .filter(|_| !message.automatic);
                let from_key = message.from.key().to_owned();
                let tapped = self
                    .asked
                    .as_ref()
                    .filter(|a| a.may_be_tap(&message.content))
                    .map(|a| {
                        (
                            a,
                            message.content.clone(),
                            message.provider_message_id.clone(),
                        )
                    });
                let also_opens = self.opened_by_call(&tenant, &message);
                let inbound = NewInbound {
                    channel,
                    line: message.account,
                    opens_window,
                    also_opens,
                    from: message.from,
                    profile_name: message.profile_name,
                    provider_user_id: message.provider_user_id,
                    provider_message_id: message.provider_message_id,
                    time: message.time,
                    content: message.content,
                    reply_to: message.reply_to,
                    automatic: message.automatic,
                    media_bytes: message.media_bytes,
                };
                let received = match self.app.store.record_inbound(&tenant, inbound).await {
                    Ok(received) => received,
                    Err(e) => return Err(e.into()),
                };
                if let Received::New(m) = &received {
                    tracing::info!(%channel, message_id = %m.id, contact = %m.contact_id, "inbound message");
                }
                match tapped {
                    Some((asked, content, provider_id)) => {
                        let tap = Tap {
                            tenant: &tenant,
                            channel,
                            from_key: &from_key,
                            provider_id: &provider_id,
                            content: &content,
                        };
                        asked.on_reply(&tap, &received).await
                    }
                    None => Ok(()),
                }
            }
            WebhookEvent::Status(update) => self.apply(Report::Status(update)).await,
            WebhookEvent::OptOut(request) => {
                let Some(tenant) = self
                    .accounts
                    .get(&(channel, request.account.clone()))
                    .cloned()
                else {
                    tracing::warn!(%channel, account = %request.account, "opt-out for an unknown account; acknowledged, not stored");
                    return Ok(());
                };
                let Ok(message_id) = Uuid::parse_str(&request.message_id) else {
                    return Ok(());
                };
                self.app
                    .opt_out(
                        &tenant,
                        message_id,
                        request.channel,
                        request.category,
                        "list-unsubscribe",
                        {
                            let mut evidence = request.evidence;
                            omniroute_channel::bounds::shorten(
                                &mut evidence,
                                omniroute_channel::bounds::FIELD_BYTES,
                            );
                            evidence
                        },
                    )
                    .await
                    .map(|_| ())
            }
            WebhookEvent::CallProgress(progress) => self.apply(Report::Progress(progress)).await,
            WebhookEvent::MissedCall(missed) => {
                let Some(tenant) = self
                    .accounts
                    .get(&(channel, missed.account.clone()))
                    .cloned()
                else {
                    tracing::warn!(%channel, account = %missed.account, "missed call to an unknown number; acknowledged");
                    return Ok(());
                };
                tracing::info!(%channel, caller = %missed.from, "missed call");
                match &self.asked {
                    Some(asked) => {
                        asked
                            .on_missed(&tenant, &missed.call_id, &missed.from)
                            .await
                    }
                    None => Ok(()),
                }
            }
            WebhookEvent::Ignored(reason) => {
                tracing::debug!(%channel, %reason, "webhook item ignored");
                Ok(())
            }
        }
    }

    /// The WhatsApp service window a customer's call opens: the call came to
    /// the number they also reach the business at on WhatsApp, so it opens
    /// the window on the tenant's WhatsApp line as a message there would.
    fn opened_by_call(
        &self,
        tenant: &str,
        message: &omniroute_channel::InboundMessage,
    ) -> Option<(Channel, String, std::time::Duration)> {
        if !matches!(message.content, omniroute_channel::Content::InboundCall(_)) {
            return None;
        }
        let whatsapp = self.app.adapters.get(&Channel::Whatsapp)?;
        let window = whatsapp.capabilities().service_window?;
        let line = whatsapp.sending_line(tenant);
        (!line.is_empty()).then(|| (Channel::Whatsapp, line.to_owned(), window))
    }

    /// Applies a status or a call's progress now; one that matches nothing
    /// yet (its send is still being recorded), or comes behind one that
    /// did not, goes to the ingestion task, which retries in order.
    async fn apply(&self, report: Report) -> Result<(), AppError> {
        Ok(self
            .statuses
            .apply_or_queue(self.app.store.as_ref(), report)
            .await?)
    }
}

/// Why a verified delivery was not taken.
#[derive(Debug)]
pub enum Rejected {
    /// The body is not what the provider sends (HTTP 400, SMTP 554).
    Malformed(omniroute_channel::AdapterError),
    /// Recording failed: deliver again (HTTP 503 while the store is
    /// unreachable, else 500; SMTP 451).
    NotRecorded(AppError),
}
impl Ingress {
    /// Parses a verified delivery on `channel` and records every event
    /// before answering: the one path of every way deliveries come in (an
    /// HTTP webhook, a mail by SMTP).
    pub async fn ingest(
        &self,
        channel: Channel,
        adapter: &Arc<dyn Adapter>,
        body: &[u8],
    ) -> Result<(), Rejected> {
        let events = adapter.parse_webhook(body).map_err(Rejected::Malformed)?;
        self.record_all(channel, events).await
    }

    /// [`Ingress::ingest`] of a webhook request (whose URL may say more
    /// than its body).
    pub async fn ingest_request(
        &self,
        channel: Channel,
        adapter: &Arc<dyn Adapter>,
        request: &WebhookRequest<'_>,
        asked: Option<&AskedMessage>,
    ) -> Result<(), Rejected> {
        let events = adapter
            .parse_request(request, asked)
            .map_err(Rejected::Malformed)?;
        self.record_all(channel, events).await
    }

    async fn record_all(
        &self,
        channel: Channel,
        events: Vec<WebhookEvent>,
    ) -> Result<(), Rejected> {
        for event in events {
            self.record(channel, event)
                .await
                .map_err(Rejected::NotRecorded)?;
        }
        Ok(())
    }

    /// The message of ours a call-control request asks about
    /// ([`Adapter::answer_reads`]), as the adapter's answer needs it: its
    /// content on the channel (its plan step's) and whether it still waits
    /// for an outcome. `None` when the request names none, or no message
    /// of the account's tenant; an error is the store's (as an HTTP status).
    pub async fn asked(
        &self,
        channel: Channel,
        adapter: &Arc<dyn Adapter>,
        request: &WebhookRequest<'_>,
    ) -> Result<Option<AskedMessage>, AppError> {
        let Some((account, id)) = adapter.answer_reads(request) else {
            return Ok(None);
        };
        let Some(tenant) = self.accounts.get(&(channel, account)) else {
            return Ok(None);
        };
        let Ok(id) = Uuid::parse_str(&id) else {
            return Ok(None);
        };
        let message = match self.app.store.get_message(tenant, id).await {
            Ok(message) => message,
            Err(omniroute_store::StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(step) = message
            .route
            .as_ref()
            .and_then(|r| r.plan.iter().find(|p| p.channel == channel))
        else {
            return Ok(None);
        };
        Ok(Some(AskedMessage {
            content: crate::routing::policy::step_content(
                &message.content,
                &message.overrides,
                channel,
                step.variant,
            ),
            pending: matches!(
                message.status,
                MessageStatus::Accepted | MessageStatus::Queued | MessageStatus::Sent
            ),
            provider_id: message.provider_message_id,
        }))
    }

    /// The adapter serving `channel`, if it is configured.
    pub fn adapter_of(&self, channel: Channel) -> Option<Arc<dyn Adapter>> {
        self.app.adapters.get(&channel).cloned()
    }
}
