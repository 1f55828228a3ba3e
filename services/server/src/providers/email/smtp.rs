//! Inbound mail by SMTP (`email.smtp_listen`): the listener a relay
//! forwards customers' mail to. A mail goes through the same ingestion as
//! one posted to `/webhooks/email` (without the signature: the relay in
//! front is trusted by where the listener listens), and the SMTP answer
//! follows the outcome: 250 once recorded, 451 while the store cannot take
//! it (the relay delivers again), 554 for something that is not an email.

use std::sync::Arc;

use omniroute_channel::{Adapter, Channel};
use omniroute_email::listener::{Inbox, Refusal};

use crate::app::inbound::{Ingress, Rejected};

/// Hands mail from the SMTP listener to the ingestion.
#[derive(Debug)]
pub struct MailInbox {
    ingress: Ingress,
    adapter: Arc<dyn Adapter>,
}

impl MailInbox {
    /// The inbox over `ingress`, when email is configured.
    pub fn new(ingress: Ingress) -> Option<MailInbox> {
        let adapter = ingress.adapter_of(Channel::Email)?;
        Some(MailInbox { ingress, adapter })
    }
}

#[tonic::async_trait]
impl Inbox for MailInbox {
    async fn deliver(&self, raw: Vec<u8>) -> Result<(), Refusal> {
        match self
            .ingress
            .ingest(Channel::Email, &self.adapter, &raw)
            .await
        {
            Ok(()) => Ok(()),
            Err(Rejected::Malformed(e)) => {
                tracing::warn!(error = %e, "malformed mail refused");
                Err(Refusal::Malformed(e.message().to_owned()))
            }
            Err(Rejected::NotRecorded(_)) => Err(Refusal::Unavailable(
                "the mail could not be recorded now; deliver it again later".into(),
            )),
        }
    }
}
