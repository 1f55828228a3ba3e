//! Tenants and API keys on SQLite (see `migrations/sqlite/0009_auth.sql`).
//! [`TenantStore`] for [`SqliteStore`] runs them on the writer or a reader.
//!
//! Every statement reads by a key: a tenant by its primary key, a key by
//! its primary key or, on the authentication path, by the unique
//! `api_keys_prefix` index; a tenant's keys are read from
//! `api_keys_tenant_created` in list order. Writes run on the one writer,
//! so a new key's tenant and prefix are checked before the insert, as
//! contacts check their external reference.

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::SqliteStore;
use super::{db, from_json, json, uuid_col};
use crate::auth::*;
use crate::model::now;
use crate::model::{from_micros, to_micros};
use crate::parts::TenantStore;
use crate::refusals::*;
use crate::{Result, StoreError};
use async_trait::async_trait;

/// The columns [`tenant_row`] reads.
const TENANT_COLUMNS: &str = "id, display_name, create_time";

/// The columns [`key_row`] reads.
const KEY_COLUMNS: &str =
    "id, tenant, name, prefix, secret_hash, scopes, create_time, expire_time, revoke_time";

/// Creates a tenant unless the id is taken (then no row).
const CREATE_TENANT: &str = "INSERT INTO tenants (id, display_name, create_time)
     VALUES (?1, ?2, ?3)
     ON CONFLICT (id) DO NOTHING";

/// Stores a key.
const CREATE_KEY: &str = "INSERT INTO api_keys
            (id, tenant, name, prefix, secret_hash, scopes, create_time, expire_time)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// Whether tenant ?1 exists.
const TENANT_EXISTS: &str = "SELECT 1 FROM tenants WHERE id = ?1";

/// Whether a key has prefix ?1.
const PREFIX_TAKEN: &str = "SELECT 1 FROM api_keys WHERE prefix = ?1";

/// A tenant by primary key.
fn get_tenant_sql() -> String {
    format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = ?1")
}

/// Every tenant, in primary key order.
fn list_tenants_sql() -> String {
    format!("SELECT {TENANT_COLUMNS} FROM tenants ORDER BY id")
}

/// The key with prefix ?1, by the unique index.
fn find_key_sql() -> String {
    format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE prefix = ?1")
}

/// The keys of tenant ?1 (with `tenant`), or of every tenant, in list
/// order.
fn list_keys_sql(tenant: bool) -> String {
    let tenant = if tenant { "WHERE tenant = ?1" } else { "" };
    format!("SELECT {KEY_COLUMNS} FROM api_keys {tenant} ORDER BY create_time, id")
}

/// Revokes key ?1 (of tenant ?2 unless NULL) at ?3 unless revoked before,
/// by primary key.
fn revoke_sql() -> String {
    format!(
        "UPDATE api_keys SET revoke_time = COALESCE(revoke_time, ?3)
         WHERE id = ?1 AND (?2 IS NULL OR tenant = ?2)
         RETURNING {KEY_COLUMNS}"
    )
}

fn tenant_row(r: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        display_name: r.get(1)?,
        create_time: from_micros(r.get(2)?),
    })
}

fn key_row(r: &Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: uuid_col(r.get(0)?),
        tenant: r.get(1)?,
        name: r.get(2)?,
        prefix: r.get(3)?,
        secret_hash: r.get(4)?,
        scopes: from_json(&r.get::<_, String>(5)?),
        create_time: from_micros(r.get(6)?),
        expire_time: r.get::<_, Option<i64>>(7)?.map(from_micros),
        revoke_time: r.get::<_, Option<i64>>(8)?.map(from_micros),
    })
}

/// Whether `sql` with the one parameter `value` finds a row.
fn exists(tx: &Connection, sql: &str, value: &str) -> Result<bool> {
    tx.prepare_cached(sql)
        .map_err(db)?
        .query_row(params![value], |_| Ok(()))
        .optional()
        .map_err(db)
        .map(|found| found.is_some())
}

/// [`crate::TenantStore::create_tenant`]: one insert.
pub(super) fn create_tenant(
    tx: &Connection,
    id: &str,
    display_name: &str,
    now: SystemTime,
) -> Result<Tenant> {
    let tenant = Tenant {
        id: id.to_owned(),
        display_name: display_name.to_owned(),
        create_time: now,
    };
    let written = tx
        .prepare_cached(CREATE_TENANT)
        .map_err(db)?
        .execute(params![id, display_name, to_micros(now)])
        .map_err(db)?;
    if written == 0 {
        return Err(StoreError::TenantExists(id.to_owned()));
    }
    Ok(tenant)
}

/// [`crate::TenantStore::list_tenants`].
pub(super) fn list_tenants(tx: &Connection) -> Result<Vec<Tenant>> {
    let mut stmt = tx.prepare_cached(&list_tenants_sql()).map_err(db)?;
    let rows = stmt.query_map([], tenant_row).map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

/// [`crate::TenantStore::get_tenant`].
pub(super) fn get_tenant(tx: &Connection, id: &str) -> Result<Option<Tenant>> {
    tx.prepare_cached(&get_tenant_sql())
        .map_err(db)?
        .query_row(params![id], tenant_row)
        .optional()
        .map_err(db)
}

/// [`crate::TenantStore::create_api_key`]: the tenant and the prefix checked,
/// then one insert.
pub(super) fn create_key(tx: &Connection, key: NewApiKey, now: SystemTime) -> Result<ApiKey> {
    let key = key.into_key(now);
    if !exists(tx, TENANT_EXISTS, &key.tenant)? {
        return Err(tenant_not_found(&key.tenant));
    }
    if exists(tx, PREFIX_TAKEN, &key.prefix)? {
        return Err(StoreError::ApiKeyPrefixTaken(key.prefix));
    }
    tx.prepare_cached(CREATE_KEY)
        .map_err(db)?
        .execute(params![
            key.id.to_string(),
            key.tenant,
            key.name,
            key.prefix,
            key.secret_hash,
            json(&key.scopes),
            to_micros(key.create_time),
            key.expire_time.map(to_micros)
        ])
        .map_err(db)?;
    Ok(key)
}

/// [`crate::TenantStore::find_api_key`]: by the unique prefix index.
pub(super) fn find_key(tx: &Connection, prefix: &str) -> Result<Option<ApiKey>> {
    tx.prepare_cached(&find_key_sql())
        .map_err(db)?
        .query_row(params![prefix], key_row)
        .optional()
        .map_err(db)
}

/// [`crate::TenantStore::list_api_keys`].
pub(super) fn list_keys(tx: &Connection, tenant: Option<&str>) -> Result<Vec<ApiKey>> {
    let mut stmt = tx
        .prepare_cached(&list_keys_sql(tenant.is_some()))
        .map_err(db)?;
    let rows = match tenant {
        Some(tenant) => stmt.query_map(params![tenant], key_row),
        None => stmt.query_map([], key_row),
    }
    .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

/// [`crate::TenantStore::revoke_api_key`]: one update by primary key.
pub(super) fn revoke_key(
    tx: &Connection,
    tenant: Option<&str>,
    id: Uuid,
    now: SystemTime,
) -> Result<ApiKey> {
    let found = tx
        .prepare_cached(&revoke_sql())
        .map_err(db)?
        .query_row(params![id.to_string(), tenant, to_micros(now)], key_row)
        .optional()
        .map_err(db)?;
    revoked(found, id)
}

#[async_trait]
impl TenantStore for SqliteStore {
    async fn create_tenant(&self, id: &str, display_name: &str) -> Result<Tenant> {
        let id = id.to_owned();
        let display_name = display_name.to_owned();
        // No event or job is written: nobody needs to look again.
        self.tx(move |tx| create_tenant(tx, &id, &display_name, now()))
            .await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.read(list_tenants).await
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let id = id.to_owned();
        self.read(move |tx| get_tenant(tx, &id)).await
    }

    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey> {
        self.tx(move |tx| create_key(tx, key, now())).await
    }

    async fn find_api_key(&self, prefix: &str) -> Result<Option<ApiKey>> {
        let prefix = prefix.to_owned();
        self.read(move |tx| find_key(tx, &prefix)).await
    }

    async fn list_api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |tx| list_keys(tx, tenant.as_deref())).await
    }

    async fn revoke_api_key(&self, tenant: Option<&str>, id: Uuid) -> Result<ApiKey> {
        let tenant = tenant.map(str::to_owned);
        self.tx(move |tx| revoke_key(tx, tenant.as_deref(), id, now()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan;
    use super::*;

    #[tokio::test]
    async fn keys_are_found_by_their_indexes() {
        for (sql, args, index) in [
            (find_key_sql(), 1, "USING INDEX api_keys_prefix (prefix=?)"),
            (PREFIX_TAKEN.to_owned(), 1, "api_keys_prefix (prefix=?)"),
            (revoke_sql(), 3, "USING PRIMARY KEY (id=?)"),
            (TENANT_EXISTS.to_owned(), 1, "USING PRIMARY KEY (id=?)"),
            (get_tenant_sql(), 1, "USING PRIMARY KEY (id=?)"),
        ] {
            let explained = plan(&sql, args).await;
            assert!(explained.contains(index), "{sql}: {explained}");
        }
    }

    #[tokio::test]
    async fn a_tenants_keys_are_read_in_list_order_by_index() {
        let explained = plan(&list_keys_sql(true), 1).await;
        assert!(
            explained.contains("USING INDEX api_keys_tenant_created (tenant=?)"),
            "{explained}"
        );
        assert!(!explained.contains("TEMP B-TREE"), "no sort: {explained}");
    }
}
