//! Status ingestion: the one path by which adapters' asynchronous reports
//! (webhooks, the sandbox, reconciliation) reach the store when they are
//! not applied at once.
//!
//! Adapters report through [`StatusChannel`], which never blocks them. A task
//! applies the reports with the store's monotonic status rules, as many per
//! store call (one transaction) as have queued meanwhile. A report can
//! arrive before the attempt that produced it is recorded (providers are
//! fast: a call's first callbacks can come before the answer to placing
//! it); one that matches no message yet, or a call's progress that matches
//! no call yet, waits and is tried again every quarter second for ten
//! seconds, then dropped with a warning.
//!
//! Reports of one provider message keep their order: one that comes while
//! an earlier one waits queues behind it, in the task and in the webhook
//! listener ([`StatusChannel::apply_or_queue`]). So a callback's "the agent
//! line was busy" is not overtaken by its hang-up ("the call ended before
//! the agent was connected"), whichever of them finds the call recorded.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omniroute_channel::{CallProgress, Channel, DeliveryStatus, StatusSink, StatusUpdate};
use omniroute_domain::{MessageStatus, ProviderStatus, Reported};
use omniroute_store::StoreError;
use omniroute_store::prelude::*;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::backoff::Backoff;

/// How often and how long an unmatched report is retried.
const RETRY_EVERY: Duration = Duration::from_millis(250);
const RETRIES: u32 = 40;

/// Most reports applied in one store call.
const MAX_GROUP: usize = 500;

/// How long ingestion waits for more reports to apply with the first.
const LINGER: Duration = Duration::from_millis(5);

/// What an adapter reports of a message it sent.
#[derive(Debug, Clone)]
pub enum Report {
    /// A delivery status.
    Status(StatusUpdate),
    /// A call's progress (who answered, how long it was bridged).
    Progress(CallProgress),
}

/// The provider message a report is of: its channel and the provider's id
/// (ours, when the provider echoes only that).
type Key = (Channel, String);

impl Report {
    fn key(&self) -> Key {
        match self {
            Report::Status(update) if update.provider_message_id.is_empty() => (
                update.channel,
                update.message_id.clone().unwrap_or_default(),
            ),
            Report::Status(update) => (update.channel, update.provider_message_id.clone()),
            Report::Progress(progress) => (progress.channel, progress.call_id.clone()),
        }
    }
}

/// The sink adapters report to, and what of theirs waits in the task.
#[derive(Debug, Clone)]
pub struct StatusChannel {
    reports: mpsc::UnboundedSender<Report>,
    /// How many reports of each provider message are queued or waiting.
    held: Arc<Mutex<HashMap<Key, usize>>>,
}

impl StatusSink for StatusChannel {
    fn report(&self, update: StatusUpdate) {
        self.queue(Report::Status(update));
    }
}

impl StatusChannel {
    /// Hands `report` to the task, behind the reports queued before it.
    fn queue(&self, report: Report) {
        let key = report.key();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if self.reports.send(report).is_ok() {
            *held.entry(key).or_default() += 1;
        } else {
            tracing::warn!("status report after shutdown dropped");
        }
    }

    /// Whether a report of `key` is queued or waiting.
    fn holds(&self, key: &Key) -> bool {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.contains_key(key)
    }

    /// A report of `key` applied, or given up.
    fn settled(&self, key: &Key) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                held.remove(key);
            }
        }
    }

    /// Applies `report` now, unless an earlier report of its message is
    /// queued (then it queues behind that one); one that matches nothing
    /// yet is queued to be tried again. An error is the store's.
    pub async fn apply_or_queue(
        &self,
        store: &dyn Store,
        report: Report,
    ) -> Result<(), StoreError> {
        if self.holds(&report.key()) {
            self.queue(report);
            return Ok(());
        }
        let matched = match &report {
            Report::Status(update) => {
                let applied = store.apply_provider_status(provider_status(update)).await?;
                matched(update, applied.as_ref())
            }
            Report::Progress(progress) => record_progress(store, progress).await?,
        };
        if !matched {
            self.queue(report);
        }
        Ok(())
    }
}

/// Creates the sink and the receiving end for [`run`].
pub fn channel() -> (StatusChannel, mpsc::UnboundedReceiver<Report>) {
    let (reports, rx) = mpsc::unbounded_channel();
    (
        StatusChannel {
            reports,
            held: Arc::default(),
        },
        rx,
    )
}

/// Records a call's progress; whether the call is known.
async fn record_progress(store: &dyn Store, progress: &CallProgress) -> Result<bool, StoreError> {
    store
        .record_call_progress(
            progress.channel,
            &progress.call_id,
            progress.answered_by.as_deref(),
            progress.bridged_seconds,
        )
        .await
}

/// An adapter's report in the store's terms.
pub fn provider_status(update: &StatusUpdate) -> ProviderStatus {
    ProviderStatus {
        message_id: update
            .message_id
            .as_deref()
            .and_then(|id| Uuid::parse_str(id).ok()),
        channel: update.channel,
        provider_message_id: update.provider_message_id.clone(),
        status: match update.status {
            // Still sent as far as anyone can know; the history says why
            // no report follows (`RELAYED`), which the deadline reads.
            DeliveryStatus::Sent | DeliveryStatus::Relayed => MessageStatus::Sent,
            DeliveryStatus::Delivered => MessageStatus::Delivered,
            DeliveryStatus::Read => MessageStatus::Read,
            DeliveryStatus::Failed | DeliveryStatus::Ended => MessageStatus::Failed,
        },
        unless_delivered: update.status == DeliveryStatus::Ended,
        time: update.time,
        reason: match (&update.error, update.status) {
            (Some(e), _) => format!(
                "{} failure {}: {}",
                e.class().as_str(),
                e.code(),
                e.message()
            ),
            (None, DeliveryStatus::Relayed) => omniroute_domain::RELAYED.to_owned(),
            (None, _) => String::new(),
        },
    }
}

/// Reports waiting to be tried again, in the order they came.
#[derive(Debug, Default)]
struct Waiting {
    reports: VecDeque<(Report, u32)>,
    keys: HashMap<Key, usize>,
}

impl Waiting {
    fn push(&mut self, report: Report, tries: u32) {
        *self.keys.entry(report.key()).or_default() += 1;
        self.reports.push_back((report, tries));
    }

    fn holds(&self, key: &Key) -> bool {
        self.keys.contains_key(key)
    }

    fn take_all(&mut self) -> Vec<(Report, u32)> {
        self.keys.clear();
        self.reports.drain(..).collect()
    }
}

/// Applies reports until shutdown.
pub async fn run(
    store: Arc<dyn Store>,
    sink: StatusChannel,
    mut reports: mpsc::UnboundedReceiver<Report>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ingest = Ingest {
        store,
        sink,
        backoff: Backoff::new("applying status reports"),
        waiting: Waiting::default(),
    };
    // When the waiting reports are tried again; `None` while none wait.
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let round = tokio::select! {
            received = reports.recv() => match received {
                Some(first) => super::gather(first, &mut reports, MAX_GROUP, LINGER)
                    .await
                    .into_iter()
                    .map(|report| (report, 0))
                    .collect(),
                None => return,
            },
            () = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => {
                retry_at = None;
                ingest.waiting.take_all()
            }
            _ = shutdown.changed() => return,
        };
        if !ingest.round(round, &mut shutdown).await {
            return;
        }
        if retry_at.is_none() && !ingest.waiting.reports.is_empty() {
            retry_at = Some(tokio::time::Instant::now() + RETRY_EVERY);
        }
    }
}

/// The task's state.
struct Ingest {
    store: Arc<dyn Store>,
    sink: StatusChannel,
    backoff: Backoff,
    waiting: Waiting,
}

impl Ingest {
    /// Applies `reports` in their order, a group per store call; the ones
    /// that match nothing yet, and the later ones of their messages, wait.
    /// False on shutdown.
    async fn round(
        &mut self,
        reports: Vec<(Report, u32)>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let mut reports = reports.into_iter().peekable();
        while reports.peek().is_some() {
            let mut group = Vec::new();
            while group.len() < MAX_GROUP {
                let Some((report, tries)) = reports.next() else {
                    break;
                };
                if self.waiting.holds(&report.key()) {
                    // Behind a waiting report of its message: not tried
                    // before it, so no try spent.
                    self.waiting.push(report, tries);
                } else {
                    group.push((report, tries));
                }
            }
            let Some(matched) = self.apply(&group, shutdown).await else {
                return false;
            };
            for ((report, tries), matched) in group.into_iter().zip(matched) {
                match matched {
                    Some(true) => self.sink.settled(&report.key()),
                    Some(false) => self.wait_or_drop(report, tries),
                    // Behind one of its message's that matched nothing:
                    // not tried, so no try spent.
                    None => self.waiting.push(report, tries),
                }
            }
        }
        true
    }

    /// A report that matched nothing: tried again later, or after its
    /// last try dropped.
    fn wait_or_drop(&mut self, report: Report, tries: u32) {
        if tries + 1 < RETRIES {
            self.waiting.push(report, tries + 1);
            return;
        }
        let (channel, provider_id) = report.key();
        match report {
            Report::Status(_) => tracing::warn!(
                %channel,
                provider_message_id = %provider_id,
                "status report matches no message; dropped"
            ),
            Report::Progress(_) => tracing::warn!(
                %channel,
                call = %provider_id,
                "call progress matches no call; dropped"
            ),
        }
        self.sink.settled(&(channel, provider_id));
    }

    /// Applies `group` in its order: for each report, whether it matched,
    /// or `None` when it was not tried because an earlier report of its
    /// provider message matched nothing in this round (it must not
    /// overtake that one: a call's length recorded before who answered).
    /// Statuses that follow one another go in one store call; a call's
    /// progress is recorded in its place between them (the bridge's length
    /// before the delivery it came with). `None` on shutdown.
    async fn apply(
        &mut self,
        group: &[(Report, u32)],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Vec<Option<bool>>> {
        let mut matched = Vec::with_capacity(group.len());
        let mut unmatched: std::collections::HashSet<Key> = std::collections::HashSet::new();
        let mut rest = group;
        while let Some((first, _)) = rest.first() {
            let statuses = rest
                .iter()
                .take_while(|(report, _)| matches!(report, Report::Status(_)))
                .count();
            let (now, later) = rest.split_at(statuses.max(1));
            rest = later;
            let tries: Vec<bool> = now
                .iter()
                .map(|(report, _)| !unmatched.contains(&report.key()))
                .collect();
            let tried: Vec<&Report> = now
                .iter()
                .zip(&tries)
                .filter(|(_, tried)| **tried)
                .map(|((report, _), _)| report)
                .collect();
            let results = match first {
                Report::Status(_) => {
                    let updates: Vec<&StatusUpdate> = tried
                        .iter()
                        .filter_map(|report| match report {
                            Report::Status(update) => Some(update),
                            Report::Progress(_) => None,
                        })
                        .collect();
                    if updates.is_empty() {
                        Vec::new()
                    } else {
                        self.apply_statuses(&updates, shutdown).await?
                    }
                }
                Report::Progress(progress) if !tried.is_empty() => vec![
                    record_progress(self.store.as_ref(), progress)
                        .await
                        .unwrap_or_else(|e| {
                            tracing::warn!(error = %omniroute_store::error_chain(&e), "recording a call's progress failed");
                            false
                        }),
                ],
                Report::Progress(_) => Vec::new(),
            };
            let mut results = results.into_iter();
            for ((report, _), tried) in now.iter().zip(tries) {
                if !tried {
                    matched.push(None);
                    continue;
                }
                let hit = results.next().unwrap_or(false);
                if !hit {
                    unmatched.insert(report.key());
                }
                matched.push(Some(hit));
            }
        }
        Some(matched)
    }

    /// Applies `updates` in one store call, waited out with back-off while
    /// the store is unreachable (reports keep queuing behind them) instead
    /// of each being retried and logged on its own. `None` on shutdown.
    async fn apply_statuses(
        &mut self,
        updates: &[&StatusUpdate],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Vec<bool>> {
        let statuses: Vec<ProviderStatus> = updates.iter().map(|u| provider_status(u)).collect();
        let mut result = self.store.apply_provider_statuses(statuses.clone()).await;
        while let Err(e) = &result {
            if !e.is_transient() {
                break;
            }
            self.backoff.pause(e, shutdown).await;
            if *shutdown.borrow() {
                return None;
            }
            result = self.store.apply_provider_statuses(statuses.clone()).await;
        }
        let applied = match result {
            Ok(applied) => {
                self.backoff.succeeded();
                applied
            }
            Err(e) if statuses.len() > 1 => {
                // One bad report must not hold back the others.
                tracing::warn!(error = %e, reports = statuses.len(), "applying status reports failed; applying them one by one");
                let mut applied = Vec::with_capacity(statuses.len());
                for status in statuses {
                    applied.push(self.store.apply_provider_status(status).await.unwrap_or_else(|e| {
                        tracing::error!(error = %omniroute_store::error_chain(&e), "applying a status report failed");
                        None
                    }));
                }
                applied
            }
            Err(e) => {
                tracing::error!(error = %omniroute_store::error_chain(&e), "applying a status report failed");
                vec![None]
            }
        };
        Some(
            updates
                .iter()
                .zip(applied)
                .map(|(update, applied)| matched(update, applied.as_ref()))
                .collect(),
        )
    }
}

/// Whether a status report matched a message (`applied`); one that did is
/// counted in the metrics, by its tenant.
fn matched(update: &StatusUpdate, applied: Option<&Reported>) -> bool {
    let Some(reported) = applied else {
        return false;
    };
    let status = match update.status {
        DeliveryStatus::Sent => "sent",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Read => "read",
        DeliveryStatus::Failed => "failed",
        DeliveryStatus::Ended => "ended",
        DeliveryStatus::Relayed => "relayed",
    };
    crate::metrics::METRICS.report(&reported.tenant, update.channel.as_str(), status);
    true
}
