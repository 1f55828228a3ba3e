//! Status ingestion: the one path by which adapters' asynchronous reports
//! (webhooks, the sandbox) reach the store.
//!
//! Adapters report through [`StatusChannel`], which never blocks them. A task
//! applies the reports with the store's monotonic status rules, as many per
//! store call (one transaction) as have queued meanwhile. A report can
//! arrive before the attempt that produced it is recorded (providers are
//! fast); one that matches no message yet is retried for a while before it is
//! dropped with a warning.

use std::sync::Arc;
use std::time::Duration;

use omniroute_channel::{DeliveryStatus, StatusSink, StatusUpdate};
use omniroute_store::{MessageStatus, ProviderStatus, Reported, Store};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// How often and how long an unmatched report is retried.
const RETRY_EVERY: Duration = Duration::from_millis(250);
const RETRIES: u32 = 40;

/// Most reports applied in one store call.
const MAX_GROUP: usize = 500;

/// How long ingestion waits for more reports to apply with the first.
const LINGER: Duration = Duration::from_millis(5);

/// The sink adapters report to.
#[derive(Debug, Clone)]
pub struct StatusChannel(mpsc::UnboundedSender<(StatusUpdate, u32)>);

impl StatusSink for StatusChannel {
    fn report(&self, update: StatusUpdate) {
        if self.0.send((update, 0)).is_err() {
            tracing::warn!("status report after shutdown dropped");
        }
    }
}

/// Creates the sink and the receiving end for [`run`].
pub fn channel() -> (StatusChannel, mpsc::UnboundedReceiver<(StatusUpdate, u32)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (StatusChannel(tx), rx)
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
            DeliveryStatus::Sent => MessageStatus::Sent,
            DeliveryStatus::Delivered => MessageStatus::Delivered,
            DeliveryStatus::Read => MessageStatus::Read,
            DeliveryStatus::Failed | DeliveryStatus::Ended => MessageStatus::Failed,
        },
        unless_delivered: update.status == DeliveryStatus::Ended,
        time: update.time,
        reason: update
            .error
            .as_ref()
            .map(|e| {
                format!(
                    "{} failure {}: {}",
                    e.class().as_str(),
                    e.code(),
                    e.message()
                )
            })
            .unwrap_or_default(),
    }
}

/// Applies reports until shutdown.
pub async fn run(
    store: Arc<dyn Store>,
    sink: StatusChannel,
    mut reports: mpsc::UnboundedReceiver<(StatusUpdate, u32)>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = super::backoff::Backoff::new("applying status reports");
    loop {
        let first = tokio::select! {
            received = reports.recv() => match received {
                Some(report) => report,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        let group = super::gather(first, &mut reports, MAX_GROUP, LINGER).await;
        let statuses: Vec<ProviderStatus> = group.iter().map(|(u, _)| provider_status(u)).collect();
        // While the store is unreachable the group waits here, with back-off
        // (reports keep queuing behind it), instead of each report being
        // retried and logged on its own.
        let mut result = store.apply_provider_statuses(statuses.clone()).await;
        while let Err(e) = &result {
            if !e.is_transient() {
                break;
            }
            backoff.pause(e, &mut shutdown).await;
            if *shutdown.borrow() {
                return;
            }
            result = store.apply_provider_statuses(statuses.clone()).await;
        }
        if result.is_ok() {
            backoff.succeeded();
        }
        match result {
            Ok(applied) => {
                for ((update, tries), applied) in group.into_iter().zip(applied) {
                    settle(&sink, update, tries, applied.as_ref());
                }
            }
            Err(e) if group.len() > 1 => {
                // One bad report must not hold back the others.
                tracing::warn!(error = %e, reports = group.len(), "applying status reports failed; applying them one by one");
                for (update, tries) in group {
                    match store.apply_provider_status(provider_status(&update)).await {
                        Ok(applied) => settle(&sink, update, tries, applied.as_ref()),
                        Err(e) => {
                            tracing::error!(error = %omniroute_store::error_chain(&e), "applying a status report failed");
                            settle(&sink, update, tries, None);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %omniroute_store::error_chain(&e), "applying a status report failed");
                for (update, tries) in group {
                    settle(&sink, update, tries, None);
                }
            }
        }
    }
}

/// After a report was applied to a message (`matched`), or matched none yet.
fn settle(sink: &StatusChannel, update: StatusUpdate, tries: u32, matched: Option<&Reported>) {
    if let Some(reported) = matched {
        counted(&update, &reported.tenant);
        return;
    }
    if tries < RETRIES {
        later(sink, update, tries + 1);
    } else {
        tracing::warn!(
            channel = %update.channel,
            provider_message_id = %update.provider_message_id,
            "status report matches no message; dropped"
        );
    }
}

/// Counts a report applied to a message of `tenant` in the metrics.
pub fn counted(update: &StatusUpdate, tenant: &str) {
    let status = match update.status {
        DeliveryStatus::Sent => "sent",
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Read => "read",
        DeliveryStatus::Failed => "failed",
        DeliveryStatus::Ended => "ended",
    };
    crate::metrics::METRICS.report(tenant, update.channel.as_str(), status);
}

/// Queues a report again after a pause.
fn later(sink: &StatusChannel, update: StatusUpdate, tries: u32) {
    let sink = sink.clone();
    tokio::spawn(async move {
        tokio::time::sleep(RETRY_EVERY).await;
        let _ = sink.0.send((update, tries));
    });
}
