//! Delivering the event log to webhook endpoints: an endpoint's position in
//! the log and its lease, the attempts a delivery logs, and the rules that
//! conclude a round of deliveries (where the cursor moves, when the next
//! round is due, when the endpoint is disabled).
//!
//! An endpoint's deliveries are driven by its cursor over the tenant's
//! event log, not by a copy of every event: a deliverer claims the
//! endpoint (a lease with a token, like a dispatch job's), reads a page of
//! events after the cursor, delivers each contact's events in order
//! (contacts in parallel), logs every attempt, and moves the cursor past
//! the events delivered before the first one that failed. An event
//! delivered after a failed one (another contact's) is logged as
//! delivered in the cursor's epoch and skipped when the page is read
//! again; a replay starts a new epoch, so everything is delivered again.

use std::time::{Duration, SystemTime};

use uuid::Uuid;

use crate::endpoints::Endpoint;
use crate::events::{Cursor, EventType};

/// An endpoint a deliverer holds, with its position in the log.
#[derive(Debug, Clone)]
pub struct EndpointLease {
    pub endpoint: Endpoint,
    /// Every event up to here was delivered (or is not for the endpoint).
    pub cursor: Cursor,
    /// Counts replays: attempts logged in an earlier epoch do not count as
    /// deliveries of this one.
    pub epoch: i64,
    /// The lease's token: only its holder moves the cursor.
    pub token: Uuid,
    /// Since when every round has failed (none when the last succeeded).
    pub failing_since: Option<SystemTime>,
    /// Rounds failed in a row.
    pub failures: u32,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// The endpoint answered 2xx.
    Delivered,
    /// Any other answer, a timeout, a refused address or a broken
    /// connection: tried again later.
    Failed,
}

impl DeliveryOutcome {
    /// Stable storage code.
    pub fn code(self) -> i16 {
        match self {
            DeliveryOutcome::Delivered => 1,
            DeliveryOutcome::Failed => 2,
        }
    }

    /// Parses [`DeliveryOutcome::code`] back.
    pub fn from_code(code: i16) -> Option<DeliveryOutcome> {
        match code {
            1 => Some(DeliveryOutcome::Delivered),
            2 => Some(DeliveryOutcome::Failed),
            _ => None,
        }
    }
}

/// One attempt to deliver one event to one endpoint, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    /// UUIDv7: attempts in time order.
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The event's position (its `webhook-id` is the cursor's text form).
    pub event: Cursor,
    pub event_type: EventType,
    pub time: SystemTime,
    pub outcome: DeliveryOutcome,
    /// The HTTP status the endpoint answered, if it answered.
    pub status_code: Option<u16>,
    /// From the request's start to the answer's end (or the failure).
    pub latency: Duration,
    /// Why it failed (empty when delivered); never secrets or content.
    pub error: String,
    /// When the event is tried again, for failed attempts.
    pub next_try_time: Option<SystemTime>,
    /// The cursor's epoch the attempt belongs to.
    pub epoch: i64,
}

/// What a failed attempt asks of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FailureHint {
    /// The endpoint answered 410 Gone: it asks to be removed.
    pub gone: bool,
    /// The endpoint's `Retry-After` (on 429 and 503).
    pub retry_after: Option<Duration>,
}

/// How deliveries back off and when they give up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The wait after the n-th failed round in a row (the last repeats).
    pub schedule: Vec<Duration>,
    /// An endpoint failing for this long is disabled.
    pub disable_after: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        RetryPolicy {
            schedule: vec![
                Duration::from_secs(5),
                Duration::from_secs(30),
                minutes(2),
                minutes(5),
                minutes(15),
                minutes(30),
                minutes(60),
                minutes(120),
            ],
            disable_after: Duration::from_secs(24 * 3600),
            max_retry_after: Duration::from_secs(6 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The wait after `failures` failed rounds in a row (at least one),
    /// spread by `jitter` in [0, 1): ±20% around the schedule's step.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let Some(last) = self.schedule.last() else {
            return Duration::ZERO;
        };
        let index = usize::try_from(failures.saturating_sub(1)).unwrap_or(usize::MAX);
        let step = self.schedule.get(index).unwrap_or(last);
        step.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0))
    }
}

/// What a round of deliveries concludes, for the store to write at once:
/// the attempts it logs, the new cursor and schedule, and whether the
/// endpoint is disabled.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRound {
    /// The lease the round ran under.
    pub token: Uuid,
    pub cursor: Cursor,
    /// When the endpoint is due again.
    pub next_time: SystemTime,
    pub failing_since: Option<SystemTime>,
    pub failures: u32,
    /// Disable the endpoint, for this reason (an event says so).
    pub disable: Option<String>,
    pub attempts: Vec<DeliveryAttempt>,
}

/// Concludes a round over a page read after `lease.cursor`: `page` lists
/// the page's events in log order, each `true` when it is delivered
/// (now or earlier in this epoch); `end`, when the page holds every
/// matching event up to a position (the log's head read before a page that
/// was not full), that position; `failures` are the round's failed
/// attempts' hints; `jitter` in [0, 1).
///
/// The cursor moves to the last event before the first one not delivered,
/// or to `end` when every event of the page was delivered: an endpoint
/// whose filter matches few events does not read the same unmatched ones
/// again each round;
/// with any failure the endpoint backs off (the schedule's step or the
/// endpoint's `Retry-After`, whichever is later) and is disabled when it
/// answered 410 or has failed for `policy.disable_after`.
#[allow(clippy::too_many_arguments)]
pub fn conclude_round(
    lease: &EndpointLease,
    page: &[(Cursor, bool)],
    end: Option<Cursor>,
    failures: &[FailureHint],
    attempts: Vec<DeliveryAttempt>,
    policy: &RetryPolicy,
    now: SystemTime,
    jitter: f64,
) -> DeliveryRound {
    let mut cursor = lease.cursor;
    for (position, delivered) in page {
        if !delivered {
            break;
        }
        cursor = *position;
    }
    let stalled = page.iter().any(|(_, delivered)| !delivered);
    if let (false, Some(end)) = (stalled, end) {
        cursor = cursor.max(end);
    }
    if failures.is_empty() && !stalled {
        return DeliveryRound {
            token: lease.token,
            cursor,
            next_time: now,
            failing_since: None,
            failures: 0,
            disable: None,
            attempts,
        };
    }
    let count = lease.failures.saturating_add(1);
    let since = lease.failing_since.unwrap_or(now);
    let mut wait = policy.delay(count, jitter);
    if let Some(asked) = failures.iter().filter_map(|f| f.retry_after).max() {
        wait = wait.max(asked.min(policy.max_retry_after));
    }
    let failing_for = now.duration_since(since).unwrap_or_default();
    let disable = if failures.iter().any(|f| f.gone) {
        Some("the endpoint answered 410 Gone".to_owned())
    } else if failing_for >= policy.disable_after {
        Some(format!(
            "every delivery failed for {} s (endpoints.disable_after_secs)",
            failing_for.as_secs()
        ))
    } else {
        None
    };
    let next_time = now + wait;
    let attempts = attempts
        .into_iter()
        .map(|mut a| {
            if a.outcome == DeliveryOutcome::Failed && disable.is_none() {
                a.next_try_time = Some(next_time);
            }
            a
        })
        .collect();
    DeliveryRound {
        token: lease.token,
        cursor,
        next_time,
        failing_since: Some(since),
        failures: count,
        disable,
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::{NewEndpoint, SealedSecret};

    fn lease(failures: u32, since: Option<SystemTime>) -> EndpointLease {
        let endpoint = NewEndpoint {
            id: Uuid::nil(),
            url: "https://hooks.example.com/".to_owned(),
            description: String::new(),
            event_types: Vec::new(),
            contact: None,
            disabled: false,
            secret: SealedSecret(Vec::new()),
            start: Cursor::default(),
        }
        .into_endpoint("t", SystemTime::UNIX_EPOCH);
        EndpointLease {
            endpoint,
            cursor: Cursor { xid: 0, seq: 10 },
            epoch: 0,
            token: Uuid::nil(),
            failing_since: since,
            failures,
        }
    }

    fn at(seq: i64) -> Cursor {
        Cursor { xid: 0, seq }
    }

    #[test]
    fn the_cursor_stops_before_the_first_event_not_delivered() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let policy = RetryPolicy::default();
        let page = [
            (at(11), true),
            (at(12), true),
            (at(13), false),
            (at(14), true),
        ];
        let round = conclude_round(
            &lease(0, None),
            &page,
            Some(at(99)),
            &[FailureHint::default()],
            Vec::new(),
            &policy,
            now,
            0.5,
        );
        assert_eq!(round.cursor, at(12));
        assert_eq!(round.failures, 1);
        assert_eq!(round.failing_since, Some(now));
        assert_eq!(round.next_time, now + Duration::from_secs(5));
        assert_eq!(round.disable, None);

        let all = [(at(11), true), (at(12), true)];
        let round = conclude_round(
            &lease(3, Some(now)),
            &all,
            None,
            &[],
            Vec::new(),
            &policy,
            now,
            0.5,
        );
        assert_eq!(round.cursor, at(12));
        assert_eq!((round.failures, round.failing_since), (0, None));
        assert_eq!(round.next_time, now);
        // A page that held every match up to the head: the cursor goes
        // there, past the events the filter left out; an empty one too.
        for page in [&all[..], &[]] {
            let round = conclude_round(
                &lease(0, None),
                page,
                Some(at(40)),
                &[],
                Vec::new(),
                &policy,
                now,
                0.5,
            );
            assert_eq!(round.cursor, at(40));
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(1, 0.0), Duration::from_secs(4));
        assert_eq!(policy.delay(2, 0.5), Duration::from_secs(30));
        assert_eq!(policy.delay(100, 0.5), Duration::from_secs(7200));
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let hint = FailureHint {
            gone: false,
            retry_after: Some(Duration::from_secs(120)),
        };
        let round = conclude_round(
            &lease(0, None),
            &[(at(11), false)],
            None,
            &[hint],
            Vec::new(),
            &policy,
            now,
            0.5,
        );
        assert_eq!(round.next_time, now + Duration::from_secs(120));
        let huge = FailureHint {
            gone: false,
            retry_after: Some(Duration::from_secs(10 * 24 * 3600)),
        };
        let round = conclude_round(
            &lease(0, None),
            &[(at(11), false)],
            None,
            &[huge],
            Vec::new(),
            &policy,
            now,
            0.5,
        );
        assert_eq!(round.next_time, now + policy.max_retry_after);
    }

    #[test]
    fn gone_or_failing_too_long_disables() {
        let policy = RetryPolicy::default();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100_000);
        let gone = FailureHint {
            gone: true,
            retry_after: None,
        };
        let round = conclude_round(
            &lease(0, None),
            &[(at(11), false)],
            None,
            &[gone],
            Vec::new(),
            &policy,
            now,
            0.5,
        );
        assert!(round.disable.unwrap().contains("410"));
        let long_ago = now - policy.disable_after;
        let round = conclude_round(
            &lease(40, Some(long_ago)),
            &[(at(11), false)],
            None,
            &[FailureHint::default()],
            Vec::new(),
            &policy,
            now,
            0.5,
        );
        assert!(round.disable.is_some());
        let lately = now - policy.disable_after + Duration::from_secs(1);
        let round = conclude_round(
            &lease(40, Some(lately)),
            &[(at(11), false)],
            None,
            &[FailureHint::default()],
            Vec::new(),
            &policy,
            now,
            0.5,
        );
        assert_eq!(round.disable, None);
    }
}
