//! Tenants and API keys on PostgreSQL (see `migrations/postgres/0011_auth.sql`).
//!
//! Every statement is one round trip by a key: a tenant by its primary key,
//! a key by its primary key or, on the authentication path, by the unique
//! `api_keys_prefix` index ([`hot_statements`] lists that lookup for
//! `tests/plans.rs`). A tenant's keys are read from
//! `api_keys_tenant_created` in list order; a listing of every tenant's
//! keys sorts them (an operator's call on a small table).

use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::events::HotStatement;
use super::{PgStore, db};
use crate::Result;
use crate::StoreError;
use crate::auth::*;
use crate::model::now;
use crate::parts::TenantStore;
use crate::refusals::*;
use async_trait::async_trait;

/// The columns [`tenant_from_row`] reads.
const TENANT_COLUMNS: &str = "id, display_name, create_time";

/// The columns [`key_from_row`] reads.
const KEY_COLUMNS: &str =
    "id, tenant, name, prefix, secret_hash, scopes, create_time, expire_time, revoke_time";

/// Creates a tenant unless the id is taken (then no row).
const CREATE_TENANT: &str = "INSERT INTO tenants (id, display_name, create_time)
     VALUES ($1, $2, $3)
     ON CONFLICT (id) DO NOTHING";

/// Stores a key if its tenant exists (else no row); a taken prefix fails
/// on `api_keys_prefix`.
const CREATE_KEY: &str = "INSERT INTO api_keys
            (id, tenant, name, prefix, secret_hash, scopes, create_time, expire_time)
     SELECT $1::uuid, id, $3::text, $4::text, $5::bytea, $6::text[], $7::timestamptz,
            $8::timestamptz
     FROM tenants WHERE id = $2";

/// The unique index that holds prefixes.
const PREFIX_INDEX: &str = "api_keys_prefix";

/// A tenant by primary key.
fn get_tenant_sql() -> String {
    format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1")
}

/// Every tenant, by primary key order.
fn list_tenants_sql() -> String {
    format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id")
}

/// The key with prefix $1, by the unique index.
fn find_key_sql() -> String {
    format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE prefix = $1")
}

/// The keys of tenant $1 (with `tenant`), or of every tenant, in list
/// order.
fn list_keys_sql(tenant: bool) -> String {
    let tenant = if tenant { "WHERE tenant = $1" } else { "" };
    format!("SELECT {KEY_COLUMNS} FROM api_keys {tenant} ORDER BY create_time, id")
}

/// Revokes key $1 (of tenant $2 unless NULL) at $3 unless revoked before,
/// by primary key.
fn revoke_sql() -> String {
    format!(
        "UPDATE api_keys SET revoke_time = COALESCE(revoke_time, $3)
         WHERE id = $1 AND ($2::text IS NULL OR tenant = $2)
         RETURNING {KEY_COLUMNS}"
    )
}

/// The authentication path's statements (see the module documentation),
/// with sample arguments.
pub(super) fn hot_statements() -> Vec<HotStatement> {
    vec![HotStatement {
        name: "find an api key by prefix",
        sql: find_key_sql(),
        types: "text",
        args: "'key-100000'",
        options: "",
    }]
}

fn tenant_from_row(r: &Row) -> Tenant {
    Tenant {
        id: r.get(0),
        display_name: r.get(1),
        create_time: r.get(2),
    }
}

fn key_from_row(r: &Row) -> ApiKey {
    ApiKey {
        id: r.get(0),
        tenant: r.get(1),
        name: r.get(2),
        prefix: r.get(3),
        secret_hash: r.get(4),
        scopes: r.get(5),
        create_time: r.get(6),
        expire_time: r.get(7),
        revoke_time: r.get(8),
    }
}

/// A failed insert of `key`: its prefix taken is
/// [`StoreError::ApiKeyPrefixTaken`].
fn key_conflict(e: tokio_postgres::Error, key: &ApiKey) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
        && e.as_db_error().and_then(|d| d.constraint()) == Some(PREFIX_INDEX)
    {
        return StoreError::ApiKeyPrefixTaken(key.prefix.clone());
    }
    db(e)
}

#[async_trait]
impl TenantStore for PgStore {
    /// [`crate::TenantStore::create_tenant`]: one insert.
    async fn create_tenant(&self, id: &str, display_name: &str) -> Result<Tenant> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(CREATE_TENANT).await.map_err(db)?;
        let tenant = Tenant {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            create_time: now(),
        };
        let written = client
            .execute(&stmt, &[&id, &display_name, &tenant.create_time])
            .await
            .map_err(db)?;
        if written == 0 {
            return Err(StoreError::TenantExists(id.to_owned()));
        }
        Ok(tenant)
    }

    /// [`crate::TenantStore::list_tenants`].
    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&list_tenants_sql())
            .await
            .map_err(db)?;
        let rows = client.query(&stmt, &[]).await.map_err(db)?;
        Ok(rows.iter().map(tenant_from_row).collect())
    }

    /// [`crate::TenantStore::get_tenant`].
    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&get_tenant_sql()).await.map_err(db)?;
        let row = client.query_opt(&stmt, &[&id]).await.map_err(db)?;
        Ok(row.as_ref().map(tenant_from_row))
    }

    /// [`crate::TenantStore::create_api_key`]: one insert, of nothing when the
    /// tenant does not exist.
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(CREATE_KEY).await.map_err(db)?;
        let key = key.into_key(now());
        let written = client
            .execute(
                &stmt,
                &[
                    &key.id,
                    &key.tenant,
                    &key.name,
                    &key.prefix,
                    &key.secret_hash,
                    &key.scopes,
                    &key.create_time,
                    &key.expire_time,
                ],
            )
            .await
            .map_err(|e| key_conflict(e, &key))?;
        if written == 0 {
            return Err(tenant_not_found(&key.tenant));
        }
        Ok(key)
    }

    /// [`crate::TenantStore::find_api_key`]: by the unique prefix index.
    async fn find_api_key(&self, prefix: &str) -> Result<Option<ApiKey>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&find_key_sql()).await.map_err(db)?;
        let row = client.query_opt(&stmt, &[&prefix]).await.map_err(db)?;
        Ok(row.as_ref().map(key_from_row))
    }

    /// [`crate::TenantStore::list_api_keys`].
    async fn list_api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&list_keys_sql(tenant.is_some()))
            .await
            .map_err(db)?;
        let rows = match tenant {
            Some(tenant) => client.query(&stmt, &[&tenant]).await,
            None => client.query(&stmt, &[]).await,
        }
        .map_err(db)?;
        Ok(rows.iter().map(key_from_row).collect())
    }

    /// [`crate::TenantStore::revoke_api_key`]: one update by primary key.
    async fn revoke_api_key(&self, tenant: Option<&str>, id: Uuid) -> Result<ApiKey> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&revoke_sql()).await.map_err(db)?;
        let row = client
            .query_opt(&stmt, &[&id, &tenant, &now()])
            .await
            .map_err(db)?;
        revoked(row.as_ref().map(key_from_row), id)
    }
}
