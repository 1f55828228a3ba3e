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
use omniroute_store::Store;
use tokio::sync::watch;

use super::dispatcher::Adapters;
use super::statuses::StatusChannel;

/// Messages looked at per round.
const BATCH: usize = 500;

/// Runs reconciliation rounds until shutdown.
pub async fn run(
    store: Arc<dyn Store>,
    adapters: Adapters,
    sink: StatusChannel,
    after: Duration,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let Some(before) = SystemTime::now().checked_sub(after) else {
            continue;
        };
        let stale = match store.stale_sent(before, BATCH).await {
            Ok(stale) => stale,
            Err(e) => {
                tracing::warn!(error = %e, "listing sent messages for reconciliation failed");
                continue;
            }
        };
        let mut reconciled = 0;
        for message in stale {
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
            tracing::info!(reconciled, "statuses reconciled with providers");
        }
    }
}
