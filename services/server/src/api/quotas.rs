//! Per-tenant send quotas (`[quotas]`): messages per second, kept by each
//! replica in a token bucket (bursts of up to one second's worth), and per
//! UTC day, counted in the store across replicas. A send past a quota is
//! refused with RESOURCE_EXHAUSTED and the delay after which it would fit
//! (google.rpc.RetryInfo); in a batch, the sends that fit go and the rest
//! are refused one by one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use omniroute_store::Store;

use super::ApiError;
use crate::settings::QuotaSettings;

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
    /// The quotas of the settings.
    pub fn new(settings: QuotaSettings) -> Quotas {
        Quotas {
            settings,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes up to `wanted` tokens of `tenant`'s per-second bucket; how many.
    fn per_second(&self, tenant: &str, rate: u32, wanted: usize) -> usize {
        let rate = f64::from(rate);
        let now = Instant::now();
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

    /// How long until one more token is in `tenant`'s bucket.
    fn refill_delay(&self, tenant: &str, rate: u32) -> Duration {
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let missing = buckets
            .get(tenant)
            .map_or(0.0, |b| (1.0 - b.tokens).max(0.0));
        Duration::from_secs_f64((missing / f64::from(rate.max(1))).max(0.001))
    }

    /// Admits up to `wanted` sends of `tenant`: how many may go (the first
    /// ones); when none may, the refusal to answer them with.
    pub async fn admit(
        &self,
        store: &dyn Store,
        tenant: &str,
        wanted: usize,
    ) -> Result<usize, ApiError> {
        let (rate, daily) = self.settings.of(tenant);
        if wanted == 0 || (rate == 0 && daily == 0) {
            return Ok(wanted);
        }
        let mut granted = wanted;
        if rate > 0 {
            granted = self.per_second(tenant, rate, granted);
            if granted == 0 {
                return Err(ApiError::QuotaExceeded {
                    quota: "per_second",
                    limit: u64::from(rate),
                    retry_after: self.refill_delay(tenant, rate),
                });
            }
        }
        if daily > 0 {
            let now = SystemTime::now();
            let day = today(now);
            let got = store
                .consume_quota(tenant, &day, granted as u64, daily)
                .await?;
            granted = usize::try_from(got).unwrap_or(0);
            if granted == 0 {
                return Err(ApiError::QuotaExceeded {
                    quota: "per_day",
                    limit: daily,
                    retry_after: until_tomorrow(now),
                });
            }
        }
        Ok(granted)
    }

    /// The refusal of the sends past what [`Quotas::admit`] let through.
    pub fn refusal(&self, tenant: &str) -> ApiError {
        let (rate, daily) = self.settings.of(tenant);
        let now = SystemTime::now();
        if rate > 0 {
            ApiError::QuotaExceeded {
                quota: "per_second",
                limit: u64::from(rate),
                retry_after: self.refill_delay(tenant, rate),
            }
        } else {
            ApiError::QuotaExceeded {
                quota: "per_day",
                limit: daily,
                retry_after: until_tomorrow(now),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_one_seconds_worth() {
        let quotas = Quotas::new(QuotaSettings {
            per_second: 5,
            ..QuotaSettings::default()
        });
        assert_eq!(quotas.per_second("acme", 5, 3), 3);
        assert_eq!(quotas.per_second("acme", 5, 3), 2, "the burst is spent");
        assert_eq!(quotas.per_second("acme", 5, 1), 0);
        assert_eq!(quotas.per_second("globex", 5, 5), 5, "a bucket per tenant");
        let delay = quotas.refill_delay("acme", 5);
        assert!(delay <= Duration::from_millis(200), "{delay:?}");
    }

    #[test]
    fn days_are_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_633_600 - 60);
        assert_eq!(today(t), "2025-12-01");
        assert_eq!(until_tomorrow(t), Duration::from_secs(60));
    }
}
