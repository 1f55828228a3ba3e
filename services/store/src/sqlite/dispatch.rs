//! The dispatcher's side of the SQLite store: claiming due jobs, recording
//! their outcomes, providers' status reports, reconciliation and closing
//! windows. SQLite has a single writer, so a job claimed by an `UPDATE`
//! inside the transaction cannot be claimed twice: no row locks or
//! `SKIP LOCKED` are needed.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use omniroute_channel::Channel;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::messages::*;
use super::{SqliteStore, callbacks, db, events};
use crate::events::*;
use crate::jobs::*;
use crate::messages::*;
use crate::model::{from_micros, now, to_micros};
use crate::parts::DispatchStore;
use crate::{Result, StoreError};
use tokio::sync::watch;

/// Leases up to `limit` due jobs of any tenant, in (priority, due time) order.
pub(super) fn claim(tx: &Connection, limit: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
    let now = to_micros(now());
    let until = now.saturating_add(super::micros(lease));
    let due: Vec<(String, String, i64, i64, i64)> = tx
        .prepare_cached(
            "SELECT tenant, message_id, plan_index, channel_attempt, kind FROM dispatch_jobs
             WHERE due_time <= ?1 AND (lease_until IS NULL OR lease_until < ?1)
             ORDER BY priority, due_time, message_id LIMIT ?2",
        )
        .map_err(db)?
        .query_map(
            params![now, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    let mut claimed = Vec::with_capacity(due.len());
    for (tenant, id, plan_index, channel_attempt, kind) in due {
        let claim_token = Uuid::now_v7();
        tx.prepare_cached(
            "UPDATE dispatch_jobs
             SET lease_until = ?2, claim_token = ?3, channel_attempt = channel_attempt + 1
             WHERE message_id = ?1",
        )
        .map_err(db)?
        .execute(params![id, until, claim_token.to_string()])
        .map_err(db)?;
        let id = Uuid::parse_str(&id).map_err(StoreError::backend)?;
        let message = get(tx, &tenant, id)?;
        claimed.push(ClaimedJob {
            tenant,
            message,
            claim_token,
            plan_index: usize::try_from(plan_index).unwrap_or_default(),
            channel_attempt: u32::try_from(channel_attempt + 1).unwrap_or(u32::MAX),
            kind: JobKind::from_code(kind),
        });
    }
    Ok(claimed)
}

/// Records a claimed job's outcome, unless its lease was lost.
pub(super) fn complete(
    tx: &Connection,
    job: &ClaimedJob,
    attempt: Option<Attempt>,
    next: NextStep,
) -> Result<Option<Message>> {
    let id = job.message.id;
    let token = job.claim_token.to_string();
    match load_job(tx, id)? {
        Some(current) if current.claim_token.as_deref() == Some(token.as_str()) => {}
        // The lease expired and another worker claimed the job, or it was
        // canceled: this outcome is stale and must change nothing.
        _ => return Ok(None),
    }
    let tenant = job.tenant.as_str();
    let mut m = get(tx, tenant, id)?;
    let now = now();
    let was = callbacks::before(tx, tenant, &m)?;
    let applied = apply_completion(&mut m, job, attempt, next, now);
    let mut next_call = None;
    match applied.job {
        JobChange::Delete => {
            delete_job(tx, id)?;
        }
        JobChange::Release {
            due,
            plan_index,
            channel_attempt,
        } => {
            next_call = Some(due);
            release_job(tx, id, due, plan_index, channel_attempt, None)?
        }
        JobChange::Watch { due } => release_job(
            tx,
            id,
            due,
            job.plan_index,
            job.channel_attempt,
            Some(m.contact_id),
        )?,
    }
    save_state(tx, tenant, &m)?;
    if let Some(event) = applied.event {
        events::append(tx, tenant, &event, now)?;
    }
    callbacks::after(tx, tenant, was, &m, next_call, now)?;
    Ok(Some(m))
}

/// Applies a provider's report; returns the message and whether it changed.
pub(super) fn apply_provider_status(
    tx: &Connection,
    report: &ProviderStatus,
) -> Result<Option<(Reported, bool)>> {
    let found: Option<(String, String)> = match report.message_id {
        Some(id) => tx
            .prepare_cached("SELECT tenant, id FROM messages WHERE id = ?1")
            .map_err(db)?
            .query_row(params![id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db)?,
        None if report.provider_message_id.is_empty() => None,
        None => tx
            .prepare_cached(
                "SELECT tenant, id FROM messages
                 WHERE channel = ?1 AND provider_message_id = ?2
                 ORDER BY id DESC LIMIT 1",
            )
            .map_err(db)?
            .query_row(
                params![report.channel.as_str(), report.provider_message_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?,
    };
    let Some((tenant, id)) = found else {
        return Ok(None);
    };
    let id = Uuid::parse_str(&id).map_err(StoreError::backend)?;
    let mut m = get(tx, &tenant, id)?;
    let now = now();
    // A failure of a watched step makes its watch due now: the next step
    // takes over instead of the message failing.
    let watched = report.status == MessageStatus::Failed
        && tx
            .prepare_cached(
                "UPDATE dispatch_jobs SET due_time = ?2 WHERE message_id = ?1 AND kind = 1",
            )
            .map_err(db)?
            .execute(params![id.to_string(), to_micros(now)])
            .map_err(db)?
            > 0;
    let before = m.status;
    let was = callbacks::before(tx, &tenant, &m)?;
    let changed = apply_report(&mut m, report, watched, now);
    if changed {
        save_state(tx, &tenant, &m)?;
        record_change(tx, &tenant, before, &m, now)?;
        callbacks::after(tx, &tenant, was, &m, None, now)?;
        // Delivered or read: the message arrived, its pending steps end (a
        // watch, or a fallback step not yet claimed).
        if ends_pending_steps(m.status) {
            tx.prepare_cached(
                "DELETE FROM dispatch_jobs
                 WHERE message_id = ?1 AND (kind <> 0 OR lease_until IS NULL)",
            )
            .map_err(db)?
            .execute(params![id.to_string()])
            .map_err(db)?;
        }
    }
    Ok(Some((Reported { tenant, message: m }, changed)))
}

/// [`crate::DispatchStore::announce_closing_windows`]: the due windows, soonest
/// first, are marked and announced (the writer is the only one, so nobody
/// announces them twice).
pub(super) fn closing_windows(
    tx: &Connection,
    scope: &TenantScope,
    lead: Duration,
    limit: usize,
) -> Result<usize> {
    let now = now();
    let (only, except) = scope.parts();
    let due: Vec<(String, String, String, String, i64)> = tx
        .prepare_cached(
            "SELECT tenant, contact_id, channel, line, open_until FROM service_windows
             WHERE open_until > ?1 AND open_until <= ?2 AND notified_until IS NULL
             ORDER BY open_until",
        )
        .map_err(db)?
        .query_map(params![to_micros(now), to_micros(now + lead)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    let mut announced = 0;
    for (tenant, contact, channel, line, until) in due {
        let selected = only.is_none_or(|t| t == tenant) && !except.contains(&tenant.as_str());
        if !selected {
            continue;
        }
        if announced == limit {
            break;
        }
        tx.prepare_cached(
            "UPDATE service_windows SET notified_until = open_until
             WHERE tenant = ?1 AND contact_id = ?2 AND channel = ?3 AND line = ?4",
        )
        .map_err(db)?
        .execute(params![tenant, contact, channel, line])
        .map_err(db)?;
        let Some(channel) = Channel::parse(&channel) else {
            continue;
        };
        let contact_id = Uuid::parse_str(&contact).map_err(StoreError::backend)?;
        let window = crate::ServiceWindow {
            channel,
            line,
            open_until: from_micros(until),
        };
        events::append(tx, &tenant, &window_event(contact_id, window), now)?;
        announced += 1;
    }
    Ok(announced)
}

/// Sent messages that heard nothing since `sent_before`, oldest first.
/// Sent messages that heard nothing, by (update_time, id) after `after`: a
/// sent message's update time is when it was sent.
pub(super) fn stale_sent(
    tx: &Connection,
    after: SentMark,
    sent_before: SystemTime,
    limit: usize,
) -> Result<Vec<(SentMark, Message)>> {
    let mut stmt = tx
        .prepare_cached(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages WHERE status = 3 AND (update_time, id) > (?1, ?2) AND update_time < ?3
              ORDER BY update_time, id LIMIT ?4"
        ))
        .map_err(db)?;
    let rows = stmt
        .query_map(
            params![
                to_micros(after.time),
                after.id.to_string(),
                to_micros(sent_before),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            message_row,
        )
        .map_err(db)?;
    rows.map(|m| {
        m.map(|m| {
            (
                SentMark {
                    time: m.update_time,
                    id: m.id,
                },
                m,
            )
        })
    })
    .collect::<Result<_, _>>()
    .map_err(db)
}

#[async_trait]
impl DispatchStore for SqliteStore {
    async fn claim_jobs(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        // Claiming is not announced: only the claiming worker cares.
        self.tx(move |tx| claim(tx, limit, lease)).await
    }

    async fn complete_jobs(&self, completions: &[Completion]) -> Result<Vec<Option<Message>>> {
        let completions = completions.to_vec();
        let completed = self
            .tx(move |tx| {
                completions
                    .into_iter()
                    .map(|c| complete(tx, &c.job, c.attempt, c.next))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        // A job released for a retry or the next channel is due again.
        if completed
            .iter()
            .flatten()
            .any(|m| m.history.last().map(|h| h.status) == Some(MessageStatus::Queued))
        {
            self.bump_jobs();
        } else if completed.iter().any(Option::is_some) {
            self.bump();
        }
        Ok(completed)
    }

    async fn apply_provider_statuses(
        &self,
        statuses: Vec<ProviderStatus>,
    ) -> Result<Vec<Option<Reported>>> {
        let applied = self
            .tx(move |tx| {
                statuses
                    .iter()
                    .map(|status| apply_provider_status(tx, status))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        // A failure of a watched step made its watch due.
        let failed =
            |m: &Message| m.history.last().map(|h| h.status) == Some(MessageStatus::Failed);
        if applied
            .iter()
            .flatten()
            .any(|(r, changed)| *changed && failed(&r.message))
        {
            self.bump_jobs();
        } else if applied.iter().flatten().any(|(_, changed)| *changed) {
            self.bump();
        }
        Ok(applied
            .into_iter()
            .map(|a| a.map(|(reported, _)| reported))
            .collect())
    }

    async fn stale_sent(
        &self,
        after: SentMark,
        sent_before: SystemTime,
        limit: usize,
    ) -> Result<Vec<(SentMark, Message)>> {
        self.read(move |tx| stale_sent(tx, after, sent_before, limit))
            .await
    }

    async fn announce_closing_windows(
        &self,
        scope: &crate::TenantScope,
        lead: Duration,
        limit: usize,
    ) -> Result<usize> {
        let scope = scope.clone();
        let announced = self
            .tx(move |tx| closing_windows(tx, &scope, lead, limit))
            .await?;
        if announced > 0 {
            self.bump();
        }
        Ok(announced)
    }

    fn job_changes(&self) -> watch::Receiver<u64> {
        self.jobs.subscribe()
    }
}
