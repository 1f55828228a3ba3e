//! Client-side rate limits, so that the router stays under Meta's limits
//! instead of learning them from 130429 and 131056 errors.
//!
//! - **Per business number** (throughput): a sliding window of one second
//!   holding at most the number's `throughput_per_second` sends. A burst of
//!   one second's worth goes at once, and no window of one second ever holds
//!   more than the rate (a token bucket of the same burst would allow twice
//!   the rate in the first second). [`Limiter::acquire_number`] *waits* for
//!   its turn: a send that waits a few milliseconds is cheaper than an error
//!   and a rescheduled job. Turns are reserved in arrival order, so waiting
//!   senders never starve each other; a caller that gives up while waiting
//!   leaves its turn unused (erring on the slow side).
//! - **Per (business number, recipient) pair**: a token bucket of
//!   [`PAIR_BURST`] tokens refilled one per [`PAIR_INTERVAL`].
//!   [`Limiter::try_pair`] never waits: it answers how long until the next
//!   token, and the adapter returns a rate-limited error with that delay so
//!   that the dispatcher reschedules the job instead of holding a worker.
//!
//! All time is `tokio::time`, so tests run on a paused clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Sustained pair rate: one message per this interval per (business number,
/// customer). Second-hand figure (PROTOCOLS §1, "Limits and policy": "about
/// 1 message per 6 s"); Meta does not publish it.
pub const PAIR_INTERVAL: Duration = Duration::from_secs(6);

/// Pair burst: this many messages may go to one customer at once before the
/// sustained rate applies. Second-hand figure (PROTOCOLS §1: "bursts up to
/// ~45 in 6 s").
pub const PAIR_BURST: u32 = 45;

/// Pair buckets idle this long are full again and are forgotten.
const PAIR_IDLE: Duration = Duration::from_secs(PAIR_INTERVAL.as_secs() * PAIR_BURST as u64);

/// How often idle pair buckets are swept.
const PAIR_SWEEP: Duration = Duration::from_secs(60);

/// A token bucket: `capacity` tokens, one more every `interval`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    /// Tokens per second.
    rate: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket of `capacity` refilled at `per_second` tokens a second.
    pub fn new(capacity: u32, per_second: f64, now: Instant) -> Self {
        TokenBucket {
            capacity: f64::from(capacity.max(1)),
            rate: per_second,
            tokens: f64::from(capacity.max(1)),
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.updated = now;
    }

    /// Takes a token if one is there; otherwise how long until one is.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Whether the bucket is full (nothing would be lost by forgetting it).
    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }
}

/// At most `limit` events in any window of `window`, handing out turns
/// (possibly in the future) in call order.
#[derive(Debug, Clone)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    /// The last `limit` turns handed out, oldest first (nondecreasing).
    turns: VecDeque<Instant>,
}

impl SlidingWindow {
    /// A window of `window` admitting `limit` events.
    pub fn new(limit: u32, window: Duration) -> Self {
        let limit = limit.max(1) as usize;
        SlidingWindow {
            limit,
            window,
            turns: VecDeque::with_capacity(limit),
        }
    }

    /// Reserves the next turn and answers how long the caller must wait for
    /// it (zero when it may go now).
    pub fn reserve(&mut self, now: Instant) -> Duration {
        let turn = if self.turns.len() < self.limit {
            now
        } else {
            // The turn `limit` places back must lie a full window behind.
            let oldest = self.turns.pop_front().unwrap_or(now);
            now.max(oldest + self.window)
        };
        self.turns.push_back(turn);
        turn.saturating_duration_since(now)
    }
}

/// The rate limits of every configured business number.
pub struct Limiter {
    numbers: HashMap<String, Mutex<SlidingWindow>>,
    pairs: Mutex<Pairs>,
}

impl std::fmt::Debug for Limiter {
    /// Counts only: the pair keys are customers' numbers.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("numbers", &self.numbers.len())
            .field("tracked_pairs", &lock(&self.pairs).buckets.len())
            .finish()
    }
}

struct Pairs {
    buckets: HashMap<(String, String), TokenBucket>,
    swept: Instant,
}

impl Limiter {
    /// Limits for `numbers`: (phone_number_id, messages per second).
    pub fn new<'a>(numbers: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let now = Instant::now();
        let numbers = numbers
            .into_iter()
            .map(|(id, per_second)| {
                let window = SlidingWindow::new(per_second, Duration::from_secs(1));
                (id.to_owned(), Mutex::new(window))
            })
            .collect();
        Limiter {
            numbers,
            pairs: Mutex::new(Pairs {
                buckets: HashMap::new(),
                swept: now,
            }),
        }
    }

    /// Waits until `phone_number_id` may send one more message. Numbers
    /// without a configured limit pass at once.
    pub async fn acquire_number(&self, phone_number_id: &str) {
        let Some(window) = self.numbers.get(phone_number_id) else {
            return;
        };
        let wait = lock(window).reserve(Instant::now());
        if !wait.is_zero() {
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                "waiting for number throughput"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a token of the (number, recipient) pair, or answers how long
    /// until the next one.
    pub fn try_pair(&self, phone_number_id: &str, recipient_key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut pairs = lock(&self.pairs);
        if now.saturating_duration_since(pairs.swept) >= PAIR_SWEEP {
            pairs
                .buckets
                .retain(|_, bucket| bucket.updated + PAIR_IDLE > now || !bucket.is_full(now));
            pairs.swept = now;
        }
        pairs
            .buckets
            .entry((phone_number_id.to_owned(), recipient_key.to_owned()))
            .or_insert_with(|| TokenBucket::new(PAIR_BURST, 1.0 / PAIR_INTERVAL.as_secs_f64(), now))
            .try_take(now)
    }

    /// How many pairs are tracked (for tests of the sweep).
    #[cfg(test)]
    fn tracked_pairs(&self) -> usize {
        lock(&self.pairs).buckets.len()
    }
}

/// Locks a mutex, ignoring poisoning: a panic elsewhere leaves a bucket in a
/// valid (if slightly off) state.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn number_limiter_keeps_a_burst_under_the_rate() {
        let limiter = Arc::new(Limiter::new([("1", 10)]));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..35 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                limiter.acquire_number("1").await;
                Instant::now()
            }));
        }
        let mut per_second = [0u32; 5];
        for task in tasks {
            let at = task.await.unwrap();
            let second = (at - start).as_secs_f64().floor() as usize;
            per_second[second] += 1;
        }
        // A burst of one second's worth, then the sustained rate, never more
        // than the rate in any second.
        assert_eq!(per_second, [10, 10, 10, 5, 0], "{per_second:?}");
    }

    #[test]
    fn no_window_of_one_second_holds_more_than_the_limit() {
        let start = Instant::now();
        let mut window = SlidingWindow::new(3, Duration::from_secs(1));
        let mut turns = Vec::new();
        // Callers arriving at irregular times.
        for offset_ms in [
            0, 0, 100, 200, 900, 1000, 1050, 1100, 3000, 3000, 3000, 3000,
        ] {
            let now = start + Duration::from_millis(offset_ms);
            turns.push(now + window.reserve(now));
        }
        for (i, turn) in turns.iter().enumerate() {
            let in_window = turns
                .iter()
                .filter(|t| **t >= *turn && **t < *turn + Duration::from_secs(1))
                .count();
            assert!(in_window <= 3, "turn {i}: {in_window} in one second");
        }
        assert!(
            turns.windows(2).all(|w| w[0] <= w[1]),
            "turns in call order"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_numbers_are_not_limited() {
        let limiter = Limiter::new([("1", 1)]);
        let start = Instant::now();
        for _ in 0..100 {
            limiter.acquire_number("2").await;
        }
        assert_eq!(Instant::now(), start);
    }

    #[tokio::test(start_paused = true)]
    async fn pair_limiter_allows_the_burst_then_one_per_interval() {
        let limiter = Limiter::new([("1", 80)]);
        for _ in 0..PAIR_BURST {
            limiter.try_pair("1", "4915123456789").unwrap();
        }
        let wait = limiter.try_pair("1", "4915123456789").unwrap_err();
        assert!(wait <= PAIR_INTERVAL && wait > PAIR_INTERVAL - Duration::from_millis(1));
        // Other customers and other numbers have their own buckets.
        limiter.try_pair("1", "4915100000000").unwrap();
        limiter.try_pair("2", "4915123456789").unwrap();

        tokio::time::advance(wait).await;
        limiter.try_pair("1", "4915123456789").unwrap();
        let wait = limiter.try_pair("1", "4915123456789").unwrap_err();
        assert!(wait > Duration::from_secs(5), "{wait:?}");
    }

    #[test]
    fn debug_shows_no_customer() {
        let limiter = Limiter::new([("1", 80)]);
        limiter.try_pair("1", "4915123456789").unwrap();
        let printed = format!("{limiter:?}");
        assert!(!printed.contains("4915123456789"), "{printed}");
        assert!(printed.contains("tracked_pairs: 1"), "{printed}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_pairs_are_forgotten() {
        let limiter = Limiter::new([("1", 80)]);
        limiter.try_pair("1", "a").unwrap();
        limiter.try_pair("1", "b").unwrap();
        assert_eq!(limiter.tracked_pairs(), 2);
        tokio::time::advance(PAIR_IDLE + PAIR_SWEEP).await;
        limiter.try_pair("1", "c").unwrap();
        assert_eq!(limiter.tracked_pairs(), 1);
    }
}
