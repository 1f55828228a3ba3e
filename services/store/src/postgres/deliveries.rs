//! Deliveries of the event log to webhook endpoints on PostgreSQL (see
//! `migrations/postgres/0015_deliveries.sql`): each endpoint's cursor,
//! leased like a dispatch job (`FOR UPDATE SKIP LOCKED`, a new token per
//! claim), and the attempts' log. A round's attempts, cursor and schedule
//! are written in one transaction; only the lease's holder moves the
//! cursor. Every statement reads by primary key or joins on `unnest`.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::endpoints::{COLUMNS, endpoint_from_row, get_sql, write_endpoint};
use super::messages::append_events;
use super::{PgStore, db};
use crate::Result;
use crate::deliveries::*;
use crate::events::{Cursor, EventType, endpoint_disabled_event};
use crate::model::now;
use crate::parts::DeliveryStore;
use crate::refusals::endpoint_not_found;
use async_trait::async_trait;

/// Claims due, enabled endpoints; returns each endpoint's columns
/// ([`COLUMNS`]) and then its cursor's.
fn claim_sql() -> String {
    let endpoint: Vec<String> = COLUMNS
        .split(',')
        .map(|c| format!("e.{}", c.trim()))
        .collect();
    format!(
        "WITH due AS (
             SELECT c.tenant, c.endpoint_id FROM endpoint_cursors c
             JOIN endpoints e ON e.tenant = c.tenant AND e.id = c.endpoint_id
             WHERE c.next_time <= $1 AND (c.lease_until IS NULL OR c.lease_until < $1)
               AND NOT e.disabled
             ORDER BY c.next_time LIMIT $2
             FOR UPDATE OF c SKIP LOCKED
         )
         UPDATE endpoint_cursors c SET lease_until = $3, lease_token = gen_random_uuid()
         FROM due, endpoints e
         WHERE c.tenant = due.tenant AND c.endpoint_id = due.endpoint_id
           AND e.tenant = c.tenant AND e.id = c.endpoint_id
         RETURNING {}, c.lease_token, c.xid::text, c.seq, c.epoch, c.failures, c.failing_since",
        endpoint.join(", ")
    )
}

const RENEW: &str = "UPDATE endpoint_cursors SET lease_until = $4
     WHERE tenant = $1 AND endpoint_id = $2 AND lease_token = $3";

/// One index probe per event of the page: a LATERAL subquery with a LIMIT
/// runs once per event, so no plan can start from the endpoint (which has
/// every attempt of its own) instead.
const DELIVERED: &str = "SELECT page.seq FROM unnest($4::bigint[]) AS page(seq),
     LATERAL (SELECT 1 FROM endpoint_attempts a
              WHERE a.event_seq = page.seq AND a.endpoint_id = $2 AND a.outcome = 1
                AND a.tenant = $1 AND a.epoch = $3
              LIMIT 1) AS hit";

const LOG: &str = "INSERT INTO endpoint_attempts (tenant, endpoint_id, id, event_xid, event_seq,
         event_type, epoch, time, outcome, status_code, latency_ms, error, next_try_time)
     SELECT $1, $2, i, x::xid8, s, t, ep, tm, o, sc, l, er, nt
     FROM unnest($3::uuid[], $4::text[], $5::bigint[], $6::smallint[], $7::bigint[],
                 $8::timestamptz[], $9::smallint[], $10::int[], $11::int[], $12::text[],
                 $13::timestamptz[]) AS a(i, x, s, t, ep, tm, o, sc, l, er, nt)";

const ADVANCE: &str = "UPDATE endpoint_cursors SET xid = $4::text::xid8, seq = $5, next_time = $6,
         failures = $7, failing_since = $8, lease_until = NULL, lease_token = NULL
     WHERE tenant = $1 AND endpoint_id = $2 AND lease_token = $3";

/// Forgets an endpoint's failures and makes it due now (after the router
/// disabled it, or a caller enabled it).
pub(super) const RESET: &str = "UPDATE endpoint_cursors
     SET next_time = now(), failures = 0, failing_since = NULL
     WHERE tenant = $1 AND endpoint_id = $2";

const REPLAY: &str = "UPDATE endpoint_cursors SET xid = $3::text::xid8, seq = $4,
         epoch = epoch + 1, next_time = now(), failures = 0, failing_since = NULL,
         lease_until = NULL, lease_token = NULL
     WHERE tenant = $1 AND endpoint_id = $2";

const ATTEMPTS: &str = "SELECT endpoint_id, id, event_xid::text, event_seq, event_type, epoch,
         time, outcome, status_code, latency_ms, error, next_try_time
     FROM endpoint_attempts
     WHERE tenant = $1 AND endpoint_id = $2
       AND id < COALESCE($3::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff')
     ORDER BY id DESC LIMIT $4";

/// The cursor row of a new endpoint, written with it.
pub(super) const START: &str = "INSERT INTO endpoint_cursors
     (tenant, endpoint_id, xid, seq, next_time) VALUES ($1, $2, $3::text::xid8, $4, now())";

/// Deletes an endpoint's cursor and attempts, with it.
pub(super) const FORGET: [&str; 2] = [
    "DELETE FROM endpoint_cursors WHERE tenant = $1 AND endpoint_id = $2",
    "DELETE FROM endpoint_attempts WHERE tenant = $1 AND endpoint_id = $2",
];

/// The deliveries' statements that grow with the log, for `tests/plans.rs`.
pub(super) fn hot_statements() -> Vec<super::HotStatement> {
    vec![
        super::HotStatement {
            name: "which events of a page were delivered",
            sql: DELIVERED.to_owned(),
            types: "text, uuid, bigint, bigint[]",
            args: "'default', '00000000-0000-7000-8000-000000000000', 0, '{1,2,3,4,5}'",
            options: "",
        },
        super::HotStatement {
            name: "an endpoint's attempts",
            sql: ATTEMPTS.to_owned(),
            types: "text, uuid, uuid, bigint",
            args: "'default', '00000000-0000-7000-8000-000000000000', NULL, 500",
            options: "",
        },
    ]
}

fn cursor_at(r: &Row, xid: usize, seq: usize) -> Cursor {
    Cursor {
        xid: r.get::<_, &str>(xid).parse().unwrap_or_default(),
        seq: r.get(seq),
    }
}

fn lease_from_row(r: &Row) -> EndpointLease {
    let n = COLUMNS.split(',').count();
    EndpointLease {
        endpoint: endpoint_from_row(r),
        token: r.get(n),
        cursor: cursor_at(r, n + 1, n + 2),
        epoch: r.get(n + 3),
        failures: u32::try_from(r.get::<_, i32>(n + 4)).unwrap_or_default(),
        failing_since: r.get(n + 5),
    }
}

fn attempt_from_row(r: &Row) -> DeliveryAttempt {
    DeliveryAttempt {
        endpoint_id: r.get(0),
        id: r.get(1),
        event: cursor_at(r, 2, 3),
        event_type: EventType::from_code(r.get(4)).unwrap_or(EventType::MessageStatusChanged),
        epoch: r.get(5),
        time: r.get(6),
        outcome: DeliveryOutcome::from_code(r.get(7)).unwrap_or(DeliveryOutcome::Failed),
        status_code: r
            .get::<_, Option<i32>>(8)
            .and_then(|c| u16::try_from(c).ok()),
        latency: Duration::from_millis(u64::try_from(r.get::<_, i32>(9)).unwrap_or_default()),
        error: r.get(10),
        next_try_time: r.get(11),
    }
}

/// Logs attempts (one multi-row insert).
async fn log(c: &impl GenericClient, tenant: &str, id: Uuid, a: &[DeliveryAttempt]) -> Result<()> {
    if a.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = a.iter().map(|a| a.id).collect();
    let xids: Vec<String> = a.iter().map(|a| a.event.xid.to_string()).collect();
    let seqs: Vec<i64> = a.iter().map(|a| a.event.seq).collect();
    let types: Vec<i16> = a.iter().map(|a| a.event_type.code()).collect();
    let epochs: Vec<i64> = a.iter().map(|a| a.epoch).collect();
    let times: Vec<_> = a.iter().map(|a| a.time).collect();
    let outcomes: Vec<i16> = a.iter().map(|a| a.outcome.code()).collect();
    let codes: Vec<Option<i32>> = a.iter().map(|a| a.status_code.map(i32::from)).collect();
    let latencies: Vec<i32> = a
        .iter()
        .map(|a| i32::try_from(a.latency.as_millis()).unwrap_or(i32::MAX))
        .collect();
    let errors: Vec<&str> = a.iter().map(|a| a.error.as_str()).collect();
    let next: Vec<_> = a.iter().map(|a| a.next_try_time).collect();
    let stmt = c.prepare_cached(LOG).await.map_err(db)?;
    c.execute(
        &stmt,
        &[
            &tenant, &id, &ids, &xids, &seqs, &types, &epochs, &times, &outcomes, &codes,
            &latencies, &errors, &next,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

#[async_trait]
impl DeliveryStore for PgStore {
    async fn claim_endpoints(&self, limit: usize, lease: Duration) -> Result<Vec<EndpointLease>> {
        let client = self.client().await?;
        let now = now();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let stmt = client.prepare_cached(&claim_sql()).await.map_err(db)?;
        let rows = client
            .query(&stmt, &[&now, &limit, &(now + lease)])
            .await
            .map_err(db)?;
        Ok(rows.iter().map(lease_from_row).collect())
    }

    async fn renew_endpoint_lease(
        &self,
        tenant: &str,
        id: Uuid,
        token: Uuid,
        lease: Duration,
    ) -> Result<bool> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(RENEW).await.map_err(db)?;
        let until = now() + lease;
        let held = client
            .execute(&stmt, &[&tenant, &id, &token, &until])
            .await
            .map_err(db)?;
        Ok(held == 1)
    }

    async fn delivered_events(
        &self,
        tenant: &str,
        id: Uuid,
        epoch: i64,
        events: &[Cursor],
    ) -> Result<Vec<Cursor>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let stmt = client.prepare_cached(DELIVERED).await.map_err(db)?;
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        let rows = client
            .query(&stmt, &[&tenant, &id, &epoch, &seqs])
            .await
            .map_err(db)?;
        let done: std::collections::HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
        Ok(events
            .iter()
            .filter(|e| done.contains(&e.seq))
            .copied()
            .collect())
    }

    async fn finish_delivery_round(
        &self,
        tenant: &str,
        id: Uuid,
        round: DeliveryRound,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        log(&tx, tenant, id, &round.attempts).await?;
        let stmt = tx.prepare_cached(ADVANCE).await.map_err(db)?;
        let failures = i32::try_from(round.failures).unwrap_or(i32::MAX);
        let held = tx
            .execute(
                &stmt,
                &[
                    &tenant,
                    &id,
                    &round.token,
                    &round.cursor.xid.to_string(),
                    &round.cursor.seq,
                    &round.next_time,
                    &failures,
                    &round.failing_since,
                ],
            )
            .await
            .map_err(db)?
            == 1;
        let mut disabled = false;
        if let (true, Some(reason)) = (held, &round.disable) {
            let stmt = tx.prepare_cached(&get_sql(true)).await.map_err(db)?;
            if let Some(row) = tx.query_opt(&stmt, &[&tenant, &id]).await.map_err(db)? {
                let now = now();
                let endpoint = endpoint_from_row(&row).disabled_by_router(reason, now);
                write_endpoint(&tx, &endpoint).await?;
                let stmt = tx.prepare_cached(RESET).await.map_err(db)?;
                tx.execute(&stmt, &[&tenant, &id]).await.map_err(db)?;
                append_events(&tx, tenant, &[endpoint_disabled_event(id, reason)], now).await?;
                disabled = true;
            }
        }
        tx.commit().await.map_err(db)?;
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
        let client = self.client().await?;
        let stmt = client.prepare_cached(&get_sql(false)).await.map_err(db)?;
        if client
            .query_opt(&stmt, &[&tenant, &id])
            .await
            .map_err(db)?
            .is_none()
        {
            return Err(endpoint_not_found(id));
        }
        let stmt = client.prepare_cached(ATTEMPTS).await.map_err(db)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&stmt, &[&tenant, &id, &before, &limit])
            .await
            .map_err(db)?;
        Ok(rows.iter().map(attempt_from_row).collect())
    }

    async fn replay_endpoint(&self, tenant: &str, id: Uuid, cursor: Cursor) -> Result<()> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(REPLAY).await.map_err(db)?;
        let moved = client
            .execute(&stmt, &[&tenant, &id, &cursor.xid.to_string(), &cursor.seq])
            .await
            .map_err(db)?;
        if moved == 0 {
            return Err(endpoint_not_found(id));
        }
        self.bump();
        Ok(())
    }
}
