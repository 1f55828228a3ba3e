//! "Call me" buttons: a customer who taps a reply button the tenant mapped
//! in the settings (`routing.call_me`) asks to be called back. The tap is
//! recorded like any reply; then a callback is scheduled for the contact
//! who tapped, through CallbackService's own path (so it keeps business
//! hours, quiet hours and the retry plan), once per tap: the tap's provider
//! id is the callback's idempotency key, so a redelivered webhook
//! schedules nothing more.

use std::sync::Arc;

use axum::http::StatusCode;
use omniroute_channel::{Channel, Content};
use omniroute_proto::v1 as pb;
use omniroute_store::{Received, Store};
use uuid::Uuid;

use crate::api::{ApiError, CallbackApi};
use crate::settings::CallMeButton;

/// The mapped buttons and the service that schedules their callbacks.
#[derive(Debug, Clone)]
pub struct CallMe {
    buttons: Arc<Vec<CallMeButton>>,
    callbacks: CallbackApi,
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

impl CallMe {
    /// The buttons of the settings, scheduling through `callbacks`.
    pub fn new(buttons: Vec<CallMeButton>, callbacks: CallbackApi) -> CallMe {
        CallMe {
            buttons: Arc::new(buttons),
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
        let contact: Uuid = match received {
            Received::New(message) => message.contact_id,
            Received::Duplicate => {
                match store
                    .find_by_keys(tap.tenant, &[(tap.channel, tap.from_key.to_owned())])
                    .await
                {
                    Ok(Some(contact)) => contact.id,
                    Ok(None) => return Ok(()),
                    Err(e) if e.is_transient() => return Err(StatusCode::SERVICE_UNAVAILABLE),
                    Err(e) => {
                        tracing::error!(error = %omniroute_store::error_chain(&e), "finding who tapped call me failed");
                        return Err(StatusCode::INTERNAL_SERVER_ERROR);
                    }
                }
            }
        };
        let request = pb::CreateCallbackRequest {
            callback: Some(pb::Callback {
                contact: format!("contacts/{contact}"),
                agent_address: button.agent_address.clone(),
                greeting: button.greeting.clone(),
                reason: format!("the customer tapped \"{}\"", button.button_id),
                correlation_ref: format!("call-me:{}", button.button_id),
                ..pb::Callback::default()
            }),
            idempotency_key: format!("call-me:{}:{}", tap.channel, tap.provider_id),
        };
        match self
            .callbacks
            .create(&Arc::from(tap.tenant), &request)
            .await
        {
            Ok(callback) => {
                tracing::info!(callback = %callback.id, %contact, "call me tapped; callback scheduled");
                Ok(())
            }
            Err(ApiError::Store(e)) if e.is_transient() => Err(StatusCode::SERVICE_UNAVAILABLE),
            Err(e) => {
                // Nothing a redelivery would change (the contact cannot be
                // called): the tap stays recorded.
                tracing::warn!(error = %e, %contact, "call me tapped, but no callback can be scheduled");
                Ok(())
            }
        }
    }
}
