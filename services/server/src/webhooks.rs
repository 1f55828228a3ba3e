//! Webhook ingress: the HTTP listener providers call with customers'
//! messages and delivery statuses, at `/webhooks/{channel}` (for example
//! `/webhooks/whatsapp`).
//!
//! - `GET` answers the provider's subscription handshake (403 when refused).
//! - `POST` reads at most `http.max_body_bytes`, verifies the signature over
//!   the exact bytes before anything is parsed (401, nothing stored, on a bad
//!   or missing one), reads the message of ours a call-control request
//!   names, if any (`Adapter::answer_reads`: what the request carries may
//!   count only for it, and the answer may play it), parses (400 on a
//!   malformed body), then records every event before answering 200. A
//!   failure to record answers 500 so that the provider delivers again:
//!   nothing acknowledged is lost, and redeliveries are harmless (inbound
//!   messages are recorded once per provider id, statuses only move
//!   forward).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use omniroute_channel::{Adapter, AskedMessage, Category, Channel, WebhookEvent, WebhookRequest};
use omniroute_domain::{
    ConsentAction, LegalBasis, MessageStatus, NewConsent, NewInbound, Received,
};
use omniroute_store::Store;
use uuid::Uuid;

use crate::pipeline::dispatcher::Adapters;
use crate::pipeline::statuses::{Report, StatusChannel};

/// Which tenant a provider account (a WhatsApp phone number id, a mailbox)
/// belongs to.
pub type Accounts = Arc<HashMap<(Channel, String), String>>;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct Ingress {
    store: Arc<dyn Store>,
    adapters: Adapters,
    accounts: Accounts,
    statuses: StatusChannel,
    asked: Option<crate::customer_callbacks::CustomerCallbacks>,
}

impl Ingress {
    /// The ingress over a store, the adapters and the account map.
    pub fn new(
        store: Arc<dyn Store>,
        adapters: Adapters,
        accounts: Accounts,
        statuses: StatusChannel,
    ) -> Ingress {
        Ingress {
            store,
            adapters,
            accounts,
            statuses,
            asked: None,
        }
    }

    /// Taps of "call me" buttons and missed calls schedule callbacks.
    pub fn with_customer_callbacks(
        mut self,
        asked: crate::customer_callbacks::CustomerCallbacks,
    ) -> Ingress {
        self.asked = Some(asked);
        self
    }

    /// The HTTP routes, with the body limit.
    pub fn router(self, max_body_bytes: usize) -> Router {
        Router::new()
            .route("/webhooks/{channel}", get(subscribe).post(deliver))
            .route("/healthz", get(|| async { "ok" }))
            .layer(DefaultBodyLimit::max(max_body_bytes))
            .with_state(self)
    }

    /// `routes` with every request bounded by `timeout`, its body's upload
    /// included: a slower one is answered 408 (nothing was recorded; the
    /// provider delivers again), so a stalled client cannot hold a worker.
    pub fn bounded(routes: Router, timeout: std::time::Duration) -> Router {
        routes.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| async move {
                use axum::response::IntoResponse;
                match tokio::time::timeout(timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => {
                        tracing::warn!(timeout_secs = timeout.as_secs(), "HTTP request timed out");
                        (StatusCode::REQUEST_TIMEOUT, "request timed out").into_response()
                    }
                }
            },
        ))
    }

    fn adapter(&self, channel: &str) -> Option<(Channel, &Arc<dyn Adapter>)> {
        let channel = Channel::parse(channel)?;
        self.adapters.get(&channel).map(|a| (channel, a))
    }

    /// Records one event; errors mean "deliver again".
    async fn record(&self, channel: Channel, event: WebhookEvent) -> Result<(), StatusCode> {
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
                let received = match self.store.record_inbound(&tenant, inbound).await {
                    Ok(received) => received,
                    Err(e) => return Err(store_failed("recording an inbound message", &e)),
                };
                if let Received::New(m) = &received {
                    tracing::info!(%channel, message_id = %m.id, contact = %m.contact_id, "inbound message");
                }
                match tapped {
                    Some((asked, content, provider_id)) => {
                        let tap = crate::customer_callbacks::Tap {
                            tenant: &tenant,
                            channel,
                            from_key: &from_key,
                            provider_id: &provider_id,
                            content: &content,
                        };
                        asked.on_reply(self.store.as_ref(), &tap, &received).await
                    }
                    None => Ok(()),
                }
            }
            WebhookEvent::Status(update) => {
                self.apply(Report::Status(update), "applying a webhook status")
                    .await
            }
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
                match opt_out(
                    self.store.as_ref(),
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
                {
                    Ok(_) => Ok(()),
                    Err(e) => Err(store_failed("recording an opt-out", &e)),
                }
            }
            WebhookEvent::CallProgress(progress) => {
                self.apply(Report::Progress(progress), "recording a call's progress")
                    .await
            }
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
                            .on_missed(self.store.as_ref(), &tenant, &missed.call_id, &missed.from)
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
        let whatsapp = self.adapters.get(&Channel::Whatsapp)?;
        let window = whatsapp.capabilities().service_window?;
        let line = whatsapp.sending_line(tenant);
        (!line.is_empty()).then(|| (Channel::Whatsapp, line.to_owned(), window))
    }

    /// Applies a status or a call's progress now; one that matches nothing
    /// yet (its send is still being recorded), or comes behind one that
    /// did not, goes to the ingestion task, which retries in order.
    async fn apply(&self, report: Report, what: &str) -> Result<(), StatusCode> {
        self.statuses
            .apply_or_queue(self.store.as_ref(), report)
            .await
            .map_err(|e| store_failed(what, &e))
    }
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            value
                .to_str()
                .ok()
                .map(|v| (name.as_str().to_ascii_lowercase(), v.to_owned()))
        })
        .collect()
}

async fn subscribe(
    State(ingress): State<Ingress>,
    Path(channel): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let Some((channel, adapter)) = ingress.adapter(&channel) else {
        return (StatusCode::NOT_FOUND, "no such channel".to_owned());
    };
    let headers = header_pairs(&headers);
    let request = WebhookRequest {
        uri: uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()),
        query: &query,
        headers: &headers,
        body: &[],
    };
    match adapter.verify_subscription(&request) {
        Ok(challenge) => {
            tracing::info!(%channel, "webhook subscription verified");
            (StatusCode::OK, challenge)
        }
        Err(e) => {
            tracing::warn!(%channel, error = %e, "webhook subscription refused");
            (StatusCode::FORBIDDEN, "refused".to_owned())
        }
    }
}

async fn deliver(
    State(ingress): State<Ingress>,
    Path(channel): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let metrics = &crate::metrics::METRICS;
    let Some((channel, adapter)) = ingress.adapter(&channel) else {
        metrics.webhook("none", "no_channel");
        return (StatusCode::NOT_FOUND, "no such channel").into_response();
    };
    let headers = header_pairs(&headers);
    let request = WebhookRequest {
        uri: uri.path_and_query().map_or(uri.path(), |pq| pq.as_str()),
        query: &query,
        headers: &headers,
        body: &body,
    };
    let counted = |result: &str| metrics.webhook(channel.as_str(), result);
    if let Err(e) = adapter.verify_signature(&request) {
        counted("unauthorized");
        tracing::warn!(%channel, error = %e, "webhook with a bad signature refused");
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    // The message of ours the request is about, if it names one: what it
    // carries may only count for that message, and the answer may need it.
    let asked = match ingress.asked(channel, adapter, &request).await {
        Ok(asked) => asked,
        Err(status) => {
            counted("not_recorded");
            return (status, "not recorded; deliver again").into_response();
        }
    };
    match ingress
        .ingest_request(channel, adapter, &request, asked.as_ref())
        .await
    {
        Ok(()) => {
            counted("ok");
            let (content_type, answer) = adapter.webhook_answer(&request, asked.as_ref());
            (
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, content_type)],
                answer,
            )
                .into_response()
        }
        Err(Rejected::Malformed(e)) => {
            counted("malformed");
            tracing::warn!(%channel, error = %e, "malformed webhook refused");
            (StatusCode::BAD_REQUEST, "malformed body").into_response()
        }
        Err(Rejected::NotRecorded(status)) => {
            counted("not_recorded");
            (status, "not recorded; deliver again").into_response()
        }
    }
}

/// Why a verified delivery was not taken.
#[derive(Debug)]
pub enum Rejected {
    /// The body is not what the provider sends (HTTP 400, SMTP 554).
    Malformed(omniroute_channel::AdapterError),
    /// Recording failed: deliver again (the HTTP status: 503 while the
    /// store is unreachable, else 500).
    NotRecorded(StatusCode),
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
    async fn ingest_request(
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
    async fn asked(
        &self,
        channel: Channel,
        adapter: &Arc<dyn Adapter>,
        request: &WebhookRequest<'_>,
    ) -> Result<Option<AskedMessage>, StatusCode> {
        let Some((account, id)) = adapter.answer_reads(request) else {
            return Ok(None);
        };
        let Some(tenant) = self.accounts.get(&(channel, account)) else {
            return Ok(None);
        };
        let Ok(id) = Uuid::parse_str(&id) else {
            return Ok(None);
        };
        let message = match self.store.get_message(tenant, id).await {
            Ok(message) => message,
            Err(omniroute_store::StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_failed("reading the message a call asks for", &e)),
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
        self.adapters.get(&channel).cloned()
    }
}

/// Records that the contact of our message `message_id` revokes
/// `category` on `channel` (`source` and `evidence` for the ledger); false
/// when there is no such message. An erased contact has nothing left to
/// unsubscribe: that is done too.
pub async fn opt_out(
    store: &dyn Store,
    tenant: &str,
    message_id: Uuid,
    channel: Channel,
    category: Category,
    source: &str,
    evidence: String,
) -> Result<bool, omniroute_store::StoreError> {
    let message = match store.get_message(tenant, message_id).await {
        Ok(m) => m,
        Err(omniroute_store::StoreError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    // The same opt-out again (a mailbox provider repeating its one-click
    // POST, an unsubscribe mail delivered twice) changes nothing and is not
    // recorded twice: a contact whose consent is revoked now stays so. One
    // who granted it again since is revoked again (withdrawing is always as
    // easy as giving).
    let contact = message.contact_id;
    if revoked_now(store, tenant, contact, channel, category).await? {
        tracing::debug!(%contact, %message_id, "opted out already");
        return Ok(true);
    }
    let consent = NewConsent {
        channel,
        category,
        action: ConsentAction::Revoke,
        source: source.to_owned(),
        legal_basis: LegalBasis::Consent,
        evidence,
        record_time: None,
    };
    match store
        .record_consent(tenant, message.contact_id, consent)
        .await
    {
        Ok(_) => {
            tracing::info!(contact = %message.contact_id, %message_id, %channel, %category, "opted out");
            Ok(true)
        }
        Err(omniroute_store::StoreError::Erased(_)) => Ok(true),
        Err(e) => Err(e),
    }
}

/// Whether the contact's consent for `category` on `channel` is revoked
/// now (the ledger's latest record for it is a revocation).
async fn revoked_now(
    store: &dyn Store,
    tenant: &str,
    contact: Uuid,
    channel: Channel,
    category: Category,
) -> Result<bool, omniroute_store::StoreError> {
    let preferences = match store.get_preferences(tenant, contact).await {
        Ok(preferences) => preferences,
        Err(
            omniroute_store::StoreError::NotFound { .. } | omniroute_store::StoreError::Erased(_),
        ) => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    Ok(preferences
        .consents
        .iter()
        .any(|c| c.channel == channel && c.category == category && !c.granted))
}

/// A webhook the store could not take: 503 while the store is unreachable
/// (the provider redelivers; nothing was stored), 500 otherwise; logged
/// at most once per interval while the store is down.
fn store_failed(what: &str, e: &omniroute_store::StoreError) -> StatusCode {
    static DOWN: crate::telemetry::Throttle = crate::telemetry::Throttle::new(5_000);
    if e.is_transient() {
        if let Some(suppressed) = DOWN.allow() {
            tracing::warn!(error = %omniroute_store::error_chain(e), suppressed, "{what} failed: store unavailable; answering 503");
        }
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        tracing::error!(error = %omniroute_store::error_chain(e), "{what} failed");
        StatusCode::INTERNAL_SERVER_ERROR
    }
}
