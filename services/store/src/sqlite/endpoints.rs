//! Outbound webhook endpoints on SQLite (see
//! `migrations/sqlite/0012_endpoints.sql`). Every statement names the
//! tenant and reads by the primary key (tenant, id). A change runs on the
//! one writer: it reads the row, applies the domain's patch or rotation,
//! and writes the row back.

use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::deliveries::{forget, reset, start};
use super::{SqliteStore, db, from_json, json, uuid_col};
use crate::Result;
use crate::endpoints::*;
use crate::model::{from_micros, now, to_micros};
use crate::parts::EndpointStore;
use crate::refusals::{endpoint_not_found, patched};
use async_trait::async_trait;

/// The columns [`endpoint_row`] reads.
const COLUMNS: &str = "tenant, id, url, description, event_types, contact_id, disabled,
     disabled_reason, secret, previous_secret, previous_secret_expire_time, create_time,
     update_time, version";

/// Writes the whole row (insert or replace by primary key).
const WRITE: &str = "INSERT OR REPLACE INTO endpoints (tenant, id, url, description,
     event_types, contact_id, disabled, disabled_reason, secret, previous_secret,
     previous_secret_expire_time, create_time, update_time, version)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

const DELETE: &str = "DELETE FROM endpoints WHERE tenant = ?1 AND id = ?2";

fn get_sql() -> String {
    format!("SELECT {COLUMNS} FROM endpoints WHERE tenant = ?1 AND id = ?2")
}

fn list_sql() -> String {
    format!("SELECT {COLUMNS} FROM endpoints WHERE tenant = ?1 AND id > ?2 ORDER BY id LIMIT ?3")
}

fn endpoint_row(r: &Row<'_>) -> rusqlite::Result<Endpoint> {
    let codes: Vec<i16> = from_json(&r.get::<_, String>(4)?);
    Ok(Endpoint {
        tenant: r.get(0)?,
        id: uuid_col(r.get(1)?),
        url: r.get(2)?,
        description: r.get(3)?,
        event_types: event_types_from_codes(&codes),
        contact: r.get::<_, Option<String>>(5)?.map(uuid_col),
        disabled: r.get(6)?,
        disabled_reason: r.get(7)?,
        secret: SealedSecret(r.get(8)?),
        previous_secret: r.get::<_, Option<Vec<u8>>>(9)?.map(SealedSecret),
        previous_secret_expire_time: r.get::<_, Option<i64>>(10)?.map(from_micros),
        create_time: from_micros(r.get(11)?),
        update_time: from_micros(r.get(12)?),
        version: r.get(13)?,
    })
}

pub(super) fn endpoint_get(tx: &Connection, tenant: &str, id: Uuid) -> Result<Endpoint> {
    tx.prepare_cached(&get_sql())
        .map_err(db)?
        .query_row(params![tenant, id.to_string()], endpoint_row)
        .optional()
        .map_err(db)?
        .ok_or_else(|| endpoint_not_found(id))
}

pub(super) fn endpoint_write(tx: &Connection, e: &Endpoint) -> Result<()> {
    tx.prepare_cached(WRITE)
        .map_err(db)?
        .execute(params![
            e.tenant,
            e.id.to_string(),
            e.url,
            e.description,
            json(&event_type_codes(&e.event_types)),
            e.contact.map(|c| c.to_string()),
            e.disabled,
            e.disabled_reason,
            e.secret.0,
            e.previous_secret.as_ref().map(|s| &s.0),
            e.previous_secret_expire_time.map(to_micros),
            to_micros(e.create_time),
            to_micros(e.update_time),
            e.version,
        ])
        .map_err(db)?;
    Ok(())
}

impl SqliteStore {
    /// Reads an endpoint on the writer, changes it with `change` and
    /// writes it back; `enabled`: the change enables it (its deliveries
    /// due at once, their failures forgotten).
    async fn change_endpoint(
        &self,
        tenant: &str,
        id: Uuid,
        enabled: bool,
        change: impl FnOnce(Endpoint) -> Result<Endpoint> + Send + 'static,
    ) -> Result<Endpoint> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let endpoint = change(endpoint_get(tx, &tenant, id)?)?;
            endpoint_write(tx, &endpoint)?;
            if enabled {
                reset(tx, &tenant, id)?;
            }
            Ok(endpoint)
        })
        .await
    }
}

#[async_trait]
impl EndpointStore for SqliteStore {
    async fn create_endpoint(&self, tenant: &str, endpoint: NewEndpoint) -> Result<Endpoint> {
        let begin = endpoint.start;
        let e = endpoint.into_endpoint(tenant, now());
        self.tx(move |tx| {
            endpoint_write(tx, &e)?;
            start(tx, &e.tenant, e.id, begin)?;
            Ok(e)
        })
        .await
    }

    async fn get_endpoint(&self, tenant: &str, id: Uuid) -> Result<Endpoint> {
        let tenant = tenant.to_owned();
        self.read(move |tx| endpoint_get(tx, &tenant, id)).await
    }

    async fn list_endpoints(
        &self,
        tenant: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Endpoint>> {
        let tenant = tenant.to_owned();
        // Ids are lowercase hyphenated UUIDs: text order is id order.
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |tx| {
            let mut stmt = tx.prepare_cached(&list_sql()).map_err(db)?;
            let rows = stmt
                .query_map(params![tenant, after, limit], endpoint_row)
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn update_endpoint(
        &self,
        tenant: &str,
        id: Uuid,
        patch: EndpointPatch,
    ) -> Result<Endpoint> {
        let enabled = patch.disabled == Some(false);
        self.change_endpoint(tenant, id, enabled, move |e| patched(e, patch, now()))
            .await
    }

    async fn delete_endpoint(&self, tenant: &str, id: Uuid) -> Result<()> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let deleted = tx
                .prepare_cached(DELETE)
                .map_err(db)?
                .execute(params![tenant, id.to_string()])
                .map_err(db)?;
            if deleted == 0 {
                return Err(endpoint_not_found(id));
            }
            forget(tx, &tenant, id)
        })
        .await
    }

    async fn rotate_endpoint_secret(
        &self,
        tenant: &str,
        id: Uuid,
        rotation: SecretRotation,
    ) -> Result<Endpoint> {
        self.change_endpoint(tenant, id, false, move |e| Ok(rotation.apply(e, now())))
            .await
    }
}
