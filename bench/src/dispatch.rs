//! Dispatch throughput: how fast a backlog of queued messages reaches the
//! (sandbox) provider and comes back delivered, with nothing else running.
//!
//! 1. [`queue`]: a server with the dispatcher off takes the backlog through
//!    BatchSendMessages (correlation references start with `drain-`), then
//!    one marker message; the marker's `MessageAccepted` event gives a cursor
//!    just after the whole backlog. That server stops.
//! 2. [`drain`]: a server with the dispatcher on starts on the same store;
//!    the benchmark subscribes to the event stream after the marker's cursor
//!    (`MESSAGE_STATUS_CHANGED` and `MESSAGE_FAILED`) and counts every
//!    backlog message sent and delivered until all were, or time runs out.
//!
//! Rates use the events' own times (when the server recorded the change), so
//! a subscriber that lags does not bend them: sent/s is the pace from the
//! first `sent` to the last, delivered/s likewise. The subscription itself is
//! load on the server (every event is read from the store and streamed), as
//! any consumer of the stream would be.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::anyhow;
use omniroute_proto::v1 as pb;
use pb::event_service_client::EventServiceClient;
use pb::messaging_service_client::MessagingServiceClient;
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::load::{Payloads, batch, send};
use crate::stats::Stats;

/// Correlation reference prefix of backlog messages.
pub const PREFIX: &str = "drain-";

/// The queued backlog.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The BatchSendMessages calls that queued it.
    pub stats: Stats,
    /// Seconds queueing took.
    pub secs: f64,
    /// Messages queued, the marker included.
    pub total: u64,
    /// The cursor of the marker's `MessageAccepted` event.
    pub cursor: String,
}

/// What the dispatch phase measured.
#[derive(Debug, Clone)]
pub struct Dispatch {
    /// How the backlog was queued.
    pub queued: Queued,
    /// Backlog messages sent.
    pub sent: u64,
    /// Backlog messages delivered.
    pub delivered: u64,
    /// Backlog messages failed.
    pub failed: u64,
    /// Seconds from the first `sent` to the last.
    pub sent_span: f64,
    /// Seconds from the first `delivered` to the last.
    pub delivered_span: f64,
    /// Seconds from the start of the draining server to the last `sent`.
    pub all_sent_after: f64,
    /// Seconds from the start of the draining server to the last `delivered`.
    pub all_delivered_after: f64,
    /// Whether every backlog message was sent and delivered in time.
    pub complete: bool,
}

impl Dispatch {
    /// Messages handed to the provider per second.
    pub fn sent_per_sec(&self) -> f64 {
        pace(self.sent, self.sent_span)
    }

    /// Deliveries recorded per second.
    pub fn delivered_per_sec(&self) -> f64 {
        pace(self.delivered, self.delivered_span)
    }
}

/// Events per second between the first and the last of `n` events.
pub(crate) fn pace(n: u64, span: f64) -> f64 {
    if n > 1 && span > 0.0 {
        (n - 1) as f64 / span
    } else {
        0.0
    }
}

/// Queues `backlog` messages with BatchSendMessages from `clients` callers,
/// `batch_size` per call, then the marker.
pub async fn queue(
    channels: &[Channel],
    contacts: Arc<Vec<String>>,
    counter: Arc<AtomicU64>,
    backlog: usize,
    batch_size: usize,
    clients: usize,
) -> anyhow::Result<Queued> {
    let started = Instant::now();
    let payloads = Payloads::new(contacts, counter, PREFIX);
    let remaining = Arc::new(AtomicUsize::new(backlog));
    let mut tasks = JoinSet::new();
    for c in 0..clients.max(1) {
        let mut client = MessagingServiceClient::new(channels[c % channels.len()].clone());
        let payloads = payloads.clone();
        let remaining = Arc::clone(&remaining);
        tasks.spawn(async move {
            let mut stats = Stats::default();
            loop {
                let take = remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                        (r > 0).then(|| r.saturating_sub(batch_size))
                    })
                    .map_or(0, |before| before.min(batch_size));
                if take == 0 {
                    return stats;
                }
                let requests = (0..take).map(|_| payloads.next()).collect();
                let t = Instant::now();
                let outcome = batch(&mut client, requests).await;
                stats.record(t.elapsed(), outcome);
            }
        });
    }
    let mut stats = Stats::default();
    while let Some(joined) = tasks.join_next().await {
        if let Ok(s) = joined {
            stats.merge(s);
        }
    }
    let secs = started.elapsed().as_secs_f64();

    // The marker: its event's cursor comes after every backlog event.
    let mut events = EventServiceClient::new(channels[0].clone())
        .subscribe(pb::SubscribeRequest {
            types: vec![pb::EventType::MessageAccepted as i32],
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut client = MessagingServiceClient::new(channels[0].clone());
    let marker = send(&mut client, payloads.next()).await;
    if marker.items != 1 {
        return Err(anyhow!("the marker message failed: {:?}", marker.errors));
    }
    let cursor = tokio::time::timeout(Duration::from_secs(30), events.message())
        .await
        .map_err(|_| anyhow!("no event for the marker message within 30 s"))??
        .and_then(|r| r.event)
        .map(|e| e.cursor)
        .ok_or_else(|| anyhow!("the event stream ended before the marker"))?;
    Ok(Queued {
        total: stats.items + 1,
        stats,
        secs,
        cursor,
    })
}

#[derive(Debug, Default)]
struct Seen {
    sent: Vec<SystemTime>,
    delivered: Vec<SystemTime>,
    failed: u64,
}

/// Follows the status events after the backlog's cursor until every backlog
/// message was sent and delivered, or `timeout`; `server_started` is when
/// the draining server was asked to start.
pub async fn drain(
    channel: &Channel,
    queued: Queued,
    server_started: SystemTime,
    timeout: Duration,
) -> anyhow::Result<Dispatch> {
    let started = Instant::now();
    let mut events = EventServiceClient::new(channel.clone())
        .subscribe(pb::SubscribeRequest {
            after_cursor: queued.cursor.clone(),
            types: vec![
                pb::EventType::MessageStatusChanged as i32,
                pb::EventType::MessageFailed as i32,
            ],
            ..Default::default()
        })
        .await?
        .into_inner();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let counting = {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok(Some(response)) = events.message().await {
                let Some(event) = response.event else {
                    continue;
                };
                if !event.correlation_ref.starts_with(PREFIX) {
                    continue;
                }
                let Some(pb::event::Payload::Message(message)) = event.payload else {
                    continue;
                };
                let time = event
                    .time
                    .and_then(|t| SystemTime::try_from(t).ok())
                    .unwrap_or_else(SystemTime::now);
                let Ok(mut seen) = seen.lock() else { return };
                if event.r#type == pb::EventType::MessageFailed as i32 {
                    seen.failed += 1;
                } else if message.status == pb::MessageStatus::Sent as i32 {
                    seen.sent.push(time);
                } else if message.status == pb::MessageStatus::Delivered as i32 {
                    seen.delivered.push(time);
                }
            }
        })
    };
    let total = queued.total;
    let complete = loop {
        // Every message ends delivered or failed (the sandbox fails none
        // of the benchmark's addresses).
        let finished = seen
            .lock()
            .map(|s| s.delivered.len() as u64 + s.failed >= total)
            .unwrap_or(true);
        if finished {
            break seen.lock().is_ok_and(|s| s.failed == 0);
        }
        if started.elapsed() >= timeout {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    counting.abort();
    let seen = seen.lock().map_err(|_| anyhow!("poisoned"))?;
    let span = |times: &[SystemTime]| match (times.iter().min(), times.iter().max()) {
        (Some(first), Some(last)) => last.duration_since(*first).map_or(0.0, |d| d.as_secs_f64()),
        _ => 0.0,
    };
    let after = |times: &[SystemTime]| {
        times
            .iter()
            .max()
            .and_then(|last| last.duration_since(server_started).ok())
            .map_or(0.0, |d| d.as_secs_f64())
    };
    Ok(Dispatch {
        queued,
        sent: seen.sent.len() as u64,
        delivered: seen.delivered.len() as u64,
        failed: seen.failed,
        sent_span: span(&seen.sent),
        delivered_span: span(&seen.delivered),
        all_sent_after: after(&seen.sent),
        all_delivered_after: after(&seen.delivered),
        complete,
    })
}
