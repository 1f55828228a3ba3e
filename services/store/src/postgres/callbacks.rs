//! Callbacks on PostgreSQL: recording call progress, reading, listing and
//! canceling callbacks, and the progress a change of callbacks' messages
//! reads to write their `CallbackChanged` events ([`progress_of`]).
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
//!   its update time, so the message's columns keep their names), and its
//!   send job's due time (its next call) read by primary key per row.
//!
//! [`hot_statements`] lists them with sample arguments for
//! `tests/plans.rs`.

use std::collections::HashMap;
use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use omniroute_channel::Channel;
use tokio_postgres::Row;
use uuid::Uuid;

use super::events::HotStatement;
use super::messages::{MESSAGE_COLUMNS, append_events, message_at, write_messages};
use super::{PgStore, db};
use crate::Result;
use crate::callbacks::*;
use crate::events::status_event;
use crate::messages::Message;
use crate::model::now;
use crate::parts::CallbackStore;
use crate::refusals::{cancel_check, found_callback};
use async_trait::async_trait;

/// Upserts the progress of the callback with a provider id (see
/// [`crate::CallbackStore::record_call_progress`]). The message is found through
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
/// sub-select [`PROGRESS_JOIN`] names `p`, then the due time of the
/// callback's send job (its next call), if it has one: a scalar sub-select
/// by primary key, which the planner runs per row listed (a join there may
/// become a scan of the whole queue).
const PROGRESS_COLUMNS: &str = "p.call_id, p.answered_by, p.bridged_seconds, p.progress_time,
     (SELECT due_time FROM dispatch_jobs
      WHERE dispatch_jobs.message_id = messages.id AND dispatch_jobs.kind = 0) AS next_call";

/// The first column of the progress columns.
const PROGRESS_AT: usize = super::messages::MESSAGE_WIDTH;

/// Joins each message's progress by primary key (its update time renamed,
/// so the message's columns keep their names).
const PROGRESS_JOIN: &str = "LEFT JOIN LATERAL (
         SELECT call_id, answered_by, bridged_seconds, update_time AS progress_time
         FROM call_progress
         WHERE call_progress.tenant = messages.tenant AND call_progress.message_id = messages.id
     ) p ON true";

/// The progress of callbacks, by primary key ($1 tenants, $2 ids).
const PROGRESS_OF: &str = "SELECT p.message_id, p.call_id, p.answered_by, p.bridged_seconds,
            p.update_time
     FROM call_progress p
     JOIN unnest($1::text[], $2::uuid[]) AS k(tenant, id)
       ON p.tenant = k.tenant AND p.message_id = k.id";

/// The callback a provider's call id names ($1 channel, $2 call id),
/// found through `messages_provider_id` as [`RECORD`] finds it.
const BY_CALL: &str = "WITH found AS MATERIALIZED (
         SELECT tenant, id, content FROM messages
         WHERE channel = $1 AND provider_message_id = $2 AND direction = 1
     )
     SELECT tenant, id FROM found WHERE content->>'type' = 'callback_request'";

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
        format!(
            "AND messages.contact_id = (
             SELECT CASE WHEN c.state = {merged} THEN c.merged_into ELSE c.id END
             FROM contacts c WHERE c.tenant = $1 AND c.id = $6)",
            merged = crate::model::ContactState::Merged.code()
        )
    } else {
        String::new()
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
            name: "the progress of callbacks",
            sql: PROGRESS_OF.to_owned(),
            types: "text[], uuid[]",
            args: "'{default,default}',
                   '{00000000-0000-7000-8000-000000000000,00000000-0000-7000-8000-000000000001}'",
            options: "",
        },
        HotStatement {
            name: "the callback of a call",
            sql: BY_CALL.to_owned(),
            types: "text, text",
            args: "'voice', 'call-2'",
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

/// Reads a message (from column 0), its progress and its next call.
fn callback_from_row(r: &Row) -> Result<Callback> {
    let message = message_at(r, 0)?;
    let progress = progress_from_columns(
        r.get(PROGRESS_AT),
        r.get(PROGRESS_AT + 1),
        r.get(PROGRESS_AT + 2),
        r.get::<_, Option<SystemTime>>(PROGRESS_AT + 3),
    );
    Ok(Callback {
        message,
        progress,
        next_call: r.get(PROGRESS_AT + 4),
    })
}

/// The progress of those of `messages` that are callbacks, by id, in one
/// statement (none when none is a callback).
pub(super) async fn progress_of(
    c: &impl GenericClient,
    messages: &[(&str, &Message)],
) -> Result<HashMap<Uuid, CallProgress>> {
    let (tenants, ids): (Vec<&str>, Vec<Uuid>) = messages
        .iter()
        .filter(|(_, m)| is_callback(m))
        .map(|(t, m)| (*t, m.id))
        .unzip();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let stmt = c.prepare_cached(PROGRESS_OF).await.map_err(db)?;
    let rows = c.query(&stmt, &[&tenants, &ids]).await.map_err(db)?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let progress = progress_from_columns(
                r.get(1),
                r.get(2),
                r.get(3),
                r.get::<_, Option<SystemTime>>(4),
            )?;
            Some((r.get(0), progress))
        })
        .collect())
}

#[async_trait]
impl CallbackStore for PgStore {
    /// [`crate::CallbackStore::record_call_progress`]: the callback is locked, its
    /// progress upserted, and its event written when its state moved (the
    /// customer answered), in one transaction.
    async fn record_call_progress(
        &self,
        channel: Channel,
        call_id: &str,
        answered_by: Option<&str>,
        bridged_seconds: Option<u32>,
    ) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let found = tx
            .query_opt(BY_CALL, &[&channel.as_str(), &call_id])
            .await
            .map_err(db)?;
        let Some(found) = found else {
            return Ok(false);
        };
        let (tenant, id): (String, Uuid) = (found.get(0), found.get(1));
        let message = super::messages::lock_message(&tx, &tenant, id).await?;
        let before = progress_of(&tx, &[(&tenant, &message)]).await?.remove(&id);
        let was = callback_state(&message, before.as_ref());
        let stmt = tx.prepare_cached(RECORD).await.map_err(db)?;
        let bridged = bridged_seconds.map(i64::from);
        let now = now();
        let written = tx
            .execute(
                &stmt,
                &[&channel.as_str(), &call_id, &answered_by, &bridged, &now],
            )
            .await
            .map_err(db)?;
        let callback = Callback {
            progress: progress_of(&tx, &[(&tenant, &message)]).await?.remove(&id),
            message,
            next_call: None,
        };
        let changed = callback_event(Some(was), &callback);
        if let Some(event) = &changed {
            append_events(&tx, &tenant, std::slice::from_ref(event), now).await?;
        }
        tx.commit().await.map_err(db)?;
        if changed.is_some() {
            self.bump();
        }
        Ok(written > 0)
    }

    /// [`crate::CallbackStore::get_callback`].
    async fn get_callback(&self, tenant: &str, id: Uuid) -> Result<Callback> {
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

    /// [`crate::CallbackStore::list_callbacks`]: one statement, by index.
    async fn list_callbacks(
        &self,
        tenant: &str,
        filter: &CallbackFilter,
        after: Option<CallbackMark>,
        limit: usize,
    ) -> Result<Vec<Callback>> {
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

    /// [`crate::CallbackStore::cancel_callback`]: the callback locked, checked,
    /// canceled with its job deleted and its events written, in one
    /// transaction.
    async fn cancel_callback(&self, tenant: &str, id: Uuid) -> Result<CanceledCallback> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let stmt = tx
            .prepare_cached(&format!("{} FOR UPDATE OF messages", get_sql()))
            .await
            .map_err(db)?;
        let found = tx
            .query_opt(&stmt, &[&tenant, &id])
            .await
            .map_err(db)?
            .map(|r| callback_from_row(&r))
            .transpose()?;
        let mut callback = found_callback(found, id)?;
        let ringing = cancel_check(&callback)?;
        let now = now();
        super::messages::take_job(&tx, id, now).await?;
        // A call placed for it waits for no report any more.
        tx.execute("DELETE FROM awaiting_status WHERE message_id = $1", &[&id])
            .await
            .map_err(db)?;
        let was = callback.state();
        let status = callback.message.status;
        cancel(&mut callback.message, now);
        callback.next_call = None;
        let mut events = vec![status_event(status, &callback.message)];
        events.extend(callback_event(Some(was), &callback));
        write_messages(&tx, &[(tenant, &callback.message)]).await?;
        append_events(&tx, tenant, &events, now).await?;
        tx.commit().await.map_err(db)?;
        self.bump();
        Ok(CanceledCallback { callback, ringing })
    }
}
