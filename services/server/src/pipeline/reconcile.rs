//! Status reconciliation: a sent message that heard nothing for a while has
//! its status fetched from the provider, through the same ingestion path as
//! webhooks. This recovers reports that were lost (a crash between a send and
//! its report, a webhook the provider gave up on).
//!
//! Adapters whose provider has no status query answer Unsupported; their
//! messages are left alone.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use omniroute_channel::{ErrorClass, StatusSink};
use omniroute_domain::SentMark;
use omniroute_store::prelude::*;
use tokio::sync::watch;

use super::statuses::StatusChannel;
use crate::channels::Adapters;

/// Messages looked at per round.
const BATCH: usize = 500;

/// Runs reconciliation rounds until shutdown.
///
/// The first round runs at once and looks at what was sent before this
/// process started, back to `after` ago: the reports of a process that
/// crashed died with it (the sandbox's are in memory; a provider may have
/// given up on a webhook while no replica listened), and those messages
/// should not wait `after` for their status. Then every `every`, a round
/// takes the next page of messages that heard nothing for `after`, in the
/// order they were sent, and starts again from the oldest once it reached
/// the newest: messages whose provider will never answer (no status query,
/// a phone that stays off) take their turn instead of filling every round.
pub async fn run(
    store: Arc<dyn Store>,
    adapters: Adapters,
    sink: StatusChannel,
    after: Duration,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let started = SystemTime::now();
    // The sweep of what was interrupted: (position, upper bound).
    let mut interrupted = Some(SentMark::before(
        started.checked_sub(after).unwrap_or(SystemTime::UNIX_EPOCH),
    ));
    let mut position = SentMark::default();
    let mut backoff = super::backoff::Backoff::new("reconciling statuses");
    loop {
        let (from, before) = match interrupted {
            Some(from) => (from, started),
            None => {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
                let Some(before) = SystemTime::now().checked_sub(after) else {
                    continue;
                };
                (position, before)
            }
        };
        let stale = match store.stale_sent(from, before, BATCH).await {
            Ok(stale) => {
                backoff.succeeded();
                stale
            }
            Err(e) => {
                backoff.pause(&e, &mut stop).await;
                continue;
            }
        };
        let full = stale.len() == BATCH;
        let next = stale.last().map(|(mark, _)| *mark);
        let mut reconciled = 0;
        for (_, message) in stale {
            let (Some(channel), Some(provider_id)) =
                (message.channel, &message.provider_message_id)
            else {
                continue;
            };
            let Some(adapter) = adapters.get(&channel) else {
                continue;
            };
            match adapter.fetch_status(provider_id).await {
                Ok(Some(update)) => {
                    sink.report(update);
                    reconciled += 1;
                }
                Ok(None) => {}
                Err(e) if e.class() == ErrorClass::Unsupported => {}
                Err(e) => {
                    tracing::warn!(message_id = %message.id, error = %e, "status query failed")
                }
            }
        }
        if reconciled > 0 {
            tracing::info!(
                reconciled,
                after_restart = interrupted.is_some(),
                "statuses reconciled with providers"
            );
        }
        match (interrupted.is_some(), full, next) {
            (true, true, Some(next)) => interrupted = Some(next),
            (true, _, _) => interrupted = None,
            (false, true, Some(next)) => position = next,
            (false, _, _) => position = SentMark::default(),
        }
    }
}
