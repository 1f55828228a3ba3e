//! Circuit breakers per channel and provider account (the tenant's account
//! on that channel).
//!
//! A breaker opens after `failures` transient failures in a row, so that
//! routing skips the channel (reason unhealthy) for `cool_down` instead of
//! queueing more sends behind a failing provider; then it is half open and
//! lets sends through as probes: the first success closes it, a failure opens
//! it again. Permanent failures say nothing about the provider's health (a bad
//! address) and do not count. State is per process, like the provider
//! connections it describes; routing shows it in every decision it affects.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use omniroute_channel::{Channel, ErrorClass};

use super::policy::Health;

/// The breaker of one channel and account; none in the map: closed, with
/// no failures.
#[derive(Debug, Clone, Copy, Default)]
struct Breaker {
    /// Transient failures in a row.
    failures: u32,
    /// Open until then.
    open_until: Option<SystemTime>,
}

/// The breakers of this process.
#[derive(Debug)]
pub struct Breakers {
    failures: u32,
    cool_down: Duration,
    state: Mutex<HashMap<(Channel, String), Breaker>>,
}

impl Breakers {
    /// Breakers opening after `failures` in a row, for `cool_down`.
    pub fn new(failures: u32, cool_down: Duration) -> Breakers {
        Breakers {
            failures: failures.max(1),
            cool_down,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// How the breaker of `channel` for `account` stands now.
    pub fn health(&self, channel: Channel, account: &str, now: SystemTime) -> Health {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.get(&(channel, account.to_owned())) {
            Some(Breaker {
                open_until: Some(until),
                ..
            }) if *until > now => Health::Open,
            Some(Breaker {
                open_until: Some(_),
                ..
            }) => Health::HalfOpen,
            _ => Health::Closed,
        }
    }

    /// How many breakers are open now (per channel and account).
    pub fn open_count(&self, now: SystemTime) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .values()
            .filter(|b| b.open_until.is_some_and(|until| until > now))
            .count()
    }

    /// Records the outcome of an attempt: `None` for a success.
    pub fn record(
        &self,
        channel: Channel,
        account: &str,
        failure: Option<ErrorClass>,
        now: SystemTime,
    ) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let key = (channel, account.to_owned());
        match failure {
            None => {
                if state.remove(&key).is_some_and(|b| b.open_until.is_some()) {
                    tracing::info!(%channel, "circuit breaker closed");
                }
            }
            Some(ErrorClass::Transient | ErrorClass::RateLimited) => {
                let breaker = state.entry(key).or_default();
                breaker.failures += 1;
                let half_open = breaker.open_until.is_some_and(|u| u <= now);
                if breaker.failures >= self.failures || half_open {
                    breaker.open_until = Some(now + self.cool_down);
                    breaker.failures = 0;
                    tracing::warn!(%channel, cool_down_secs = self.cool_down.as_secs(), "circuit breaker open");
                }
            }
            // A bad address or content says nothing about the provider.
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_failures_in_a_row_then_probes() {
        let b = Breakers::new(3, Duration::from_secs(30));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let fail = Some(ErrorClass::Transient);
        b.record(Channel::Whatsapp, "acme", fail, t0);
        b.record(Channel::Whatsapp, "acme", fail, t0);
        assert_eq!(b.health(Channel::Whatsapp, "acme", t0), Health::Closed);
        // A success in between starts the count again.
        b.record(Channel::Whatsapp, "acme", None, t0);
        b.record(Channel::Whatsapp, "acme", fail, t0);
        b.record(Channel::Whatsapp, "acme", fail, t0);
        assert_eq!(b.health(Channel::Whatsapp, "acme", t0), Health::Closed);
        b.record(Channel::Whatsapp, "acme", fail, t0);
        assert_eq!(b.health(Channel::Whatsapp, "acme", t0), Health::Open);
        // Per channel and account.
        assert_eq!(b.health(Channel::Email, "acme", t0), Health::Closed);
        assert_eq!(b.health(Channel::Whatsapp, "other", t0), Health::Closed);
        // After the cool-down a probe may go; its failure opens it again.
        let t1 = t0 + Duration::from_secs(31);
        assert_eq!(b.health(Channel::Whatsapp, "acme", t1), Health::HalfOpen);
        b.record(Channel::Whatsapp, "acme", fail, t1);
        assert_eq!(b.health(Channel::Whatsapp, "acme", t1), Health::Open);
        // A successful probe closes it.
        let t2 = t1 + Duration::from_secs(31);
        b.record(Channel::Whatsapp, "acme", None, t2);
        assert_eq!(b.health(Channel::Whatsapp, "acme", t2), Health::Closed);
        // Permanent failures do not count.
        for _ in 0..5 {
            b.record(Channel::Email, "acme", Some(ErrorClass::Permanent), t2);
        }
        assert_eq!(b.health(Channel::Email, "acme", t2), Health::Closed);
    }
}
