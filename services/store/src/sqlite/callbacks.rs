//! Callbacks on SQLite: recording call progress, reading and listing
//! callbacks. Called inside the transactions of the `Store` methods in
//! `mod.rs`.
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

use super::messages::{message_columns, message_row};
use super::{db, json};
use crate::Result;
use crate::callbacks::*;
use crate::messages::Message;
use crate::model::{from_micros, to_micros};

/// Upserts the progress of the callback with a provider id (see
/// [`crate::Store::record_call_progress`]); the message is found through
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
/// [`PROGRESS_JOIN`] names `p`.
const PROGRESS_COLUMNS: &str = "p.call_id, p.answered_by, p.bridged_seconds, p.progress_time";

/// The first column of the progress columns.
const PROGRESS_AT: usize = super::messages::MESSAGE_WIDTH;

/// Joins each message's progress by primary key (its tenant and update
/// time renamed, so the message's columns keep their names).
const PROGRESS_JOIN: &str = "LEFT JOIN (
         SELECT tenant AS progress_tenant, message_id, call_id, answered_by, bridged_seconds,
                update_time AS progress_time
         FROM call_progress
     ) p ON p.progress_tenant = messages.tenant AND p.message_id = messages.id";

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
        "AND messages.contact_id = (
             SELECT CASE WHEN state = 3 THEN merged_into ELSE id END
             FROM contacts WHERE tenant = ?1 AND id = ?6)"
    } else {
        ""
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

/// Reads a message (from column 0) and its progress.
fn callback_row(r: &Row<'_>) -> rusqlite::Result<(Message, Option<CallProgress>)> {
    let message = message_row(r)?;
    let progress = progress_from_columns(
        r.get(PROGRESS_AT)?,
        r.get(PROGRESS_AT + 1)?,
        r.get(PROGRESS_AT + 2)?,
        r.get::<_, Option<i64>>(PROGRESS_AT + 3)?.map(from_micros),
    );
    Ok((message, progress))
}

/// [`crate::Store::record_call_progress`]: one upsert.
pub(super) fn record(
    tx: &Connection,
    channel: Channel,
    call_id: &str,
    answered_by: Option<&str>,
    bridged_seconds: Option<u32>,
    now: SystemTime,
) -> Result<bool> {
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
    Ok(written > 0)
}

/// [`crate::Store::get_callback`].
pub(super) fn get(
    tx: &Connection,
    tenant: &str,
    id: Uuid,
) -> Result<(Message, Option<CallProgress>)> {
    let found = tx
        .prepare_cached(&get_sql())
        .map_err(db)?
        .query_row(params![tenant, id.to_string()], callback_row)
        .optional()
        .map_err(db)?;
    found_callback(found, id)
}

/// [`crate::Store::list_callbacks`]: one statement, by index.
pub(super) fn list(
    tx: &Connection,
    tenant: &str,
    filter: &CallbackFilter,
    after: Option<CallbackMark>,
    limit: usize,
) -> Result<Vec<(Message, Option<CallProgress>)>> {
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
