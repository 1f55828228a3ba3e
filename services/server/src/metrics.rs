//! Prometheus metrics, in the text exposition format, on a listener of
//! their own (`metrics.listen`; off by default, and never the public
//! webhook listener).
//!
//! One registry per process (the pipeline, the API and the webhook
//! listener count into it wherever they are); every replica serves its
//! own, and Prometheus sums across replicas. Queue depth and the oldest due
//! job's age are read from the store at each scrape, so they are the
//! cluster's.
//!
//! - `omniroute_grpc_requests_total{method, code}`,
//!   `omniroute_grpc_request_seconds{method}`: every gRPC call and its
//!   status, and how long it took to answer (a stream: until its headers).
//! - `omniroute_messages_accepted_total{tenant, channel, category}` (the
//!   channel routing chose first).
//! - `omniroute_attempts_total{tenant, channel, outcome}` (sent,
//!   transient, permanent, … per the error class),
//!   `omniroute_provider_send_seconds{channel}`,
//!   `omniroute_dispatch_seconds{channel}` (from when a message could first
//!   go to its provider taking it).
//! - `omniroute_dispatch_decisions_total{tenant, channel, decision}`: what
//!   followed an attempt or a watch on a channel (sent, retry, fallback,
//!   failed: the message's last step failed, watch_ended).
//! - `omniroute_status_reports_total{tenant, channel, status}`: providers'
//!   reports applied (delivered, read, failed…), by the tenant of the
//!   message each named.
//! - `omniroute_webhook_requests_total{channel, result}`: ok, unauthorized,
//!   malformed, not_recorded, no_channel.
//! - `omniroute_event_subscribers`: event streams open now;
//!   `omniroute_event_delivery_lag_seconds`: from an event's time to its
//!   delivery to a subscriber.
//! - `omniroute_store_pool_connections_in_use{pool}`, `…_max{pool}`:
//!   PostgreSQL's connection pools.
//! - `omniroute_breakers_open`: channels whose breaker is open now.
//! - `omniroute_queue_jobs`, `omniroute_queue_oldest_due_seconds`: the
//!   dispatch queue, read at scrape time.

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 1 ms to about 65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    grpc_requests: Family<Labels, Counter>,
    grpc_seconds: Histograms,
    accepted: Family<Labels, Counter>,
    attempts: Family<Labels, Counter>,
    provider_seconds: Histograms,
    dispatch_seconds: Histograms,
    decisions: Family<Labels, Counter>,
    reports: Family<Labels, Counter>,
    webhooks: Family<Labels, Counter>,
    subscribers: Gauge,
    breakers_open: Gauge,
    event_lag: Histogram,
    pool_in_use: Family<Labels, Gauge>,
    pool_max: Family<Labels, Gauge>,
    queue_jobs: Gauge<f64, AtomicU64>,
    queue_oldest: Gauge<f64, AtomicU64>,
    endpoint_deliveries: Family<Labels, Counter>,
    endpoint_lag: Histogram,
    endpoints_disabled: Family<Labels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("omniroute");
        let m = Metrics {
            grpc_requests: Family::default(),
            grpc_seconds: Histograms::new_with_constructor(latency),
            accepted: Family::default(),
            attempts: Family::default(),
            provider_seconds: Histograms::new_with_constructor(latency),
            dispatch_seconds: Histograms::new_with_constructor(latency),
            decisions: Family::default(),
            reports: Family::default(),
            webhooks: Family::default(),
            subscribers: Gauge::default(),
            breakers_open: Gauge::default(),
            event_lag: latency(),
            pool_in_use: Family::default(),
            pool_max: Family::default(),
            queue_jobs: Gauge::default(),
            queue_oldest: Gauge::default(),
            endpoint_deliveries: Family::default(),
            endpoint_lag: latency(),
            endpoints_disabled: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "grpc_requests",
            "gRPC calls answered, by method and status code",
            m.grpc_requests.clone(),
        );
        registry.register(
            "grpc_request_seconds",
            "Time to answer a gRPC call, by method",
            m.grpc_seconds.clone(),
        );
        registry.register(
            "messages_accepted",
            "Messages accepted for delivery, by tenant, first channel and category",
            m.accepted.clone(),
        );
        registry.register(
            "attempts",
            "Attempts handed to providers, by tenant, channel and outcome",
            m.attempts.clone(),
        );
        registry.register(
            "provider_send_seconds",
            "Time a provider took to take a send, by channel",
            m.provider_seconds.clone(),
        );
        registry.register(
            "dispatch_seconds",
            "Time from when a message could first go to its provider taking it, by channel",
            m.dispatch_seconds.clone(),
        );
        registry.register(
            "dispatch_decisions",
            "What followed an attempt or a watch, by tenant and channel: sent, retry, fallback, failed, watch_ended",
            m.decisions.clone(),
        );
        registry.register(
            "status_reports",
            "Providers' status reports applied, by tenant, channel and status",
            m.reports.clone(),
        );
        registry.register(
            "webhook_requests",
            "Webhook deliveries, by channel and result",
            m.webhooks.clone(),
        );
        registry.register(
            "event_subscribers",
            "Event streams open on this replica",
            m.subscribers.clone(),
        );
        registry.register(
            "breakers_open",
            "Channel breakers open on this replica (per channel and tenant)",
            m.breakers_open.clone(),
        );
        registry.register(
            "event_delivery_lag_seconds",
            "Time from an event's commit to its delivery to a subscriber",
            m.event_lag.clone(),
        );
        registry.register(
            "store_pool_connections_in_use",
            "Database connections handed out now, by pool",
            m.pool_in_use.clone(),
        );
        registry.register(
            "store_pool_connections_max",
            "The largest size of each database connection pool",
            m.pool_max.clone(),
        );
        registry.register(
            "queue_jobs",
            "Dispatch jobs in the store (every replica's)",
            m.queue_jobs.clone(),
        );
        registry.register(
            "queue_oldest_due_seconds",
            "Age of the oldest due dispatch job (0 when none is due)",
            m.queue_oldest.clone(),
        );
        registry.register(
            "endpoint_deliveries",
            "Webhook deliveries to endpoints, by tenant, endpoint and outcome (delivered, failed)",
            m.endpoint_deliveries.clone(),
        );
        registry.register(
            "endpoint_delivery_lag_seconds",
            "Time from an event's commit to its delivery to a webhook endpoint",
            m.endpoint_lag.clone(),
        );
        registry.register(
            "endpoints_disabled",
            "Webhook endpoints the router disabled, by tenant and why (gone, failing)",
            m.endpoints_disabled.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A gRPC call answered.
    pub fn grpc(&self, method: &str, code: &str, took: Duration) {
        self.grpc_requests
            .get_or_create(&vec![
                ("method", method.to_owned()),
                ("code", code.to_owned()),
            ])
            .inc();
        self.grpc_seconds
            .get_or_create(&vec![("method", method.to_owned())])
            .observe(took.as_secs_f64());
    }

    /// A message accepted, to go first on `channel`.
    pub fn accepted(&self, tenant: &str, channel: &str, category: &str) {
        self.accepted
            .get_or_create(&vec![
                ("tenant", tenant.to_owned()),
                ("channel", channel.to_owned()),
                ("category", category.to_owned()),
            ])
            .inc();
    }

    /// An attempt's outcome, and how long the provider took.
    pub fn attempt(&self, tenant: &str, channel: &str, outcome: &str, took: Duration) {
        self.attempts
            .get_or_create(&vec![
                ("tenant", tenant.to_owned()),
                ("channel", channel.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
        self.provider_seconds
            .get_or_create(&vec![("channel", channel.to_owned())])
            .observe(took.as_secs_f64());
    }

    /// A message's first send taken by its provider, `took` after it could
    /// first go.
    pub fn dispatched(&self, channel: &str, took: Duration) {
        self.dispatch_seconds
            .get_or_create(&vec![("channel", channel.to_owned())])
            .observe(took.as_secs_f64());
    }

    /// What the dispatcher decided after an attempt or a watch on
    /// `channel` for `tenant`.
    pub fn decision(&self, tenant: &str, channel: &str, decision: &str) {
        self.decisions
            .get_or_create(&vec![
                ("tenant", tenant.to_owned()),
                ("channel", channel.to_owned()),
                ("decision", decision.to_owned()),
            ])
            .inc();
    }

    /// A provider's report applied to a message of `tenant`.
    pub fn report(&self, tenant: &str, channel: &str, status: &str) {
        self.reports
            .get_or_create(&vec![
                ("tenant", tenant.to_owned()),
                ("channel", channel.to_owned()),
                ("status", status.to_owned()),
            ])
            .inc();
    }

    /// A webhook delivery answered.
    pub fn webhook(&self, channel: &str, result: &str) {
        self.webhooks
            .get_or_create(&vec![
                ("channel", channel.to_owned()),
                ("result", result.to_owned()),
            ])
            .inc();
    }

    /// An event stream opened (+1) or closed (-1).
    pub fn subscribers(&self, delta: i64) {
        self.subscribers.inc_by(delta);
    }

    /// How many breakers are open now.
    pub fn set_breakers_open(&self, open: i64) {
        self.breakers_open.set(open);
    }

    /// An event delivered to a subscriber `lag` after it happened.
    pub fn event_delivered(&self, lag: Duration) {
        self.event_lag.observe(lag.as_secs_f64());
    }

    /// A delivery attempt to an endpoint; `lag`: for a delivered event,
    /// how long after it happened.
    pub fn endpoint_delivery(&self, tenant: &str, endpoint: &str, delivered: bool, lag: Duration) {
        let outcome = if delivered { "delivered" } else { "failed" };
        self.endpoint_deliveries
            .get_or_create(&vec![
                ("tenant", tenant.to_owned()),
                ("endpoint", endpoint.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
        if delivered {
            self.endpoint_lag.observe(lag.as_secs_f64());
        }
    }

    /// An endpoint the router disabled.
    pub fn endpoint_disabled(&self, tenant: &str, why: &str) {
        self.endpoints_disabled
            .get_or_create(&vec![
                ("tenant", tenant.to_owned()),
                ("why", why.to_owned()),
            ])
            .inc();
    }

    /// The store's pools as they are now.
    pub fn set_pools(&self, pools: &[omniroute_domain::PoolUse]) {
        for pool in pools {
            let labels = vec![("pool", pool.name.to_owned())];
            self.pool_in_use
                .get_or_create(&labels)
                .set(i64::try_from(pool.in_use).unwrap_or(i64::MAX));
            self.pool_max
                .get_or_create(&labels)
                .set(i64::try_from(pool.max).unwrap_or(i64::MAX));
        }
    }

    /// The dispatch queue as the store says now.
    pub fn set_queue(&self, jobs: u64, oldest_due: Duration) {
        self.queue_jobs.set(jobs as f64);
        self.queue_oldest.set(oldest_due.as_secs_f64());
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// An event stream counted open until dropped.
#[derive(Debug)]
pub struct Subscribed(());

impl Subscribed {
    /// Counts a stream open.
    pub fn open() -> Subscribed {
        METRICS.subscribers(1);
        Subscribed(())
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        METRICS.subscribers(-1);
    }
}
