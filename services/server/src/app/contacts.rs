//! Use cases on contacts that reach beyond the store: erasure (GDPR Art.
//! 17) and merging, after which nothing of the contacts that went may stay
//! in this replica's memory (the contacts cache sends are routed on).
//! Each is one transaction in the store.

use omniroute_domain::Contact;
use uuid::Uuid;

use super::{App, AppError};

impl App {
    /// Erases contact `id`: its personal data goes, its pending messages
    /// are canceled; the tombstone.
    pub async fn erase_contact(&self, tenant: &str, id: Uuid) -> Result<Contact, AppError> {
        let erased = self.store.erase_contact(tenant, id).await?;
        self.recipients.forget_contact(tenant, id);
        self.recipients.forget_contact(tenant, erased.id);
        tracing::info!(contact = %erased.id, "contact erased");
        Ok(erased)
    }

    /// Merges `sources` into `survivor`; the survivor.
    pub async fn merge_contacts(
        &self,
        tenant: &str,
        survivor: Uuid,
        sources: &[Uuid],
    ) -> Result<Contact, AppError> {
        let merged = self.store.merge_contacts(tenant, survivor, sources).await?;
        for id in sources.iter().chain([&survivor, &merged.id]) {
            self.recipients.forget_contact(tenant, *id);
        }
        tracing::info!(contact = %merged.id, merged = sources.len(), "contacts merged");
        Ok(merged)
    }
}
