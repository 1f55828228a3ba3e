//! Accepting messages on PostgreSQL, with group commit.
//!
//! A send is answered only after its message, dispatch job and event are
//! committed; committing each send alone would cost a transaction, a WAL
//! flush and half a dozen round trips apiece. Instead every call hands its
//! prepared rows to a queue, and a few writer tasks each take whatever has
//! arrived while their last commit was in flight (up to [`MAX_ROWS`]) and
//! write it with **one statement**: one implicit transaction, one round trip,
//! one WAL flush for the lot. A caller is answered when the statement that
//! carried its rows has committed, and not before.
//!
//! The statement, per row:
//! - locks the contact row `FOR KEY SHARE` (in id order, as merges lock) and
//!   writes the message only if the contact is active and still at the
//!   version its route was decided on. A merge, erasure or preference
//!   change locks the row `FOR UPDATE`, so it waits for sends in flight to
//!   the contact (and then sees their messages), and sends that waited on it
//!   see its new version and are routed again;
//! - skips a message whose idempotency key is already used in the tenant
//!   (the caller answers from the stored message), and loses a race for a
//!   key cleanly (`ON CONFLICT DO NOTHING`);
//! - writes the job and the `MessageAccepted` event of every message it
//!   wrote, in the same statement.
//!
//! Rows are serialized by the caller's task, so a writer only writes. If a
//! combined statement fails, its rows are written one by one, so one bad row
//! fails alone.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::SystemTime;

use deadpool_postgres::Pool;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::json::RawJson;
use super::signals::Signals;
use super::{PgStore, db, messages};
use crate::events::*;
use crate::messages::*;
use crate::model::{ContactState, now};
use crate::parts::MessageStore;
use crate::{Result, StoreError};

/// Most rows one statement writes.
const MAX_ROWS: usize = 1000;

/// Calls waiting for a writer, at most; further callers wait for room.
const QUEUE_DEPTH: usize = 4096;

/// How often a message is resubmitted after losing its idempotency key to a
/// row that then did not commit.
const KEY_ROUNDS: usize = 3;

/// A message ready to be written: its stored form and its columns.
#[derive(Debug)]
struct Row {
    tenant: String,
    message: Message,
    contact_version: i64,
    due: SystemTime,
    key: Option<String>,
    hash: String,
    content: RawJson,
    overrides: RawJson,
    metadata: RawJson,
    history: RawJson,
    route: RawJson,
    payload: RawJson,
    /// The `MessageDeferred` event's payload, when quiet hours hold it.
    deferred: Option<RawJson>,
    /// The `CallbackChanged` event's payload, for a callback (scheduled).
    callback: Option<RawJson>,
}

impl Row {
    fn prepare(tenant: &str, new: NewMessage, now: SystemTime) -> Result<Row> {
        if new.route.plan.is_empty() {
            return Err(StoreError::backend(std::io::Error::other(
                "empty route plan",
            )));
        }
        let contact_version = new.contact_version;
        let key = new.idempotency_key.clone();
        let hash = new.request_hash.clone();
        let (message, due) = outbound_message(new, now);
        let deferred = match deferred_event(&message, due) {
            Some(event) => Some(RawJson::of(&event.payload)?),
            None => None,
        };
        let scheduled = crate::Callback {
            message,
            progress: None,
            next_call: Some(due),
        };
        let callback = match crate::callback_event(None, &scheduled) {
            Some(event) => Some(RawJson::of(&event.payload)?),
            None => None,
        };
        let message = scheduled.message;
        Ok(Row {
            deferred,
            callback,
            tenant: tenant.to_owned(),
            contact_version,
            due,
            key,
            hash,
            content: RawJson::of(&message.content)?,
            overrides: RawJson::of(&message.overrides)?,
            metadata: RawJson::of(&message.metadata)?,
            history: RawJson::of(&message.history)?,
            route: RawJson::of(&message.route)?,
            payload: message_state_json(&message)
                .map(RawJson::from_text)
                .map_err(StoreError::backend)?,
            message,
        })
    }
}

/// What the statement did with a row.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Written, with its job and event.
    Inserted,
    /// Its idempotency key was used before, by this message.
    KeyUsed { id: Uuid, hash: String },
    /// Its idempotency key went to another row meanwhile: look it up.
    KeyRaced,
    /// The contact is not at the version the route was decided on (or was
    /// merged, or is gone).
    ContactChanged,
    /// The contact is erased.
    Erased,
}

/// One call's rows and where to answer.
#[derive(Debug)]
struct Batch {
    rows: Vec<Arc<Row>>,
    reply: oneshot::Sender<Result<Vec<Outcome>>>,
}

/// The queue in front of the writers.
#[derive(Debug, Clone)]
pub(super) struct AcceptQueue(mpsc::Sender<Batch>);

/// Starts `writers` writer tasks on `pool`; they end when the last clone of
/// the returned queue is dropped.
pub(super) fn start(pool: Pool, signals: Arc<Signals>, writers: usize) -> AcceptQueue {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let rx = Arc::new(Mutex::new(rx));
    for _ in 0..writers.max(1) {
        tokio::spawn(writer(pool.clone(), Arc::clone(&rx), Arc::clone(&signals)));
    }
    AcceptQueue(tx)
}

async fn writer(pool: Pool, queue: Arc<Mutex<mpsc::Receiver<Batch>>>, signals: Arc<Signals>) {
    loop {
        // Take what has arrived while the last statement was in flight.
        let batches = {
            let mut rx = queue.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut rows = first.rows.len();
            let mut batches = vec![first];
            while rows < MAX_ROWS {
                match rx.try_recv() {
                    Ok(batch) => {
                        rows += batch.rows.len();
                        batches.push(batch);
                    }
                    Err(_) => break,
                }
            }
            batches
        };
        let rows: Vec<&Row> = batches
            .iter()
            .flat_map(|b| b.rows.iter().map(|r| &**r))
            .collect();
        let outcomes: Vec<Result<Outcome>> = match write(&pool, &rows).await {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            // The database is unreachable or the group conflicted: every
            // send of the group is answered so (and may be retried), rather
            // than tried again one by one against a database that is down.
            Err(e) if e.is_transient() => {
                let text = crate::error_chain(&e);
                rows.iter().map(|_| Err(e.like(text.clone()))).collect()
            }
            Err(e) if rows.len() > 1 => {
                tracing::warn!(error = %e, rows = rows.len(), "group accept failed; writing its messages one by one");
                let mut each = Vec::with_capacity(rows.len());
                for row in &rows {
                    each.push(
                        write(&pool, std::slice::from_ref(row))
                            .await
                            .map(|mut o| o.pop().unwrap_or(Outcome::KeyRaced)),
                    );
                }
                each
            }
            Err(e) => vec![Err(e)],
        };
        if outcomes.iter().any(|o| matches!(o, Ok(Outcome::Inserted))) {
            signals.bump(true);
        }
        let mut outcomes = outcomes.into_iter();
        for batch in batches {
            let mine: Result<Vec<Outcome>> = outcomes.by_ref().take(batch.rows.len()).collect();
            let _ = batch.reply.send(mine);
        }
    }
}

/// The statement (see the module documentation). Parameters `$1`–`$22`,
/// `$25` and `$26` are arrays with one element per row, `$23`–`$24` the
/// distinct contacts; the answer has one row per input row, in order.
///
/// The contacts are locked from their own small arrays: a row lock over a
/// join makes PostgreSQL carry whole copies of the other side's rows (for
/// rechecks), which for the message rows would mean copying and comparing
/// every payload.
static ACCEPT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "
WITH contact AS (
    SELECT c.tenant, c.id, c.version, c.state FROM contacts c
    WHERE (c.tenant, c.id) IN (SELECT * FROM unnest($23::text[], $24::uuid[]))
    ORDER BY c.tenant, c.id
    FOR KEY SHARE OF c
),
input AS (
    SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[],
                         $6::text[], $7::smallint[], $8::smallint[], $9::jsonb[], $10::jsonb[],
                         $11::text[], $12::jsonb[], $13::timestamptz[], $14::timestamptz[],
                         $15::uuid[], $16::jsonb[], $17::jsonb[], $18::text[], $19::text[],
                         $20::timestamptz[], $21::timestamptz[], $22::jsonb[], $25::jsonb[],
                         $26::jsonb[])
        WITH ORDINALITY AS i(tenant, id, contact_id, version, category, channel, priority,
                             status, content, overrides, correlation_ref, metadata, send_time,
                             expire_time, reply_to, history, route, idempotency_key,
                             request_hash, time, due, payload, deferred, callback, n)
),
used AS (
    SELECT m.tenant, m.idempotency_key, m.id, m.request_hash FROM messages m
    WHERE (m.tenant, m.idempotency_key) IN
          (SELECT tenant, idempotency_key FROM input WHERE idempotency_key IS NOT NULL)
),
fit AS (
    SELECT i.n FROM input i
    JOIN contact c ON c.tenant = i.tenant AND c.id = i.contact_id
                  AND c.version = i.version AND c.state = {active}
    WHERE NOT EXISTS (SELECT 1 FROM used u
                      WHERE u.tenant = i.tenant AND u.idempotency_key = i.idempotency_key)
),
inserted AS (
    INSERT INTO messages (tenant, id, contact_id, direction, category, channel, priority, status,
                          content, overrides, correlation_ref, metadata, send_time, expire_time,
                          reply_to, history, attempts, route, idempotency_key, request_hash,
                          create_time, update_time)
    SELECT tenant, id, contact_id, 1, category, channel, priority, status, content, overrides,
           correlation_ref, metadata, send_time, expire_time, reply_to, history, '[]', route,
           idempotency_key, request_hash, time, time
    FROM input JOIN fit USING (n) ORDER BY n
    ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING tenant, id
),
jobs AS (
    INSERT INTO dispatch_jobs (message_id, tenant, priority, due_time)
    SELECT i.id, i.tenant, i.priority, i.due FROM input i JOIN inserted USING (tenant, id)
),
logged AS (
    INSERT INTO events (tenant, type, time, contact_id, message_id, correlation_ref, metadata,
                        payload)
    SELECT e.tenant, e.type, e.time, e.contact_id, e.id, e.correlation_ref, e.metadata, e.payload
    FROM (
        SELECT i.tenant, 1 AS type, i.time, i.contact_id, i.id, i.correlation_ref, i.metadata,
               i.payload, i.n
        FROM input i JOIN inserted USING (tenant, id)
        UNION ALL
        SELECT i.tenant, 8, i.time, i.contact_id, i.id, i.correlation_ref, i.metadata,
               i.callback, i.n
        FROM input i JOIN inserted USING (tenant, id) WHERE i.callback IS NOT NULL
        UNION ALL
        SELECT i.tenant, 9, i.time, i.contact_id, i.id, i.correlation_ref, i.metadata,
               i.deferred, i.n
        FROM input i JOIN inserted USING (tenant, id) WHERE i.deferred IS NOT NULL
    ) e ORDER BY e.n, e.type
)
SELECT c.version, c.state, u.id, u.request_hash, ins.id IS NOT NULL
FROM input i
LEFT JOIN contact c ON c.tenant = i.tenant AND c.id = i.contact_id
LEFT JOIN used u ON u.tenant = i.tenant AND u.idempotency_key = i.idempotency_key
LEFT JOIN inserted ins ON ins.tenant = i.tenant AND ins.id = i.id
ORDER BY i.n",
        active = ContactState::Active.code()
    )
});

/// Writes rows with one statement; one outcome per row, in order.
async fn write(pool: &Pool, rows: &[&Row]) -> Result<Vec<Outcome>> {
    // A key twice among these rows: the first takes it, the others look it
    // up afterwards (a replay of the first, or a conflict).
    let mut keys = HashSet::new();
    let (rows, skipped): (Vec<&Row>, Vec<bool>) = {
        let mut written = Vec::with_capacity(rows.len());
        let mut skipped = Vec::with_capacity(rows.len());
        for row in rows {
            let repeat = row
                .key
                .as_ref()
                .is_some_and(|k| !keys.insert((row.tenant.as_str(), k.as_str())));
            if !repeat {
                written.push(*row);
            }
            skipped.push(repeat);
        }
        (written, skipped)
    };
    let tenants: Vec<&str> = rows.iter().map(|r| r.tenant.as_str()).collect();
    let ids: Vec<Uuid> = rows.iter().map(|r| r.message.id).collect();
    let contacts: Vec<Uuid> = rows.iter().map(|r| r.message.contact_id).collect();
    let versions: Vec<i64> = rows.iter().map(|r| r.contact_version).collect();
    let categories: Vec<&str> = rows.iter().map(|r| r.message.category.as_str()).collect();
    let channels: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.message.channel.map(|c| c.as_str()))
        .collect();
    let priorities: Vec<i16> = rows.iter().map(|r| r.message.priority.code()).collect();
    let statuses: Vec<i16> = rows.iter().map(|r| r.message.status.code()).collect();
    let contents: Vec<&RawJson> = rows.iter().map(|r| &r.content).collect();
    let overrides: Vec<&RawJson> = rows.iter().map(|r| &r.overrides).collect();
    let refs: Vec<&str> = rows
        .iter()
        .map(|r| r.message.correlation_ref.as_str())
        .collect();
    let metadata: Vec<&RawJson> = rows.iter().map(|r| &r.metadata).collect();
    let send_times: Vec<Option<SystemTime>> = rows.iter().map(|r| r.message.send_time).collect();
    let expire_times: Vec<Option<SystemTime>> =
        rows.iter().map(|r| r.message.expire_time).collect();
    let reply_tos: Vec<Option<Uuid>> = rows.iter().map(|r| r.message.reply_to).collect();
    let histories: Vec<&RawJson> = rows.iter().map(|r| &r.history).collect();
    let routes: Vec<&RawJson> = rows.iter().map(|r| &r.route).collect();
    let row_keys: Vec<Option<&str>> = rows.iter().map(|r| r.key.as_deref()).collect();
    let hashes: Vec<&str> = rows.iter().map(|r| r.hash.as_str()).collect();
    let times: Vec<SystemTime> = rows.iter().map(|r| r.message.create_time).collect();
    let dues: Vec<SystemTime> = rows.iter().map(|r| r.due).collect();
    let payloads: Vec<&RawJson> = rows.iter().map(|r| &r.payload).collect();
    let deferred: Vec<Option<&RawJson>> = rows.iter().map(|r| r.deferred.as_ref()).collect();
    let callbacks: Vec<Option<&RawJson>> = rows.iter().map(|r| r.callback.as_ref()).collect();
    let mut wanted: Vec<(&str, Uuid)> = rows
        .iter()
        .map(|r| (r.tenant.as_str(), r.message.contact_id))
        .collect();
    wanted.sort();
    wanted.dedup();
    let (contact_tenants, contact_ids): (Vec<&str>, Vec<Uuid>) = wanted.into_iter().unzip();
    let params: [&(dyn ToSql + Sync); 26] = [
        &tenants,
        &ids,
        &contacts,
        &versions,
        &categories,
        &channels,
        &priorities,
        &statuses,
        &contents,
        &overrides,
        &refs,
        &metadata,
        &send_times,
        &expire_times,
        &reply_tos,
        &histories,
        &routes,
        &row_keys,
        &hashes,
        &times,
        &dues,
        &payloads,
        &contact_tenants,
        &contact_ids,
        &deferred,
        &callbacks,
    ];
    let client = pool.get().await.map_err(super::pool_error)?;
    let stmt = client.prepare_cached(&ACCEPT).await.map_err(db)?;
    let answers = client.query(&stmt, &params).await.map_err(db)?;
    if answers.len() != rows.len() {
        return Err(StoreError::backend(std::io::Error::other(
            "the accept statement answered the wrong number of rows",
        )));
    }
    let mut answers = rows.iter().zip(answers);
    Ok(skipped
        .into_iter()
        .map(|skipped| {
            if skipped {
                return Outcome::KeyRaced;
            }
            let Some((row, answer)) = answers.next() else {
                return Outcome::KeyRaced;
            };
            let version: Option<i64> = answer.get(0);
            let state: Option<i16> = answer.get(1);
            let used: Option<Uuid> = answer.get(2);
            if answer.get::<_, bool>(4) {
                Outcome::Inserted
            } else if let Some(id) = used {
                Outcome::KeyUsed {
                    id,
                    hash: answer.get(3),
                }
            } else if version != Some(row.contact_version)
                || state.map(ContactState::from_code) == Some(ContactState::Merged)
            {
                Outcome::ContactChanged
            } else if state.map(ContactState::from_code) == Some(ContactState::Erased) {
                Outcome::Erased
            } else {
                Outcome::KeyRaced
            }
        })
        .collect())
}

impl AcceptQueue {
    /// Hands rows to the writers and waits for their commit.
    async fn submit(&self, rows: Vec<Arc<Row>>) -> Result<Vec<Outcome>> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::backend(std::io::Error::other("the store is shutting down"));
        self.0
            .send(Batch { rows, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

impl PgStore {
    pub(super) async fn accept_many(
        &self,
        tenant: &str,
        news: Vec<NewMessage>,
    ) -> Result<Vec<Result<Accepted>>> {
        let now = now();
        let mut answers: Vec<Option<Result<Accepted>>> = Vec::with_capacity(news.len());
        let mut pending: Vec<(usize, Arc<Row>)> = Vec::with_capacity(news.len());
        for (index, new) in news.into_iter().enumerate() {
            match Row::prepare(tenant, new, now) {
                Ok(row) => {
                    answers.push(None);
                    pending.push((index, Arc::new(row)));
                }
                Err(e) => answers.push(Some(Err(e))),
            }
        }
        for _ in 0..KEY_ROUNDS {
            if pending.is_empty() {
                break;
            }
            let rows = pending.iter().map(|(_, row)| Arc::clone(row)).collect();
            let outcomes = self.accepts.submit(rows).await?;
            let mut again = Vec::new();
            for ((index, row), outcome) in pending.into_iter().zip(outcomes) {
                let answer = match outcome {
                    Outcome::Inserted => Ok(Accepted::New(row.message.clone())),
                    Outcome::KeyUsed { id, hash } if hash == row.hash => {
                        self.get_message(tenant, id).await.map(Accepted::Replayed)
                    }
                    Outcome::KeyUsed { id, .. } => {
                        Err(StoreError::IdempotencyConflict { existing: id })
                    }
                    Outcome::ContactChanged => {
                        Err(StoreError::ContactChanged(row.message.contact_id))
                    }
                    Outcome::Erased => Err(StoreError::Erased(row.message.contact_id)),
                    Outcome::KeyRaced => {
                        let client = self.client().await?;
                        let key = row.key.as_deref().unwrap_or_default();
                        match messages::replay(&client, tenant, key, &row.hash).await {
                            Ok(Some(found)) => Ok(found),
                            Ok(None) => {
                                // The row that took the key did not commit.
                                again.push((index, row));
                                continue;
                            }
                            Err(e) => Err(e),
                        }
                    }
                };
                answers[index] = Some(answer);
            }
            pending = again;
        }
        Ok(answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Err(StoreError::backend(std::io::Error::other(
                        "idempotency key contended",
                    )))
                })
            })
            .collect())
    }
}
