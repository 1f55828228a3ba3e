//! The messaging pipeline on PostgreSQL: messages, dispatch jobs, events.
//!
//! - Accepting a message writes the message, its job and its event in one
//!   transaction; the caller is answered only after it committed.
//! - Workers claim due jobs with `FOR UPDATE SKIP LOCKED` in one short
//!   statement and hold them by lease (a time and a claim token); no
//!   transaction is open while a provider is called. A completion carries the
//!   token and is refused when the lease was lost, so a late worker never
//!   overwrites a newer attempt.
//! - Every transaction that writes events or jobs also sends
//!   `NOTIFY omniroute_changes`, delivered to other replicas at commit.

use std::time::{Duration, SystemTime};

use deadpool_postgres::GenericClient;
use omniroute_channel::{Category, Channel, Content};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{PgStore, db};
use crate::messages::*;
use crate::model::now;
use crate::{Result, StoreError};

/// The columns [`message_from_row`] reads, in order.
pub(super) const MESSAGE_COLUMNS: &str = "id, contact_id, direction, category, channel, priority, \
     status, content, overrides, correlation_ref, metadata, send_time, expire_time, reply_to, \
     history, attempts, route, provider_message_id, create_time, update_time";

/// The notification channel replicas listen on.
pub(super) const CHANGES_CHANNEL: &str = "omniroute_changes";

fn json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value> {
    serde_json::to_value(value).map_err(StoreError::backend)
}

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(StoreError::backend)
}

pub(super) fn message_from_row(r: &Row) -> Result<Message> {
    message_at(r, 0)
}

/// Reads a message whose [`MESSAGE_COLUMNS`] start at column `o`.
fn message_at(r: &Row, o: usize) -> Result<Message> {
    let category: &str = r.get(o + 3);
    let channel: Option<&str> = r.get(o + 4);
    Ok(Message {
        id: r.get(o),
        contact_id: r.get(o + 1),
        direction: if r.get::<_, i16>(o + 2) == 2 {
            Direction::Inbound
        } else {
            Direction::Outbound
        },
        category: Category::parse(category).unwrap_or(Category::Transactional),
        channel: channel.and_then(Channel::parse),
        priority: Priority::from_code(r.get(o + 5)),
        status: MessageStatus::from_code(r.get(o + 6)),
        content: from_json(r.get(o + 7))?,
        overrides: from_json(r.get(o + 8))?,
        correlation_ref: r.get(o + 9),
        metadata: from_json(r.get(o + 10))?,
        send_time: r.get(o + 11),
        expire_time: r.get(o + 12),
        reply_to: r.get(o + 13),
        history: from_json(r.get(o + 14))?,
        attempts: from_json(r.get(o + 15))?,
        route: r
            .get::<_, Option<serde_json::Value>>(o + 16)
            .map(from_json)
            .transpose()?,
        provider_message_id: r.get(o + 17),
        create_time: r.get(o + 18),
        update_time: r.get(o + 19),
    })
}

/// Locks and reads one message of a tenant.
async fn lock_message(c: &impl GenericClient, tenant: &str, id: Uuid) -> Result<Message> {
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
    let stmt = c
        .prepare_cached(
            "UPDATE messages SET status = $3, channel = $4, history = $5, attempts = $6,
                    provider_message_id = $7, update_time = $8
             WHERE tenant = $1 AND id = $2",
        )
        .await
        .map_err(db)?;
    c.execute(
        &stmt,
        &[
            &tenant,
            &m.id,
            &m.status.code(),
            &m.channel.map(Channel::as_str),
            &json(&m.history)?,
            &json(&m.attempts)?,
            &m.provider_message_id,
            &m.update_time,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Appends events (one multi-row insert) and notifies other replicas at commit.
pub(super) async fn append_events(
    c: &impl GenericClient,
    tenant: &str,
    events: &[NewEvent],
    time: SystemTime,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let types: Vec<i16> = events.iter().map(|e| e.kind.code()).collect();
    let contacts: Vec<Option<Uuid>> = events.iter().map(|e| e.contact_id).collect();
    let messages: Vec<Option<Uuid>> = events.iter().map(|e| e.message_id).collect();
    let refs: Vec<&str> = events.iter().map(|e| e.correlation_ref.as_str()).collect();
    let metadata = events
        .iter()
        .map(|e| json(&e.metadata))
        .collect::<Result<Vec<_>>>()?;
    let payloads = events
        .iter()
        .map(|e| json(&e.payload))
        .collect::<Result<Vec<_>>>()?;
    let stmt = c
        .prepare_cached(
            "INSERT INTO events (tenant, type, time, contact_id, message_id, correlation_ref, metadata, payload)
             SELECT $1, t, $2, c, m, r, md, p
             FROM unnest($3::smallint[], $4::uuid[], $5::uuid[], $6::text[], $7::jsonb[], $8::jsonb[])
                  AS e(t, c, m, r, md, p)",
        )
        .await
        .map_err(db)?;
    c.execute(
        &stmt,
        &[
            &tenant, &time, &types, &contacts, &messages, &refs, &metadata, &payloads,
        ],
    )
    .await
    .map_err(db)?;
    c.execute("SELECT pg_notify($1, '')", &[&CHANGES_CHANNEL])
        .await
        .map_err(db)?;
    Ok(())
}

impl PgStore {
    pub(super) async fn accept(&self, tenant: &str, new: NewMessage) -> Result<Accepted> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        if let Some(key) = &new.idempotency_key
            && let Some(found) = replay(&tx, tenant, key, &new.request_hash).await?
        {
            return Ok(found);
        }
        let now = now();
        if new.route.plan.is_empty() {
            return Err(StoreError::backend(std::io::Error::other(
                "empty route plan",
            )));
        }
        let key = new.idempotency_key.clone();
        let hash = new.request_hash.clone();
        let (message, due) = outbound_message(new, now);
        let stmt = tx
            .prepare_cached(
                "INSERT INTO messages (tenant, id, contact_id, direction, category, channel, priority,
                        status, content, overrides, correlation_ref, metadata, send_time, expire_time,
                        reply_to, history, attempts, route, idempotency_key, request_hash,
                        create_time, update_time)
                 VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, '[]',
                         $16, $17, $18, $19, $19)
                 ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
            )
            .await
            .map_err(db)?;
        let inserted = tx
            .execute(
                &stmt,
                &[
                    &tenant,
                    &message.id,
                    &message.contact_id,
                    &message.category.as_str(),
                    &message.channel.map(Channel::as_str),
                    &message.priority.code(),
                    &message.status.code(),
                    &json(&message.content)?,
                    &json(&message.overrides)?,
                    &message.correlation_ref,
                    &json(&message.metadata)?,
                    &message.send_time,
                    &message.expire_time,
                    &message.reply_to,
                    &json(&message.history)?,
                    &json(&message.route)?,
                    &key,
                    &hash,
                    &now,
                ],
            )
            .await
            .map_err(db)?;
        if inserted == 0 {
            // A concurrent request with the same key committed first.
            drop(tx);
            let client = self.client().await?;
            return replay(&client, tenant, key.as_deref().unwrap_or_default(), &hash)
                .await?
                .ok_or_else(|| StoreError::backend(std::io::Error::other("idempotency race")));
        }
        tx.execute(
            "INSERT INTO dispatch_jobs (message_id, tenant, priority, due_time) VALUES ($1, $2, $3, $4)",
            &[&message.id, &tenant, &message.priority.code(), &due],
        )
        .await
        .map_err(db)?;
        append_events(
            &tx,
            tenant,
            &[message_event(EventType::MessageAccepted, &message)],
            now,
        )
        .await?;
        tx.commit().await.map_err(db)?;
        self.bump();
        Ok(Accepted::New(message))
    }

    pub(super) async fn message(&self, tenant: &str, id: Uuid) -> Result<Message> {
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

    pub(super) async fn messages_of(
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

    pub(super) async fn cancel(&self, tenant: &str, id: Uuid) -> Result<Message> {
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
        let lease: Option<Option<SystemTime>> = tx
            .query_opt(
                "SELECT lease_until FROM dispatch_jobs WHERE message_id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(db)?
            .map(|r| r.get(0));
        if lease.flatten().is_some_and(|until| until > now) {
            return Err(StoreError::Sending(id));
        }
        tx.execute("DELETE FROM dispatch_jobs WHERE message_id = $1", &[&id])
            .await
            .map_err(db)?;
        let channel = message.channel;
        let before = message.status;
        apply_status(
            &mut message,
            MessageStatus::Canceled,
            channel,
            "canceled by caller",
            now,
        );
        write_message(&tx, tenant, &message).await?;
        append_events(&tx, tenant, &[status_event(before, &message)], now).await?;
        tx.commit().await.map_err(db)?;
        self.bump();
        Ok(message)
    }

    pub(super) async fn retry(&self, tenant: &str, id: Uuid) -> Result<Message> {
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
        requeue_by_operator(&mut message, now);
        tx.execute(
            "INSERT INTO dispatch_jobs (message_id, tenant, priority, due_time) VALUES ($1, $2, $3, $4)",
            &[&id, &tenant, &message.priority.code(), &now],
        )
        .await
        .map_err(db)?;
        write_message(&tx, tenant, &message).await?;
        append_events(&tx, tenant, &[status_event(before, &message)], now).await?;
        tx.commit().await.map_err(db)?;
        self.bump();
        Ok(message)
    }

    pub(super) async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        let client = self.client().await?;
        let now = now();
        let until = now + lease;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let stmt = client
            .prepare_cached(
                "WITH due AS (
                     SELECT message_id FROM dispatch_jobs
                     WHERE due_time <= $1 AND (lease_until IS NULL OR lease_until < $1)
                     ORDER BY priority, due_time, message_id
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE dispatch_jobs j
                 SET lease_until = $3, claim_token = gen_random_uuid(),
                     channel_attempt = j.channel_attempt + 1
                 FROM due WHERE j.message_id = due.message_id
                 RETURNING j.tenant, j.message_id, j.claim_token, j.plan_index, j.channel_attempt, j.priority, j.due_time",
            )
            .await
            .map_err(db)?;
        let mut jobs = client
            .query(&stmt, &[&now, &limit, &until])
            .await
            .map_err(db)?;
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        // Keep the dispatch order the claim chose.
        jobs.sort_by_key(|r| {
            (
                r.get::<_, i16>(5),
                r.get::<_, SystemTime>(6),
                r.get::<_, Uuid>(1),
            )
        });
        let ids: Vec<Uuid> = jobs.iter().map(|r| r.get(1)).collect();
        let rows = client
            .query(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY($1)"),
                &[&ids],
            )
            .await
            .map_err(db)?;
        let mut by_id = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let message = message_from_row(row)?;
            by_id.insert(message.id, message);
        }
        Ok(jobs
            .iter()
            .filter_map(|r| {
                let message = by_id.remove(&r.get::<_, Uuid>(1))?;
                Some(ClaimedJob {
                    tenant: r.get(0),
                    message,
                    claim_token: r.get(2),
                    plan_index: usize::try_from(r.get::<_, i32>(3)).unwrap_or(0),
                    channel_attempt: u32::try_from(r.get::<_, i32>(4)).unwrap_or(1),
                })
            })
            .collect())
    }

    pub(super) async fn complete(
        &self,
        job: &ClaimedJob,
        attempt: Option<Attempt>,
        next: NextStep,
    ) -> Result<Option<Message>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let id = job.message.id;
        let held = tx
            .query_opt(
                "SELECT 1 FROM dispatch_jobs WHERE message_id = $1 AND claim_token = $2 FOR UPDATE",
                &[&id, &job.claim_token],
            )
            .await
            .map_err(db)?;
        if held.is_none() {
            return Ok(None);
        }
        let tenant = job.tenant.as_str();
        let mut message = lock_message(&tx, tenant, id).await?;
        let before = message.status;
        let now = now();
        let reason = attempt
            .as_ref()
            .map(|a| {
                if a.error_message.is_empty() {
                    a.error_code.clone()
                } else {
                    format!("{}: {}", a.error_code, a.error_message)
                }
            })
            .unwrap_or_default();
        let channel = attempt.as_ref().map(|a| a.channel).or(message.channel);
        if let Some(attempt) = attempt {
            message.attempts.push(attempt);
        }
        let changed = match next {
            NextStep::Sent {
                provider_message_id,
            } => {
                tx.execute("DELETE FROM dispatch_jobs WHERE message_id = $1", &[&id])
                    .await
                    .map_err(db)?;
                message.provider_message_id = Some(provider_message_id);
                apply_status(&mut message, MessageStatus::Sent, channel, "", now)
            }
            NextStep::RetryAt(due) => {
                tx.execute(
                    "UPDATE dispatch_jobs SET due_time = $2, lease_until = NULL, claim_token = NULL
                     WHERE message_id = $1",
                    &[&id, &due],
                )
                .await
                .map_err(db)?;
                apply_status(&mut message, MessageStatus::Queued, channel, &reason, now)
            }
            NextStep::NextChannel(index) => {
                let next_channel = message
                    .route
                    .as_ref()
                    .and_then(|r| r.plan.get(index))
                    .map(|p| p.channel);
                let index = i32::try_from(index).unwrap_or(i32::MAX);
                tx.execute(
                    "UPDATE dispatch_jobs SET plan_index = $2, channel_attempt = 0, due_time = $3,
                            lease_until = NULL, claim_token = NULL
                     WHERE message_id = $1",
                    &[&id, &index, &now],
                )
                .await
                .map_err(db)?;
                message.channel = next_channel.or(message.channel);
                let reason = format!(
                    "falling back to {}: {reason}",
                    message.channel.map(Channel::as_str).unwrap_or("?")
                );
                apply_status(&mut message, MessageStatus::Queued, channel, &reason, now)
            }
            NextStep::Fail { reason } => {
                tx.execute("DELETE FROM dispatch_jobs WHERE message_id = $1", &[&id])
                    .await
                    .map_err(db)?;
                apply_status(&mut message, MessageStatus::Failed, channel, &reason, now)
            }
        };
        message.update_time = now;
        write_message(&tx, tenant, &message).await?;
        if changed {
            append_events(&tx, tenant, &[status_event(before, &message)], now).await?;
        }
        tx.commit().await.map_err(db)?;
        self.bump();
        Ok(Some(message))
    }

    pub(super) async fn provider_status(&self, report: ProviderStatus) -> Result<Option<Message>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let row = match report.message_id {
            Some(id) => tx
                .query_opt(
                    &format!(
                        "SELECT tenant, {MESSAGE_COLUMNS} FROM messages WHERE id = $1 FOR UPDATE"
                    ),
                    &[&id],
                )
                .await
                .map_err(db)?,
            None => tx
                .query_opt(
                    &format!(
                        "SELECT tenant, {MESSAGE_COLUMNS} FROM messages
                         WHERE channel = $1 AND provider_message_id = $2
                         ORDER BY create_time DESC LIMIT 1 FOR UPDATE"
                    ),
                    &[&report.channel.as_str(), &report.provider_message_id],
                )
                .await
                .map_err(db)?,
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let tenant: String = row.get(0);
        let mut message = message_at(&row, 1)?;
        let before = message.status;
        let now = now();
        if message.provider_message_id.is_none() && !report.provider_message_id.is_empty() {
            message.provider_message_id = Some(report.provider_message_id.clone());
        }
        let changed = apply_status(
            &mut message,
            report.status,
            Some(report.channel),
            &report.reason,
            now,
        );
        if changed {
            write_message(&tx, &tenant, &message).await?;
            append_events(&tx, &tenant, &[status_event(before, &message)], now).await?;
            tx.commit().await.map_err(db)?;
            self.bump();
        }
        Ok(Some(message))
    }

    pub(super) async fn inbound(&self, tenant: &str, inbound: NewInbound) -> Result<Received> {
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
        let now = now();
        let mut events = Vec::new();
        let owner: Option<Uuid> = tx
            .query_opt(
                "SELECT contact_id FROM identities WHERE tenant = $1 AND channel = $2 AND key = $3",
                &[&tenant, &channel, &inbound.from.key()],
            )
            .await
            .map_err(db)?
            .map(|r| r.get(0));
        let name = inbound.profile_name.clone().unwrap_or_default();
        let contact_id = match owner {
            Some(id) => {
                // The WhatsApp form the customer was last seen with is the one
                // replies go to; a profile name fills an empty display name.
                super::link(&tx, tenant, id, std::slice::from_ref(&inbound.from), now).await?;
                tx.execute(
                    "UPDATE contacts SET display_name = $3 WHERE tenant = $1 AND id = $2 AND display_name = ''",
                    &[&tenant, &id, &name],
                )
                .await
                .map_err(db)?;
                id
            }
            None => {
                let id = Uuid::now_v7();
                tx.execute(
                    "INSERT INTO contacts (tenant, id, state, display_name, create_time, update_time)
                     VALUES ($1, $2, 1, $3, $4, $4)",
                    &[&tenant, &id, &name, &now],
                )
                .await
                .map_err(db)?;
                super::link(&tx, tenant, id, std::slice::from_ref(&inbound.from), now).await?;
                events.push(contact_event(EventType::ContactCreated, id, Vec::new()));
                id
            }
        };
        if let Some(user_id) = &inbound.provider_user_id {
            tx.execute(
                "UPDATE identities SET provider_user_id = $4 WHERE tenant = $1 AND channel = $2 AND key = $3",
                &[&tenant, &channel, &inbound.from.key(), user_id],
            )
            .await
            .map_err(db)?;
        }
        if inbound.channel == Channel::Whatsapp {
            let until = inbound.time + WHATSAPP_WINDOW;
            tx.execute(
                "UPDATE contacts SET whatsapp_window_until = GREATEST(whatsapp_window_until, $3)
                 WHERE tenant = $1 AND id = $2",
                &[&tenant, &contact_id, &until],
            )
            .await
            .map_err(db)?;
        }
        let reply_to: Option<Uuid> = match &inbound.reply_to {
            Some(provider_id) => tx
                .query_opt(
                    "SELECT id FROM messages WHERE tenant = $1 AND channel = $2 AND provider_message_id = $3
                     ORDER BY create_time DESC LIMIT 1",
                    &[&tenant, &channel, provider_id],
                )
                .await
                .map_err(db)?
                .map(|r| r.get(0)),
            None => None,
        };
        let message = inbound_message(Uuid::now_v7(), contact_id, &inbound, reply_to, now);
        let inserted = tx
            .execute(
                "INSERT INTO messages (tenant, id, contact_id, direction, category, channel, priority,
                        status, content, correlation_ref, send_time, reply_to, history,
                        provider_message_id, create_time, update_time)
                 VALUES ($1, $2, $3, 2, $4, $5, $6, $7, $8, '', $9, $10, $11, $12, $13, $13)
                 ON CONFLICT (channel, provider_message_id) WHERE direction = 2 DO NOTHING",
                &[
                    &tenant,
                    &message.id,
                    &contact_id,
                    &message.category.as_str(),
                    &channel,
                    &message.priority.code(),
                    &message.status.code(),
                    &json(&message.content)?,
                    &message.send_time,
                    &reply_to,
                    &json(&message.history)?,
                    &inbound.provider_message_id,
                    &now,
                ],
            )
            .await
            .map_err(db)?;
        if inserted == 0 {
            // A concurrent delivery of the same message committed first.
            return Ok(Received::Duplicate);
        }
        events.push(message_event(EventType::MessageReceived, &message));
        append_events(&tx, tenant, &events, now).await?;
        tx.commit().await.map_err(db)?;
        self.bump();
        Ok(Received::New(message))
    }

    pub(super) async fn events(
        &self,
        tenant: &str,
        after: Cursor,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let client = self.client().await?;
        let types: Vec<i16> = filter.types.iter().map(|t| t.code()).collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let stmt = client
            .prepare_cached(
                "SELECT xid::text, seq, type, time, contact_id, message_id, correlation_ref, metadata, payload
                 FROM events
                 WHERE tenant = $1 AND (xid, seq) > ($2::text::xid8, $3)
                   AND xid < pg_snapshot_xmin(pg_current_snapshot())
                   AND (cardinality($4::smallint[]) = 0 OR type = ANY($4))
                   AND ($5::uuid IS NULL OR contact_id = $5)
                 ORDER BY xid, seq LIMIT $6",
            )
            .await
            .map_err(db)?;
        let rows = client
            .query(
                &stmt,
                &[
                    &tenant,
                    &after.xid.to_string(),
                    &after.seq,
                    &types,
                    &filter.contact_id,
                    &limit,
                ],
            )
            .await
            .map_err(db)?;
        rows.iter()
            .filter_map(|r| {
                let kind = EventType::from_code(r.get(2))?;
                Some((r, kind))
            })
            .map(|(r, kind)| {
                Ok(Event {
                    cursor: Cursor {
                        xid: r.get::<_, &str>(0).parse().unwrap_or_default(),
                        seq: r.get(1),
                    },
                    kind,
                    time: r.get(3),
                    contact_id: r.get(4),
                    message_id: r.get(5),
                    correlation_ref: r.get(6),
                    metadata: from_json(r.get(7))?,
                    payload: from_json(r.get(8))?,
                })
            })
            .collect()
    }

    pub(super) async fn head(&self, tenant: &str) -> Result<Cursor> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT xid::text, seq FROM events
                 WHERE tenant = $1 AND xid < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY xid DESC, seq DESC LIMIT 1",
                &[&tenant],
            )
            .await
            .map_err(db)?;
        Ok(row
            .map(|r| Cursor {
                xid: r.get::<_, &str>(0).parse().unwrap_or_default(),
                seq: r.get(1),
            })
            .unwrap_or_default())
    }

    pub(super) async fn stale(
        &self,
        sent_before: SystemTime,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE status = 3 AND update_time < $1
                 ORDER BY update_time LIMIT $2"
            ))
            .await
            .map_err(db)?;
        client
            .query(&stmt, &[&sent_before, &limit])
            .await
            .map_err(db)?
            .iter()
            .map(message_from_row)
            .collect()
    }

    pub(super) async fn prune(&self, before: SystemTime) -> Result<u64> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM events WHERE time < $1", &[&before])
            .await
            .map_err(db)
    }
}

/// Looks up an idempotency key: the stored message when the request is the
/// same, a conflict when it differs, `None` when the key is new.
async fn replay(
    c: &impl GenericClient,
    tenant: &str,
    key: &str,
    request_hash: &str,
) -> Result<Option<Accepted>> {
    let row = c
        .query_opt(
            &format!(
                "SELECT request_hash, {MESSAGE_COLUMNS} FROM messages
                 WHERE tenant = $1 AND idempotency_key = $2"
            ),
            &[&tenant, &key],
        )
        .await
        .map_err(db)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let message = message_at(&row, 1)?;
    if row.get::<_, &str>(0) == request_hash {
        Ok(Some(Accepted::Replayed(message)))
    } else {
        Err(StoreError::IdempotencyConflict {
            existing: message.id,
        })
    }
}

/// Erases a contact's messages inside the erasure transaction: pending ones
/// are canceled (their jobs deleted), then every message loses its content,
/// metadata, references, route and attempts, and the contact's events lose
/// their payloads. Returns how many messages were redacted.
pub(super) async fn erase_messages(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
    contact_id: Uuid,
    now: SystemTime,
) -> Result<u64> {
    let pending = tx
        .query(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE tenant = $1 AND contact_id = $2 AND id IN (SELECT message_id FROM dispatch_jobs)
                 FOR UPDATE"
            ),
            &[&tenant, &contact_id],
        )
        .await
        .map_err(db)?;
    let mut canceled = Vec::with_capacity(pending.len());
    for row in &pending {
        let mut message = message_from_row(row)?;
        let channel = message.channel;
        apply_status(
            &mut message,
            MessageStatus::Canceled,
            channel,
            "contact erased",
            now,
        );
        canceled.push(message);
    }
    if !canceled.is_empty() {
        // Logged like any cancellation; the payloads are emptied below.
        let events: Vec<NewEvent> = canceled
            .iter()
            .map(|m| status_event(MessageStatus::Accepted, m))
            .collect();
        append_events(tx, tenant, &events, now).await?;
        let ids: Vec<Uuid> = canceled.iter().map(|m| m.id).collect();
        let histories = canceled
            .iter()
            .map(|m| json(&m.history))
            .collect::<Result<Vec<_>>>()?;
        tx.execute(
            "DELETE FROM dispatch_jobs WHERE message_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(db)?;
        tx.execute(
            "UPDATE messages m SET status = $2, history = h.history, update_time = $3
             FROM unnest($1::uuid[], $4::jsonb[]) AS h(id, history)
             WHERE m.id = h.id",
            &[&ids, &MessageStatus::Canceled.code(), &now, &histories],
        )
        .await
        .map_err(db)?;
    }
    let redacted = json(&Content::Text(omniroute_channel::content::Text::default()))?;
    let count = tx
        .execute(
            "UPDATE messages SET content = $3, overrides = '[]', metadata = '{}', correlation_ref = '',
                    route = NULL, attempts = '[]', update_time = $4
             WHERE tenant = $1 AND contact_id = $2",
            &[&tenant, &contact_id, &redacted, &now],
        )
        .await
        .map_err(db)?;
    let empty = json(&EventPayload::Empty)?;
    // Events name the contact they were written for, which may be a contact
    // merged into this one since.
    tx.execute(
        "UPDATE events SET payload = $3, metadata = '{}', correlation_ref = ''
         WHERE tenant = $1 AND (contact_id = $2 OR contact_id IN
               (SELECT id FROM contacts WHERE tenant = $1 AND merged_into = $2))",
        &[&tenant, &contact_id, &empty],
    )
    .await
    .map_err(db)?;
    Ok(count)
}
