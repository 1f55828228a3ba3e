//! Callbacks: calls from an agent to a customer, placed by the router.
//!
//! A callback is a voice message whose content is a `CallbackRequest`,
//! sent through the send use case ([`App::send`]: the contact, routing,
//! one commit with its dispatch job and event), so a callback is durable,
//! leased and placed once across replicas like any message, and its every
//! step is an event on the stream. Routing schedules it (inside the
//! tenant's business hours, outside the customer's quiet hours, before its
//! latest time) and decides its retries (`routing::fallback`); the voice
//! adapter bridges an answered call to the agent line. A callback's state
//! is the store's reading of its message and the call's reported progress
//! (`omniroute_domain::CallbackState`).
//!
//! Agents schedule callbacks over CallbackService; customers ask for them
//! too ([`CustomerCallbacks`]): a tap on a "call me" button, a missed call
//! the tenant calls back. Each goes through [`App::schedule_callback`].

use std::sync::Arc;
use std::time::SystemTime;

use omniroute_channel::content::CallbackRequest;
use omniroute_channel::{Address, Category, Channel, Content};
use omniroute_domain::{Callback, Message, Received};
use uuid::Uuid;

use super::send::{Recipient, SendRequest};
use super::{App, AppError};
use crate::settings::{CallMeButton, MissedCallCallback};

/// A callback to schedule, as validated by whoever asks for it.
#[derive(Debug, Clone)]
pub struct CallbackOrder {
    /// The customer to call.
    pub contact: Uuid,
    /// The agent line to bridge to, the greeting, why.
    pub request: CallbackRequest,
    /// Not before this (else as soon as routing allows).
    pub schedule_time: Option<SystemTime>,
    /// Not after this: it expires.
    pub latest_time: Option<SystemTime>,
    /// The caller's reference, echoed in every event.
    pub correlation_ref: String,
    /// Makes a retry of the same order safe (apart from SendMessage's keys:
    /// the same key on both is two requests).
    pub idempotency_key: Option<String>,
}

impl CallbackOrder {
    /// The send a callback is: a service call (the customer asked to be
    /// called, in their conversation with the business) on voice.
    pub fn into_send(self) -> SendRequest {
        SendRequest {
            recipient: Recipient::Contact(self.contact),
            category: Category::Service,
            content: Content::CallbackRequest(self.request),
            overrides: Vec::new(),
            channel: Some(Channel::Voice),
            priority: None,
            correlation_ref: self.correlation_ref,
            metadata: Default::default(),
            send_time: self.schedule_time,
            expire_time: self.latest_time,
            reply_to: None,
            idempotency_key: self.idempotency_key.map(|key| format!("callback:{key}")),
            urgent: false,
            excluded: Vec::new(),
            deliver_within: None,
        }
    }
}

/// What canceling a callback did.
#[derive(Debug, Clone)]
pub struct Canceled {
    /// The callback as canceled.
    pub callback: Callback,
}

impl App {
    /// Schedules a callback; its message.
    pub async fn schedule_callback(
        &self,
        tenant: &Arc<str>,
        order: CallbackOrder,
    ) -> Result<Message, AppError> {
        let message = self
            .send(tenant, vec![Ok(order.into_send())])
            .await
            .pop()
            .unwrap_or_else(|| Err(AppError::Precondition("the callback was not taken".into())))?;
        tracing::info!(callback = %message.id, "callback scheduled");
        Ok(message)
    }

    /// Cancels a callback that waits for a call or whose call rings; the
    /// ringing call is ended (the callback is canceled either way: a call
    /// the provider could not end is not bridged when answered, as the
    /// router answers it for a canceled callback with a hang-up).
    pub async fn cancel_callback(&self, tenant: &str, id: Uuid) -> Result<Callback, AppError> {
        let canceled = self.store.cancel_callback(tenant, id).await?;
        tracing::info!(callback = %id, ringing = canceled.ringing.is_some(), "callback canceled");
        if let Some(call) = &canceled.ringing {
            let channel = canceled.callback.message.channel.unwrap_or(Channel::Voice);
            match self.adapters.get(&channel) {
                Some(adapter) => {
                    if let Err(e) = adapter.end(call).await {
                        tracing::warn!(callback = %id, error = %e, "the canceled callback's call could not be ended");
                    }
                }
                None => {
                    tracing::warn!(callback = %id, %channel, "no adapter to end the canceled callback's call")
                }
            }
        }
        Ok(canceled.callback)
    }
}

/// Callbacks customers ask for without a contact center in between:
///
/// - a tap on a WhatsApp reply button the tenant mapped in the settings
///   (`routing.call_me`);
/// - a call to one of the tenant's numbers that nobody took, when the
///   tenant calls those back (`routing.missed_calls`).
///
/// The tap or the call is recorded first, like any customer message; then
/// a callback is scheduled for that contact ([`App::schedule_callback`], so
/// it keeps business hours, quiet hours and the retry plan), once: the
/// provider's id of the tap or call is the callback's idempotency key, so a
/// redelivered webhook schedules nothing more.
#[derive(Debug, Clone)]
pub struct CustomerCallbacks {
    buttons: Arc<Vec<CallMeButton>>,
    missed: Arc<Vec<MissedCallCallback>>,
    app: App,
}

/// A customer's recorded tap, as the ingress saw it.
#[derive(Debug)]
pub struct Tap<'a> {
    /// The tenant.
    pub tenant: &'a str,
    /// The channel it came on.
    pub channel: Channel,
    /// The customer's identity key there.
    pub from_key: &'a str,
    /// The provider's id of the tap.
    pub provider_id: &'a str,
    /// Its content.
    pub content: &'a Content,
}

/// What a callback asked for by a customer is.
struct Asked<'a> {
    agent_address: &'a str,
    greeting: &'a str,
    reason: String,
    correlation_ref: String,
    key: String,
}

impl CustomerCallbacks {
    /// The rules of the settings, scheduling through `app`.
    pub fn new(
        buttons: Vec<CallMeButton>,
        missed: Vec<MissedCallCallback>,
        app: App,
    ) -> CustomerCallbacks {
        CustomerCallbacks {
            buttons: Arc::new(buttons),
            missed: Arc::new(missed),
            app,
        }
    }

    /// The button a reply is a tap of, if it is one.
    fn button(&self, tenant: &str, content: &Content) -> Option<&CallMeButton> {
        let Content::ChoiceReply(choice) = content else {
            return None;
        };
        self.buttons
            .iter()
            .find(|b| b.tenant == tenant && b.button_id == choice.id)
    }

    /// Whether a reply may be a tap (worth keeping what it says).
    pub fn may_be_tap(&self, content: &Content) -> bool {
        !self.buttons.is_empty() && matches!(content, Content::ChoiceReply(_))
    }

    /// Schedules the callback a recorded tap asks for, if it is one; an
    /// error (the store is unreachable) means "deliver again".
    pub async fn on_reply(&self, tap: &Tap<'_>, received: &Received) -> Result<(), AppError> {
        let Some(button) = self.button(tap.tenant, tap.content) else {
            return Ok(());
        };
        // A redelivery: the contact is the one the first delivery found.
        let contact = match received {
            Received::New(message) => message.contact_id,
            Received::Duplicate => {
                let keys = [(tap.channel, tap.from_key.to_owned())];
                match self.find(tap.tenant, &keys).await? {
                    Some(id) => id,
                    None => return Ok(()),
                }
            }
        };
        let asked = Asked {
            agent_address: &button.agent_address,
            greeting: &button.greeting,
            reason: format!("the customer tapped \"{}\"", button.button_id),
            correlation_ref: format!("call-me:{}", button.button_id),
            key: format!("call-me:{}:{}", tap.channel, tap.provider_id),
        };
        self.schedule(tap.tenant, contact, asked).await
    }

    /// Schedules the callback of a missed call from `from`, when the tenant
    /// calls missed calls back.
    pub async fn on_missed(
        &self,
        tenant: &str,
        call_id: &str,
        from: &Address,
    ) -> Result<(), AppError> {
        let Some(rule) = self.missed.iter().find(|r| r.tenant == tenant) else {
            return Ok(());
        };
        // The call was recorded as the caller's message: their contact has
        // the number (or a WhatsApp identity with it).
        let Some(contact) = self.find(tenant, &from.keys()).await? else {
            tracing::warn!(caller = %from, "a missed call from no known contact; not called back");
            return Ok(());
        };
        let asked = Asked {
            agent_address: &rule.agent_address,
            greeting: &rule.greeting,
            reason: "the customer called and nobody answered".to_owned(),
            correlation_ref: "missed-call".to_owned(),
            key: format!("missed-call:{call_id}"),
        };
        self.schedule(tenant, contact, asked).await
    }

    async fn schedule(
        &self,
        tenant: &str,
        contact: Uuid,
        asked: Asked<'_>,
    ) -> Result<(), AppError> {
        // The settings checked the agent line; it is dialled as normalized.
        let agent_address = Address::parse(Channel::Voice, asked.agent_address, self.app.region)
            .map(|a| a.value().to_owned())
            .unwrap_or_else(|_| asked.agent_address.to_owned());
        let order = CallbackOrder {
            contact,
            request: CallbackRequest {
                agent_address,
                greeting: asked.greeting.to_owned(),
                language: String::new(),
                reason: asked.reason,
            },
            schedule_time: None,
            latest_time: None,
            correlation_ref: asked.correlation_ref,
            idempotency_key: Some(asked.key),
        };
        match self.app.schedule_callback(&Arc::from(tenant), order).await {
            Ok(callback) => {
                tracing::info!(callback = %callback.id, %contact, "the customer asked; callback scheduled");
                Ok(())
            }
            Err(AppError::Store(e)) if e.is_transient() => Err(AppError::Store(e)),
            Err(e) => {
                // Nothing a redelivery would change (the contact cannot be
                // called): what the customer did stays recorded.
                tracing::warn!(error = %e, %contact, "the customer asked, but no callback can be scheduled");
                Ok(())
            }
        }
    }

    /// The contact owning any of `keys`.
    async fn find(
        &self,
        tenant: &str,
        keys: &[(Channel, String)],
    ) -> Result<Option<Uuid>, AppError> {
        Ok(self
            .app
            .store
            .find_by_keys(tenant, keys)
            .await?
            .map(|c| c.id))
    }
}
