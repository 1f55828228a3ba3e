//! Callbacks customers ask for without a contact center in between:
//!
//! - a tap on a WhatsApp reply button the tenant mapped in the settings
//!   (`routing.call_me`);
//! - a call to one of the tenant's numbers that nobody took, when the
//!   tenant calls those back (`routing.missed_calls`).
//!
//! The tap or the call is recorded first, like any customer message; then
//! a callback is scheduled for that contact through CallbackService's own
//! path (so it keeps business hours, quiet hours and the retry plan), once:
//! the provider's id of the tap or call is the callback's idempotency key,
//! so a redelivered webhook schedules nothing more.

use std::sync::Arc;

use axum::http::StatusCode;
use omniroute_channel::{Address, Channel, Content};
use omniroute_domain::Received;
use omniroute_proto::v1 as pb;
use omniroute_store::Store;
use uuid::Uuid;

use crate::api::{ApiError, CallbackApi};
use crate::settings::{CallMeButton, MissedCallCallback};

/// The settings' rules and the service that schedules their callbacks.
#[derive(Debug, Clone)]
pub struct CustomerCallbacks {
    buttons: Arc<Vec<CallMeButton>>,
    missed: Arc<Vec<MissedCallCallback>>,
    callbacks: CallbackApi,
}

/// A customer's recorded tap, as the ingress saw it.
#[derive(Debug)]
pub struct Tap<'a> {
    pub tenant: &'a str,
    /// The channel it came on.
    pub channel: Channel,
    /// The customer's identity key there.
    pub from_key: &'a str,
    /// The provider's id of the tap.
    pub provider_id: &'a str,
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
    /// The rules of the settings, scheduling through `callbacks`.
    pub fn new(
        buttons: Vec<CallMeButton>,
        missed: Vec<MissedCallCallback>,
        callbacks: CallbackApi,
    ) -> CustomerCallbacks {
        CustomerCallbacks {
            buttons: Arc::new(buttons),
            missed: Arc::new(missed),
            callbacks,
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
    pub async fn on_reply(
        &self,
        store: &dyn Store,
        tap: &Tap<'_>,
        received: &Received,
    ) -> Result<(), StatusCode> {
        let Some(button) = self.button(tap.tenant, tap.content) else {
            return Ok(());
        };
        // A redelivery: the contact is the one the first delivery found.
        let contact = match received {
            Received::New(message) => message.contact_id,
            Received::Duplicate => {
                let keys = [(tap.channel, tap.from_key.to_owned())];
                match find(store, tap.tenant, &keys).await? {
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
        store: &dyn Store,
        tenant: &str,
        call_id: &str,
        from: &Address,
    ) -> Result<(), StatusCode> {
        let Some(rule) = self.missed.iter().find(|r| r.tenant == tenant) else {
            return Ok(());
        };
        // The call was recorded as the caller's message: their contact has
        // the number (or a WhatsApp identity with it).
        let Some(contact) = find(store, tenant, &from.keys()).await? else {
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
    ) -> Result<(), StatusCode> {
        let request = pb::CreateCallbackRequest {
            callback: Some(pb::Callback {
                contact: format!("contacts/{contact}"),
                agent_address: asked.agent_address.to_owned(),
                greeting: asked.greeting.to_owned(),
                reason: asked.reason,
                correlation_ref: asked.correlation_ref,
                ..pb::Callback::default()
            }),
            idempotency_key: asked.key,
        };
        match self.callbacks.create(&Arc::from(tenant), &request).await {
            Ok(callback) => {
                tracing::info!(callback = %callback.id, %contact, "the customer asked; callback scheduled");
                Ok(())
            }
            Err(ApiError::Store(e)) if e.is_transient() => Err(StatusCode::SERVICE_UNAVAILABLE),
            Err(e) => {
                // Nothing a redelivery would change (the contact cannot be
                // called): what the customer did stays recorded.
                tracing::warn!(error = %e, %contact, "the customer asked, but no callback can be scheduled");
                Ok(())
            }
        }
    }
}

/// The contact owning any of `keys`; an error answers "deliver again".
async fn find(
    store: &dyn Store,
    tenant: &str,
    keys: &[(Channel, String)],
) -> Result<Option<Uuid>, StatusCode> {
    match store.find_by_keys(tenant, keys).await {
        Ok(found) => Ok(found.map(|c| c.id)),
        Err(e) if e.is_transient() => Err(StatusCode::SERVICE_UNAVAILABLE),
        Err(e) => {
            tracing::error!(error = %omniroute_store::error_chain(&e), "finding the customer who asked for a callback failed");
            Err(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}
