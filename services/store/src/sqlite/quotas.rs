//! Tenants' daily sending quotas on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, db};
use crate::Result;
use crate::parts::QuotaStore;

#[async_trait]
impl QuotaStore for SqliteStore {
    async fn consume_quota(&self, tenant: &str, day: &str, wanted: u64, limit: u64) -> Result<u64> {
        let (tenant, day) = (tenant.to_owned(), day.to_owned());
        self.tx(move |tx| {
            let used: i64 = tx
                .query_row(
                    "SELECT sent FROM tenant_usage WHERE tenant = ?1 AND day = ?2",
                    params![tenant, day],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?
                .unwrap_or(0);
            let granted = crate::granted(u64::try_from(used).unwrap_or(0), wanted, limit);
            if granted > 0 {
                tx.execute(
                    "INSERT INTO tenant_usage (tenant, day, sent) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant, day) DO UPDATE SET sent = sent + excluded.sent",
                    params![tenant, day, i64::try_from(granted).unwrap_or(i64::MAX)],
                )
                .map_err(db)?;
            }
            Ok(granted)
        })
        .await
    }

    async fn release_quota(&self, tenant: &str, day: &str, count: u64) -> Result<()> {
        let (tenant, day) = (tenant.to_owned(), day.to_owned());
        self.tx(move |tx| {
            tx.prepare_cached(
                "UPDATE tenant_usage SET sent = max(0, sent - ?3) WHERE tenant = ?1 AND day = ?2",
            )
            .map_err(db)?
            .execute(params![
                tenant,
                day,
                i64::try_from(count).unwrap_or(i64::MAX)
            ])
            .map_err(db)?;
            Ok(())
        })
        .await
    }
}
