//! The daily send quotas' counts (`tenant_usage`, one row per tenant and
//! UTC day).

use super::events::HotStatement;
use super::{PgStore, db};
use crate::Result;
use crate::parts::QuotaStore;
use async_trait::async_trait;

/// A tenant's daily count, made if need be and locked (a no-op update),
/// with what it has counted.
const QUOTA_LOCK: &str =
    "INSERT INTO tenant_usage (tenant, day, sent) VALUES ($1, $2::text::date, 0)
     ON CONFLICT (tenant, day) DO UPDATE SET sent = tenant_usage.sent
     RETURNING sent";

/// Adds to a tenant's daily count. (Upserts, here and below: the unique
/// index finds the row whatever the plan.)
const QUOTA_ADD: &str =
    "INSERT INTO tenant_usage (tenant, day, sent) VALUES ($1, $2::text::date, $3)
     ON CONFLICT (tenant, day) DO UPDATE SET sent = tenant_usage.sent + excluded.sent";

/// Takes back from a tenant's daily count, never below nothing.
const QUOTA_RELEASE: &str =
    "INSERT INTO tenant_usage (tenant, day, sent) VALUES ($1, $2::text::date, 0)
     ON CONFLICT (tenant, day) DO UPDATE SET sent = GREATEST(0, tenant_usage.sent - $3)";

/// The quota statements, for the plan tests.
pub(super) fn hot_statements() -> Vec<HotStatement> {
    let statement = |name, sql: &str| HotStatement {
        name,
        sql: sql.to_owned(),
        types: "text, text, bigint",
        args: "'tenant-7', current_date::text, 1",
        options: "",
    };
    vec![
        statement("add to a daily count", QUOTA_ADD),
        statement("take back from a daily count", QUOTA_RELEASE),
        HotStatement {
            types: "text, text",
            args: "'tenant-7', current_date::text",
            ..statement("lock a daily count", QUOTA_LOCK)
        },
    ]
}

#[async_trait]
impl QuotaStore for PgStore {
    /// [`QuotaStore::consume_quota`].
    async fn consume_quota(&self, tenant: &str, day: &str, wanted: u64, limit: u64) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        // The row, made if need be and locked, with what it has counted.
        let lock = tx.prepare_cached(QUOTA_LOCK).await.map_err(db)?;
        let used: i64 = tx
            .query_one(&lock, &[&tenant, &day])
            .await
            .map_err(db)?
            .get(0);
        let granted = crate::granted(u64::try_from(used).unwrap_or(0), wanted, limit);
        if granted > 0 {
            let add = tx.prepare_cached(QUOTA_ADD).await.map_err(db)?;
            tx.execute(
                &add,
                &[&tenant, &day, &i64::try_from(granted).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(db)?;
        }
        tx.commit().await.map_err(db)?;
        Ok(granted)
    }

    /// [`QuotaStore::release_quota`].
    async fn release_quota(&self, tenant: &str, day: &str, count: u64) -> Result<()> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(QUOTA_RELEASE).await.map_err(db)?;
        client
            .execute(
                &stmt,
                &[&tenant, &day, &i64::try_from(count).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(db)?;
        Ok(())
    }
}
