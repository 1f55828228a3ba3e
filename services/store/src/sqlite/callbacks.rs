//! Callbacks on SQLite: recording call progress, reading, listing and
//! canceling callbacks, and writing a callback's `CallbackChanged` event
//! when a change moves its state ([`before`], [`after`]). Called inside the
//! transactions of [`CallbackStore`] for [`SqliteStore`], below.
//!
//! A listing is one ordered range scan of a partial index that holds
//! callbacks only (`messages_callbacks_due`, or
//! `messages_callbacks_contact_due` for one contact's; see
//! `migrations/sqlite/0008_callbacks.sql`): the statements repeat the
//! indexes' predicate and key expressions literally. The position is spelt
//! out as "due at or after the mark's time, and not at it with a smaller
//! id": SQLite does not bound an index range by a row-value comparison on
//! an expression column, but does by the first term, so a page starts at
//! the mark's time instead of at the tenant's first callback. The first
//! page starts from a position before every callback (no stored time is
//! `i64::MIN`, every id sorts after '').

use std::time::SystemTime;

use omniroute_channel::Channel;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::SqliteStore;
use super::messages::{message_columns, message_row};
use super::{db, events, json};
use crate::Result;
use crate::callbacks::*;
use crate::events::status_event;
use crate::messages::{Message, MessageStatus};
use crate::model::now;
use crate::model::{from_micros, to_micros};
use crate::parts::CallbackStore;
use crate::refusals::{cancel_check, check_lease, found_callback};
use async_trait::async_trait;

/// Upserts the progress of the callback with a provider id (see
/// [`crate::CallbackStore::record_call_progress`]); the message is found through
/// `messages_provider_id`.
const RECORD: &str = "INSERT INTO call_progress
            (tenant, message_id, call_id, answered_by, bridged_seconds, update_time)
     SELECT tenant, id, ?2, COALESCE(?3, ''), ?4, ?5
     FROM messages
     WHERE channel = ?1 AND provider_message_id = ?2
       AND direction = 1 AND json_extract(content, '$.type') = 'callback_request'
     ON CONFLICT (tenant, message_id) DO UPDATE SET
         call_id = excluded.call_id,
         answered_by = CASE WHEN call_progress.call_id = excluded.call_id
                            THEN COALESCE(?3, call_progress.answered_by)
                            ELSE excluded.answered_by END,
         bridged_seconds = CASE WHEN call_progress.call_id = excluded.call_id
                                THEN COALESCE(?4, call_progress.bridged_seconds)
                                ELSE excluded.bridged_seconds END,
         update_time = excluded.update_time";

/// The progress columns after the message's, from the sub-select
/// [`PROGRESS_JOIN`] names `p`, then the due time of the callback's send
/// job (its next call), if it has one.
const PROGRESS_COLUMNS: &str = "p.call_id, p.answered_by, p.bridged_seconds, p.progress_time,
     (SELECT due_time FROM dispatch_jobs
      WHERE dispatch_jobs.message_id = messages.id AND dispatch_jobs.kind = 0) AS next_call";

/// The first column of the progress columns.
const PROGRESS_AT: usize = super::messages::MESSAGE_WIDTH;

/// Joins each message's progress by primary key (its tenant and update
/// time renamed, so the message's columns keep their names); its send
/// job's due time is read by primary key per row ([`PROGRESS_COLUMNS`]).
const PROGRESS_JOIN: &str = "LEFT JOIN (
         SELECT tenant AS progress_tenant, message_id, call_id, answered_by, bridged_seconds,
                update_time AS progress_time
         FROM call_progress
     ) p ON p.progress_tenant = messages.tenant AND p.message_id = messages.id";

/// The progress of a callback, by primary key.
const PROGRESS: &str = "SELECT call_id, answered_by, bridged_seconds, update_time
     FROM call_progress WHERE tenant = ?1 AND message_id = ?2";

/// The callback a provider's call id names (as [`RECORD`] finds it).
const BY_CALL: &str = "SELECT tenant, id FROM messages
     WHERE channel = ?1 AND provider_message_id = ?2
       AND direction = 1 AND json_extract(content, '$.type') = 'callback_request'
     ORDER BY id DESC LIMIT 1";

/// One message of a tenant with its progress.
fn get_sql() -> String {
    format!(
        "SELECT {}, {PROGRESS_COLUMNS} FROM messages {PROGRESS_JOIN}
         WHERE messages.tenant = ?1 AND messages.id = ?2",
        message_columns!()
    )
}

/// A page of a tenant's callbacks after the position (?2, ?3), in the
/// statuses of the JSON array ?4 (empty: any), at most ?5; with `contact`,
/// only the callbacks of the contact ?6 resolves to.
fn list_sql(contact: bool) -> String {
    let contact = if contact {
        format!(
            "AND messages.contact_id = (
             SELECT CASE WHEN state = {merged} THEN merged_into ELSE id END
             FROM contacts WHERE tenant = ?1 AND id = ?6)",
            merged = crate::model::ContactState::Merged.code()
        )
    } else {
        String::new()
    };
    format!(
        "SELECT {}, {PROGRESS_COLUMNS} FROM messages {PROGRESS_JOIN}
         WHERE messages.tenant = ?1 {contact}
           AND messages.direction = 1
           AND json_extract(messages.content, '$.type') = 'callback_request'
           AND COALESCE(messages.send_time, messages.create_time) >= ?2
           AND (COALESCE(messages.send_time, messages.create_time) > ?2 OR messages.id > ?3)
           AND (?4 = '[]' OR messages.status IN (SELECT value FROM json_each(?4)))
         ORDER BY COALESCE(messages.send_time, messages.create_time), messages.id
         LIMIT ?5",
        message_columns!()
    )
}

/// Reads a message (from column 0), its progress and its next call.
fn callback_row(r: &Row<'_>) -> rusqlite::Result<Callback> {
    let message = message_row(r)?;
    let progress = progress_from_columns(
        r.get(PROGRESS_AT)?,
        r.get(PROGRESS_AT + 1)?,
        r.get(PROGRESS_AT + 2)?,
        r.get::<_, Option<i64>>(PROGRESS_AT + 3)?.map(from_micros),
    );
    let next_call = r.get::<_, Option<i64>>(PROGRESS_AT + 4)?.map(from_micros);
    Ok(Callback {
        message,
        progress,
        next_call,
    })
}

/// The progress of callback `id`.
fn progress(tx: &Connection, tenant: &str, id: Uuid) -> Result<Option<CallProgress>> {
    let found = tx
        .prepare_cached(PROGRESS)
        .map_err(db)?
        .query_row(params![tenant, id.to_string()], |r| {
            Ok(progress_from_columns(
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get::<_, Option<i64>>(3)?.map(from_micros),
            ))
        })
        .optional()
        .map_err(db)?;
    Ok(found.flatten())
}

/// A callback's state before a change of its message, with its progress
/// (which the change does not move); `None` for a message that is no
/// callback.
pub(super) type Before = Option<(CallbackState, Option<CallProgress>)>;

/// [`Before`] of message `m`.
pub(super) fn before(tx: &Connection, tenant: &str, m: &Message) -> Result<Before> {
    if !is_callback(m) {
        return Ok(None);
    }
    let progress = progress(tx, tenant, m.id)?;
    Ok(Some((callback_state(m, progress.as_ref()), progress)))
}

/// Writes the `CallbackChanged` event of `m` after a change, when its
/// state moved from `before`; `next_call` is its send job's due time, if
/// the change left one.
pub(super) fn after(
    tx: &Connection,
    tenant: &str,
    before: Before,
    m: &Message,
    next_call: Option<SystemTime>,
    now: SystemTime,
) -> Result<()> {
    let Some((state, progress)) = before else {
        return Ok(());
    };
    let callback = Callback {
        message: m.clone(),
        progress,
        next_call,
    };
    match callback_event(Some(state), &callback) {
        Some(event) => events::append(tx, tenant, &event, now),
        None => Ok(()),
    }
}

/// [`crate::CallbackStore::record_call_progress`]: one upsert, and the callback's
/// event when its state moved (the customer answered).
pub(super) fn record(
    tx: &Connection,
    channel: Channel,
    call_id: &str,
    answered_by: Option<&str>,
    bridged_seconds: Option<u32>,
    now: SystemTime,
) -> Result<bool> {
    let found: Option<(String, String)> = tx
        .prepare_cached(BY_CALL)
        .map_err(db)?
        .query_row(params![channel.as_str(), call_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(db)?;
    let Some((tenant, id)) = found else {
        return Ok(false);
    };
    let id = Uuid::parse_str(&id).map_err(crate::StoreError::backend)?;
    let message = super::messages::get(tx, &tenant, id)?;
    let was = before(tx, &tenant, &message)?;
    let written = tx
        .prepare_cached(RECORD)
        .map_err(db)?
        .execute(params![
            channel.as_str(),
            call_id,
            answered_by,
            bridged_seconds,
            to_micros(now)
        ])
        .map_err(db)?;
    if let Some((state, _)) = was {
        let callback = Callback {
            progress: progress(tx, &tenant, id)?,
            message,
            next_call: None,
        };
        if let Some(event) = callback_event(Some(state), &callback) {
            events::append(tx, &tenant, &event, now)?;
        }
    }
    Ok(written > 0)
}

/// [`crate::CallbackStore::cancel_callback`], inside the writer's transaction.
pub(super) fn cancel(
    tx: &Connection,
    tenant: &str,
    id: Uuid,
    now: SystemTime,
) -> Result<CanceledCallback> {
    let mut callback = get(tx, tenant, id)?;
    let ringing = cancel_check(&callback)?;
    let lease: Option<Option<i64>> = tx
        .prepare_cached("SELECT lease_until FROM dispatch_jobs WHERE message_id = ?1")
        .map_err(db)?
        .query_row(params![id.to_string()], |r| r.get(0))
        .optional()
        .map_err(db)?;
    check_lease(lease.flatten().map(from_micros), now, id)?;
    tx.prepare_cached("DELETE FROM dispatch_jobs WHERE message_id = ?1")
        .map_err(db)?
        .execute(params![id.to_string()])
        .map_err(db)?;
    let was = callback.state();
    let status = callback.message.status;
    crate::callbacks::cancel(&mut callback.message, now);
    callback.next_call = None;
    let m = &callback.message;
    tx.prepare_cached(
        "UPDATE messages SET status = ?3, history = ?4, update_time = ?5
         WHERE tenant = ?1 AND id = ?2",
    )
    .map_err(db)?
    .execute(params![
        tenant,
        id.to_string(),
        MessageStatus::Canceled.code(),
        json(&m.history),
        to_micros(now)
    ])
    .map_err(db)?;
    events::append(tx, tenant, &status_event(status, m), now)?;
    if let Some(event) = callback_event(Some(was), &callback) {
        events::append(tx, tenant, &event, now)?;
    }
    Ok(CanceledCallback { callback, ringing })
}

/// [`crate::CallbackStore::get_callback`].
pub(super) fn get(tx: &Connection, tenant: &str, id: Uuid) -> Result<Callback> {
    let found = tx
        .prepare_cached(&get_sql())
        .map_err(db)?
        .query_row(params![tenant, id.to_string()], callback_row)
        .optional()
        .map_err(db)?;
    found_callback(found, id)
}

/// [`crate::CallbackStore::list_callbacks`]: one statement, by index.
pub(super) fn list(
    tx: &Connection,
    tenant: &str,
    filter: &CallbackFilter,
    after: Option<CallbackMark>,
    limit: usize,
) -> Result<Vec<Callback>> {
    let (due, after_id) = match after {
        Some(mark) => (to_micros(mark.due), mark.id.to_string()),
        None => (i64::MIN, String::new()),
    };
    let statuses = json(&status_codes(filter));
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let contact = filter.contact_id.map(|id| id.to_string());
    let mut stmt = tx
        .prepare_cached(&list_sql(contact.is_some()))
        .map_err(db)?;
    let rows = match &contact {
        None => stmt.query_map(
            params![tenant, due, after_id, statuses, limit],
            callback_row,
        ),
        Some(contact) => stmt.query_map(
            params![tenant, due, after_id, statuses, limit, contact],
            callback_row,
        ),
    }
    .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

#[async_trait]
impl CallbackStore for SqliteStore {
    async fn record_call_progress(
        &self,
        channel: Channel,
        call_id: &str,
        answered_by: Option<&str>,
        bridged_seconds: Option<u32>,
    ) -> Result<bool> {
        let call_id = call_id.to_owned();
        let answered_by = answered_by.map(str::to_owned);
        // A callback's event may be written: subscribers look again.
        self.write(move |tx| {
            let answered_by = answered_by.as_deref();
            record(tx, channel, &call_id, answered_by, bridged_seconds, now())
        })
        .await
    }

    async fn get_callback(&self, tenant: &str, id: Uuid) -> Result<Callback> {
        let tenant = tenant.to_owned();
        self.read(move |tx| get(tx, &tenant, id)).await
    }

    async fn list_callbacks(
        &self,
        tenant: &str,
        filter: &CallbackFilter,
        after: Option<CallbackMark>,
        limit: usize,
    ) -> Result<Vec<Callback>> {
        let tenant = tenant.to_owned();
        let filter = filter.clone();
        self.read(move |tx| list(tx, &tenant, &filter, after, limit))
            .await
    }

    async fn cancel_callback(&self, tenant: &str, id: Uuid) -> Result<CanceledCallback> {
        let tenant = tenant.to_owned();
        self.write(move |tx| cancel(tx, &tenant, id, now())).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::plan;
    use super::*;

    #[tokio::test]
    async fn listings_scan_the_callback_indexes_in_order() {
        for (contact, index, args) in [
            (false, "messages_callbacks_due", 5),
            (true, "messages_callbacks_contact_due", 6),
        ] {
            let explained = plan(&list_sql(contact), args).await;
            assert!(
                explained.contains(&format!("USING INDEX {index}")),
                "{explained}"
            );
            assert!(
                explained.contains("<expr>>?"),
                "the range starts at the position: {explained}"
            );
            assert!(!explained.contains("TEMP B-TREE"), "no sort: {explained}");
        }
    }

    #[tokio::test]
    async fn progress_is_read_and_recorded_by_key() {
        let explained = plan(&get_sql(), 2).await;
        assert!(
            explained.contains("call_progress USING PRIMARY KEY"),
            "{explained}"
        );
        let explained = plan(RECORD, 5).await;
        assert!(
            explained.contains("USING INDEX messages_provider_id"),
            "{explained}"
        );
    }
}
