//! The messaging pipeline on PostgreSQL: messages, dispatch jobs, events.
//!
//! Accepting (group commit) lives in `accept.rs`, claiming and completing
//! jobs and applying provider statuses in `dispatch.rs`; this file reads
//! messages and events, cancels and retries, records inbound messages, and
//! holds the row helpers they share.
//!
//! Every write is one short transaction; whoever commits events or jobs
//! signals the change afterwards (`signals.rs`: in-process wake-ups, and
//! `NOTIFY omniroute_changes` to other replicas).

use std::collections::HashMap;
use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use omniroute_channel::{Category, Channel};
use tokio_postgres::Row;
use uuid::Uuid;

use super::json::{RawJson, column, optional_column};
use super::{PgStore, db};
use crate::callbacks::{Callback, callback_event, callback_state, is_callback};
use crate::events::*;
use crate::messages::*;
use crate::model::now;
use crate::parts::MessageStore;
use crate::plans;
use crate::{Result, StoreError};
use async_trait::async_trait;

/// The columns [`message_from_row`] reads, in order.
pub(super) const MESSAGE_COLUMNS: &str = "id, contact_id, direction, category, channel, priority, \
     status, content, overrides, correlation_ref, metadata, send_time, expire_time, reply_to, \
     history, attempts, route, provider_message_id, create_time, update_time, automatic";

/// How many columns [`MESSAGE_COLUMNS`] names (columns read after them
/// start there).
pub(super) const MESSAGE_WIDTH: usize = crate::column_count(MESSAGE_COLUMNS);

fn json<T: serde::Serialize>(value: &T) -> Result<RawJson> {
    RawJson::of(value)
}

pub(super) fn message_from_row(r: &Row) -> Result<Message> {
    message_at(r, 0)
}

/// Reads a message whose [`MESSAGE_COLUMNS`] start at column `o`.
pub(super) fn message_at(r: &Row, o: usize) -> Result<Message> {
    let category: &str = r.get(o + 3);
    let channel: Option<&str> = r.get(o + 4);
    Ok(Message {
        id: r.get(o),
        contact_id: r.get(o + 1),
        direction: Direction::from_code(r.get(o + 2)),
        category: Category::parse(category).unwrap_or(Category::Transactional),
        channel: channel.and_then(Channel::parse),
        priority: Priority::from_code(r.get(o + 5)),
        status: MessageStatus::from_code(r.get(o + 6)),
        content: column(r, o + 7)?,
        overrides: column(r, o + 8)?,
        correlation_ref: r.get(o + 9),
        metadata: column(r, o + 10)?,
        send_time: r.get(o + 11),
        expire_time: r.get(o + 12),
        reply_to: r.get(o + 13),
        history: column(r, o + 14)?,
        attempts: column(r, o + 15)?,
        route: optional_column(r, o + 16)?,
        provider_message_id: r.get(o + 17),
        create_time: r.get(o + 18),
        update_time: r.get(o + 19),
        automatic: r.get(o + 20),
    })
}

/// Locks and reads one message of a tenant.
pub(super) async fn lock_message(
    c: &impl GenericClient,
    tenant: &str,
    id: Uuid,
) -> Result<Message> {
    let row = c
        .query_opt(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant = $1 AND id = $2 FOR UPDATE"
            ),
            &[&tenant, &id],
        )
        .await
        .map_err(db)?
        .ok_or_else(|| message_not_found(id))?;
    message_from_row(&row)
}

fn message_not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        resource: "messages",
        id: id.to_string(),
    }
}

/// Writes the fields of a message that change after acceptance.
async fn write_message(c: &impl GenericClient, tenant: &str, m: &Message) -> Result<()> {
    write_messages(c, &[(tenant, m)]).await
}

/// Writes the fields of messages that change after acceptance, in one
/// statement.
pub(super) async fn write_messages(
    c: &impl GenericClient,
    messages: &[(&str, &Message)],
) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = messages.iter().map(|(t, _)| *t).collect();
    let ids: Vec<Uuid> = messages.iter().map(|(_, m)| m.id).collect();
    let statuses: Vec<i16> = messages.iter().map(|(_, m)| m.status.code()).collect();
    let channels: Vec<Option<&str>> = messages
        .iter()
        .map(|(_, m)| m.channel.map(Channel::as_str))
        .collect();
    let histories = messages
        .iter()
        .map(|(_, m)| json(&m.history))
        .collect::<Result<Vec<_>>>()?;
    let attempts = messages
        .iter()
        .map(|(_, m)| json(&m.attempts))
        .collect::<Result<Vec<_>>>()?;
    let provider_ids: Vec<Option<&str>> = messages
        .iter()
        .map(|(_, m)| m.provider_message_id.as_deref())
        .collect();
    let times: Vec<SystemTime> = messages.iter().map(|(_, m)| m.update_time).collect();
    let stmt = c
        .prepare_cached(
            "UPDATE messages m SET status = u.status, channel = u.channel, history = u.history,
                    attempts = u.attempts, provider_message_id = u.provider_message_id,
                    update_time = u.update_time
             FROM unnest($1::text[], $2::uuid[], $3::smallint[], $4::text[], $5::jsonb[],
                         $6::jsonb[], $7::text[], $8::timestamptz[])
                  AS u(tenant, id, status, channel, history, attempts, provider_message_id,
                       update_time)
             WHERE m.tenant = u.tenant AND m.id = u.id",
        )
        .await
        .map_err(db)?;
    c.execute(
        &stmt,
        &[
            &tenants,
            &ids,
            &statuses,
            &channels,
            &histories,
            &attempts,
            &provider_ids,
            &times,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Appends events of one tenant (one multi-row insert).
pub(super) async fn append_events(
    c: &impl GenericClient,
    tenant: &str,
    events: &[NewEvent],
    time: SystemTime,
) -> Result<()> {
    let events: Vec<(&str, &NewEvent)> = events.iter().map(|e| (tenant, e)).collect();
    insert_events(c, &events, time).await
}

/// Appends events of any tenants, in order (one multi-row insert). Whoever
/// commits them signals the change afterwards (see `signals.rs`).
pub(super) async fn insert_events(
    c: &impl GenericClient,
    events: &[(&str, &NewEvent)],
    time: SystemTime,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = events.iter().map(|(t, _)| *t).collect();
    let types: Vec<i16> = events.iter().map(|(_, e)| e.kind.code()).collect();
    let contacts: Vec<Option<Uuid>> = events.iter().map(|(_, e)| e.contact_id).collect();
    let messages: Vec<Option<Uuid>> = events.iter().map(|(_, e)| e.message_id).collect();
    let refs: Vec<&str> = events
        .iter()
        .map(|(_, e)| e.correlation_ref.as_str())
        .collect();
    let metadata = events
        .iter()
        .map(|(_, e)| json(&e.metadata))
        .collect::<Result<Vec<_>>>()?;
    let payloads = events
        .iter()
        .map(|(_, e)| json(&e.payload))
        .collect::<Result<Vec<_>>>()?;
    let stmt = c
        .prepare_cached(
            "INSERT INTO events (tenant, type, time, contact_id, message_id, correlation_ref, metadata, payload)
             SELECT tn, t, $1, c, m, r, md, p
             FROM unnest($2::text[], $3::smallint[], $4::uuid[], $5::uuid[], $6::text[],
                         $7::jsonb[], $8::jsonb[]) WITH ORDINALITY AS e(tn, t, c, m, r, md, p, n)
             ORDER BY n",
        )
        .await
        .map_err(db)?;
    c.execute(
        &stmt,
        &[
            &time, &tenants, &types, &contacts, &messages, &refs, &metadata, &payloads,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

impl PgStore {
    async fn inbound_once(&self, tenant: &str, inbound: &NewInbound) -> Result<Received> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let channel = inbound.channel.as_str();
        let seen = tx
            .query_opt(
                "SELECT 1 FROM messages WHERE channel = $1 AND provider_message_id = $2 AND direction = 2",
                &[&channel, &inbound.provider_message_id],
            )
            .await
            .map_err(db)?;
        if seen.is_some() {
            return Ok(Received::Duplicate);
        }
        let keys = plans::inbound::sender_keys(inbound);
        let key_channels: Vec<&str> = keys.iter().map(|(c, _)| c.as_str()).collect();
        let key_values: Vec<&str> = keys.iter().map(|(_, k)| k.as_str()).collect();
        let owner: Option<Uuid> = tx
            .query_opt(
                "SELECT i.contact_id FROM identities i
                 JOIN unnest($2::text[], $3::text[]) WITH ORDINALITY AS k(channel, key, n)
                   ON i.channel = k.channel AND i.key = k.key
                 WHERE i.tenant = $1
                 ORDER BY k.n LIMIT 1",
                &[&tenant, &key_channels, &key_values],
            )
            .await
            .map_err(db)?
            .map(|r| r.get(0));
        let reply_to: Option<Uuid> = match (owner, &inbound.reply_to) {
            (Some(owner), Some(provider_id)) => tx
                .query_opt(
                    "SELECT id FROM messages WHERE tenant = $1 AND channel = $2 AND provider_message_id = $3
                       AND contact_id = $4
                     ORDER BY create_time DESC LIMIT 1",
                    &[&tenant, &channel, provider_id, &owner],
                )
                .await
                .map_err(db)?
                .map(|r| r.get(0)),
            _ => None,
        };
        let plan = plans::inbound::plan(inbound, owner, reply_to, now());
        let replied = match write_inbound(&tx, tenant, &plan).await? {
            Some(replied) => replied,
            // A concurrent delivery of the same message committed first.
            None => return Ok(Received::Duplicate),
        };
        tx.commit().await.map_err(db)?;
        if replied > 0 {
            self.bump_jobs();
        } else {
            self.bump();
        }
        Ok(Received::New(plan.message))
    }
}

/// Writes what [`plans::inbound::plan`] decided; `None` when the message
/// turned out a duplicate (nothing is left written: the caller drops the
/// transaction), else how many watches it woke.
async fn write_inbound(
    tx: &impl GenericClient,
    tenant: &str,
    plan: &plans::inbound::InboundPlan<'_>,
) -> Result<Option<u64>> {
    let now = plan.now;
    let contact_id = plan.sender.id();
    match &plan.sender {
        plans::inbound::Sender::Known { id, fill_name } => {
            super::link(tx, tenant, *id, std::slice::from_ref(plan.link), now).await?;
            tx.execute(
                "UPDATE contacts SET display_name = $3 WHERE tenant = $1 AND id = $2 AND display_name = ''",
                &[&tenant, id, fill_name],
            )
            .await
            .map_err(db)?;
        }
        plans::inbound::Sender::New {
            id,
            state,
            display_name,
        } => {
            tx.execute(
                "INSERT INTO contacts (tenant, id, state, display_name, create_time, update_time)
                 VALUES ($1, $2, $3, $4, $5, $5)",
                &[&tenant, id, &state.code(), display_name, &now],
            )
            .await
            .map_err(db)?;
            super::link(tx, tenant, *id, std::slice::from_ref(plan.link), now).await?;
        }
    }
    if let Some(user) = &plan.user_id {
        tx.execute(
            "UPDATE identities SET provider_user_id = $4 WHERE tenant = $1 AND channel = $2 AND key = $3",
            &[&tenant, &user.channel.as_str(), &user.key, &user.user_id],
        )
        .await
        .map_err(db)?;
    }
    if !plan.windows.is_empty() {
        let channels: Vec<&str> = plan.windows.iter().map(|w| w.channel.as_str()).collect();
        let lines: Vec<&str> = plan.windows.iter().map(|w| w.line.as_str()).collect();
        let until: Vec<SystemTime> = plan.windows.iter().map(|w| w.open_until).collect();
        tx.execute(
            "INSERT INTO service_windows (tenant, contact_id, channel, line, open_until)
             SELECT $1, $2, channel, line, open_until
             FROM unnest($3::text[], $4::text[], $5::timestamptz[]) AS w(channel, line, open_until)
             ON CONFLICT (tenant, contact_id, channel, line) DO UPDATE
                 SET open_until = EXCLUDED.open_until, notified_until = NULL
                 WHERE service_windows.open_until < EXCLUDED.open_until",
            &[&tenant, &contact_id, &channels, &lines, &until],
        )
        .await
        .map_err(db)?;
    }
    let replied = if plan.wake_watches {
        tx.execute(
            "UPDATE dispatch_jobs SET kind = 2, due_time = $3
             WHERE message_id IN (
                 SELECT message_id FROM dispatch_jobs
                 WHERE tenant = $1 AND contact_id = $2 AND kind = 1
                 ORDER BY message_id FOR UPDATE)",
            &[&tenant, &contact_id, &now],
        )
        .await
        .map_err(db)?
    } else {
        0
    };
    let message = &plan.message;
    let inserted = tx
        .execute(
            "INSERT INTO messages (tenant, id, contact_id, direction, category, channel, priority,
                    status, content, correlation_ref, send_time, reply_to, history,
                    provider_message_id, create_time, update_time, automatic)
             VALUES ($1, $2, $3, 2, $4, $5, $6, $7, $8, '', $9, $10, $11, $12, $13, $13, $14)
             ON CONFLICT (channel, provider_message_id) WHERE direction = 2 DO NOTHING",
            &[
                &tenant,
                &message.id,
                &contact_id,
                &message.category.as_str(),
                &message.channel.map(Channel::as_str),
                &message.priority.code(),
                &message.status.code(),
                &json(&message.content)?,
                &message.send_time,
                &message.reply_to,
                &json(&message.history)?,
                &message.provider_message_id,
                &now,
                &message.automatic,
            ],
        )
        .await
        .map_err(db)?;
    if inserted == 0 {
        return Ok(None);
    }
    if let Some(bytes) = plan.media {
        tx.execute(
            "INSERT INTO inbound_media (message_id, tenant, bytes) VALUES ($1, $2, $3)",
            &[&message.id, &tenant, &bytes],
        )
        .await
        .map_err(db)?;
    }
    append_events(tx, tenant, &plan.events, now).await?;
    Ok(Some(replied))
}

/// Looks up an idempotency key: the stored message when the request is the
/// same, a conflict when it differs, `None` when the key is new.
pub(super) async fn replay(
    c: &impl GenericClient,
    tenant: &str,
    key: &str,
    request_hash: &str,
) -> Result<Option<Accepted>> {
    let mut found = by_idempotency_keys(c, tenant, &[key.to_owned()]).await?;
    match found.pop().flatten() {
        Some(found) => crate::replay(found, request_hash).map(Some),
        None => Ok(None),
    }
}

/// The messages of idempotency keys. The partial unique index holds only
/// rows with a key: the statement says so, so that every plan can use it.
fn by_keys_sql() -> String {
    format!(
        "SELECT m.idempotency_key, m.request_hash, {MESSAGE_COLUMNS}
         FROM unnest($2::text[]) AS k(key)
         JOIN messages m ON m.tenant = $1 AND m.idempotency_key = k.key
         WHERE m.idempotency_key IS NOT NULL"
    )
}

/// The hot statements of this file, for the plan tests.
pub(super) fn hot_statements() -> Vec<super::HotStatement> {
    vec![super::HotStatement {
        name: "messages by idempotency keys",
        sql: by_keys_sql(),
        types: "text, text[]",
        args: "'default', '{req-1001,req-77,nope}'",
        options: "",
    }]
}

/// [`crate::MessageStore::messages_by_idempotency_keys`].
pub(super) async fn by_idempotency_keys(
    c: &impl GenericClient,
    tenant: &str,
    keys: &[String],
) -> Result<Vec<Option<(Message, String)>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = c.prepare_cached(&by_keys_sql()).await.map_err(db)?;
    let rows = c.query(&stmt, &[&tenant, &keys]).await.map_err(db)?;
    let mut found: HashMap<String, (Message, String)> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let message = message_at(row, 2)?;
        found.insert(row.get(0), (message, row.get(1)));
    }
    Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
}

/// Deletes the dispatch job of a message being canceled, in the
/// canceling transaction; refused while a worker's lease on it holds (the
/// send may be under way: [`StoreError::Sending`]).
pub(super) async fn take_job(tx: &impl GenericClient, id: Uuid, now: SystemTime) -> Result<()> {
    let lease: Option<Option<SystemTime>> = tx
        .query_opt(
            "SELECT lease_until FROM dispatch_jobs WHERE message_id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(db)?
        .map(|r| r.get(0));
    crate::refusals::check_lease(lease.flatten(), now, id)?;
    tx.execute("DELETE FROM dispatch_jobs WHERE message_id = $1", &[&id])
        .await
        .map_err(db)?;
    Ok(())
}

#[async_trait]
impl MessageStore for PgStore {
    async fn accept_messages(
        &self,
        tenant: &str,
        news: Vec<NewMessage>,
    ) -> Result<Vec<Result<Accepted>>> {
        // Group commit (see `accept.rs`).
        self.accept_many(tenant, news).await
    }

    async fn messages_by_idempotency_keys(
        &self,
        tenant: &str,
        keys: &[String],
    ) -> Result<Vec<Option<(Message, String)>>> {
        let client = self.client().await?;
        by_idempotency_keys(&client, tenant, keys).await
    }

    async fn get_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE tenant = $1 AND id = $2"),
                &[&tenant, &id],
            )
            .await
            .map_err(db)?
            .ok_or_else(|| message_not_found(id))?;
        message_from_row(&row)
    }

    async fn list_messages(
        &self,
        tenant: &str,
        contact_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let client = self.client().await?;
        let (contact_id, _) = super::resolve(&client, tenant, contact_id).await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE tenant = $1 AND contact_id = $2 AND ($3::uuid IS NULL OR id < $3)
                 ORDER BY id DESC LIMIT $4"
            ))
            .await
            .map_err(db)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        client
            .query(&stmt, &[&tenant, &contact_id, &before, &limit])
            .await
            .map_err(db)?
            .iter()
            .map(message_from_row)
            .collect()
    }

    async fn cancel_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let mut message = lock_message(&tx, tenant, id).await?;
        if !message.status.is_pending() {
            return Err(StoreError::NotCancelable {
                id,
                status: message.status,
            });
        }
        let now = now();
        take_job(&tx, id, now).await?;
        let channel = message.channel;
        let before = message.status;
        // A pending callback is scheduled (its progress does not matter).
        let was = is_callback(&message).then(|| callback_state(&message, None));
        apply_status(
            &mut message,
            MessageStatus::Canceled,
            channel,
            crate::CANCELED_BY_CALLER,
            now,
        );
        write_message(&tx, tenant, &message).await?;
        let mut events = vec![status_event(before, &message)];
        events.extend(was.and_then(|was| {
            let callback = Callback {
                message: message.clone(),
                progress: None,
                next_call: None,
            };
            callback_event(Some(was), &callback)
        }));
        append_events(&tx, tenant, &events, now).await?;
        tx.commit().await.map_err(db)?;
        self.bump();
        Ok(message)
    }

    async fn retry_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let mut message = lock_message(&tx, tenant, id).await?;
        if message.status != MessageStatus::Failed {
            return Err(StoreError::NotRetryable {
                id,
                status: message.status,
            });
        }
        let now = now();
        let before = message.status;
        // A failed callback's state does not depend on its progress.
        let was = is_callback(&message).then(|| callback_state(&message, None));
        requeue_by_operator(&mut message, now);
        tx.execute(
            "INSERT INTO dispatch_jobs (message_id, tenant, priority, due_time) VALUES ($1, $2, $3, $4)",
            &[&id, &tenant, &message.priority.code(), &now],
        )
        .await
        .map_err(db)?;
        write_message(&tx, tenant, &message).await?;
        let mut events = vec![status_event(before, &message)];
        events.extend(was.and_then(|was| {
            let callback = Callback {
                message: message.clone(),
                progress: None,
                next_call: Some(now),
            };
            callback_event(Some(was), &callback)
        }));
        append_events(&tx, tenant, &events, now).await?;
        tx.commit().await.map_err(db)?;
        self.bump_jobs();
        Ok(message)
    }

    /// Records a customer's message. Messages from a new sender that arrive
    /// at once (a customer who writes three lines in a row, on any replica)
    /// race to create the sender's contact: the losers' identity insert
    /// waits for the winner's commit and finds the identity taken, and the
    /// whole transaction runs again, finding the winner's contact.
    async fn record_inbound(&self, tenant: &str, inbound: NewInbound) -> Result<Received> {
        let mut attempt = 0;
        loop {
            match self.inbound_once(tenant, &inbound).await {
                Err(StoreError::IdentityTaken { .. }) if attempt < 3 => attempt += 1,
                done => return done,
            }
        }
    }

    async fn get_inbound_media(&self, tenant: &str, id: Uuid) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT bytes FROM inbound_media WHERE message_id = $1 AND tenant = $2",
                &[&id, &tenant],
            )
            .await
            .map_err(db)?;
        Ok(row.map(|r| r.get(0)))
    }
}
