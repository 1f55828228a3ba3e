//! A customer's choice made through a link (an interactive message sent by
//! email carries one signed link per choice): recorded as their inbound
//! `ChoiceReply` to the message, on the contact it was sent to, once per
//! choice (as a tapped WhatsApp button is recorded), which ends the
//! fallbacks waiting on the customer.

use std::time::SystemTime;

use omniroute_channel::content::Choice;
use omniroute_channel::{Address, Channel, Content, PhoneRegion};
use omniroute_domain::{Message, NewInbound, Received};
use omniroute_store::StoreError;
use uuid::Uuid;

use super::{App, AppError};

/// What a verified choice link names: the tenant, our message, the choice,
/// and the email attempt that carried it (the address and its Message-ID).
#[derive(Debug, Clone)]
pub struct Picked {
    /// The tenant.
    pub tenant: String,
    /// Our interactive message.
    pub message: Message,
    /// The choice the link stands for.
    pub choice: Choice,
    address: String,
    provider_message_id: String,
}

impl App {
    /// The choice `choice` of message `message` (named by a verified link),
    /// when the message is an interactive one sent by email; `None` for
    /// anything else (an erased contact's message, say).
    pub async fn choice_of(
        &self,
        tenant: String,
        message: &str,
        choice: &str,
    ) -> Result<Option<Picked>, AppError> {
        let Ok(id) = Uuid::parse_str(message) else {
            return Ok(None);
        };
        let message = match self.store.get_message(&tenant, id).await {
            Ok(m) => m,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Content::Interactive(interactive) = &message.content else {
            return Ok(None);
        };
        let Some(choice) = interactive
            .choices
            .all()
            .into_iter()
            .find(|c| c.id == choice)
            .cloned()
        else {
            return Ok(None);
        };
        let Some(attempt) = message
            .attempts
            .iter()
            .rev()
            .find(|a| a.channel == Channel::Email && !a.provider_message_id.is_empty())
        else {
            return Ok(None);
        };
        Ok(Some(Picked {
            address: attempt.address.clone(),
            provider_message_id: attempt.provider_message_id.clone(),
            tenant,
            message,
            choice,
        }))
    }

    /// Records the customer's pick; `false` when the address the message
    /// went to is no mailbox any more (nothing recorded).
    pub async fn pick(&self, picked: &Picked) -> Result<bool, AppError> {
        let Ok(from) = Address::parse(Channel::Email, &picked.address, PhoneRegion::default())
        else {
            return Ok(false);
        };
        let line = self
            .adapters
            .get(&Channel::Email)
            .map(|a| a.sending_line(&picked.tenant).to_owned())
            .unwrap_or_default();
        let inbound = NewInbound {
            channel: Channel::Email,
            from,
            profile_name: None,
            provider_user_id: None,
            // One answer per choice of a message: a second click is the same.
            provider_message_id: format!("choice:{}:{}", picked.message.id, picked.choice.id),
            time: SystemTime::now(),
            content: Content::ChoiceReply(picked.choice.clone()),
            reply_to: Some(picked.provider_message_id.clone()),
            line,
            opens_window: None,
            also_opens: None,
            automatic: false,
            media_bytes: None,
        };
        if let Received::New(m) = self.store.record_inbound(&picked.tenant, inbound).await? {
            tracing::info!(message_id = %picked.message.id, reply = %m.id, "choice picked by email link");
        }
        Ok(true)
    }
}
