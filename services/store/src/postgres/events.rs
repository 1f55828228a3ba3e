//! Reading the event log on PostgreSQL.
//!
//! Events are ordered by (transaction id, sequence) and read only below
//! the oldest running transaction (see ARCHITECTURE.md). A page must touch
//! only what it returns, whatever the planner believes about the tables:
//! this machine and many customers' run without autovacuum, so statistics
//! may be missing or years old, and prepared statements switch to generic
//! plans. With poor estimates the planner likes a bitmap scan of every
//! event after the cursor followed by a sort, which reads the whole
//! backlog for each page (a subscriber far behind never catches up). So:
//!
//! - the reads run on their own connections with `enable_sort = off`: the
//!   ordered index scan on `events_position` (or `events_contact_position`
//!   for one contact's events) is the only plan without a sort, and the
//!   LIMIT stops it after one page;
//! - the messages of a page are read by joining the page's ids (`unnest`)
//!   to the primary key, one index probe each;
//! - ORDER BY names the table's columns (`events.xid`): the bare name
//!   would mean the output column `xid::text` and sort transaction ids as
//!   text.
//!
//! [`hot_statements`] lists these statements with sample arguments, so a
//! test can check their generic plans on large tables.

use std::collections::HashMap;

use uuid::Uuid;

use super::json::column;
use super::messages::{MESSAGE_COLUMNS, message_from_row};
use super::{PgStore, db};
use crate::CursorCheck;
use crate::Result;
use crate::events::*;
use crate::parts::EventStore;
use async_trait::async_trait;
use std::time::SystemTime;
use tokio::sync::watch;

/// The connection options of the event-log readers.
pub(super) const READER_OPTIONS: &str = "-c enable_sort=off";

/// A page of events after a cursor, of every contact.
const READ_ALL: &str = "SELECT xid::text AS position_xid, seq, type, time, contact_id, message_id,
        correlation_ref, metadata, payload
     FROM events
     WHERE tenant = $1 AND (xid, seq) > ($2::text::xid8, $3)
       AND xid < pg_snapshot_xmin(pg_current_snapshot())
       AND (cardinality($4::smallint[]) = 0 OR type = ANY($4))
     ORDER BY events.xid, events.seq LIMIT $5";

/// A page of one contact's events after a cursor.
const READ_CONTACT: &str =
    "SELECT xid::text AS position_xid, seq, type, time, contact_id, message_id,
        correlation_ref, metadata, payload
     FROM events
     WHERE tenant = $1 AND contact_id = $5 AND (xid, seq) > ($2::text::xid8, $3)
       AND xid < pg_snapshot_xmin(pg_current_snapshot())
       AND (cardinality($4::smallint[]) = 0 OR type = ANY($4))
     ORDER BY events.xid, events.seq LIMIT $6";

/// The messages a page of events needs, by primary key.
fn page_messages() -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS} FROM unnest($2::uuid[]) AS wanted(message_id)
         JOIN messages ON messages.tenant = $1 AND messages.id = wanted.message_id"
    )
}

/// The newest event a reader can see.
const HEAD: &str = "SELECT xid::text AS position_xid, seq FROM events
     WHERE tenant = $1 AND xid < pg_snapshot_xmin(pg_current_snapshot())
     ORDER BY events.xid DESC, events.seq DESC LIMIT 1";

/// The event at a cursor, by primary key.
const AT: &str = "SELECT xid::text FROM events WHERE seq = $1 AND tenant = $2";

/// A statement on a hot path, with arguments to plan it with (SQL literals).
#[derive(Debug, Clone)]
pub struct HotStatement {
    /// What it does.
    pub name: &'static str,
    /// The statement.
    pub sql: String,
    /// Its parameter types, for PREPARE.
    pub types: &'static str,
    /// Sample arguments, for EXECUTE.
    pub args: &'static str,
    /// The connection options it runs with.
    pub options: &'static str,
}

/// The event log's reads (see the module documentation).
pub fn hot_statements() -> Vec<HotStatement> {
    vec![
        HotStatement {
            name: "read events",
            sql: READ_ALL.to_owned(),
            types: "text, text, bigint, smallint[], bigint",
            args: "'default', '0', 0, '{}', 500",
            options: READER_OPTIONS,
        },
        HotStatement {
            name: "read one contact's events",
            sql: READ_CONTACT.to_owned(),
            types: "text, text, bigint, smallint[], uuid, bigint",
            args: "'default', '0', 0, '{}', '00000000-0000-7000-8000-000000000000', 500",
            options: READER_OPTIONS,
        },
        HotStatement {
            name: "the messages of a page",
            sql: page_messages(),
            types: "text, uuid[]",
            args: "'default', '{00000000-0000-7000-8000-000000000000}'",
            options: READER_OPTIONS,
        },
        HotStatement {
            name: "the log's head",
            sql: HEAD.to_owned(),
            types: "text",
            args: "'default'",
            options: READER_OPTIONS,
        },
    ]
}

impl PgStore {
    async fn reader(&self) -> Result<deadpool_postgres::Object> {
        self.readers.get().await.map_err(super::pool_error)
    }
}

#[async_trait]
impl EventStore for PgStore {
    async fn read_events(
        &self,
        tenant: &str,
        after: Cursor,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let client = self.reader().await?;
        let types: Vec<i16> = filter.types.iter().map(|t| t.code()).collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let xid = after.xid.to_string();
        let rows = match &filter.contact_id {
            None => {
                let stmt = client.prepare_cached(READ_ALL).await.map_err(db)?;
                client
                    .query(&stmt, &[&tenant, &xid, &after.seq, &types, &limit])
                    .await
            }
            Some(contact) => {
                let stmt = client.prepare_cached(READ_CONTACT).await.map_err(db)?;
                client
                    .query(&stmt, &[&tenant, &xid, &after.seq, &types, contact, &limit])
                    .await
            }
        }
        .map_err(db)?;
        let mut read = Vec::with_capacity(rows.len());
        for r in &rows {
            // A type this build does not know (written by a newer one) is
            // skipped rather than failing the whole read.
            let Some(kind) = EventType::from_code(r.get(2)) else {
                continue;
            };
            let payload: StoredPayload = column(r, 8)?;
            read.push((r, kind, payload));
        }
        // Message events store the message's state; the rest comes from the
        // messages, read once each.
        let mut wanted: Vec<Uuid> = read
            .iter()
            .filter(|(_, _, p)| p.needs_message())
            .filter_map(|(r, _, _)| r.get::<_, Option<Uuid>>(5))
            .collect();
        wanted.sort();
        wanted.dedup();
        let mut messages = HashMap::with_capacity(wanted.len());
        if !wanted.is_empty() {
            let stmt = client.prepare_cached(&page_messages()).await.map_err(db)?;
            for row in client.query(&stmt, &[&tenant, &wanted]).await.map_err(db)? {
                let message = message_from_row(&row)?;
                messages.insert(message.id, message);
            }
        }
        read.into_iter()
            .map(|(r, kind, payload)| {
                let contact_id: Option<Uuid> = r.get(4);
                let message_id: Option<Uuid> = r.get(5);
                let message = message_id.and_then(|id| messages.get(&id).cloned());
                Ok(Event {
                    cursor: Cursor {
                        xid: r.get::<_, &str>(0).parse().unwrap_or_default(),
                        seq: r.get(1),
                    },
                    kind,
                    time: r.get(3),
                    contact_id,
                    message_id,
                    correlation_ref: r.get(6),
                    metadata: column(r, 7)?,
                    route: payload.route_change(),
                    payload: payload.into_payload(message, contact_id),
                })
            })
            .collect()
    }

    async fn event_head(&self, tenant: &str) -> Result<Cursor> {
        let client = self.reader().await?;
        let stmt = client.prepare_cached(HEAD).await.map_err(db)?;
        let row = client.query_opt(&stmt, &[&tenant]).await.map_err(db)?;
        Ok(row
            .map(|r| Cursor {
                xid: r.get::<_, &str>(0).parse().unwrap_or_default(),
                seq: r.get(1),
            })
            .unwrap_or_default())
    }

    async fn cursor_before(&self, tenant: &str, time: SystemTime) -> Result<Cursor> {
        // On a plain connection: the time's BRIN index finds the few
        // recent events, then they are sorted by position.
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT xid::text, seq FROM events
                 WHERE tenant = $1 AND time >= $2
                   AND xid < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY events.xid, events.seq LIMIT 1",
            )
            .await
            .map_err(db)?;
        match client
            .query_opt(&stmt, &[&tenant, &time])
            .await
            .map_err(db)?
        {
            Some(r) => Ok(Cursor {
                xid: r.get::<_, &str>(0).parse().unwrap_or_default(),
                seq: r.get::<_, i64>(1) - 1,
            }),
            None => {
                drop(client);
                self.event_head(tenant).await
            }
        }
    }

    async fn check_cursor(&self, tenant: &str, cursor: Cursor) -> Result<CursorCheck> {
        let client = self.reader().await?;
        let stmt = client.prepare_cached(AT).await.map_err(db)?;
        let issued = client
            .query_opt(&stmt, &[&cursor.seq, &tenant])
            .await
            .map_err(db)?
            .is_some_and(|r| r.get::<_, &str>(0).parse() == Ok(cursor.xid));
        if issued {
            return Ok(CursorCheck::Issued);
        }
        drop(client);
        let head = self.event_head(tenant).await?;
        Ok(crate::events::unissued(cursor, head))
    }

    async fn prune_events(&self, before: SystemTime) -> Result<u64> {
        let client = self.client().await?;
        // Attempts go with the events they delivered.
        client
            .execute("DELETE FROM endpoint_attempts WHERE time < $1", &[&before])
            .await
            .map_err(db)?;
        client
            .execute("DELETE FROM events WHERE time < $1", &[&before])
            .await
            .map_err(db)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.signals.changes.subscribe()
    }
}
