//! How background loops wait out a store that is down: exponential back-off
//! with jitter, and a bounded number of log lines (the first failure, then
//! each time the count of failures doubles, then one line at recovery),
//! so a ten-second database outage costs a handful of lines, not thousands.

use std::time::{Duration, Instant};

use omniroute_store::{StoreError, error_chain};

/// The first pause after a failure.
const FIRST: Duration = Duration::from_millis(100);
/// The longest pause.
const CAP: Duration = Duration::from_secs(5);

/// The back-off state of one background loop.
#[derive(Debug)]
pub struct Backoff {
    what: &'static str,
    failures: u64,
    since: Option<Instant>,
}

impl Backoff {
    /// A loop doing `what` ("claiming jobs", ...), for the log lines.
    pub fn new(what: &'static str) -> Backoff {
        Backoff {
            what,
            failures: 0,
            since: None,
        }
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Records a failure, logs it when the count is a power of two, and
    /// returns how long to pause before trying again.
    pub fn failed(&mut self, error: &StoreError) -> Duration {
        self.failures += 1;
        let since = *self.since.get_or_insert_with(Instant::now);
        if self.failures.is_power_of_two() {
            let failures = self.failures;
            let secs = since.elapsed().as_secs();
            let transient = error.is_transient();
            let error = error_chain(error);
            if transient {
                tracing::warn!(what = self.what, failures, secs, %error, "store unavailable; backing off");
            } else {
                tracing::error!(what = self.what, failures, secs, %error, "store call failed; backing off");
            }
        }
        let exponent = u32::try_from(self.failures - 1).unwrap_or(u32::MAX).min(16);
        let ceiling = FIRST.saturating_mul(1 << exponent).min(CAP);
        // Full jitter: replicas that lost the database together do not come
        // back in lockstep.
        ceiling.mul_f64(0.5 + crate::routing::fallback::random_fraction() / 2.0)
    }

    /// Records a success; logs the recovery after failures.
    pub fn succeeded(&mut self) {
        if self.failures > 0 {
            let secs = self.since.map_or(0, |s| s.elapsed().as_secs());
            tracing::info!(
                what = self.what,
                failures = self.failures,
                secs,
                "store reachable again"
            );
        }
        self.failures = 0;
        self.since = None;
    }

    /// Records a failure and pauses (or returns early when `stop` fires).
    pub async fn pause(
        &mut self,
        error: &StoreError,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) {
        let pause = self.failed(error);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = stop.changed() => {}
        }
    }
}
