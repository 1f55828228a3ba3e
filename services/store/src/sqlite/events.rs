//! The event log on SQLite: appending inside the writing transaction, reading
//! in log order, pruning, and redaction on erasure.
//!
//! SQLite runs one transaction at a time, so an event's rowid is both its
//! commit order and its position: a reader that has seen `seq` has seen every
//! event before it, and a cursor's transaction part is always 0.

use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use std::collections::HashMap;

use super::SqliteStore;
use super::{db, json, messages};
use crate::model::{from_micros, to_micros};
use crate::parts::EventStore;
use crate::{
    Cursor, CursorCheck, Event, EventFilter, EventPayload, EventType, NewEvent, StoredPayload,
};
use crate::{Result, StoreError};
use async_trait::async_trait;
use tokio::sync::watch;

/// Appends an event in the caller's transaction, so it commits (or not) with
/// the change it records.
pub(super) fn append(
    tx: &Connection,
    tenant: &str,
    event: &NewEvent,
    time: SystemTime,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (tenant, type, time, contact_id, message_id, correlation_ref,
                metadata, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .map_err(db)?
    .execute(params![
        tenant,
        event.kind.code(),
        to_micros(time),
        event.contact_id.map(|id| id.to_string()),
        event.message_id.map(|id| id.to_string()),
        event.correlation_ref,
        json(&event.metadata),
        json(&event.payload)
    ])
    .map_err(db)?;
    Ok(())
}

/// Events of a tenant after a cursor, in log order.
pub(super) fn read(
    tx: &Connection,
    tenant: &str,
    after: Cursor,
    filter: &EventFilter,
    limit: usize,
) -> Result<Vec<Event>> {
    // The type filter travels as one JSON array so that the statement stays
    // cacheable whatever the number of types.
    let types: Vec<i16> = filter.types.iter().map(|t| t.code()).collect();
    let mut stmt = tx
        .prepare_cached(
            "SELECT seq, type, time, contact_id, message_id, correlation_ref, metadata, payload
             FROM events
             WHERE tenant = ?1 AND seq > ?2
               AND (?3 = '[]' OR type IN (SELECT value FROM json_each(?3)))
               AND (?4 IS NULL OR contact_id = ?4)
             ORDER BY seq LIMIT ?5",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map(
            params![
                tenant,
                after.seq,
                json(&types),
                filter.contact_id.map(|id| id.to_string()),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i16>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                ))
            },
        )
        .map_err(db)?;
    let mut events = Vec::new();
    // Message events store the message's state; the rest comes from the
    // message, read once per message (in this read's snapshot).
    let mut messages: HashMap<Uuid, Option<crate::Message>> = HashMap::new();
    for row in rows {
        let (seq, kind, time, contact_id, message_id, correlation_ref, metadata, payload) =
            row.map_err(db)?;
        // A type this build does not know (written by a newer one) is
        // skipped rather than failing the whole read.
        let Some(kind) = EventType::from_code(kind) else {
            continue;
        };
        let contact_id = contact_id.as_deref().map(parse_uuid).transpose()?;
        let message_id = message_id.as_deref().map(parse_uuid).transpose()?;
        let payload: StoredPayload = serde_json::from_str(&payload).map_err(StoreError::backend)?;
        let message = match message_id {
            Some(id) if payload.needs_message() => match messages.get(&id) {
                Some(found) => found.clone(),
                None => {
                    let found = match messages::get(tx, tenant, id) {
                        Ok(message) => Some(message),
                        Err(StoreError::NotFound { .. }) => None,
                        Err(e) => return Err(e),
                    };
                    messages.insert(id, found.clone());
                    found
                }
            },
            _ => None,
        };
        events.push(Event {
            cursor: Cursor { xid: 0, seq },
            kind,
            time: from_micros(time),
            contact_id,
            message_id,
            correlation_ref,
            metadata: serde_json::from_str(&metadata).map_err(StoreError::backend)?,
            route: payload.route_change(),
            payload: payload.into_payload(message, contact_id),
        });
    }
    Ok(events)
}

/// The position of the tenant's newest event (the origin when it has none).
pub(super) fn head(tx: &Connection, tenant: &str) -> Result<Cursor> {
    let seq: i64 = tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events WHERE tenant = ?1")
        .map_err(db)?
        .query_row(params![tenant], |r| r.get(0))
        .map_err(db)?;
    Ok(Cursor { xid: 0, seq })
}

pub(super) fn check_cursor(tx: &Connection, tenant: &str, cursor: Cursor) -> Result<CursorCheck> {
    let issued = cursor.xid == 0
        && tx
            .prepare_cached("SELECT 1 FROM events WHERE seq = ?1 AND tenant = ?2")
            .map_err(db)?
            .exists(params![cursor.seq, tenant])
            .map_err(db)?;
    if issued {
        return Ok(CursorCheck::Issued);
    }
    Ok(crate::events::unissued(cursor, head(tx, tenant)?))
}

/// Deletes every event older than `before`, in all tenants.
pub(super) fn prune(tx: &Connection, before: SystemTime) -> Result<u64> {
    // Attempts go with the events they delivered.
    tx.prepare_cached("DELETE FROM endpoint_attempts WHERE time < ?1")
        .map_err(db)?
        .execute(params![to_micros(before)])
        .map_err(db)?;
    let deleted = tx
        .prepare_cached("DELETE FROM events WHERE time < ?1")
        .map_err(db)?
        .execute(params![to_micros(before)])
        .map_err(db)?;
    Ok(deleted as u64)
}

/// Empties the events about an erased contact, including those written under
/// ids merged into it before (they name the retired id, and their message
/// payloads hold the same personal data).
pub(super) fn redact_contact(
    tx: &Connection,
    tenant: &str,
    contact_id: Uuid,
    payload: &EventPayload,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE events SET payload = ?3, metadata = '{}', correlation_ref = ''
         WHERE tenant = ?1
           AND (contact_id = ?2
                OR contact_id IN (SELECT id FROM contacts WHERE tenant = ?1 AND merged_into = ?2))",
    )
    .map_err(db)?
    .execute(params![tenant, contact_id.to_string(), json(payload)])
    .map_err(db)?;
    Ok(())
}

fn parse_uuid(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(StoreError::backend)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn read_events(
        &self,
        tenant: &str,
        after: Cursor,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let tenant = tenant.to_owned();
        let filter = filter.clone();
        self.read(move |tx| read(tx, &tenant, after, &filter, limit))
            .await
    }

    async fn event_head(&self, tenant: &str) -> Result<Cursor> {
        let tenant = tenant.to_owned();
        self.read(move |tx| head(tx, &tenant)).await
    }

    async fn check_cursor(&self, tenant: &str, cursor: Cursor) -> Result<CursorCheck> {
        let tenant = tenant.to_owned();
        self.read(move |tx| check_cursor(tx, &tenant, cursor)).await
    }

    async fn cursor_before(&self, tenant: &str, time: SystemTime) -> Result<Cursor> {
        let tenant = tenant.to_owned();
        self.read(move |tx| {
            let first: Option<i64> = tx
                .prepare_cached(
                    "SELECT seq FROM events WHERE tenant = ?1 AND time >= ?2
                     ORDER BY seq LIMIT 1",
                )
                .map_err(db)?
                .query_row(params![tenant, to_micros(time)], |r| r.get(0))
                .optional()
                .map_err(db)?;
            match first {
                Some(seq) => Ok(Cursor {
                    xid: 0,
                    seq: seq - 1,
                }),
                None => head(tx, &tenant),
            }
        })
        .await
    }

    async fn prune_events(&self, before: SystemTime) -> Result<u64> {
        self.tx(move |tx| prune(tx, before)).await
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
