//! Preferences and the consent ledger on SQLite (reads in `contacts.rs`).

use async_trait::async_trait;
use rusqlite::params;
use uuid::Uuid;

use super::contacts::{read_consents, read_preferences, resolve, resolve_active};
use super::{SqliteStore, db, json};
use crate::Result;
use crate::model::*;
use crate::parts::PreferenceStore;

#[async_trait]
impl PreferenceStore for SqliteStore {
    async fn get_preferences(&self, tenant: &str, id: Uuid) -> Result<Preferences> {
        let tenant = tenant.to_owned();
        self.read(move |tx| {
            let (id, _) = resolve(tx, &tenant, id)?;
            read_preferences(tx, &tenant, id)
        })
        .await
    }

    async fn update_preferences(
        &self,
        tenant: &str,
        id: Uuid,
        patch: PreferencesPatch,
    ) -> Result<Preferences> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let id = resolve_active(tx, &tenant, id)?;
            let current = read_preferences(tx, &tenant, id)?;
            let mut channels = current.channels;
            let (time_zone, locale) = patch.apply(&mut channels);
            let now = to_micros(now());
            tx.execute(
                "UPDATE contacts SET preferences = ?3, time_zone = ?4, locale = ?5,
                        preferences_update_time = ?6, update_time = ?6
                 WHERE tenant = ?1 AND id = ?2",
                params![
                    tenant,
                    id.to_string(),
                    json(&channels),
                    time_zone.unwrap_or(current.time_zone),
                    locale.unwrap_or(current.locale),
                    now
                ],
            )
            .map_err(db)?;
            read_preferences(tx, &tenant, id)
        })
        .await
    }

    async fn record_consent(
        &self,
        tenant: &str,
        id: Uuid,
        consent: NewConsent,
    ) -> Result<ConsentRecord> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let id = resolve_active(tx, &tenant, id)?;
            let record = consent.into_record(id, now());
            tx.prepare_cached(
                "INSERT INTO consent_records (tenant, id, contact_id, channel, category, action,
                        source, legal_basis, evidence, record_time, create_time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .map_err(db)?
            .execute(params![
                tenant,
                record.id.to_string(),
                id.to_string(),
                record.channel.as_str(),
                record.category.as_str(),
                if record.action == ConsentAction::Grant {
                    1
                } else {
                    2
                },
                record.source,
                record.legal_basis.code(),
                record.evidence,
                to_micros(record.record_time),
                to_micros(record.create_time)
            ])
            .map_err(db)?;
            Ok(record)
        })
        .await
    }

    async fn list_consents(
        &self,
        tenant: &str,
        id: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ConsentRecord>> {
        let tenant = tenant.to_owned();
        self.read(move |tx| {
            let (id, _) = resolve(tx, &tenant, id)?;
            read_consents(tx, &tenant, id, after, limit)
        })
        .await
    }
}
