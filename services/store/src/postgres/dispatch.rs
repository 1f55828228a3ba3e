//! The dispatcher's side of the PostgreSQL store: claiming due jobs,
//! recording their outcomes, and applying providers' status reports, each
//! for many messages per transaction; the sent messages that heard nothing
//! (reconciliation) and the windows about to close.
//!
//! - A claim leases due jobs with `FOR UPDATE SKIP LOCKED` and returns them
//!   with their messages, in one statement; no transaction stays open while
//!   a provider is called.
//! - A completion records many outcomes in one transaction. Each counts only
//!   if its job still carries the claim token it was sent under, so a worker
//!   whose lease expired never overwrites a newer attempt.
//! - Status reports for many messages apply in one transaction, several for
//!   one message in turn, with the monotonic status rules.
//!
//! Locks are taken messages first, then jobs, each in id order, as
//! cancellation and erasure take them, so these transactions never deadlock
//! with each other or with those.
//!
//! Statements on `dispatch_jobs` and `awaiting_status` run on connections
//! that plan every
//! execution afresh (`plan_cache_mode = force_custom_plan`, the store's
//! queue pool): a queue grows from nothing to a million rows and back
//! within minutes, far faster than statistics follow, and a plan cached
//! while it was small (a sequential scan) would then read the whole backlog
//! on every claim. The claim orders by exactly the columns of its index
//! (`dispatch_jobs_due`: priority, due time), so that reading due jobs in
//! order never takes a sort, and the only index that names `message_id` is
//! the primary key, so that no estimate can send a lookup by id elsewhere
//! (statistics taken while the queue was empty once had a lookup of 256 ids
//! scan a whole index of the other kind: 1.8 s).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::callbacks::progress_of;
use super::messages::{MESSAGE_COLUMNS, insert_events, message_at, write_messages};
use super::{PgStore, db};
use crate::Result;
use crate::ServiceWindow;
use crate::callbacks::{Callback, callback_event, callback_state, is_callback};
use crate::events::*;
use crate::jobs::*;
use crate::messages::*;
use crate::model::now;
use crate::parts::DispatchStore;
use async_trait::async_trait;
use omniroute_channel::Channel;
use tokio::sync::watch;

/// The statement that locks messages by id (`$1`), in id order, answering
/// the tenant and then the message columns.
async fn lock_messages_stmt(c: &impl GenericClient) -> Result<tokio_postgres::Statement> {
    c.prepare_cached(&format!(
        "SELECT tenant, {MESSAGE_COLUMNS} FROM messages
         WHERE id = ANY($1) ORDER BY id FOR UPDATE"
    ))
    .await
    .map_err(db)
}

/// Reads locked messages by id, with their tenants.
fn messages_by_id(rows: &[Row]) -> Result<HashMap<Uuid, (String, Message)>> {
    rows.iter()
        .map(|row| {
            let message = message_at(row, 1)?;
            Ok((message.id, (row.get(0), message)))
        })
        .collect()
}

/// Jobs put back in line by a completion (as send jobs, or as watches with
/// their contact), written with one statement.
#[derive(Debug, Default)]
struct Released {
    ids: Vec<Uuid>,
    dues: Vec<SystemTime>,
    plan_indexes: Vec<i32>,
    attempts: Vec<i32>,
    kinds: Vec<i16>,
    contacts: Vec<Option<Uuid>>,
}

impl Released {
    /// A job due at `due` on `plan_index` with `channel_attempt` attempts
    /// made on its channel; a watch of `contact` if given.
    fn push(
        &mut self,
        id: Uuid,
        due: SystemTime,
        plan_index: usize,
        channel_attempt: u32,
        watch_of: Option<Uuid>,
    ) {
        self.ids.push(id);
        self.dues.push(due);
        self.plan_indexes
            .push(i32::try_from(plan_index).unwrap_or(i32::MAX));
        self.attempts
            .push(i32::try_from(channel_attempt).unwrap_or(i32::MAX));
        self.kinds.push(JobKind::released(watch_of).code());
        self.contacts.push(watch_of);
    }

    async fn write(&self, c: &impl GenericClient) -> Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        let stmt = c
            .prepare_cached(
                "UPDATE dispatch_jobs j
                 SET due_time = u.due, plan_index = u.plan_index, lease_until = NULL,
                     claim_token = NULL, kind = u.kind, contact_id = u.contact_id,
                     channel_attempt = u.attempt
                 FROM unnest($1::uuid[], $2::timestamptz[], $3::integer[], $4::integer[],
                             $5::smallint[], $6::uuid[])
                      AS u(id, due, plan_index, attempt, kind, contact_id)
                 WHERE j.message_id = u.id",
            )
            .await
            .map_err(db)?;
        c.execute(
            &stmt,
            &[
                &self.ids,
                &self.dues,
                &self.plan_indexes,
                &self.attempts,
                &self.kinds,
                &self.contacts,
            ],
        )
        .await
        .map_err(db)?;
        Ok(())
    }
}

#[async_trait]
impl DispatchStore for PgStore {
    /// Leases due jobs (see [`crate::DispatchStore::claim_jobs`]) in one statement:
    /// the due rows are locked in dispatch order, then updated by their
    /// physical address (the rows are locked, so it cannot move), and
    /// returned with their messages.
    async fn claim_jobs(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        let client = self.queue_client().await?;
        let now = now();
        let until = now + lease;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let stmt = client
            .prepare_cached(&format!(
                "WITH due AS (
                     SELECT ctid FROM dispatch_jobs
                     WHERE due_time <= $1 AND (lease_until IS NULL OR lease_until < $1)
                     ORDER BY priority, due_time
                     LIMIT $2
                     FOR UPDATE SKIP LOCKED
                 ),
                 claimed AS (
                     UPDATE dispatch_jobs j
                     SET lease_until = $3, claim_token = gen_random_uuid(),
                         channel_attempt = j.channel_attempt + 1
                     WHERE j.ctid = ANY(ARRAY(SELECT ctid FROM due))
                     RETURNING j.message_id, j.claim_token, j.plan_index, j.channel_attempt,
                               j.kind, j.priority AS job_priority, j.due_time AS job_due
                 )
                 SELECT c.claim_token, c.plan_index, c.channel_attempt, c.kind, m.tenant,
                        {MESSAGE_COLUMNS}
                 FROM claimed c JOIN messages m ON m.id = c.message_id
                 ORDER BY c.job_priority, c.job_due, c.message_id"
            ))
            .await
            .map_err(db)?;
        let rows = client
            .query(&stmt, &[&now, &limit, &until])
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(ClaimedJob {
                    claim_token: r.get(0),
                    plan_index: usize::try_from(r.get::<_, i32>(1)).unwrap_or(0),
                    channel_attempt: u32::try_from(r.get::<_, i32>(2)).unwrap_or(1),
                    kind: JobKind::from_code(r.get::<_, i16>(3).into()),
                    tenant: r.get(4),
                    message: message_at(r, 5)?,
                })
            })
            .collect()
    }

    async fn complete_jobs(&self, completions: &[Completion]) -> Result<Vec<Option<Message>>> {
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.queue_client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let ids: Vec<Uuid> = completions.iter().map(|c| c.job.message.id).collect();
        let jobs_stmt = tx
            .prepare_cached(
                "SELECT message_id, claim_token FROM dispatch_jobs
                 WHERE message_id = ANY($1) ORDER BY message_id FOR UPDATE",
            )
            .await
            .map_err(db)?;
        let messages_stmt = lock_messages_stmt(&tx).await?;
        // Messages first, then jobs: pipelined, sent (and so locked) in this
        // order.
        let (message_rows, job_rows) = tokio::try_join!(
            async { tx.query(&messages_stmt, &[&ids]).await.map_err(db) },
            async { tx.query(&jobs_stmt, &[&ids]).await.map_err(db) },
        )?;
        let tokens: HashMap<Uuid, Option<Uuid>> =
            job_rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let mut messages = messages_by_id(&message_rows)?;
        // Callbacks among them: their progress, for their states before
        // and after (an outcome does not move the progress).
        let progress = {
            let locked: Vec<(&str, &Message)> = messages
                .values()
                .map(|(tenant, m)| (tenant.as_str(), m))
                .collect();
            progress_of(&tx, &locked).await?
        };
        let now = now();
        let mut answers = Vec::with_capacity(completions.len());
        let mut events: Vec<(String, NewEvent)> = Vec::new();
        let mut deleted: Vec<Uuid> = Vec::new();
        let mut sent: Vec<Uuid> = Vec::new();
        let mut released = Released::default();
        // Whether a job was put back in line due (a retry, the next step),
        // not as a watch.
        let mut requeued = false;
        let mut written: Vec<Uuid> = Vec::new();
        for completion in completions {
            let id = completion.job.message.id;
            let held = tokens.get(&id).copied().flatten() == Some(completion.job.claim_token);
            let Some((tenant, message)) = messages.get_mut(&id).filter(|_| held) else {
                answers.push(None);
                continue;
            };
            let was = is_callback(message).then(|| callback_state(message, progress.get(&id)));
            let applied = apply_completion(
                message,
                &completion.job,
                completion.attempt.clone(),
                completion.next.clone(),
                now,
            );
            if matches!(completion.next, NextStep::Sent { .. })
                && message.status == MessageStatus::Sent
            {
                sent.push(id);
            }
            match applied.job {
                JobChange::Delete => deleted.push(id),
                JobChange::Release {
                    due,
                    plan_index,
                    channel_attempt,
                } => {
                    requeued = true;
                    released.push(id, due, plan_index, channel_attempt, None)
                }
                JobChange::Watch { due } => released.push(
                    id,
                    due,
                    completion.job.plan_index,
                    completion.job.channel_attempt,
                    Some(message.contact_id),
                ),
            }
            if let Some(event) = applied.event {
                events.push((tenant.clone(), event));
            }
            if let Some(was) = was {
                let callback = Callback {
                    message: message.clone(),
                    progress: progress.get(&id).cloned(),
                    next_call: match applied.job {
                        JobChange::Release { due, .. } => Some(due),
                        _ => None,
                    },
                };
                if let Some(event) = callback_event(Some(was), &callback) {
                    events.push((tenant.clone(), event));
                }
            }
            written.push(id);
            answers.push(Some(message.clone()));
        }
        let written: Vec<(&str, &Message)> = written
            .iter()
            .filter_map(|id| messages.get(id))
            .map(|(tenant, message)| (tenant.as_str(), message))
            .collect();
        let events: Vec<(&str, &NewEvent)> = events.iter().map(|(t, e)| (t.as_str(), e)).collect();
        let delete_stmt = tx
            .prepare_cached("DELETE FROM dispatch_jobs WHERE message_id = ANY($1)")
            .await
            .map_err(db)?;
        // Sent messages wait for their first report (for reconciliation).
        let await_stmt = tx
            .prepare_cached(
                "INSERT INTO awaiting_status (message_id, sent_time)
                 SELECT unnest($1::uuid[]), $2
                 ON CONFLICT (message_id) DO UPDATE SET sent_time = EXCLUDED.sent_time",
            )
            .await
            .map_err(db)?;
        tokio::try_join!(
            async {
                if deleted.is_empty() {
                    return Ok(());
                }
                tx.execute(&delete_stmt, &[&deleted]).await.map_err(db)?;
                Ok(())
            },
            async {
                if sent.is_empty() {
                    return Ok(());
                }
                tx.execute(&await_stmt, &[&sent, &now]).await.map_err(db)?;
                Ok(())
            },
            released.write(&tx),
            write_messages(&tx, &written),
            insert_events(&tx, &events, now),
        )?;
        tx.commit().await.map_err(db)?;
        if requeued {
            self.bump_jobs();
        } else if !written.is_empty() {
            self.bump();
        }
        Ok(answers)
    }

    async fn apply_provider_statuses(
        &self,
        reports: Vec<ProviderStatus>,
    ) -> Result<Vec<Option<Reported>>> {
        if reports.is_empty() {
            return Ok(Vec::new());
        }
        // `awaiting_status` churns like the queue: plan for its size now.
        let mut client = self.queue_client().await?;
        // Reports that name only the provider's id: find our id first
        // (the newest message with it), without locks.
        let unnamed: Vec<&ProviderStatus> = reports
            .iter()
            .filter(|r| r.message_id.is_none() && !r.provider_message_id.is_empty())
            .collect();
        let mut by_provider_id: HashMap<(&str, &str), Uuid> = HashMap::new();
        let found_rows;
        if !unnamed.is_empty() {
            let channels: Vec<&str> = unnamed.iter().map(|r| r.channel.as_str()).collect();
            let provider_ids: Vec<&str> = unnamed
                .iter()
                .map(|r| r.provider_message_id.as_str())
                .collect();
            let stmt = client
                .prepare_cached(
                    "SELECT DISTINCT ON (m.channel, m.provider_message_id)
                            m.channel, m.provider_message_id, m.id
                     FROM messages m
                     JOIN unnest($1::text[], $2::text[]) AS k(channel, provider_message_id)
                       ON m.channel = k.channel AND m.provider_message_id = k.provider_message_id
                     ORDER BY m.channel, m.provider_message_id, m.create_time DESC",
                )
                .await
                .map_err(db)?;
            found_rows = client
                .query(&stmt, &[&channels, &provider_ids])
                .await
                .map_err(db)?;
            for row in &found_rows {
                by_provider_id.insert((row.get(0), row.get(1)), row.get(2));
            }
        }
        let targets: Vec<Option<Uuid>> = reports
            .iter()
            .map(|r| {
                r.message_id.or_else(|| {
                    by_provider_id
                        .get(&(r.channel.as_str(), r.provider_message_id.as_str()))
                        .copied()
                })
            })
            .collect();
        let mut ids: Vec<Uuid> = targets.iter().flatten().copied().collect();
        ids.sort();
        ids.dedup();
        let tx = client.transaction().await.map_err(db)?;
        let stmt = lock_messages_stmt(&tx).await?;
        let rows = tx.query(&stmt, &[&ids]).await.map_err(db)?;
        let mut messages = messages_by_id(&rows)?;
        let now = now();
        // A failure of a watched step makes its watch due now: the next
        // step takes over instead of the message failing.
        let mut failing: Vec<Uuid> = reports
            .iter()
            .zip(&targets)
            .filter(|(r, _)| r.status == MessageStatus::Failed)
            .filter_map(|(_, t)| *t)
            .collect();
        failing.sort();
        failing.dedup();
        let mut watched: Vec<Uuid> = Vec::new();
        if !failing.is_empty() {
            let stmt = tx
                .prepare_cached(
                    "UPDATE dispatch_jobs SET due_time = $2
                     WHERE message_id = ANY($1) AND kind = 1 RETURNING message_id",
                )
                .await
                .map_err(db)?;
            watched = tx
                .query(&stmt, &[&failing, &now])
                .await
                .map_err(db)?
                .iter()
                .map(|r| r.get(0))
                .collect();
        }
        // Callbacks among them: their progress, for their states before
        // and after (a report does not move the progress).
        let progress = {
            let locked: Vec<(&str, &Message)> = messages
                .values()
                .map(|(tenant, m)| (tenant.as_str(), m))
                .collect();
            progress_of(&tx, &locked).await?
        };
        let mut answers = Vec::with_capacity(reports.len());
        let mut events: Vec<(String, NewEvent)> = Vec::new();
        let mut touched: Vec<Uuid> = Vec::new();
        for (report, target) in reports.iter().zip(targets) {
            let Some((tenant, message)) = target.and_then(|id| messages.get_mut(&id)) else {
                answers.push(None);
                continue;
            };
            let before = message.status;
            let progress = progress.get(&message.id);
            let was = is_callback(message).then(|| callback_state(message, progress));
            let changed = apply_report(message, report, watched.contains(&message.id), now);
            if changed {
                events.push((tenant.clone(), status_event(before, message)));
                let callback = Callback {
                    message: message.clone(),
                    progress: progress.cloned(),
                    next_call: None,
                };
                if let Some(event) = was.and_then(|was| callback_event(Some(was), &callback)) {
                    events.push((tenant.clone(), event));
                }
                if !touched.contains(&message.id) {
                    touched.push(message.id);
                }
            }
            answers.push(Some(Reported {
                tenant: tenant.clone(),
                message: message.clone(),
            }));
        }
        if touched.is_empty() {
            tx.commit().await.map_err(db)?;
            return Ok(answers);
        }
        let written: Vec<(&str, &Message)> = touched
            .iter()
            .filter_map(|id| messages.get(id))
            .map(|(tenant, message)| (tenant.as_str(), message))
            .collect();
        let events: Vec<(&str, &NewEvent)> = events.iter().map(|(t, e)| (t.as_str(), e)).collect();
        // Messages that heard their first report since being sent stop
        // waiting for reconciliation.
        let heard: Vec<Uuid> = written
            .iter()
            .filter(|(_, m)| m.status != MessageStatus::Sent)
            .map(|(_, m)| m.id)
            .collect();
        let heard_stmt = tx
            .prepare_cached("DELETE FROM awaiting_status WHERE message_id = ANY($1)")
            .await
            .map_err(db)?;
        // Delivered or read: the message arrived, its pending steps end (a
        // watch, or a fallback step not yet claimed).
        let arrived: Vec<Uuid> = written
            .iter()
            .filter(|(_, m)| ends_pending_steps(m.status))
            .map(|(_, m)| m.id)
            .collect();
        let arrived_stmt = tx
            .prepare_cached(
                "DELETE FROM dispatch_jobs
                 WHERE message_id = ANY($1) AND (kind <> 0 OR lease_until IS NULL)",
            )
            .await
            .map_err(db)?;
        tokio::try_join!(
            write_messages(&tx, &written),
            insert_events(&tx, &events, now),
            async {
                if heard.is_empty() {
                    return Ok(());
                }
                tx.execute(&heard_stmt, &[&heard]).await.map_err(db)?;
                Ok(())
            },
            async {
                if arrived.is_empty() {
                    return Ok(());
                }
                tx.execute(&arrived_stmt, &[&arrived]).await.map_err(db)?;
                Ok(())
            },
        )?;
        tx.commit().await.map_err(db)?;
        if watched.is_empty() {
            self.bump();
        } else {
            self.bump_jobs();
        }
        Ok(answers)
    }

    async fn stale_sent(
        &self,
        after: SentMark,
        sent_before: SystemTime,
        limit: usize,
    ) -> Result<Vec<(SentMark, Message)>> {
        let client = self.queue_client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Sent messages wait in `awaiting_status` until their first report;
        // a page is a range of its (sent_time, message_id) index, each
        // message read by its id.
        let stmt = client
            .prepare_cached(&format!(
                "SELECT a.sent_time, {MESSAGE_COLUMNS}
                 FROM (SELECT message_id, sent_time FROM awaiting_status
                       WHERE (sent_time, message_id) > ($1, $2) AND sent_time < $3
                       ORDER BY sent_time, message_id LIMIT $4) a
                 JOIN messages ON messages.id = a.message_id
                 WHERE messages.status = 3
                 ORDER BY a.sent_time, a.message_id"
            ))
            .await
            .map_err(db)?;
        client
            .query(&stmt, &[&after.time, &after.id, &sent_before, &limit])
            .await
            .map_err(db)?
            .iter()
            .map(|r| {
                let message = message_at(r, 1)?;
                Ok((
                    SentMark {
                        time: r.get(0),
                        id: message.id,
                    },
                    message,
                ))
            })
            .collect()
    }

    /// [`crate::DispatchStore::announce_closing_windows`]: the due windows are
    /// locked soonest first (skipping those another replica holds), marked
    /// by primary key and announced, in one transaction.
    async fn announce_closing_windows(
        &self,
        scope: &TenantScope,
        lead: Duration,
        limit: usize,
    ) -> Result<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let now = now();
        let horizon = now + lead;
        let (only, except) = scope.parts();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let due_stmt = tx
            .prepare_cached(
                "SELECT tenant, contact_id, channel, line, open_until FROM service_windows
                 WHERE open_until > $1 AND open_until <= $2 AND notified_until IS NULL
                   AND ($3::text IS NULL OR tenant = $3) AND tenant <> ALL($4)
                 ORDER BY open_until LIMIT $5
                 FOR UPDATE SKIP LOCKED",
            )
            .await
            .map_err(db)?;
        let rows = tx
            .query(&due_stmt, &[&now, &horizon, &only, &except, &limit])
            .await
            .map_err(db)?;
        if rows.is_empty() {
            return Ok(0);
        }
        let tenants: Vec<&str> = rows.iter().map(|r| r.get(0)).collect();
        let contacts: Vec<Uuid> = rows.iter().map(|r| r.get(1)).collect();
        let channels: Vec<&str> = rows.iter().map(|r| r.get(2)).collect();
        let lines: Vec<&str> = rows.iter().map(|r| r.get(3)).collect();
        let mark_stmt = tx
            .prepare_cached(
                "UPDATE service_windows w SET notified_until = w.open_until
                 FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[])
                      AS k(tenant, contact_id, channel, line)
                 WHERE w.tenant = k.tenant AND w.contact_id = k.contact_id
                   AND w.channel = k.channel AND w.line = k.line",
            )
            .await
            .map_err(db)?;
        let events: Vec<(&str, NewEvent)> = rows
            .iter()
            .filter_map(|r| {
                let window = ServiceWindow {
                    channel: Channel::parse(r.get(2))?,
                    line: r.get(3),
                    open_until: r.get(4),
                };
                Some((r.get(0), window_event(r.get(1), window)))
            })
            .collect();
        let events: Vec<(&str, &NewEvent)> = events.iter().map(|(t, e)| (*t, e)).collect();
        tokio::try_join!(
            async {
                tx.execute(&mark_stmt, &[&tenants, &contacts, &channels, &lines])
                    .await
                    .map_err(db)
            },
            insert_events(&tx, &events, now),
        )?;
        tx.commit().await.map_err(db)?;
        self.bump();
        Ok(rows.len())
    }

    fn job_changes(&self) -> watch::Receiver<u64> {
        self.signals.jobs.subscribe()
    }
}
