//! The dispatcher: takes due jobs from the store and hands their messages to
//! the channel adapters.
//!
//! Guarantees:
//! - **Nothing accepted is lost.** A job leaves the store only in the same
//!   transaction that records the message as sent, failed or canceled. A
//!   process that dies mid-send leaves its jobs leased; when the lease ends,
//!   any replica claims them again (at-least-once towards providers).
//! - **No double send while leases hold.** Claims skip leased jobs, and a
//!   completion carries the claim token: a worker whose lease expired cannot
//!   overwrite the outcome of a newer attempt.
//! - **No transaction spans a provider call**: claim, send, complete are three
//!   separate steps.
//! - **Outcomes are recorded in groups**: finished sends queue their
//!   outcomes, and one task records whatever has queued in one store call
//!   (one transaction). A send's concurrency permit is held until its
//!   outcome is recorded, so `dispatch.concurrency` bounds what is in flight,
//!   recorded or not; claims wait until a quarter of the permits are free, so
//!   they come in batches too.
//! - **It carries out routing's plan**: the step's channel, address and
//!   content variant; what happens after a failure (retry with back-off,
//!   the plan's next step when quiet hours allow, dead letter) is routing's
//!   decision (`routing::fallback`), and so is a step that comes due inside
//!   the customer's quiet hours: it is held until they end
//!   (`fallback::quiet_hold`), no attempt made. Every outcome feeds the
//!   channel's circuit breaker.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use omniroute_channel::{AdapterError, Address, OutboundMessage};
use omniroute_domain::{Attempt, AttemptOutcome, ClaimedJob, Completion, JobKind, NextStep};
use omniroute_store::prelude::*;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::channels::Adapters;
use crate::routing::breaker::Breakers;
use crate::routing::{fallback, policy};
use crate::settings::DispatchSettings;

/// Most outcomes recorded in one store call.
const MAX_COMPLETIONS: usize = 500;

/// How long the recorder waits for more outcomes to record with the first.
const RECORD_LINGER: Duration = Duration::from_millis(2);

/// An outcome waiting to be recorded, with the permit of its send.
type Finished = (Completion, OwnedSemaphorePermit);

/// Claims and sends.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    store: Arc<dyn Store>,
    adapters: Adapters,
    settings: DispatchSettings,
    /// Fed with every attempt's outcome, read by routing.
    breakers: Arc<Breakers>,
    /// Where sends queue their outcomes (set while running).
    finished: Option<mpsc::UnboundedSender<Finished>>,
}

impl Dispatcher {
    /// A dispatcher over a store and adapters.
    pub fn new(
        store: Arc<dyn Store>,
        adapters: Adapters,
        settings: DispatchSettings,
        breakers: Arc<Breakers>,
    ) -> Self {
        Dispatcher {
            store,
            adapters,
            settings,
            breakers,
            finished: None,
        }
    }

    /// Runs until `shutdown` turns true, then waits for the sends in flight
    /// and records their outcomes.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        let freed = Arc::new(Notify::new());
        let (finished, queue) = mpsc::unbounded_channel();
        self.finished = Some(finished);
        let lease = Duration::from_secs(self.settings.lease_secs);
        let recorder = tokio::spawn(record(
            Arc::clone(&self.store),
            queue,
            Arc::clone(&freed),
            lease,
        ));
        let mut backoff = super::backoff::Backoff::new("claiming jobs");
        let mut changes = self.store.job_changes();
        let mut tasks = JoinSet::new();
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        // Claim in batches: once a quarter of the permits are free (or all).
        let low_water = (self.settings.concurrency / 4).clamp(1, self.settings.batch_size);
        tracing::info!(
            concurrency = self.settings.concurrency,
            "dispatcher started"
        );
        while !*shutdown.borrow() {
            while tasks.try_join_next().is_some() {}
            let free = permits.available_permits();
            if free >= low_water || free == self.settings.concurrency {
                changes.borrow_and_update();
                match self
                    .store
                    .claim_jobs(free.min(self.settings.batch_size), lease)
                    .await
                {
                    Ok(jobs) if !jobs.is_empty() => {
                        backoff.succeeded();
                        let full = jobs.len() == free.min(self.settings.batch_size);
                        for job in jobs {
                            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                                break;
                            };
                            let this = self.clone();
                            // The attempt continues the trace the message
                            // was accepted in.
                            let span = tracing::info_span!(
                                "dispatch",
                                message_id = %job.message.id,
                                attempt = job.channel_attempt
                            );
                            if let Some(route) = &job.message.route {
                                crate::telemetry::context::follow(
                                    &span,
                                    &route.inputs.trace_parent,
                                );
                            }
                            tasks.spawn(tracing::Instrument::instrument(
                                async move { this.process(job, permit).await },
                                span,
                            ));
                        }
                        if full {
                            continue;
                        }
                    }
                    Ok(_) => backoff.succeeded(),
                    Err(e) => {
                        backoff.pause(&e, &mut shutdown).await;
                        continue;
                    }
                }
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep(poll).await;
                    }
                }
                () = freed.notified(), if free < low_water => {}
                () = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        tracing::info!(in_flight = tasks.len(), "dispatcher stopping");
        while tasks.join_next().await.is_some() {}
        // Every send has queued its outcome; the recorder ends once the
        // queue is empty and closed.
        self.finished = None;
        drop(self);
        let _ = recorder.await;
    }

    /// One attempt for one claimed job, and its outcome recorded.
    async fn process(&self, job: ClaimedJob, permit: OwnedSemaphorePermit) {
        if job.kind != JobKind::Send {
            let next = self.after_watch(&job);
            self.complete(job, None, next, permit);
            return;
        }
        let message = &job.message;
        let now = SystemTime::now();
        if message.expire_time.is_some_and(|t| t <= now) {
            self.complete(
                job,
                None,
                NextStep::Fail {
                    reason: "expired before it could be sent".to_owned(),
                },
                permit,
            );
            return;
        }
        let Some(planned) = message
            .route
            .as_ref()
            .and_then(|r| r.plan.get(job.plan_index))
        else {
            self.complete(
                job,
                None,
                NextStep::Fail {
                    reason: "the message has no route".to_owned(),
                },
                permit,
            );
            return;
        };
        let channel = planned.channel;
        // Quiet hours are decided for the time the step goes: one that
        // came due inside them (a send time in the night, a job that waited
        // out an outage) waits for their end, durably.
        if let Some(until) = message
            .route
            .as_ref()
            .and_then(|r| fallback::quiet_hold(r, self.rings(job.plan_index, &job), now))
        {
            self.complete(job, None, NextStep::Hold { until }, permit);
            return;
        }
        let Some(adapter) = self.adapters.get(&channel) else {
            let next = self.after_failure(&job, None, &format!("{channel} is not configured"));
            self.complete(job, None, next, permit);
            return;
        };
        let content = policy::step_content(
            &message.content,
            &message.overrides,
            channel,
            planned.variant,
        );
        let window_open_until = message
            .route
            .as_ref()
            .and_then(|r| r.inputs.windows.iter().find(|(c, _)| *c == channel))
            .map(|(_, until)| *until);
        let number = u32::try_from(message.attempts.len()).unwrap_or(u32::MAX - 1) + 1;
        // A reply quotes the provider's id of the message it answers.
        let reply_to = match message.reply_to {
            Some(id) => match self.store.get_message(&job.tenant, id).await {
                Ok(quoted) if quoted.channel == Some(channel) => quoted.provider_message_id,
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "the quoted message cannot be read; sending without the quote");
                    None
                }
            },
            None => None,
        };
        // The provider call is a span of the message's trace, and the
        // provider hears of it.
        let span = tracing::info_span!("provider.send", channel = %channel);
        let outbound = OutboundMessage {
            tenant: job.tenant.clone(),
            message_id: message.id.to_string(),
            to: Address::from_stored(
                channel,
                planned.address.clone(),
                planned.key.clone(),
                planned.wa_id.clone(),
            ),
            category: message.category,
            content,
            reply_to,
            attempt: number,
            window_open_until,
            locale: message
                .route
                .as_ref()
                .map(|r| r.inputs.locale.clone())
                .filter(|l| !l.is_empty()),
            trace_parent: crate::telemetry::context::traceparent(&span),
        };
        let timeout = Duration::from_secs(self.settings.send_timeout_secs);
        let sending = tracing::Instrument::instrument(adapter.send(&outbound), span);
        let result = match tokio::time::timeout(timeout, sending).await {
            Ok(result) => result,
            Err(_) => Err(AdapterError::new(
                omniroute_channel::ErrorClass::Transient,
                "timeout",
                format!("the provider did not answer within {} s", timeout.as_secs()),
            )),
        };
        let end = SystemTime::now();
        self.breakers.record(
            channel,
            &job.tenant,
            result.as_ref().err().map(AdapterError::class),
            end,
        );
        crate::metrics::METRICS.attempt(
            &job.tenant,
            channel.as_str(),
            result
                .as_ref()
                .map_or_else(|e| e.class().as_str(), |_| "sent"),
            end.duration_since(now).unwrap_or_default(),
        );
        if result.is_ok() && message.attempts.is_empty() {
            // From when the message could first go (its acceptance, or its
            // send time) to the provider taking it.
            let ready = message
                .send_time
                .map_or(message.create_time, |t| t.max(message.create_time));
            crate::metrics::METRICS.dispatched(
                channel.as_str(),
                end.duration_since(ready).unwrap_or_default(),
            );
        }
        // The attempt as made; what came of it is set below.
        let attempt = Attempt {
            number,
            channel,
            address: planned.address.clone(),
            start_time: now,
            end_time: end,
            outcome: AttemptOutcome::Accepted,
            error_code: String::new(),
            error_message: String::new(),
            provider_message_id: String::new(),
        };
        let (attempt, next) = match result {
            Ok(receipt) => {
                tracing::debug!(channel = %channel, to = %outbound.to, "sent");
                (
                    Attempt {
                        provider_message_id: receipt.provider_message_id.clone(),
                        ..attempt
                    },
                    NextStep::Sent {
                        provider_message_id: receipt.provider_message_id,
                    },
                )
            }
            Err(error) => {
                tracing::warn!(channel = %channel, to = %outbound.to, class = error.class().as_str(), code = error.code(), "attempt failed");
                let next = self.after_failure(&job, Some(&error), error.message());
                (
                    Attempt {
                        outcome: AttemptOutcome::Failed(error.class()),
                        error_code: error.code().to_owned(),
                        error_message: error.message().to_owned(),
                        ..attempt
                    },
                    next,
                )
            }
        };
        self.complete(job, Some(attempt), next, permit);
    }

    /// Whether the channel of the job's plan step `index` rings (a call: it
    /// waits for the end of quiet hours).
    fn rings(&self, index: usize, job: &ClaimedJob) -> bool {
        job.message
            .route
            .as_ref()
            .and_then(|r| r.plan.get(index))
            .and_then(|p| self.adapters.get(&p.channel))
            .is_some_and(|a| a.capabilities().rings)
    }

    /// When the job's plan step `index` may go from `at`
    /// ([`fallback::step_due`] with its channel's rules).
    fn step_due(&self, job: &ClaimedJob, index: usize, at: SystemTime) -> SystemTime {
        fallback::step_due(
            job.message.route.as_ref(),
            index,
            self.rings(index, job),
            at,
        )
    }

    /// What to do when a sent step's watch comes due.
    fn after_watch(&self, job: &ClaimedJob) -> NextStep {
        fallback::on_watch(
            &self.settings,
            job,
            &|index, at| self.step_due(job, index, at),
            SystemTime::now(),
            fallback::random_fraction(),
        )
    }

    /// What to do after a failed attempt.
    fn after_failure(
        &self,
        job: &ClaimedJob,
        error: Option<&AdapterError>,
        text: &str,
    ) -> NextStep {
        let plan_len = job.message.route.as_ref().map_or(0, |r| r.plan.len());
        fallback::decide(
            &self.settings,
            job.channel_attempt,
            job.plan_index,
            plan_len,
            error,
            text,
            SystemTime::now(),
            &|index, at| self.step_due(job, index, at),
            fallback::random_fraction(),
        )
    }

    /// Queues an outcome for the recorder; the permit goes with it.
    fn complete(
        &self,
        job: ClaimedJob,
        attempt: Option<Attempt>,
        next: NextStep,
        permit: OwnedSemaphorePermit,
    ) {
        crate::metrics::METRICS.decision(
            &job.tenant,
            // The channel the attempt or watch was on.
            job.message.channel.map_or("none", |c| c.as_str()),
            match &next {
                NextStep::Sent { .. } => "sent",
                NextStep::RetryAt(_) => "retry",
                NextStep::NextChannel { .. } => "fallback",
                NextStep::Fail { .. } => "failed",
                NextStep::EndWatch { .. } => "watch_ended",
                NextStep::Hold { .. } => "held",
            },
        );
        let completion = Completion { job, attempt, next };
        let queued = self
            .finished
            .as_ref()
            .is_some_and(|queue| queue.send((completion, permit)).is_ok());
        if !queued {
            // The lease runs out and the job is tried again.
            tracing::error!("the outcome recorder is gone; the job will be retried");
        }
    }
}

/// Records queued outcomes, as many per store call as have queued, until
/// the queue closes; wakes the claim loop after each group (permits freed).
///
/// While the store is unreachable the group is kept and retried with
/// back-off for as long as its leases last (a send whose outcome is dropped
/// is sent again when its lease ends, so an outage must not turn every send
/// in flight into a duplicate); the permits stay held meanwhile, so the
/// dispatcher claims nothing new.
async fn record(
    store: Arc<dyn Store>,
    mut queue: mpsc::UnboundedReceiver<Finished>,
    freed: Arc<Notify>,
    lease: Duration,
) {
    let mut backoff = super::backoff::Backoff::new("recording outcomes");
    while let Some(first) = queue.recv().await {
        let group = super::gather(first, &mut queue, MAX_COMPLETIONS, RECORD_LINGER).await;
        let (completions, permits): (Vec<Completion>, Vec<OwnedSemaphorePermit>) =
            group.into_iter().unzip();
        let many = completions.len() > 1;
        let first_try = tokio::time::Instant::now();
        let mut result = store.complete_jobs(&completions).await;
        while let Err(e) = &result {
            if !e.is_transient() || first_try.elapsed() >= lease {
                break;
            }
            tokio::time::sleep(backoff.failed(e)).await;
            result = store.complete_jobs(&completions).await;
        }
        if result.is_ok() {
            backoff.succeeded();
        }
        match result {
            Ok(recorded) => log_lost(&recorded),
            Err(e) if e.is_transient() => tracing::error!(
                error = %omniroute_store::error_chain(&e),
                outcomes = completions.len(),
                "the store stayed unavailable past the lease; these jobs will be sent again"
            ),
            Err(e) if many => {
                // One bad outcome must not hold back the others.
                tracing::warn!(error = %e, outcomes = completions.len(), "recording outcomes failed; recording them one by one");
                for completion in &completions {
                    match store.complete_jobs(std::slice::from_ref(completion)).await {
                        Ok(recorded) => log_lost(&recorded),
                        Err(e) => tracing::error!(error = %e, "recording the outcome failed"),
                    }
                }
            }
            // The lease runs out and the job is tried again.
            Err(e) => tracing::error!(error = %e, "recording the outcome failed"),
        }
        drop(permits);
        freed.notify_one();
    }
}

fn log_lost(recorded: &[Option<omniroute_domain::Message>]) {
    let lost = recorded.iter().filter(|r| r.is_none()).count();
    if lost > 0 {
        tracing::warn!(
            lost,
            "lease lost before the outcome was recorded; a newer attempt owns the message"
        );
    }
}
