//! Messages on SQLite, and the row helpers of messages and dispatch jobs
//! (claiming and completing jobs live in `dispatch.rs`).
//!
//! Every function here runs inside the caller's transaction (see
//! `SqliteStore::tx`); status changes go through [`apply_status`] and are
//! logged with an event in that same transaction.

use std::time::SystemTime;

use omniroute_channel::{Category, Channel};
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::{SqliteStore, writer};
use super::{callbacks, db, events, json, resolve};
use crate::events::*;
use crate::jobs::*;
use crate::messages::*;
use crate::model::{ContactState, from_micros, now, to_micros};
use crate::parts::MessageStore;
use crate::plans;
use crate::{Result, StoreError};
use async_trait::async_trait;

/// The columns [`message_row`] reads, in its order.
macro_rules! message_columns {
    () => {
        "id, contact_id, direction, category, channel, priority, status, content, overrides,
         correlation_ref, metadata, send_time, expire_time, reply_to, history, attempts, route,
         provider_message_id, create_time, update_time, automatic"
    };
}
pub(super) use message_columns;

/// How many columns [`message_columns`] names (columns read after them
/// start there).
pub(super) const MESSAGE_WIDTH: usize = crate::column_count(message_columns!());

/// A stored value this build cannot read.
#[derive(Debug, thiserror::Error)]
#[error("unknown stored {0}")]
struct Unknown(&'static str);

fn conversion(index: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e))
}

fn uuid_at(r: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(&r.get::<_, String>(index)?).map_err(|e| conversion(index, e))
}

fn json_at<T: serde::de::DeserializeOwned>(r: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    serde_json::from_str(&r.get::<_, String>(index)?).map_err(|e| conversion(index, e))
}

fn channel_at(r: &Row<'_>, index: usize) -> rusqlite::Result<Option<Channel>> {
    r.get::<_, Option<String>>(index)?
        .map(|name| Channel::parse(&name).ok_or_else(|| conversion(index, Unknown("channel"))))
        .transpose()
}

/// Reads a message from the columns [`message_columns!`] names, in order.
pub(super) fn message_row(r: &Row<'_>) -> rusqlite::Result<Message> {
    let category: String = r.get(3)?;
    Ok(Message {
        id: uuid_at(r, 0)?,
        contact_id: uuid_at(r, 1)?,
        direction: Direction::from_code(r.get(2)?),
        category: Category::parse(&category).ok_or_else(|| conversion(3, Unknown("category")))?,
        channel: channel_at(r, 4)?,
        priority: Priority::from_code(r.get(5)?),
        status: MessageStatus::from_code(r.get(6)?),
        content: json_at(r, 7)?,
        overrides: json_at(r, 8)?,
        correlation_ref: r.get(9)?,
        metadata: json_at(r, 10)?,
        send_time: r.get::<_, Option<i64>>(11)?.map(from_micros),
        expire_time: r.get::<_, Option<i64>>(12)?.map(from_micros),
        reply_to: r
            .get::<_, Option<String>>(13)?
            .map(|id| Uuid::parse_str(&id).map_err(|e| conversion(13, e)))
            .transpose()?,
        history: json_at(r, 14)?,
        attempts: json_at(r, 15)?,
        route: r
            .get::<_, Option<String>>(16)?
            .map(|route| serde_json::from_str(&route).map_err(|e| conversion(16, e)))
            .transpose()?,
        provider_message_id: r.get(17)?,
        create_time: from_micros(r.get(18)?),
        update_time: from_micros(r.get(19)?),
        automatic: r.get(20)?,
    })
}

pub(super) fn message_not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        resource: "messages",
        id: id.to_string(),
    }
}

/// Reads a message of a tenant.
pub(super) fn get(tx: &Connection, tenant: &str, id: Uuid) -> Result<Message> {
    tx.prepare_cached(concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE tenant = ?1 AND id = ?2"
    ))
    .map_err(db)?
    .query_row(params![tenant, id.to_string()], message_row)
    .optional()
    .map_err(db)?
    .ok_or_else(|| message_not_found(id))
}

/// Writes back what a status change, an attempt or a requeue changes: the
/// status, channel, history, attempts and provider id (the rest of a message
/// is fixed once stored but for erasure's redaction, see `lifecycle.rs`).
pub(super) fn save_state(tx: &Connection, tenant: &str, m: &Message) -> Result<()> {
    tx.prepare_cached(
        "UPDATE messages SET channel = ?3, status = ?4, history = ?5, attempts = ?6,
                provider_message_id = ?7, update_time = ?8
         WHERE tenant = ?1 AND id = ?2",
    )
    .map_err(db)?
    .execute(params![
        tenant,
        m.id.to_string(),
        m.channel.map(Channel::as_str),
        m.status.code(),
        json(&m.history),
        json(&m.attempts),
        m.provider_message_id,
        to_micros(m.update_time)
    ])
    .map_err(db)?;
    Ok(())
}

/// Logs a status change: `MessageFailed` when this change failed the
/// message, else `MessageStatusChanged`.
pub(super) fn record_change(
    tx: &Connection,
    tenant: &str,
    before: MessageStatus,
    m: &Message,
    now: SystemTime,
) -> Result<()> {
    events::append(tx, tenant, &status_event(before, m), now)
}

/// A message's dispatch job as stored.
pub(super) struct Job {
    pub(super) lease_until: Option<i64>,
    pub(super) claim_token: Option<String>,
}

pub(super) fn load_job(tx: &Connection, id: Uuid) -> Result<Option<Job>> {
    tx.prepare_cached("SELECT lease_until, claim_token FROM dispatch_jobs WHERE message_id = ?1")
        .map_err(db)?
        .query_row(params![id.to_string()], |r| {
            Ok(Job {
                lease_until: r.get(0)?,
                claim_token: r.get(1)?,
            })
        })
        .optional()
        .map_err(db)
}

/// Creates (or replaces) the message's job, unleased, on a plan index.
pub(super) fn put_job(tx: &Connection, tenant: &str, m: &Message, due: SystemTime) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO dispatch_jobs
                (message_id, tenant, priority, due_time, plan_index, channel_attempt,
                 lease_until, claim_token)
         VALUES (?1, ?2, ?3, ?4, 0, 0, NULL, NULL)",
    )
    .map_err(db)?
    .execute(params![
        m.id.to_string(),
        tenant,
        m.priority.code(),
        to_micros(due)
    ])
    .map_err(db)?;
    Ok(())
}

/// Deletes the message's job; returns whether there was one.
pub(super) fn delete_job(tx: &Connection, id: Uuid) -> Result<bool> {
    let deleted = tx
        .prepare_cached("DELETE FROM dispatch_jobs WHERE message_id = ?1")
        .map_err(db)?
        .execute(params![id.to_string()])
        .map_err(db)?;
    Ok(deleted > 0)
}

/// Puts a leased job back in line: due at `due`, on `plan_index`, with
/// `channel_attempt` attempts made on its channel; a watch of `watch_of` if
/// given.
pub(super) fn release_job(
    tx: &Connection,
    id: Uuid,
    due: SystemTime,
    plan_index: usize,
    channel_attempt: u32,
    watch_of: Option<Uuid>,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE dispatch_jobs
         SET due_time = ?2, plan_index = ?3, lease_until = NULL, claim_token = NULL,
             channel_attempt = ?4, kind = ?5, contact_id = ?6
         WHERE message_id = ?1",
    )
    .map_err(db)?
    .execute(params![
        id.to_string(),
        to_micros(due),
        i64::try_from(plan_index).unwrap_or(i64::MAX),
        channel_attempt,
        JobKind::released(watch_of).code(),
        watch_of.map(|c| c.to_string())
    ])
    .map_err(db)?;
    Ok(())
}

/// The message `key` names in the tenant, with the hash of the request it
/// was accepted for.
pub(super) fn by_idempotency_key(
    tx: &Connection,
    tenant: &str,
    key: &str,
) -> Result<Option<(Message, String)>> {
    let used: Option<(String, String)> = tx
        .prepare_cached(
            "SELECT id, request_hash FROM messages
             WHERE tenant = ?1 AND idempotency_key = ?2",
        )
        .map_err(db)?
        .query_row(params![tenant, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(db)?;
    let Some((id, hash)) = used else {
        return Ok(None);
    };
    let id = Uuid::parse_str(&id).map_err(StoreError::backend)?;
    Ok(Some((get(tx, tenant, id)?, hash)))
}

/// Stores a new outbound message, its job and its `MessageAccepted` event,
/// or answers from the idempotency key.
pub(super) fn accept(tx: &Connection, tenant: &str, new: NewMessage) -> Result<Accepted> {
    if let Some(key) = &new.idempotency_key
        && let Some(found) = by_idempotency_key(tx, tenant, key)?
    {
        return crate::replay(found, &new.request_hash);
    }

    if new.route.plan.is_empty() {
        return Err(StoreError::backend(std::io::Error::other(
            "empty route plan",
        )));
    }
    // The route was decided on this version of the contact; a change since
    // means routing again.
    let contact: Option<(i64, i16)> = tx
        .prepare_cached("SELECT version, state FROM contacts WHERE tenant = ?1 AND id = ?2")
        .map_err(db)?
        .query_row(params![tenant, new.contact_id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(db)?;
    match contact.map(|(version, state)| (version, ContactState::from_code(state))) {
        Some((version, ContactState::Active)) if version == new.contact_version => {}
        Some((version, ContactState::Erased)) if version == new.contact_version => {
            return Err(StoreError::Erased(new.contact_id));
        }
        _ => return Err(StoreError::ContactChanged(new.contact_id)),
    }
    let now = now();
    let key = new.idempotency_key.clone();
    let hash = new.request_hash.clone();
    let (message, due) = outbound_message(new, now);
    tx.prepare_cached(
        "INSERT INTO messages (tenant, id, contact_id, direction, category, channel, priority,
                status, content, overrides, correlation_ref, metadata, send_time, expire_time,
                reply_to, history, attempts, route, provider_message_id, idempotency_key,
                request_hash, create_time, update_time)
         VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 NULL, ?18, ?19, ?20, ?20)",
    )
    .map_err(db)?
    .execute(params![
        tenant,
        message.id.to_string(),
        message.contact_id.to_string(),
        message.category.as_str(),
        message.channel.map(Channel::as_str),
        message.priority.code(),
        message.status.code(),
        json(&message.content),
        json(&message.overrides),
        message.correlation_ref,
        json(&message.metadata),
        message.send_time.map(to_micros),
        message.expire_time.map(to_micros),
        message.reply_to.map(|id| id.to_string()),
        json(&message.history),
        json(&message.attempts),
        message.route.as_ref().map(json),
        key,
        hash,
        to_micros(now)
    ])
    .map_err(db)?;
    put_job(tx, tenant, &message, due)?;
    events::append(
        tx,
        tenant,
        &message_event(EventType::MessageAccepted, &message),
        now,
    )?;
    let scheduled = crate::Callback {
        message,
        progress: None,
        next_call: Some(due),
    };
    if let Some(event) = crate::callback_event(None, &scheduled) {
        events::append(tx, tenant, &event, now)?;
    }
    let message = scheduled.message;
    if let Some(deferred) = deferred_event(&message, due) {
        events::append(tx, tenant, &deferred, now)?;
    }
    Ok(Accepted::New(message))
}

/// The media bytes inbound message `id` carried (see
/// [`crate::MessageStore::get_inbound_media`]).
pub(super) fn inbound_media(tx: &Connection, tenant: &str, id: Uuid) -> Result<Option<Vec<u8>>> {
    tx.prepare_cached("SELECT bytes FROM inbound_media WHERE message_id = ?1 AND tenant = ?2")
        .map_err(db)?
        .query_row(params![id.to_string(), tenant], |r| r.get(0))
        .optional()
        .map_err(db)
}

/// Records a customer's message (see [`crate::MessageStore::record_inbound`]).
pub(super) fn record_inbound(
    tx: &Connection,
    tenant: &str,
    inbound: NewInbound,
) -> Result<Received> {
    let channel = inbound.channel.as_str();
    let seen: Option<i64> = tx
        .prepare_cached(
            "SELECT 1 FROM messages WHERE channel = ?1 AND provider_message_id = ?2 AND direction = 2",
        )
        .map_err(db)?
        .query_row(params![channel, inbound.provider_message_id], |r| r.get(0))
        .optional()
        .map_err(db)?;
    if seen.is_some() {
        return Ok(Received::Duplicate);
    }
    let mut owner: Option<Uuid> = None;
    for (known_on, key) in plans::inbound::sender_keys(&inbound) {
        owner = tx
            .prepare_cached(
                "SELECT contact_id FROM identities WHERE tenant = ?1 AND channel = ?2 AND key = ?3",
            )
            .map_err(db)?
            .query_row(params![tenant, known_on.as_str(), key], |r| uuid_at(r, 0))
            .optional()
            .map_err(db)?;
        if owner.is_some() {
            break;
        }
    }
    let reply_to: Option<Uuid> = match (owner, &inbound.reply_to) {
        (Some(owner), Some(provider_id)) => tx
            .prepare_cached(
                "SELECT id FROM messages WHERE tenant = ?1 AND channel = ?2 AND provider_message_id = ?3
                   AND contact_id = ?4
                 ORDER BY create_time DESC LIMIT 1",
            )
            .map_err(db)?
            .query_row(
                params![tenant, channel, provider_id, owner.to_string()],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(db)?
            .and_then(|id| Uuid::parse_str(&id).ok()),
        _ => None,
    };
    let plan = plans::inbound::plan(&inbound, owner, reply_to, now());
    write_inbound(tx, tenant, &plan)?;
    Ok(Received::New(plan.message))
}

/// Writes what [`plans::inbound::plan`] decided.
fn write_inbound(
    tx: &Connection,
    tenant: &str,
    plan: &plans::inbound::InboundPlan<'_>,
) -> Result<()> {
    let now = to_micros(plan.now);
    let contact_id = plan.sender.id();
    match &plan.sender {
        plans::inbound::Sender::Known { id, fill_name } => {
            super::link(tx, tenant, *id, plan.link, now)?;
            tx.prepare_cached(
                "UPDATE contacts SET display_name = ?3 WHERE tenant = ?1 AND id = ?2 AND display_name = ''",
            )
            .map_err(db)?
            .execute(params![tenant, id.to_string(), fill_name])
            .map_err(db)?;
        }
        plans::inbound::Sender::New {
            id,
            state,
            display_name,
        } => {
            tx.prepare_cached(
                "INSERT INTO contacts (tenant, id, state, display_name, create_time, update_time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )
            .map_err(db)?
            .execute(params![
                tenant,
                id.to_string(),
                state.code(),
                display_name,
                now
            ])
            .map_err(db)?;
            super::link(tx, tenant, *id, plan.link, now)?;
        }
    }
    if let Some(user) = &plan.user_id {
        tx.prepare_cached(
            "UPDATE identities SET provider_user_id = ?4 WHERE tenant = ?1 AND channel = ?2 AND key = ?3",
        )
        .map_err(db)?
        .execute(params![tenant, user.channel.as_str(), user.key, user.user_id])
        .map_err(db)?;
    }
    for window in &plan.windows {
        tx.prepare_cached(
            "INSERT INTO service_windows (tenant, contact_id, channel, line, open_until)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tenant, contact_id, channel, line) DO UPDATE
                 SET open_until = excluded.open_until, notified_until = NULL
                 WHERE open_until < excluded.open_until",
        )
        .map_err(db)?
        .execute(params![
            tenant,
            contact_id.to_string(),
            window.channel.as_str(),
            window.line,
            to_micros(window.open_until)
        ])
        .map_err(db)?;
    }
    if plan.wake_watches {
        tx.prepare_cached(
            "UPDATE dispatch_jobs SET kind = 2, due_time = ?3
             WHERE tenant = ?1 AND contact_id = ?2 AND kind = 1",
        )
        .map_err(db)?
        .execute(params![tenant, contact_id.to_string(), now])
        .map_err(db)?;
    }
    let message = &plan.message;
    tx.prepare_cached(
        "INSERT INTO messages (tenant, id, contact_id, direction, category, channel, priority,
                status, content, correlation_ref, send_time, reply_to, history,
                provider_message_id, create_time, update_time, automatic)
         VALUES (?1, ?2, ?3, 2, ?4, ?5, ?6, ?7, ?8, '', ?9, ?10, ?11, ?12, ?13, ?13, ?14)",
    )
    .map_err(db)?
    .execute(params![
        tenant,
        message.id.to_string(),
        contact_id.to_string(),
        message.category.as_str(),
        message.channel.map(Channel::as_str),
        message.priority.code(),
        message.status.code(),
        json(&message.content),
        message.send_time.map(to_micros),
        message.reply_to.map(|id| id.to_string()),
        json(&message.history),
        message.provider_message_id,
        now,
        message.automatic
    ])
    .map_err(db)?;
    if let Some(bytes) = plan.media {
        tx.prepare_cached(
            "INSERT INTO inbound_media (message_id, tenant, bytes) VALUES (?1, ?2, ?3)",
        )
        .map_err(db)?
        .execute(params![message.id.to_string(), tenant, bytes])
        .map_err(db)?;
    }
    for event in &plan.events {
        events::append(tx, tenant, event, plan.now)?;
    }
    Ok(())
}

/// A contact's messages, newest first, strictly older than `before`.
pub(super) fn list(
    tx: &Connection,
    tenant: &str,
    contact_id: Uuid,
    before: Option<Uuid>,
    limit: usize,
) -> Result<Vec<Message>> {
    let (contact_id, _) = resolve(tx, tenant, contact_id)?;
    let mut stmt = tx
        .prepare_cached(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages
              WHERE tenant = ?1 AND contact_id = ?2 AND (?3 IS NULL OR id < ?3)
              ORDER BY id DESC LIMIT ?4"
        ))
        .map_err(db)?;
    let rows = stmt
        .query_map(
            params![
                tenant,
                contact_id.to_string(),
                before.map(|id| id.to_string()),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            message_row,
        )
        .map_err(db)?;
    rows.collect::<Result<_, _>>().map_err(db)
}

/// Cancels a pending message that no worker is sending right now.
pub(super) fn cancel(tx: &Connection, tenant: &str, id: Uuid) -> Result<Message> {
    let mut m = get(tx, tenant, id)?;
    if !m.status.is_pending() {
        return Err(StoreError::NotCancelable {
            id,
            status: m.status,
        });
    }
    let now = now();
    if let Some(job) = load_job(tx, id)?
        && job.lease_until.is_some_and(|until| until >= to_micros(now))
    {
        return Err(StoreError::Sending(id));
    }
    delete_job(tx, id)?;
    let before = m.status;
    let was = callbacks::before(tx, tenant, &m)?;
    let channel = m.channel;
    if apply_status(
        &mut m,
        MessageStatus::Canceled,
        channel,
        crate::CANCELED_BY_CALLER,
        now,
    ) {
        save_state(tx, tenant, &m)?;
        record_change(tx, tenant, before, &m, now)?;
        callbacks::after(tx, tenant, was, &m, None, now)?;
    }
    Ok(m)
}

/// Requeues a failed message from the first channel of its plan.
pub(super) fn retry(tx: &Connection, tenant: &str, id: Uuid) -> Result<Message> {
    let mut m = get(tx, tenant, id)?;
    if m.status != MessageStatus::Failed {
        return Err(StoreError::NotRetryable {
            id,
            status: m.status,
        });
    }
    let now = now();
    let was = callbacks::before(tx, tenant, &m)?;
    // Failed is final for everything that reports statuses (`apply_status`
    // refuses to move it); an operator's retry is the one way out.
    requeue_by_operator(&mut m, now);
    put_job(tx, tenant, &m, now)?;
    save_state(tx, tenant, &m)?;
    record_change(tx, tenant, MessageStatus::Failed, &m, now)?;
    callbacks::after(tx, tenant, was, &m, Some(now), now)?;
    Ok(m)
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn accept_messages(
        &self,
        tenant: &str,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Result<Accepted>>> {
        let tenant = tenant.to_owned();
        let accepted = self
            .tx(move |tx| {
                Ok(messages
                    .into_iter()
                    .map(|message| writer::in_savepoint(tx, || accept(tx, &tenant, message)))
                    .collect::<Vec<_>>())
            })
            .await?;
        // A replay wrote nothing: no one needs to look again.
        if accepted.iter().any(|a| matches!(a, Ok(Accepted::New(_)))) {
            self.bump_jobs();
        }
        Ok(accepted)
    }

    async fn messages_by_idempotency_keys(
        &self,
        tenant: &str,
        keys: &[String],
    ) -> Result<Vec<Option<(Message, String)>>> {
        let (tenant, keys) = (tenant.to_owned(), keys.to_vec());
        self.read(move |tx| {
            keys.iter()
                .map(|key| by_idempotency_key(tx, &tenant, key))
                .collect()
        })
        .await
    }

    async fn get_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        let tenant = tenant.to_owned();
        self.read(move |tx| get(tx, &tenant, id)).await
    }

    async fn list_messages(
        &self,
        tenant: &str,
        contact_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let tenant = tenant.to_owned();
        self.read(move |tx| list(tx, &tenant, contact_id, before, limit))
            .await
    }

    async fn cancel_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        let tenant = tenant.to_owned();
        self.write(move |tx| cancel(tx, &tenant, id)).await
    }

    async fn retry_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        let tenant = tenant.to_owned();
        let retried = self.tx(move |tx| retry(tx, &tenant, id)).await?;
        self.bump_jobs();
        Ok(retried)
    }

    async fn record_inbound(&self, tenant: &str, inbound: NewInbound) -> Result<Received> {
        let tenant = tenant.to_owned();
        let received = self
            .tx(move |tx| record_inbound(tx, &tenant, inbound))
            .await?;
        // A message from the customer may end watches (due at once).
        if matches!(received, Received::New(_)) {
            self.bump_jobs();
        }
        Ok(received)
    }

    async fn get_inbound_media(&self, tenant: &str, id: Uuid) -> Result<Option<Vec<u8>>> {
        let tenant = tenant.to_owned();
        self.read(move |tx| inbound_media(tx, &tenant, id)).await
    }
}
