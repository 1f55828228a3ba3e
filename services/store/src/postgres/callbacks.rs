//! Callbacks on PostgreSQL: recording call progress, reading and listing
//! callbacks.
//!
//! A listing is one ordered range scan of a partial index that holds
//! callbacks only (`messages_callbacks_due`, or
//! `messages_callbacks_contact_due` for one contact's; see
//! `migrations/postgres/0010_callbacks.sql`), stopped by the LIMIT after
//! one page, whatever the plan cache decides:
//!
//! - the statements repeat the indexes' predicate and key expressions
//!   literally (a parameter in their place would not prove the partial
//!   index applies in a generic plan);
//! - the position is a row comparison on the index's columns, an index
//!   condition; the first page compares with (-infinity, nil), so one text
//!   serves both;
//! - a contact's listing has its own text, its contact resolved (merged
//!   ids stand for their survivor) by a sub-select on the primary key, so
//!   that the contact is an index condition too;
//! - a status filter is applied to the rows the index scan yields;
//! - each callback's progress is joined by primary key (a nested loop,
//!   which keeps the index order, so no sort; the sub-select only renames
//!   its update time, so the message's columns keep their names).
//!
//! [`hot_statements`] lists them with sample arguments for
//! `tests/plans.rs`.

use std::time::SystemTime;

use omniroute_channel::Channel;
use tokio_postgres::Row;
use uuid::Uuid;

use super::events::HotStatement;
use super::messages::{MESSAGE_COLUMNS, message_at};
use super::{PgStore, db};
use crate::Result;
use crate::callbacks::*;
use crate::messages::Message;
use crate::model::now;

/// Upserts the progress of the callback with a provider id (see
/// [`crate::Store::record_call_progress`]). The message is found through
/// `messages_provider_id` first, and kept only if it is a callback: with
/// the callback test in the same WHERE clause, the planner may also scan a
/// whole callbacks index (its predicate is that test) and AND the bitmaps,
/// so the lookup is a materialized CTE, which no condition is pushed into.
const RECORD: &str = "WITH found AS MATERIALIZED (
         SELECT tenant, id, content FROM messages
         WHERE channel = $1 AND provider_message_id = $2 AND direction = 1
     )
     INSERT INTO call_progress
            (tenant, message_id, call_id, answered_by, bridged_seconds, update_time)
     SELECT tenant, id, $2::text, COALESCE($3::text, ''), $4::bigint, $5::timestamptz
     FROM found
     WHERE content->>'type' = 'callback_request'
     ON CONFLICT (tenant, message_id) DO UPDATE SET
         call_id = EXCLUDED.call_id,
         answered_by = CASE WHEN call_progress.call_id = EXCLUDED.call_id
                            THEN COALESCE($3, call_progress.answered_by)
                            ELSE EXCLUDED.answered_by END,
         bridged_seconds = CASE WHEN call_progress.call_id = EXCLUDED.call_id
                                THEN COALESCE($4, call_progress.bridged_seconds)
                                ELSE EXCLUDED.bridged_seconds END,
         update_time = EXCLUDED.update_time";

/// The progress columns after [`MESSAGE_COLUMNS`], from the lateral
/// sub-select [`PROGRESS_JOIN`] names `p`.
const PROGRESS_COLUMNS: &str = "p.call_id, p.answered_by, p.bridged_seconds, p.progress_time";

/// The first column of the progress columns.
const PROGRESS_AT: usize = super::messages::MESSAGE_WIDTH;

/// Joins each message's progress by primary key (its update time renamed,
/// so the message's columns keep their names).
const PROGRESS_JOIN: &str = "LEFT JOIN LATERAL (
         SELECT call_id, answered_by, bridged_seconds, update_time AS progress_time
         FROM call_progress
         WHERE call_progress.tenant = messages.tenant AND call_progress.message_id = messages.id
     ) p ON true";

/// One message of a tenant with its progress.
fn get_sql() -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS}, {PROGRESS_COLUMNS} FROM messages {PROGRESS_JOIN}
         WHERE messages.tenant = $1 AND messages.id = $2"
    )
}

/// A page of a tenant's callbacks after a position ($2, $3; NULL for the
/// first page), in statuses $4 (empty: any), at most $5; with `contact`,
/// only the callbacks of the contact $6 resolves to.
fn list_sql(contact: bool) -> String {
    let contact = if contact {
        "AND messages.contact_id = (
             SELECT CASE WHEN c.state = 3 THEN c.merged_into ELSE c.id END
             FROM contacts c WHERE c.tenant = $1 AND c.id = $6)"
    } else {
        ""
    };
    format!(
        "SELECT {MESSAGE_COLUMNS}, {PROGRESS_COLUMNS} FROM messages {PROGRESS_JOIN}
         WHERE messages.tenant = $1 {contact}
           AND messages.direction = 1 AND messages.content->>'type' = 'callback_request'
           AND (COALESCE(messages.send_time, messages.create_time), messages.id)
               > (COALESCE($2::timestamptz, '-infinity'),
                  COALESCE($3::uuid, '00000000-0000-0000-0000-000000000000'))
           AND (cardinality($4::smallint[]) = 0 OR messages.status = ANY($4))
         ORDER BY COALESCE(messages.send_time, messages.create_time), messages.id
         LIMIT $5"
    )
}

/// The callback statements (see the module documentation), with sample
/// arguments.
pub(super) fn hot_statements() -> Vec<HotStatement> {
    let list = "text, timestamptz, uuid, smallint[], bigint";
    let list_contact = "text, timestamptz, uuid, smallint[], bigint, uuid";
    vec![
        HotStatement {
            name: "list callbacks",
            sql: list_sql(false),
            types: list,
            args: "'default', NULL, NULL, '{}', 500",
            options: "",
        },
        HotStatement {
            name: "list callbacks after a position, in some statuses",
            sql: list_sql(false),
            types: list,
            args: "'default', now(), '00000000-0000-7000-8000-000000000000', '{2,3}', 500",
            options: "",
        },
        HotStatement {
            name: "list one contact's callbacks",
            sql: list_sql(true),
            types: list_contact,
            args: "'default', NULL, NULL, '{}', 500, '00000000-0000-7000-8000-000000000000'",
            options: "",
        },
        HotStatement {
            name: "list one contact's callbacks after a position, in some statuses",
            sql: list_sql(true),
            types: list_contact,
            args: "'default', now(), '00000000-0000-7000-8000-000000000000', '{2,3}', 500,
                   '00000000-0000-7000-8000-000000000000'",
            options: "",
        },
        HotStatement {
            name: "get a callback",
            sql: get_sql(),
            types: "text, uuid",
            args: "'default', '00000000-0000-7000-8000-000000000000'",
            options: "",
        },
        HotStatement {
            name: "record call progress",
            sql: RECORD.to_owned(),
            types: "text, text, text, bigint, timestamptz",
            args: "'voice', 'call-2', 'human', 30, now()",
            options: "",
        },
    ]
}

/// Reads a message (from column 0) and its progress.
fn callback_from_row(r: &Row) -> Result<(Message, Option<CallProgress>)> {
    let message = message_at(r, 0)?;
    let progress = progress_from_columns(
        r.get(PROGRESS_AT),
        r.get(PROGRESS_AT + 1),
        r.get(PROGRESS_AT + 2),
        r.get::<_, Option<SystemTime>>(PROGRESS_AT + 3),
    );
    Ok((message, progress))
}

impl PgStore {
    /// [`crate::Store::record_call_progress`]: one upsert.
    pub(super) async fn record_progress(
        &self,
        channel: Channel,
        call_id: &str,
        answered_by: Option<&str>,
        bridged_seconds: Option<u32>,
    ) -> Result<bool> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(RECORD).await.map_err(db)?;
        let bridged = bridged_seconds.map(i64::from);
        let written = client
            .execute(
                &stmt,
                &[&channel.as_str(), &call_id, &answered_by, &bridged, &now()],
            )
            .await
            .map_err(db)?;
        Ok(written > 0)
    }

    /// [`crate::Store::get_callback`].
    pub(super) async fn callback(
        &self,
        tenant: &str,
        id: Uuid,
    ) -> Result<(Message, Option<CallProgress>)> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(&get_sql()).await.map_err(db)?;
        let found = client
            .query_opt(&stmt, &[&tenant, &id])
            .await
            .map_err(db)?
            .map(|r| callback_from_row(&r))
            .transpose()?;
        found_callback(found, id)
    }

    /// [`crate::Store::list_callbacks`]: one statement, by index.
    pub(super) async fn callbacks(
        &self,
        tenant: &str,
        filter: &CallbackFilter,
        after: Option<CallbackMark>,
        limit: usize,
    ) -> Result<Vec<(Message, Option<CallProgress>)>> {
        let client = self.client().await?;
        let due = after.map(|a| a.due);
        let after_id = after.map(|a| a.id);
        let statuses = status_codes(filter);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match &filter.contact_id {
            None => {
                let stmt = client.prepare_cached(&list_sql(false)).await.map_err(db)?;
                client
                    .query(&stmt, &[&tenant, &due, &after_id, &statuses, &limit])
                    .await
            }
            Some(contact) => {
                let stmt = client.prepare_cached(&list_sql(true)).await.map_err(db)?;
                client
                    .query(
                        &stmt,
                        &[&tenant, &due, &after_id, &statuses, &limit, contact],
                    )
                    .await
            }
        }
        .map_err(db)?;
        rows.iter().map(callback_from_row).collect()
    }
}
