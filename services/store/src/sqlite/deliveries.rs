//! Deliveries of the event log to webhook endpoints on SQLite (see
//! `migrations/sqlite/0013_deliveries.sql`); the same rules as on
//! PostgreSQL (`postgres/deliveries.rs`), every write on the one writer.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::endpoints::{endpoint_get, endpoint_write};
use super::events::append;
use super::{SqliteStore, db, micros, uuid_col};
use crate::Result;
use crate::deliveries::*;
use crate::events::{Cursor, EventType, endpoint_disabled_event};
use crate::model::{from_micros, now, to_micros};
use crate::parts::DeliveryStore;
use crate::refusals::endpoint_not_found;
use async_trait::async_trait;

/// Forgets an endpoint's failures and makes it due now.
pub(super) fn reset(tx: &Connection, tenant: &str, id: Uuid) -> Result<()> {
    tx.prepare_cached(
        "UPDATE endpoint_cursors SET next_time = ?3, failures = 0, failing_since = NULL
         WHERE tenant = ?1 AND endpoint_id = ?2",
    )
    .map_err(db)?
    .execute(params![tenant, id.to_string(), to_micros(now())])
    .map_err(db)?;
    Ok(())
}

/// Writes a new endpoint's cursor at `start`.
pub(super) fn start(tx: &Connection, tenant: &str, id: Uuid, start: Cursor) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO endpoint_cursors (tenant, endpoint_id, seq, next_time)
         VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(db)?
    .execute(params![tenant, id.to_string(), start.seq, to_micros(now())])
    .map_err(db)?;
    Ok(())
}

/// Deletes an endpoint's cursor and attempts.
pub(super) fn forget(tx: &Connection, tenant: &str, id: Uuid) -> Result<()> {
    for statement in [
        "DELETE FROM endpoint_cursors WHERE tenant = ?1 AND endpoint_id = ?2",
        "DELETE FROM endpoint_attempts WHERE tenant = ?1 AND endpoint_id = ?2",
    ] {
        tx.prepare_cached(statement)
            .map_err(db)?
            .execute(params![tenant, id.to_string()])
            .map_err(db)?;
    }
    Ok(())
}

fn claim(tx: &Connection, limit: usize, lease: Duration) -> Result<Vec<EndpointLease>> {
    let now = to_micros(now());
    let due: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT c.tenant, c.endpoint_id FROM endpoint_cursors c
             JOIN endpoints e ON e.tenant = c.tenant AND e.id = c.endpoint_id
             WHERE c.next_time <= ?1 AND (c.lease_until IS NULL OR c.lease_until < ?1)
               AND NOT e.disabled
             ORDER BY c.next_time LIMIT ?2",
        )
        .map_err(db)?
        .query_map(
            params![now, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    let mut leases = Vec::with_capacity(due.len());
    for (tenant, id) in due {
        let token = Uuid::now_v7();
        let row = tx
            .prepare_cached(
                "UPDATE endpoint_cursors SET lease_until = ?3, lease_token = ?4
                 WHERE tenant = ?1 AND endpoint_id = ?2
                 RETURNING seq, epoch, failures, failing_since",
            )
            .map_err(db)?
            .query_row(
                params![
                    tenant,
                    id,
                    now.saturating_add(micros(lease)),
                    token.to_string()
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                    ))
                },
            )
            .map_err(db)?;
        let (seq, epoch, failures, failing_since) = row;
        leases.push(EndpointLease {
            endpoint: endpoint_get(tx, &tenant, uuid_col(id))?,
            cursor: Cursor { xid: 0, seq },
            epoch,
            token,
            failing_since: failing_since.map(from_micros),
            failures: u32::try_from(failures).unwrap_or_default(),
        });
    }
    Ok(leases)
}

fn log(tx: &Connection, tenant: &str, id: Uuid, attempts: &[DeliveryAttempt]) -> Result<()> {
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO endpoint_attempts (tenant, endpoint_id, id, event_seq, event_type,
                 epoch, time, outcome, status_code, latency_ms, error, next_try_time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(db)?;
    for a in attempts {
        stmt.execute(params![
            tenant,
            id.to_string(),
            a.id.to_string(),
            a.event.seq,
            a.event_type.code(),
            a.epoch,
            to_micros(a.time),
            a.outcome.code(),
            a.status_code,
            i64::try_from(a.latency.as_millis()).unwrap_or(i64::MAX),
            a.error,
            a.next_try_time.map(to_micros),
        ])
        .map_err(db)?;
    }
    Ok(())
}

/// Writes a round; whether the lease was held, and whether the endpoint
/// was disabled.
fn finish(tx: &Connection, tenant: &str, id: Uuid, round: &DeliveryRound) -> Result<(bool, bool)> {
    log(tx, tenant, id, &round.attempts)?;
    let held = tx
        .prepare_cached(
            "UPDATE endpoint_cursors SET seq = ?4, next_time = ?5, failures = ?6,
                 failing_since = ?7, lease_until = NULL, lease_token = NULL
             WHERE tenant = ?1 AND endpoint_id = ?2 AND lease_token = ?3",
        )
        .map_err(db)?
        .execute(params![
            tenant,
            id.to_string(),
            round.token.to_string(),
            round.cursor.seq,
            to_micros(round.next_time),
            round.failures,
            round.failing_since.map(to_micros),
        ])
        .map_err(db)?
        == 1;
    let (true, Some(reason)) = (held, &round.disable) else {
        return Ok((held, false));
    };
    let now = now();
    let endpoint = endpoint_get(tx, tenant, id)?.disabled_by_router(reason, now);
    endpoint_write(tx, &endpoint)?;
    reset(tx, tenant, id)?;
    append(tx, tenant, &endpoint_disabled_event(id, reason), now)?;
    Ok((true, true))
}

fn attempt_row(r: &Row<'_>) -> rusqlite::Result<DeliveryAttempt> {
    Ok(DeliveryAttempt {
        endpoint_id: uuid_col(r.get(0)?),
        id: uuid_col(r.get(1)?),
        event: Cursor {
            xid: 0,
            seq: r.get(2)?,
        },
        event_type: EventType::from_code(r.get(3)?).unwrap_or(EventType::MessageStatusChanged),
        epoch: r.get(4)?,
        time: from_micros(r.get(5)?),
        outcome: DeliveryOutcome::from_code(r.get(6)?).unwrap_or(DeliveryOutcome::Failed),
        status_code: r.get(7)?,
        latency: Duration::from_millis(u64::try_from(r.get::<_, i64>(8)?).unwrap_or_default()),
        error: r.get(9)?,
        next_try_time: r.get::<_, Option<i64>>(10)?.map(from_micros),
    })
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn claim_endpoints(&self, limit: usize, lease: Duration) -> Result<Vec<EndpointLease>> {
        self.tx(move |tx| claim(tx, limit, lease)).await
    }

    async fn renew_endpoint_lease(
        &self,
        tenant: &str,
        id: Uuid,
        token: Uuid,
        lease: Duration,
    ) -> Result<bool> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let until = to_micros(now()).saturating_add(micros(lease));
            let held = tx
                .prepare_cached(
                    "UPDATE endpoint_cursors SET lease_until = ?4
                     WHERE tenant = ?1 AND endpoint_id = ?2 AND lease_token = ?3",
                )
                .map_err(db)?
                .execute(params![tenant, id.to_string(), token.to_string(), until])
                .map_err(db)?;
            Ok(held == 1)
        })
        .await
    }

    async fn delivered_events(
        &self,
        tenant: &str,
        id: Uuid,
        epoch: i64,
        events: &[Cursor],
    ) -> Result<Vec<Cursor>> {
        let tenant = tenant.to_owned();
        let events = events.to_vec();
        self.read(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT 1 FROM endpoint_attempts
                     WHERE endpoint_id = ?2 AND event_seq = ?4 AND outcome = 1
                       AND tenant = ?1 AND epoch = ?3 LIMIT 1",
                )
                .map_err(db)?;
            let mut done = Vec::new();
            for event in events {
                let found = stmt
                    .query_row(
                        params![tenant, id.to_string(), epoch, event.seq],
                        |_| Ok(()),
                    )
                    .optional()
                    .map_err(db)?;
                if found.is_some() {
                    done.push(event);
                }
            }
            Ok(done)
        })
        .await
    }

    async fn finish_delivery_round(
        &self,
        tenant: &str,
        id: Uuid,
        round: DeliveryRound,
    ) -> Result<bool> {
        let tenant = tenant.to_owned();
        let (held, disabled) = self.tx(move |tx| finish(tx, &tenant, id, &round)).await?;
        if disabled {
            self.bump();
        }
        Ok(held)
    }

    async fn list_delivery_attempts(
        &self,
        tenant: &str,
        id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>> {
        let tenant = tenant.to_owned();
        // Ids are lowercase hyphenated UUIDs: text order is id order.
        let before = before.map_or_else(|| "g".to_owned(), |b| b.to_string());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |tx| {
            endpoint_get(tx, &tenant, id)?;
            let mut stmt = tx
                .prepare_cached(
                    "SELECT endpoint_id, id, event_seq, event_type, epoch, time, outcome,
                         status_code, latency_ms, error, next_try_time
                     FROM endpoint_attempts
                     WHERE tenant = ?1 AND endpoint_id = ?2 AND id < ?3
                     ORDER BY id DESC LIMIT ?4",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![tenant, id.to_string(), before, limit], attempt_row)
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)
        })
        .await
    }

    async fn replay_endpoint(&self, tenant: &str, id: Uuid, cursor: Cursor) -> Result<()> {
        let tenant = tenant.to_owned();
        self.write(move |tx| {
            let moved = tx
                .prepare_cached(
                    "UPDATE endpoint_cursors SET seq = ?3, epoch = epoch + 1, next_time = ?4,
                         failures = 0, failing_since = NULL, lease_until = NULL,
                         lease_token = NULL
                     WHERE tenant = ?1 AND endpoint_id = ?2",
                )
                .map_err(db)?
                .execute(params![
                    tenant,
                    id.to_string(),
                    cursor.seq,
                    to_micros(now())
                ])
                .map_err(db)?;
            if moved == 0 {
                return Err(endpoint_not_found(id));
            }
            Ok(())
        })
        .await
    }
}
