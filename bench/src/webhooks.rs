//! Webhook deliveries (phase `webhooks`), on the store the earlier phases
//! left (the dispatch backlog's accepted, sent and delivered events among
//! its log):
//!
//! 1. the **event stream's own rate**: Subscribe from the beginning, every
//!    event of the log read, first to last;
//! 2. **delivery throughput**: an endpoint on a local receiver (HTTP/1.1 on
//!    loopback, answering 204 at once), replayed from the log's beginning:
//!    every event signed, posted and acknowledged, first arrival to last,
//!    and the lag of each delivery behind its event;
//! 3. **sends while an endpoint is down**: SendMessage closed loop at 8
//!    clients, without an endpoint and with one registered whose port
//!    refuses connections (every delivery fails and is retried), in the
//!    order without, with, with, without.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow};
use omniroute_proto::v1 as pb;
use pb::endpoint_service_client::EndpointServiceClient;
use pb::event_service_client::EventServiceClient;
use pb::messaging_service_client::MessagingServiceClient;
use tonic::transport::Channel;

use crate::dispatch::pace;
use crate::load::{Op, Payloads, closed_loop};
use crate::stats::Stats;

/// What the phase measured.
#[derive(Debug, Clone)]
pub struct Webhooks {
    /// Events read from the stream.
    pub streamed: u64,
    /// Seconds from the first streamed event to the last.
    pub stream_secs: f64,
    /// Deliveries the receiver got.
    pub delivered: u64,
    /// Seconds from the first delivery to the last.
    pub deliver_secs: f64,
    /// Seconds from the replay to the last delivery.
    pub all_delivered_after: f64,
    /// Every streamed event was delivered in time.
    pub complete: bool,
    /// SendMessage at 8 clients with no endpoint (two runs).
    pub sends_alone: Stats,
    /// SendMessage at 8 clients with an endpoint that is down (two runs,
    /// alternating with those without).
    pub sends_with_dead: Stats,
    /// Each send run in order: with the endpoint down, and messages/s.
    pub runs: Vec<(bool, f64)>,
    /// The measured duration of each send run.
    pub duration: Duration,
}

impl Webhooks {
    /// Events the stream handed out per second.
    pub fn stream_per_sec(&self) -> f64 {
        pace(self.streamed, self.stream_secs)
    }

    /// Deliveries acknowledged per second.
    pub fn deliver_per_sec(&self) -> f64 {
        pace(self.delivered, self.deliver_secs)
    }

    /// SendMessage/s without and with the dead endpoint.
    pub fn send_rates(&self) -> (f64, f64) {
        let secs = 2.0 * self.duration.as_secs_f64().max(f64::EPSILON);
        (
            self.sends_alone.items as f64 / secs,
            self.sends_with_dead.items as f64 / secs,
        )
    }
}

/// The receiver's counts.
#[derive(Debug, Default)]
struct Received {
    count: AtomicU64,
    span: Mutex<Option<(Instant, Instant)>>,
}

async fn hook(
    axum::extract::State(r): axum::extract::State<Arc<Received>>,
) -> axum::http::StatusCode {
    r.count.fetch_add(1, Ordering::Relaxed);
    let now = Instant::now();
    let mut span = r.span.lock().unwrap_or_else(|e| e.into_inner());
    *span = Some(span.map_or((now, now), |(first, _)| (first, now)));
    axum::http::StatusCode::NO_CONTENT
}

async fn receiver() -> anyhow::Result<(SocketAddr, Arc<Received>)> {
    let received = Arc::new(Received::default());
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, received))
}

/// Reads the whole log from the stream: how many events, first to last.
async fn stream_all(channel: &Channel) -> anyhow::Result<(u64, f64)> {
    let mut events = EventServiceClient::new(channel.clone())
        .subscribe(pb::SubscribeRequest {
            from_beginning: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut n = 0u64;
    let mut first = None;
    let mut last = Instant::now();
    while let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::from_secs(2), events.message()).await
    {
        last = Instant::now();
        first.get_or_insert(last);
        n += 1;
    }
    Ok((n, first.map_or(0.0, |f| (last - f).as_secs_f64())))
}

async fn endpoint(channel: &Channel, url: String) -> anyhow::Result<String> {
    Ok(EndpointServiceClient::new(channel.clone())
        .create_endpoint(pb::CreateEndpointRequest {
            endpoint: Some(pb::Endpoint {
                url,
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .endpoint
        .ok_or_else(|| anyhow!("no endpoint"))?
        .name)
}

fn senders(channels: &[Channel], payloads: &Payloads, clients: usize) -> Vec<Op> {
    (0..clients)
        .map(|i| {
            Op::Send(
                MessagingServiceClient::new(channels[i % channels.len()].clone()),
                payloads.clone(),
            )
        })
        .collect()
}

/// Runs the phase against a server with deliveries on and the dispatcher
/// off; `channels` connect to it.
pub async fn run(
    channels: &[Channel],
    payloads: &Payloads,
    warmup: Duration,
    duration: Duration,
    timeout: Duration,
) -> anyhow::Result<Webhooks> {
    let channel = &channels[0];
    let (streamed, stream_secs) = stream_all(channel).await.context("stream the log")?;
    let (addr, received) = receiver().await?;
    let name = endpoint(channel, format!("http://{addr}/hook")).await?;
    let replayed = Instant::now();
    EndpointServiceClient::new(channel.clone())
        .replay_endpoint(pb::ReplayEndpointRequest {
            name: name.clone(),
            after_cursor: String::new(),
            start_time: Some(prost_types::Timestamp::from(SystemTime::UNIX_EPOCH)),
        })
        .await?;
    let deadline = replayed + timeout;
    while received.count.load(Ordering::Relaxed) < streamed && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let delivered = received.count.load(Ordering::Relaxed);
    let span = *received.span.lock().unwrap_or_else(|e| e.into_inner());
    let (deliver_secs, all_delivered_after) = span.map_or((0.0, 0.0), |(first, last)| {
        (
            (last - first).as_secs_f64(),
            (last - replayed).as_secs_f64(),
        )
    });
    EndpointServiceClient::new(channel.clone())
        .delete_endpoint(pb::DeleteEndpointRequest { name })
        .await?;

    // Sends alone and with an endpoint whose port refuses connections, in
    // the order alone, down, down, alone, so that a steady drift over the
    // run (the tables grow) weighs on both alike.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?;
    let dead = closed.local_addr()?;
    drop(closed);
    let mut sends_alone = Stats::default();
    let mut sends_with_dead = Stats::default();
    let mut runs = Vec::new();
    let mut down: Option<String> = None;
    for with_dead in [false, true, true, false] {
        match (with_dead, &down) {
            (true, None) => down = Some(endpoint(channel, format!("http://{dead}/hook")).await?),
            (false, Some(name)) => {
                EndpointServiceClient::new(channel.clone())
                    .delete_endpoint(pb::DeleteEndpointRequest { name: name.clone() })
                    .await?;
                down = None;
            }
            _ => {}
        }
        let (stats, _) = closed_loop(senders(channels, payloads, 8), warmup, duration).await;
        runs.push((
            with_dead,
            stats.items as f64 / duration.as_secs_f64().max(f64::EPSILON),
        ));
        if with_dead {
            sends_with_dead.merge(stats);
        } else {
            sends_alone.merge(stats);
        }
    }
    Ok(Webhooks {
        streamed,
        stream_secs,
        delivered,
        deliver_secs,
        all_delivered_after,
        complete: delivered >= streamed && streamed > 0,
        sends_alone,
        sends_with_dead,
        runs,
        duration,
    })
}
