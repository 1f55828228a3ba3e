//! Consent changes the customer makes through a channel rather than
//! through the API: an unsubscribe (a one-click POST, an unsubscribe mail)
//! becomes a revocation in the consent ledger, which routing reads on the
//! next send.

use omniroute_channel::{Category, Channel};
use omniroute_domain::{ConsentAction, LegalBasis, NewConsent};
use omniroute_store::StoreError;
use omniroute_store::prelude::*;
use uuid::Uuid;

use super::{App, AppError};

impl App {
    /// Records that the contact of our message `message_id` revokes
    /// `category` on `channel` (`source` and `evidence` for the ledger;
    /// the evidence is bounded like anything a customer sends); false when
    /// there is no such message.
    pub async fn opt_out(
        &self,
        tenant: &str,
        message_id: Uuid,
        channel: Channel,
        category: Category,
        source: &str,
        mut evidence: String,
    ) -> Result<bool, AppError> {
        omniroute_channel::bounds::shorten(&mut evidence, omniroute_channel::bounds::FIELD_BYTES);
        Ok(opt_out(
            self.store.as_ref(),
            tenant,
            message_id,
            channel,
            category,
            source,
            evidence,
        )
        .await?)
    }
}

/// Records that the contact of our message `message_id` revokes
/// `category` on `channel` (`source` and `evidence` for the ledger); false
/// when there is no such message. An erased contact has nothing left to
/// unsubscribe: that is done too.
async fn opt_out(
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
        Err(StoreError::NotFound { .. }) => return Ok(false),
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
        Err(StoreError::Erased(_)) => Ok(true),
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
        Err(StoreError::NotFound { .. } | StoreError::Erased(_)) => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    Ok(preferences
        .consents
        .iter()
        .any(|c| c.channel == channel && c.category == category && !c.granted))
}
