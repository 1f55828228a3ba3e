//! Sinks' positions in the event log on SQLite (see
//! `migrations/sqlite/0014_sinks.sql`); the same rules as on PostgreSQL.

use std::time::Duration;

use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::{SqliteStore, db, micros, uuid_col};
use crate::Result;
use crate::events::{Cursor, SinkLease};
use crate::model::{now, to_micros};
use crate::parts::SinkStore;
use async_trait::async_trait;

#[async_trait]
impl SinkStore for SqliteStore {
    async fn claim_sink(
        &self,
        sink: &str,
        tenant: &str,
        lease: Duration,
    ) -> Result<Option<SinkLease>> {
        let (sink, tenant) = (sink.to_owned(), tenant.to_owned());
        self.tx(move |tx| {
            let start = Cursor::default();
            let now = to_micros(now());
            let row: Option<(i64, String)> = tx
                .prepare_cached(
                    "INSERT INTO sink_cursors (sink, tenant, seq, lease_until, lease_token)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (sink, tenant) DO UPDATE
                         SET lease_until = excluded.lease_until,
                             lease_token = excluded.lease_token
                         WHERE sink_cursors.lease_until < ?6
                     RETURNING seq, lease_token",
                )
                .map_err(db)?
                .query_row(
                    params![
                        sink,
                        tenant,
                        start.seq,
                        now.saturating_add(micros(lease)),
                        Uuid::now_v7().to_string(),
                        now
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db)?;
            Ok(row.map(|(seq, token)| SinkLease {
                cursor: Cursor { xid: 0, seq },
                token: uuid_col(token),
            }))
        })
        .await
    }

    async fn advance_sink(
        &self,
        sink: &str,
        tenant: &str,
        token: Uuid,
        cursor: Cursor,
        lease: Duration,
    ) -> Result<bool> {
        let (sink, tenant) = (sink.to_owned(), tenant.to_owned());
        self.tx(move |tx| {
            let until = to_micros(now()).saturating_add(micros(lease));
            let held = tx
                .prepare_cached(
                    "UPDATE sink_cursors SET seq = ?4, lease_until = ?5
                     WHERE sink = ?1 AND tenant = ?2 AND lease_token = ?3",
                )
                .map_err(db)?
                .execute(params![sink, tenant, token.to_string(), cursor.seq, until])
                .map_err(db)?;
            Ok(held == 1)
        })
        .await
    }
}
