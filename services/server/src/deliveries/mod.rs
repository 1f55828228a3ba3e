//! Deliveries of the event log to webhook endpoints (Standard Webhooks):
//! an outbound face. It speaks HTTP and the specification's headers and
//! signatures; the rules of a round (where the cursor moves, back-off,
//! disabling) are the domain's (`omniroute_domain::deliveries`), the
//! cursors and leases the store's.
//!
//! The loop claims due endpoints (each held by one replica at a time, its
//! lease renewed while a round runs) and runs a round per endpoint, up to
//! `endpoints.max_endpoints` at once, so a slow or dead endpoint holds up
//! only itself; sends never wait on deliveries. A round reads a page of
//! the endpoint's events after its cursor, skips those delivered earlier
//! in the cursor's epoch, and delivers each contact's events in log order,
//! one at a time, different contacts in parallel (up to
//! `endpoints.concurrency`). After the first failure no new attempt
//! starts: the round ends, the cursor stops before the first event not
//! delivered, and the endpoint backs off. A page that was not full and
//! was all delivered moves the cursor to the log's head read before it,
//! so a narrow filter does not read the same unmatched events again.
//! Every attempt is logged.
//!
//! A delivery is a POST of the event's canonical JSON (`api::event_json`)
//! with `webhook-id` (the event's cursor: the same on every retry),
//! `webhook-timestamp` and `webhook-signature` ([`sign`]). Logs name the
//! endpoint by id, never its URL, secret or the event's content.

pub mod client;
pub mod courier;
#[cfg(feature = "nats")]
pub mod nats;
pub mod sign;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use omniroute_domain::{
    Cursor, DeliveryAttempt, DeliveryOutcome, EndpointLease, Event, EventFilter, FailureHint,
    RetryPolicy, conclude_round,
};
use omniroute_store::prelude::*;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::app::App;
use crate::settings::EndpointSettings;
use courier::{Courier, Posted};

/// Events read per round.
const PAGE: usize = 100;

/// The least time between claims prompted by change signals.
const CLAIM_SPACING: Duration = Duration::from_millis(50);

/// Delivers every tenant's events to their endpoints.
#[derive(Debug)]
pub struct Deliverer {
    store: Arc<dyn Store>,
    app: App,
    courier: Courier,
    policy: RetryPolicy,
    concurrency: usize,
    max_endpoints: usize,
    poll: Duration,
    /// How long a claim holds an endpoint; renewed every third of it while
    /// a round runs.
    lease: Duration,
}

/// What one attempt did.
struct Tried {
    attempt: DeliveryAttempt,
    hint: Option<FailureHint>,
}

impl Deliverer {
    /// From validated settings.
    pub fn new(
        store: Arc<dyn Store>,
        app: App,
        settings: &EndpointSettings,
    ) -> anyhow::Result<Deliverer> {
        Ok(Deliverer {
            courier: Courier::new(app.endpoint_url_rules(), settings)?,
            store,
            app,
            policy: settings.retry_policy(),
            concurrency: settings.concurrency,
            max_endpoints: settings.max_endpoints,
            poll: Duration::from_millis(settings.poll_interval_ms),
            lease: Duration::from_secs(settings.lease_secs),
        })
    }

    /// Runs until `stopped` completes. Rounds in flight are dropped then:
    /// their leases expire and their events are delivered again (at least
    /// once).
    pub async fn run(self, stopped: impl Future<Output = ()>) {
        let this = Arc::new(self);
        let mut changes = this.store.changes();
        let slots = Arc::new(Semaphore::new(this.max_endpoints));
        let mut rounds: JoinSet<bool> = JoinSet::new();
        tokio::pin!(stopped);
        let mut look = true;
        loop {
            if look {
                changes.borrow_and_update();
                let free = slots.available_permits();
                if free > 0 {
                    match this.store.claim_endpoints(free, this.lease).await {
                        Ok(leases) => {
                            for lease in leases {
                                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                                    break;
                                };
                                let this = Arc::clone(&this);
                                rounds.spawn(async move {
                                    let more = this.hold(lease).await;
                                    drop(slot);
                                    more
                                });
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "claiming endpoints failed"),
                    }
                }
            }
            // Look again on a change, at the poll interval, or when a round
            // left more to deliver; not after a round that found nothing
            // (its endpoint is due again at once and would spin).
            let changed = tokio::select! {
                () = &mut stopped => break,
                _ = changes.changed() => true,
                () = tokio::time::sleep(this.poll) => { look = true; false }
                Some(done) = rounds.join_next(), if !rounds.is_empty() => {
                    look = done.unwrap_or(false);
                    false
                }
            };
            if changed {
                // Commits signal changes hundreds of times a second under
                // load; a claim (a write on the embedded store) at most
                // every CLAIM_SPACING keeps deliveries from crowding sends.
                look = true;
                tokio::select! {
                    () = &mut stopped => break,
                    () = tokio::time::sleep(CLAIM_SPACING) => {}
                }
            }
        }
        rounds.abort_all();
    }

    /// Runs a round under `lease`, renewing it; whether the endpoint has
    /// more to deliver now.
    async fn hold(self: &Arc<Self>, lease: EndpointLease) -> bool {
        let (tenant, id, token) = (
            lease.endpoint.tenant.clone(),
            lease.endpoint.id,
            lease.token,
        );
        let renew = async {
            loop {
                tokio::time::sleep(self.lease / 3).await;
                match self
                    .store
                    .renew_endpoint_lease(&tenant, id, token, self.lease)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(endpoint = %id, error = %e, "renewing a lease failed"),
                }
            }
        };
        tokio::select! {
            more = self.round(lease) => more,
            () = renew => {
                tracing::warn!(endpoint = %id, "lost an endpoint's lease; its round stops");
                false
            }
        }
    }

    /// One round: deliver a page, record it; whether more is due now.
    async fn round(self: &Arc<Self>, lease: EndpointLease) -> bool {
        let endpoint = &lease.endpoint;
        let now = SystemTime::now();
        let (events, keys, end) = match self.page(&lease, now).await {
            Ok(read) => read,
            Err(why) => {
                tracing::warn!(endpoint = %endpoint.id, error = %why, "an endpoint's round failed");
                self.finish(&lease, &[], None, &[FailureHint::default()], Vec::new())
                    .await;
                return false;
            }
        };
        let cursors: Vec<Cursor> = events.iter().map(|e| e.cursor).collect();
        let earlier: HashSet<Cursor> = match self
            .store
            .delivered_events(&endpoint.tenant, endpoint.id, lease.epoch, &cursors)
            .await
        {
            Ok(done) => done.into_iter().collect(),
            Err(e) => {
                tracing::warn!(endpoint = %endpoint.id, error = %e, "reading deliveries failed");
                return false;
            }
        };
        if events.is_empty() {
            self.finish(&lease, &[], end, &[], Vec::new()).await;
            return false;
        }
        let tried = self.deliver(&lease, &keys, events, &earlier).await;
        let delivered: HashSet<Cursor> = tried
            .iter()
            .filter(|t| t.attempt.outcome == DeliveryOutcome::Delivered)
            .map(|t| t.attempt.event)
            .chain(earlier)
            .collect();
        let page: Vec<(Cursor, bool)> = cursors
            .iter()
            .map(|c| (*c, delivered.contains(c)))
            .collect();
        let hints: Vec<FailureHint> = tried.iter().filter_map(|t| t.hint).collect();
        let attempts = tried.into_iter().map(|t| t.attempt).collect();
        let clean = self.finish(&lease, &page, end, &hints, attempts).await;
        clean && page.len() == PAGE
    }

    /// The page of events after the cursor, the keys to sign with, and,
    /// when the page was not full, the log's head read before it (every
    /// matching event up to it is in the page).
    async fn page(
        &self,
        lease: &EndpointLease,
        now: SystemTime,
    ) -> Result<(Vec<Event>, Vec<Vec<u8>>, Option<Cursor>), String> {
        let endpoint = &lease.endpoint;
        let keys = self
            .app
            .endpoint_signing_keys(endpoint, now)
            .map_err(|e| e.to_string())?;
        let filter = EventFilter {
            types: endpoint.event_types.clone(),
            contact_id: endpoint.contact,
        };
        let head = self
            .store
            .event_head(&endpoint.tenant)
            .await
            .map_err(|e| e.to_string())?;
        let events = self
            .store
            .read_events(&endpoint.tenant, lease.cursor, &filter, PAGE)
            .await
            .map_err(|e| e.to_string())?;
        let end = (events.len() < PAGE).then_some(head);
        Ok((events, keys, end))
    }

    /// Delivers the events not delivered before: each contact's in order,
    /// contacts in parallel; no attempt starts after a failure.
    async fn deliver(
        self: &Arc<Self>,
        lease: &EndpointLease,
        keys: &[Vec<u8>],
        events: Vec<Event>,
        earlier: &HashSet<Cursor>,
    ) -> Vec<Tried> {
        let mut groups: Vec<Vec<Event>> = Vec::new();
        let mut index: HashMap<Option<Uuid>, usize> = HashMap::new();
        for event in events {
            if earlier.contains(&event.cursor) {
                continue;
            }
            let slot = *index.entry(event.contact_id).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[slot].push(event);
        }
        let failed = Arc::new(AtomicBool::new(false));
        let lanes = Arc::new(Semaphore::new(self.concurrency));
        let keys = Arc::new(keys.to_vec());
        let mut tasks = JoinSet::new();
        for group in groups {
            let (this, failed, lanes, keys) = (
                Arc::clone(self),
                Arc::clone(&failed),
                Arc::clone(&lanes),
                Arc::clone(&keys),
            );
            let (url, endpoint_id, tenant, epoch) = (
                lease.endpoint.url.clone(),
                lease.endpoint.id,
                lease.endpoint.tenant.clone(),
                lease.epoch,
            );
            tasks.spawn(async move {
                let Ok(_lane) = lanes.acquire_owned().await else {
                    return Vec::new();
                };
                let mut tried = Vec::new();
                for event in group {
                    if failed.load(Ordering::Acquire) {
                        break;
                    }
                    let one = this
                        .attempt(&url, &tenant, endpoint_id, epoch, &keys, &event)
                        .await;
                    let ok = one.attempt.outcome == DeliveryOutcome::Delivered;
                    tried.push(one);
                    if !ok {
                        failed.store(true, Ordering::Release);
                        break;
                    }
                }
                tried
            });
        }
        let mut all = Vec::new();
        while let Some(done) = tasks.join_next().await {
            all.extend(done.unwrap_or_default());
        }
        all
    }

    /// One delivery of one event.
    async fn attempt(
        &self,
        url: &str,
        tenant: &str,
        endpoint_id: Uuid,
        epoch: i64,
        keys: &[Vec<u8>],
        event: &Event,
    ) -> Tried {
        let body = crate::api::event_json(event);
        let Posted {
            time,
            latency,
            outcome,
            status_code,
            error,
            hint,
        } = self
            .courier
            .post(url, keys, &event.cursor.encode(), body)
            .await;
        let delivered = outcome == DeliveryOutcome::Delivered;
        crate::metrics::METRICS.endpoint_delivery(
            tenant,
            &endpoint_id.to_string(),
            delivered,
            time.duration_since(event.time).unwrap_or_default(),
        );
        if !delivered {
            tracing::info!(endpoint = %endpoint_id, status = ?status_code, error = %error, "a delivery failed");
        }
        Tried {
            attempt: DeliveryAttempt {
                id: Uuid::now_v7(),
                endpoint_id,
                event: event.cursor,
                event_type: event.kind,
                time,
                outcome,
                status_code,
                latency,
                error,
                next_try_time: None,
                epoch,
            },
            hint,
        }
    }

    /// Concludes and records a round; whether it was clean (no failure)
    /// and recorded under its lease.
    async fn finish(
        &self,
        lease: &EndpointLease,
        page: &[(Cursor, bool)],
        end: Option<Cursor>,
        hints: &[FailureHint],
        attempts: Vec<DeliveryAttempt>,
    ) -> bool {
        let endpoint = &lease.endpoint;
        let round = conclude_round(
            lease,
            page,
            end,
            hints,
            attempts,
            &self.policy,
            SystemTime::now(),
            crate::routing::fallback::random_fraction(),
        );
        let clean = round.failures == 0;
        let disable = round.disable.clone();
        match self
            .store
            .finish_delivery_round(&endpoint.tenant, endpoint.id, round)
            .await
        {
            Ok(held) => {
                if let (true, Some(reason)) = (held, disable) {
                    let why = if hints.iter().any(|h| h.gone) {
                        "gone"
                    } else {
                        "failing"
                    };
                    crate::metrics::METRICS.endpoint_disabled(&endpoint.tenant, why);
                    tracing::warn!(endpoint = %endpoint.id, reason = %reason, "endpoint disabled");
                }
                held && clean
            }
            Err(e) => {
                tracing::warn!(endpoint = %endpoint.id, error = %e, "recording a round failed");
                false
            }
        }
    }
}
