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
//! - **Retries back off**: capped exponential with full jitter, and never
//!   sooner than a provider's Retry-After. After `max_attempts` on the last
//!   channel of its plan the message fails with a dead-letter reason;
//!   RetryMessage requeues it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use omniroute_channel::{Adapter, AdapterError, Address, Channel, OutboundMessage};
use omniroute_store::{Attempt, AttemptOutcome, ClaimedJob, Completion, NextStep, Store};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::settings::DispatchSettings;

/// The adapters by channel.
pub type Adapters = Arc<HashMap<Channel, Arc<dyn Adapter>>>;

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
    /// Where sends queue their outcomes (set while running).
    finished: Option<mpsc::UnboundedSender<Finished>>,
}

impl Dispatcher {
    /// A dispatcher over a store and adapters.
    pub fn new(store: Arc<dyn Store>, adapters: Adapters, settings: DispatchSettings) -> Self {
        Dispatcher {
            store,
            adapters,
            settings,
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
        let recorder = tokio::spawn(record(Arc::clone(&self.store), queue, Arc::clone(&freed)));
        let mut changes = self.store.job_changes();
        let mut tasks = JoinSet::new();
        let lease = Duration::from_secs(self.settings.lease_secs);
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
                        let full = jobs.len() == free.min(self.settings.batch_size);
                        for job in jobs {
                            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                                break;
                            };
                            let this = self.clone();
                            tasks.spawn(async move { this.process(job, permit).await });
                        }
                        if full {
                            continue;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming jobs failed; retrying");
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
    #[tracing::instrument(skip_all, fields(message_id = %job.message.id, attempt = job.channel_attempt))]
    async fn process(&self, job: ClaimedJob, permit: OwnedSemaphorePermit) {
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
        let Some(adapter) = self.adapters.get(&channel) else {
            let next = self.after_failure(&job, None, &format!("{channel} is not configured"));
            self.complete(job, None, next, permit);
            return;
        };
        let content = message
            .overrides
            .iter()
            .find(|o| o.channel == channel)
            .map_or_else(|| message.content.clone(), |o| o.content.clone());
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
        };
        let timeout = Duration::from_secs(self.settings.send_timeout_secs);
        let result = match tokio::time::timeout(timeout, adapter.send(&outbound)).await {
            Ok(result) => result,
            Err(_) => Err(AdapterError::new(
                omniroute_channel::ErrorClass::Transient,
                "timeout",
                format!("the provider did not answer within {} s", timeout.as_secs()),
            )),
        };
        let end = SystemTime::now();
        let (attempt, next) = match result {
            Ok(receipt) => {
                tracing::debug!(channel = %channel, to = %outbound.to, "sent");
                (
                    Attempt {
                        number,
                        channel,
                        address: planned.address.clone(),
                        start_time: now,
                        end_time: end,
                        outcome: AttemptOutcome::Accepted,
                        error_code: String::new(),
                        error_message: String::new(),
                        provider_message_id: receipt.provider_message_id.clone(),
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
                        number,
                        channel,
                        address: planned.address.clone(),
                        start_time: now,
                        end_time: end,
                        outcome: AttemptOutcome::Failed(error.class()),
                        error_code: error.code().to_owned(),
                        error_message: error.message().to_owned(),
                        provider_message_id: String::new(),
                    },
                    next,
                )
            }
        };
        self.complete(job, Some(attempt), next, permit);
    }

    /// What to do after a failed attempt.
    fn after_failure(
        &self,
        job: &ClaimedJob,
        error: Option<&AdapterError>,
        text: &str,
    ) -> NextStep {
        let plan_len = job.message.route.as_ref().map_or(0, |r| r.plan.len());
        decide(
            &self.settings,
            job.channel_attempt,
            job.plan_index,
            plan_len,
            error,
            text,
            SystemTime::now(),
            random_fraction(),
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
async fn record(
    store: Arc<dyn Store>,
    mut queue: mpsc::UnboundedReceiver<Finished>,
    freed: Arc<Notify>,
) {
    while let Some(first) = queue.recv().await {
        let group = super::gather(first, &mut queue, MAX_COMPLETIONS, RECORD_LINGER).await;
        let (completions, permits): (Vec<Completion>, Vec<OwnedSemaphorePermit>) =
            group.into_iter().unzip();
        let many = completions.len() > 1;
        match store.complete_jobs(&completions).await {
            Ok(recorded) => log_lost(&recorded),
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

fn log_lost(recorded: &[Option<omniroute_store::Message>]) {
    let lost = recorded.iter().filter(|r| r.is_none()).count();
    if lost > 0 {
        tracing::warn!(
            lost,
            "lease lost before the outcome was recorded; a newer attempt owns the message"
        );
    }
}

/// The step after a failure: retry the channel with back-off while the error
/// is retryable and attempts remain, else fall back to the plan's next
/// channel, else fail with a dead-letter reason.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    settings: &DispatchSettings,
    channel_attempt: u32,
    plan_index: usize,
    plan_len: usize,
    error: Option<&AdapterError>,
    text: &str,
    now: SystemTime,
    random: f64,
) -> NextStep {
    let retryable = error.is_some_and(AdapterError::is_retryable);
    if retryable && channel_attempt < settings.max_attempts {
        let delay = backoff(settings, channel_attempt, random);
        let delay = error
            .and_then(AdapterError::retry_after)
            .map_or(delay, |after| delay.max(after));
        return NextStep::RetryAt(now + delay);
    }
    if plan_index + 1 < plan_len {
        return NextStep::NextChannel(plan_index + 1);
    }
    let reason = match error {
        Some(e) if retryable => format!(
            "retries exhausted after {channel_attempt} attempts; last error {}: {}",
            e.code(),
            e.message()
        ),
        Some(e) => format!(
            "{} failure {}: {}",
            e.class().as_str(),
            e.code(),
            e.message()
        ),
        None => text.to_owned(),
    };
    NextStep::Fail { reason }
}

/// Full jitter: a delay drawn uniformly from 0 to
/// min(cap, base × 2^(attempt − 1)).
pub fn backoff(settings: &DispatchSettings, attempt: u32, random: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(32);
    let ceiling = settings
        .backoff_base_ms
        .saturating_mul(1u64 << exponent)
        .min(settings.backoff_cap_ms);
    Duration::from_millis((ceiling as f64 * random.clamp(0.0, 1.0)) as u64)
}

/// A uniform number in [0, 1) from the random bits of a UUIDv7.
fn random_fraction() -> f64 {
    let bits = uuid::Uuid::now_v7().as_u128() as u64 & ((1u64 << 53) - 1);
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use omniroute_channel::ErrorClass;

    use super::*;

    fn settings() -> DispatchSettings {
        DispatchSettings {
            max_attempts: 3,
            backoff_base_ms: 100,
            backoff_cap_ms: 1_000,
            ..DispatchSettings::default()
        }
    }

    #[test]
    fn backoff_is_capped_exponential_with_full_jitter() {
        let s = settings();
        assert_eq!(backoff(&s, 1, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(&s, 3, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(&s, 10, 1.0), Duration::from_millis(1_000));
        assert_eq!(backoff(&s, 3, 0.5), Duration::from_millis(200));
        assert_eq!(backoff(&s, 3, 0.0), Duration::ZERO);
        assert!(random_fraction() < 1.0);
    }

    #[test]
    fn transient_errors_retry_then_fail_as_dead_letters() {
        let s = settings();
        let now = SystemTime::UNIX_EPOCH;
        let transient = AdapterError::new(ErrorClass::Transient, "503", "down");
        assert_eq!(
            decide(&s, 1, 0, 1, Some(&transient), "", now, 1.0),
            NextStep::RetryAt(now + Duration::from_millis(100))
        );
        match decide(&s, 3, 0, 1, Some(&transient), "", now, 1.0) {
            NextStep::Fail { reason } => {
                assert!(reason.contains("retries exhausted after 3"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // With another channel in the plan, exhaustion falls back to it.
        assert_eq!(
            decide(&s, 3, 0, 2, Some(&transient), "", now, 1.0),
            NextStep::NextChannel(1)
        );
    }

    #[test]
    fn retry_after_is_honoured() {
        let s = settings();
        let now = SystemTime::UNIX_EPOCH;
        let limited = AdapterError::rate_limited("130429", "slow", Some(Duration::from_secs(5)));
        assert_eq!(
            decide(&s, 1, 0, 1, Some(&limited), "", now, 0.1),
            NextStep::RetryAt(now + Duration::from_secs(5))
        );
    }

    #[test]
    fn permanent_errors_do_not_retry() {
        let s = settings();
        let permanent = AdapterError::new(ErrorClass::Permanent, "131026", "undeliverable");
        match decide(
            &s,
            1,
            0,
            1,
            Some(&permanent),
            "",
            SystemTime::UNIX_EPOCH,
            1.0,
        ) {
            NextStep::Fail { reason } => {
                assert!(reason.starts_with("permanent failure 131026"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(
                &s,
                1,
                0,
                2,
                Some(&permanent),
                "",
                SystemTime::UNIX_EPOCH,
                1.0
            ),
            NextStep::NextChannel(1)
        );
    }
}
