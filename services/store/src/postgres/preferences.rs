//! Preferences and the consent ledger on PostgreSQL: each write locks the
//! contact row (ordering it against a concurrent merge or erasure), reads
//! go through `contacts.rs`.

use async_trait::async_trait;
use uuid::Uuid;

use super::contacts::{lock_active, read_consents, read_preferences, resolve};
use super::{PgStore, db};
use crate::model::*;
use crate::{PreferenceStore, Result, StoreError};

#[async_trait]
impl PreferenceStore for PgStore {
    async fn get_preferences(&self, tenant: &str, id: Uuid) -> Result<Preferences> {
        let client = self.client().await?;
        let (id, _) = resolve(&client, tenant, id).await?;
        read_preferences(&client, tenant, id).await
    }

    async fn update_preferences(
        &self,
        tenant: &str,
        id: Uuid,
        patch: PreferencesPatch,
    ) -> Result<Preferences> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let id = lock_active(&tx, tenant, id).await?;
        let current = read_preferences(&tx, tenant, id).await?;
        let mut channels = current.channels;
        let (time_zone, locale) = patch.apply(&mut channels);
        let channels = serde_json::to_value(&channels).map_err(StoreError::backend)?;
        tx.execute(
            "UPDATE contacts SET preferences = $3, time_zone = $4, locale = $5,
                    preferences_update_time = $6, update_time = $6
             WHERE tenant = $1 AND id = $2",
            &[
                &tenant,
                &id,
                &channels,
                &time_zone.unwrap_or(current.time_zone),
                &locale.unwrap_or(current.locale),
                &now(),
            ],
        )
        .await
        .map_err(db)?;
        let preferences = read_preferences(&tx, tenant, id).await?;
        tx.commit().await.map_err(db)?;
        Ok(preferences)
    }

    async fn record_consent(
        &self,
        tenant: &str,
        id: Uuid,
        consent: NewConsent,
    ) -> Result<ConsentRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        // The lock orders the append against a concurrent merge or erasure.
        let id = lock_active(&tx, tenant, id).await?;
        let record = consent.into_record(id, now());
        let stmt = tx
            .prepare_cached(
                "INSERT INTO consent_records (tenant, id, contact_id, channel, category, action,
                        source, legal_basis, evidence, record_time, create_time)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .await
            .map_err(db)?;
        let action: i16 = if record.action == ConsentAction::Grant {
            1
        } else {
            2
        };
        tx.execute(
            &stmt,
            &[
                &tenant,
                &record.id,
                &id,
                &record.channel.as_str(),
                &record.category.as_str(),
                &action,
                &record.source,
                &record.legal_basis.code(),
                &record.evidence,
                &record.record_time,
                &record.create_time,
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(record)
    }

    async fn list_consents(
        &self,
        tenant: &str,
        id: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ConsentRecord>> {
        let client = self.client().await?;
        let (id, _) = resolve(&client, tenant, id).await?;
        read_consents(&client, tenant, id, after, limit).await
    }
}
