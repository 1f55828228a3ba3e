//! Per-tenant send quotas (`[quotas]`): messages per second, kept by each
//! replica in a token bucket (bursts of up to one second's worth), and per
//! UTC day, counted in the store across replicas. Only messages accepted
//! count: the sends routing refuses are never admitted (admission comes
//! after routing, just before the store accepts), and what was admitted
//! but not accepted (idempotent replays, refusals by the store) is given
//! back. A send past a quota is refused with RESOURCE_EXHAUSTED and the
//! delay after which it would fit (google.rpc.RetryInfo); in a batch, the
//! sends that fit go and the rest are refused one by one.
//!
//! The daily count is kept in the store by a task per tenant (`daily.rs`),
//! which reserves ahead of the sends so that most need no store call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use omniroute_store::StoreError;
use omniroute_store::prelude::*;

use crate::app::AppError;
use crate::settings::QuotaSettings;

mod daily;

/// The buckets' clock: the monotonic one, or in tests one that stands
/// still until the test moves it (a bucket refills with time, and a test's
/// store calls take time).
#[derive(Debug, Clone, Default)]
struct Clock(Option<Arc<Mutex<Instant>>>);

impl Clock {
    fn now(&self) -> Instant {
        match &self.0 {
            Some(at) => *at.lock().unwrap_or_else(|e| e.into_inner()),
            None => Instant::now(),
        }
    }

    #[cfg(test)]
    fn frozen() -> Clock {
        Clock(Some(Arc::new(Mutex::new(Instant::now()))))
    }

    #[cfg(test)]
    fn advance(&self, by: Duration) {
        if let Some(at) = &self.0 {
            *at.lock().unwrap_or_else(|e| e.into_inner()) += by;
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The quotas and each tenant's bucket on this replica.
#[derive(Debug)]
pub struct Quotas {
    settings: QuotaSettings,
    buckets: Mutex<HashMap<String, Bucket>>,
    clock: Clock,
    daily: daily::DailyCounts,
}

/// What [`Quotas::admit`] let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// How many of the sends may go (the first ones).
    pub count: usize,
    /// The quota that held the others back.
    limited_by: Option<&'static str>,
    /// The day the daily quota was taken from, when one applies.
    day: Option<String>,
}

/// How long until the next UTC day begins.
fn until_tomorrow(now: SystemTime) -> Duration {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Duration::from_secs(86_400 - secs % 86_400)
}

/// Today's date in UTC, `YYYY-MM-DD`.
fn today(now: SystemTime) -> String {
    jiff::Timestamp::try_from(now)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
        .unwrap_or_default()
}

impl Quotas {
    /// The quotas of the settings, counted per day in `store`.
    pub fn new(settings: QuotaSettings, store: Arc<dyn Store>) -> Quotas {
        Quotas {
            settings,
            daily: daily::DailyCounts::new(store),
            buckets: Mutex::new(HashMap::new()),
            clock: Clock::default(),
        }
    }

    /// Takes up to `wanted` tokens of `tenant`'s per-second bucket; how many.
    fn per_second(&self, tenant: &str, rate: u32, wanted: usize) -> usize {
        let rate = f64::from(rate);
        let now = self.clock.now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: rate,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.at = now;
        // Whole tokens only; the fraction keeps filling.
        let whole = bucket.tokens.floor().max(0.0) as usize;
        let taken = wanted.min(whole);
        bucket.tokens -= taken as f64;
        taken
    }

    /// Puts `count` unused tokens back in `tenant`'s bucket (a tenant
    /// without a per-second quota has none).
    fn give_back_tokens(&self, tenant: &str, rate: u32, count: usize) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(tenant) {
            bucket.tokens = (bucket.tokens + count as f64).min(f64::from(rate));
        }
    }

    /// How long until one more token is in `tenant`'s bucket.
    fn refill_delay(&self, tenant: &str, rate: u32) -> Duration {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let missing = buckets
            .get(tenant)
            .map_or(0.0, |b| (1.0 - b.tokens).max(0.0));
        Duration::from_secs_f64((missing / f64::from(rate.max(1))).max(0.001))
    }

    /// Admits up to `wanted` sends of `tenant`: how many may go (the first
    /// ones). Give back what goes unused with [`Quotas::give_back`].
    pub async fn admit(&self, tenant: &str, wanted: usize) -> Result<Admitted, StoreError> {
        let (rate, daily) = self.settings.of(tenant);
        let mut admitted = Admitted {
            count: wanted,
            limited_by: None,
            day: None,
        };
        if wanted == 0 || (rate == 0 && daily == 0) {
            return Ok(admitted);
        }
        if rate > 0 {
            admitted.count = self.per_second(tenant, rate, wanted);
            if admitted.count < wanted {
                admitted.limited_by = Some("per_second");
            }
        }
        if daily > 0 && admitted.count > 0 {
            let day = today(SystemTime::now());
            let taken = self
                .daily
                .take(tenant, day.clone(), admitted.count as u64, daily)
                .await;
            let granted = match taken {
                Ok(granted) => usize::try_from(granted).unwrap_or(0),
                Err(e) => {
                    self.give_back_tokens(tenant, rate, admitted.count);
                    return Err(e);
                }
            };
            if granted < admitted.count {
                self.give_back_tokens(tenant, rate, admitted.count - granted);
                admitted.count = granted;
                admitted.limited_by = Some("per_day");
            }
            admitted.day = Some(day);
        }
        Ok(admitted)
    }

    /// Gives back `unused` of what `admitted` let through: sends that were
    /// not accepted, or were replays of sends accepted before.
    pub async fn give_back(&self, tenant: &str, admitted: &Admitted, unused: usize) {
        if unused == 0 {
            return;
        }
        let (rate, _) = self.settings.of(tenant);
        self.give_back_tokens(tenant, rate, unused);
        if let Some(day) = &admitted.day {
            self.daily.release(tenant, day, unused as u64).await;
        }
    }

    /// The refusal of the sends past what [`Quotas::admit`] let through.
    pub fn refusal(&self, tenant: &str, admitted: &Admitted) -> AppError {
        let (rate, daily) = self.settings.of(tenant);
        if admitted.limited_by == Some("per_day") {
            AppError::QuotaExceeded {
                quota: "per_day",
                limit: daily,
                retry_after: until_tomorrow(SystemTime::now()),
            }
        } else {
            AppError::QuotaExceeded {
                quota: "per_second",
                limit: u64::from(rate),
                retry_after: self.refill_delay(tenant, rate),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Quotas whose buckets' clock stands still until the test moves it.
    async fn quotas(settings: QuotaSettings) -> (Quotas, tempfile::TempDir) {
        let (store, dir) = omniroute_store::testing::fresh_sqlite_store().await;
        let mut quotas = Quotas::new(settings, Arc::new(store));
        quotas.clock = Clock::frozen();
        (quotas, dir)
    }

    #[tokio::test]
    async fn a_bucket_holds_one_seconds_worth() {
        let (quotas, _dir) = quotas(QuotaSettings {
            per_second: 5,
            ..QuotaSettings::default()
        })
        .await;
        assert_eq!(quotas.per_second("acme", 5, 3), 3);
        assert_eq!(quotas.per_second("acme", 5, 3), 2, "the burst is spent");
        assert_eq!(quotas.per_second("acme", 5, 1), 0);
        assert_eq!(quotas.per_second("globex", 5, 5), 5, "a bucket per tenant");
        let delay = quotas.refill_delay("acme", 5);
        assert!(
            delay > Duration::from_millis(199) && delay <= Duration::from_millis(200),
            "{delay:?}"
        );
        // A token each fifth of a second, up to a second's worth.
        quotas.clock.advance(delay);
        assert_eq!(quotas.per_second("acme", 5, 5), 1);
        quotas.clock.advance(Duration::from_secs(10));
        assert_eq!(quotas.per_second("acme", 5, 9), 5);
    }

    #[test]
    fn days_are_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_633_600 - 60);
        assert_eq!(today(t), "2025-12-01");
        assert_eq!(until_tomorrow(t), Duration::from_secs(60));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_sends_share_the_daily_quota_and_give_back_what_goes_unused() {
        let (quotas, _dir) = quotas(QuotaSettings {
            per_day: 100,
            ..QuotaSettings::default()
        })
        .await;
        let quotas = Arc::new(quotas);
        let calls: Vec<_> = (0..40)
            .map(|_| {
                let quotas = Arc::clone(&quotas);
                tokio::spawn(async move { quotas.admit("acme", 3).await.unwrap() })
            })
            .collect();
        let mut admitted = Vec::new();
        for call in calls {
            admitted.push(call.await.unwrap());
        }
        let total: usize = admitted.iter().map(|a| a.count).sum();
        assert_eq!(total, 100, "the quota, and no more, is handed out");
        let refused: Vec<&Admitted> = admitted.iter().filter(|a| a.count < 3).collect();
        assert!(
            refused
                .iter()
                .all(|a| a.limited_by == Some("per_day") && a.day.is_some())
        );
        // What goes unused comes back.
        let some = admitted.iter().find(|a| a.count == 3).unwrap();
        quotas.give_back("acme", some, 2).await;
        assert_eq!(quotas.admit("acme", 5).await.unwrap().count, 2);
        assert_eq!(quotas.admit("acme", 1).await.unwrap().count, 0);
        assert_eq!(quotas.admit("globex", 4).await.unwrap().count, 4);
    }

    #[tokio::test]
    async fn tokens_held_back_by_the_daily_quota_stay_in_the_bucket() {
        let (quotas, _dir) = quotas(QuotaSettings {
            per_second: 10,
            per_day: 3,
            ..QuotaSettings::default()
        })
        .await;
        let first = quotas.admit("acme", 5).await.unwrap();
        assert_eq!((first.count, first.limited_by), (3, Some("per_day")));
        assert!(matches!(
            quotas.refusal("acme", &first),
            AppError::QuotaExceeded {
                quota: "per_day",
                ..
            }
        ));
        // Two replays among the three: back to the day and to the bucket.
        quotas.give_back("acme", &first, 2).await;
        let second = quotas.admit("acme", 9).await.unwrap();
        assert_eq!(second.count, 2, "the day gave two back");
        assert_eq!(
            quotas.per_second("acme", 10, 10),
            7,
            "the bucket lost only the three sent"
        );
    }
}
