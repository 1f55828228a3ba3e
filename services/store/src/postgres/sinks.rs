//! Sinks' positions in the event log on PostgreSQL (see
//! `migrations/postgres/0016_sinks.sql`): one row per sink and tenant,
//! claimed with an upsert that takes the row only when its lease ended.

use std::time::Duration;

use uuid::Uuid;

use super::{PgStore, db};
use crate::Result;
use crate::events::{Cursor, SinkLease};
use crate::model::now;
use crate::parts::{EventStore, SinkStore};
use async_trait::async_trait;

/// Takes the row (made at `$3`/`$4` when there is none) when its lease
/// ended; no row when another holds it.
const CLAIM: &str = "INSERT INTO sink_cursors (sink, tenant, xid, seq, lease_until, lease_token)
     VALUES ($1, $2, $3::text::xid8, $4, $5, gen_random_uuid())
     ON CONFLICT (sink, tenant) DO UPDATE
         SET lease_until = EXCLUDED.lease_until, lease_token = EXCLUDED.lease_token
         WHERE sink_cursors.lease_until < $6
     RETURNING xid::text, seq, lease_token";

const ADVANCE: &str = "UPDATE sink_cursors SET xid = $4::text::xid8, seq = $5, lease_until = $6
     WHERE sink = $1 AND tenant = $2 AND lease_token = $3";

#[async_trait]
impl SinkStore for PgStore {
    async fn claim_sink(
        &self,
        sink: &str,
        tenant: &str,
        lease: Duration,
    ) -> Result<Option<SinkLease>> {
        let start = self.event_origin();
        let client = self.client().await?;
        let stmt = client.prepare_cached(CLAIM).await.map_err(db)?;
        let now = now();
        let row = client
            .query_opt(
                &stmt,
                &[
                    &sink,
                    &tenant,
                    &start.xid.to_string(),
                    &start.seq,
                    &(now + lease),
                    &now,
                ],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| SinkLease {
            cursor: Cursor {
                xid: r.get::<_, &str>(0).parse().unwrap_or_default(),
                seq: r.get(1),
            },
            token: r.get(2),
        }))
    }

    async fn advance_sink(
        &self,
        sink: &str,
        tenant: &str,
        token: Uuid,
        cursor: Cursor,
        lease: Duration,
    ) -> Result<bool> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(ADVANCE).await.map_err(db)?;
        let held = client
            .execute(
                &stmt,
                &[
                    &sink,
                    &tenant,
                    &token,
                    &cursor.xid.to_string(),
                    &cursor.seq,
                    &(now() + lease),
                ],
            )
            .await
            .map_err(db)?;
        Ok(held == 1)
    }
}
