//! Outbound webhook endpoints on PostgreSQL (see
//! `migrations/postgres/0014_endpoints.sql`). Every statement names the
//! tenant and reads by the primary key (tenant, id). A change reads the
//! row FOR UPDATE, applies the domain's patch or rotation, and writes the
//! row back in the same transaction. An endpoint's delivery cursor is
//! written and deleted with it (`deliveries.rs`).

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::deliveries::{FORGET, RESET, START};
use super::{PgStore, db};
use crate::Result;
use crate::endpoints::*;
use crate::model::now;
use crate::parts::EndpointStore;
use crate::refusals::{endpoint_not_found, patched};
use async_trait::async_trait;

/// The columns [`endpoint_from_row`] reads.
pub(super) const COLUMNS: &str = "tenant, id, url, description, event_types, contact_id, disabled,
     disabled_reason, secret, previous_secret, previous_secret_expire_time, create_time,
     update_time, version";

const INSERT: &str = "INSERT INTO endpoints (tenant, id, url, description, event_types,
     contact_id, disabled, disabled_reason, secret, previous_secret,
     previous_secret_expire_time, create_time, update_time, version)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// Takes the same parameters as [`INSERT`] ([`write`]); `create_time` is
/// written back as it was read.
const WRITE: &str = "UPDATE endpoints SET url = $3, description = $4, event_types = $5,
     contact_id = $6, disabled = $7, disabled_reason = $8, secret = $9, previous_secret = $10,
     previous_secret_expire_time = $11, create_time = $12, update_time = $13, version = $14
     WHERE tenant = $1 AND id = $2";

const DELETE: &str = "DELETE FROM endpoints WHERE tenant = $1 AND id = $2";

pub(super) fn get_sql(lock: bool) -> String {
    let lock = if lock { "FOR UPDATE" } else { "" };
    format!("SELECT {COLUMNS} FROM endpoints WHERE tenant = $1 AND id = $2 {lock}")
}

fn list_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM endpoints
         WHERE tenant = $1 AND id > COALESCE($2::uuid, '00000000-0000-0000-0000-000000000000')
         ORDER BY id LIMIT $3"
    )
}

pub(super) fn endpoint_from_row(r: &Row) -> Endpoint {
    let codes: Vec<i16> = r.get(4);
    Endpoint {
        tenant: r.get(0),
        id: r.get(1),
        url: r.get(2),
        description: r.get(3),
        event_types: event_types_from_codes(&codes),
        contact: r.get(5),
        disabled: r.get(6),
        disabled_reason: r.get(7),
        secret: SealedSecret(r.get(8)),
        previous_secret: r.get::<_, Option<Vec<u8>>>(9).map(SealedSecret),
        previous_secret_expire_time: r.get(10),
        create_time: r.get(11),
        update_time: r.get(12),
        version: r.get(13),
    }
}

/// Writes the whole endpoint with `statement` ([`INSERT`] or [`WRITE`]).
async fn write(c: &impl GenericClient, statement: &str, e: &Endpoint) -> Result<()> {
    let stmt = c.prepare_cached(statement).await.map_err(db)?;
    c.execute(
        &stmt,
        &[
            &e.tenant,
            &e.id,
            &e.url,
            &e.description,
            &event_type_codes(&e.event_types),
            &e.contact,
            &e.disabled,
            &e.disabled_reason,
            &e.secret.0,
            &e.previous_secret.as_ref().map(|s| &s.0),
            &e.previous_secret_expire_time,
            &e.create_time,
            &e.update_time,
            &e.version,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Writes back an endpoint read before.
pub(super) async fn write_endpoint(c: &impl GenericClient, e: &Endpoint) -> Result<()> {
    write(c, WRITE, e).await
}

impl PgStore {
    /// Reads an endpoint in a transaction, locked, changes it with
    /// `change` and writes it back; `enabled`: the change enables it, so
    /// its deliveries are due at once, their failures forgotten.
    async fn change_endpoint(
        &self,
        tenant: &str,
        id: Uuid,
        enabled: bool,
        change: impl FnOnce(Endpoint) -> Result<Endpoint> + Send,
    ) -> Result<Endpoint> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let stmt = tx.prepare_cached(&get_sql(true)).await.map_err(db)?;
        let row = tx.query_opt(&stmt, &[&tenant, &id]).await.map_err(db)?;
        let endpoint = row
            .as_ref()
            .map(endpoint_from_row)
            .ok_or_else(|| endpoint_not_found(id))?;
        let e = change(endpoint)?;
        write(&tx, WRITE, &e).await?;
        if enabled {
            let stmt = tx.prepare_cached(RESET).await.map_err(db)?;
            tx.execute(&stmt, &[&tenant, &id]).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(e)
    }
}

#[async_trait]
impl EndpointStore for PgStore {
    async fn create_endpoint(&self, tenant: &str, endpoint: NewEndpoint) -> Result<Endpoint> {
        let start = endpoint.start;
        let e = endpoint.into_endpoint(tenant, now());
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        write(&tx, INSERT, &e).await?;
        let stmt = tx.prepare_cached(START).await.map_err(db)?;
        tx.execute(&stmt, &[&tenant, &e.id, &start.xid.to_string(), &start.seq])
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(e)
    }

    async fn get_endpoint(&self, tenant: &str, id: Uuid) -> Result<Endpoint> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&get_sql(false)).await.map_err(db)?;
        let row = client.query_opt(&stmt, &[&tenant, &id]).await.map_err(db)?;
        row.as_ref()
            .map(endpoint_from_row)
            .ok_or_else(|| endpoint_not_found(id))
    }

    async fn list_endpoints(
        &self,
        tenant: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Endpoint>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&list_sql()).await.map_err(db)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&stmt, &[&tenant, &after, &limit])
            .await
            .map_err(db)?;
        Ok(rows.iter().map(endpoint_from_row).collect())
    }

    async fn update_endpoint(
        &self,
        tenant: &str,
        id: Uuid,
        patch: EndpointPatch,
    ) -> Result<Endpoint> {
        let enabled = patch.disabled == Some(false);
        self.change_endpoint(tenant, id, enabled, |e| patched(e, patch, now()))
            .await
    }

    async fn delete_endpoint(&self, tenant: &str, id: Uuid) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let stmt = tx.prepare_cached(DELETE).await.map_err(db)?;
        let deleted = tx.execute(&stmt, &[&tenant, &id]).await.map_err(db)?;
        if deleted == 0 {
            return Err(endpoint_not_found(id));
        }
        for statement in FORGET {
            let stmt = tx.prepare_cached(statement).await.map_err(db)?;
            tx.execute(&stmt, &[&tenant, &id]).await.map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(())
    }

    async fn rotate_endpoint_secret(
        &self,
        tenant: &str,
        id: Uuid,
        rotation: SecretRotation,
    ) -> Result<Endpoint> {
        self.change_endpoint(tenant, id, false, |e| Ok(rotation.apply(e, now())))
            .await
    }
}
