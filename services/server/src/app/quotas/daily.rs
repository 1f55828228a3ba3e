//! The daily quota's count in the store, taken for a tenant's sends
//! together: one task per tenant hands out what the sends ask for, from a
//! credit it reserves in the store ahead of them.
//!
//! The count is one row per tenant and day, which each send would
//! otherwise lock in turn (a transaction, a WAL flush, before every
//! accept). Instead the task reserves a quarter second's worth of the
//! tenant's recent sends beyond what is asked (never past the limit: the
//! store grants only what is left), serves the sends that follow from that
//! credit without a store call, and gives back what lies unused for a
//! second. So the store's count may run ahead of the sends by the credit
//! held: a replica holds back, at most, a quarter second's worth of sends
//! from the others near the end of a day's quota, for a second; a replica
//! that dies holding credit leaves the day's count that much higher (the
//! tenant sends fewer that day, never more).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omniroute_store::StoreError;
use omniroute_store::prelude::*;
use tokio::sync::{Notify, oneshot};
// Tokio's clock, so that a test can run the rate and the idle time on a
// paused one.
use tokio::time::Instant;

/// How far ahead of its sends a tenant's task reserves, in its recent rate.
const AHEAD: f64 = 0.25;

/// How long credit may lie unused before it is given back.
const IDLE: Duration = Duration::from_secs(1);

/// One send call's claim, waiting for the task.
#[derive(Debug)]
struct Take {
    day: String,
    wanted: u64,
    reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// A tenant's claims waiting for its task. The entry exists while the
/// task runs: the task removes it as it ends.
#[derive(Debug, Default)]
struct Tenant {
    waiting: Vec<Take>,
    wake: Arc<Notify>,
}

type Tenants = Arc<Mutex<HashMap<String, Tenant>>>;

/// Every tenant's daily count, on this replica.
#[derive(Debug)]
pub(super) struct DailyCounts {
    store: Arc<dyn Store>,
    tenants: Tenants,
}

impl DailyCounts {
    /// Counts in `store`.
    pub(super) fn new(store: Arc<dyn Store>) -> DailyCounts {
        DailyCounts {
            store,
            tenants: Arc::default(),
        }
    }

    /// Gives back `count` of `tenant`'s quota on `day`, taken and not used.
    pub(super) async fn release(&self, tenant: &str, day: &str, count: u64) {
        release(self.store.as_ref(), tenant, day, count).await;
    }

    /// Takes up to `wanted` of `tenant`'s quota of `limit` on `day`; how
    /// many it got.
    pub(super) async fn take(
        &self,
        tenant: &str,
        day: String,
        wanted: u64,
        limit: u64,
    ) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            let start = !tenants.contains_key(tenant);
            let entry = tenants.entry(tenant.to_owned()).or_default();
            entry.waiting.push(Take { day, wanted, reply });
            entry.wake.notify_one();
            start
        };
        if start {
            // A task of its own: a caller that goes away (a cancelled call)
            // must not strand the others.
            tokio::spawn(run(
                Arc::clone(&self.store),
                Arc::clone(&self.tenants),
                tenant.to_owned(),
                limit,
            ));
        }
        answer.await.unwrap_or_else(|_| {
            // The task answers everyone before it ends; one that panicked
            // is a store that failed.
            Err(StoreError::Unavailable(Box::new(std::io::Error::other(
                "the quota task ended",
            ))))
        })
    }
}

/// What a tenant's task holds: reserved and not yet handed out.
#[derive(Debug)]
struct Credit {
    day: String,
    left: u64,
    /// Handed out since `since`, for the recent rate.
    counted: u64,
    since: Instant,
    /// Sends per second, as last measured.
    rate: f64,
}

impl Credit {
    /// How much to reserve beyond what is asked.
    fn ahead(&self) -> u64 {
        (self.rate * AHEAD).ceil() as u64
    }

    fn handed_out(&mut self, count: u64) {
        self.counted += count;
        let elapsed = self.since.elapsed();
        if elapsed >= IDLE {
            self.rate = self.counted as f64 / elapsed.as_secs_f64();
            self.counted = 0;
            self.since = Instant::now();
        }
    }
}

/// Gives back `count` of `tenant`'s count on `day`.
async fn release(store: &dyn Store, tenant: &str, day: &str, count: u64) {
    if count == 0 {
        return;
    }
    if let Err(e) = store.release_quota(tenant, day, count).await {
        // The count stays higher than what was sent: the tenant may send
        // fewer today, never more.
        tracing::warn!(error = %e, unused = count, "giving back unused daily quota failed");
    }
}

/// Gives back the credit of `credit.day`.
async fn give_back(store: &dyn Store, tenant: &str, credit: &mut Credit) {
    let left = std::mem::take(&mut credit.left);
    release(store, tenant, &credit.day, left).await;
}

/// `tenant`'s task: hands out its takes, in the order they came, until none
/// has come for [`IDLE`]; then gives back its credit and ends.
async fn run(store: Arc<dyn Store>, tenants: Tenants, tenant: String, limit: u64) {
    /// Should the task end otherwise than by running out of takes (a
    /// panic), the tenant's takes are dropped (their callers hear of it)
    /// and the next take starts a task again.
    struct Ending<'a> {
        tenants: &'a Tenants,
        tenant: &'a str,
        armed: bool,
    }
    impl Drop for Ending<'_> {
        fn drop(&mut self) {
            if self.armed {
                let mut map = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
                map.remove(self.tenant);
            }
        }
    }
    let mut ending = Ending {
        tenants: &tenants,
        tenant: &tenant,
        armed: true,
    };
    let mut credit = Credit {
        day: String::new(),
        left: 0,
        counted: 0,
        since: Instant::now(),
        rate: 0.0,
    };
    // Idle for a while, the credit given back: the task may end.
    let mut done = false;
    loop {
        let (takes, wake) = {
            let mut map = tenants.lock().unwrap_or_else(|e| e.into_inner());
            let Some(entry) = map.get_mut(&tenant) else {
                ending.armed = false;
                return;
            };
            let takes = std::mem::take(&mut entry.waiting);
            if takes.is_empty() && done {
                map.remove(&tenant);
                ending.armed = false;
                return;
            }
            (takes, Arc::clone(&entry.wake))
        };
        if takes.is_empty() {
            // Nothing asked: wait a while for more (the rate and the
            // credit stay while the tenant sends), then give back.
            if tokio::time::timeout(IDLE, wake.notified()).await.is_err() {
                give_back(store.as_ref(), &tenant, &mut credit).await;
                done = true;
            }
            continue;
        }
        done = false;
        // Around midnight a group may span two days: each day's in turn.
        let mut days: Vec<(String, Vec<Take>)> = Vec::new();
        for take in takes {
            match days.iter_mut().find(|(day, _)| *day == take.day) {
                Some((_, group)) => group.push(take),
                None => days.push((take.day.clone(), vec![take])),
            }
        }
        for (day, group) in days {
            if day != credit.day {
                give_back(store.as_ref(), &tenant, &mut credit).await;
                credit.day = day.clone();
            }
            let wanted: u64 = group.iter().map(|t| t.wanted).sum();
            if credit.left < wanted {
                let ask = wanted - credit.left + credit.ahead();
                match store.consume_quota(&tenant, &day, ask, limit).await {
                    Ok(got) => credit.left += got,
                    Err(e) => {
                        let text = omniroute_store::error_chain(&e);
                        for take in group {
                            let _ = take.reply.send(Err(e.like(text.clone())));
                        }
                        continue;
                    }
                }
            }
            for take in group {
                let granted = take.wanted.min(credit.left);
                credit.left -= granted;
                match take.reply.send(Ok(granted)) {
                    Ok(()) => credit.handed_out(granted),
                    // A caller gone meanwhile sends nothing.
                    Err(_) => credit.left += granted,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: &str = "2026-12-06";

    /// Two replicas on one store: one that sends steadily reserves ahead
    /// of its sends, holding that credit back from the other, and gives it
    /// back once it goes unused; the two never get more than the limit.
    ///
    /// On a paused clock (the store's calls take no time on it), so that
    /// what A has measured and reserved is the same on every run: one send
    /// each 10 ms, 101 in A's first second (one at a time, no rate known
    /// yet), then a rate of 101/s and so 26 reserved ahead at the next
    /// send, of which the 20 sends up to 1.2 s leave 7.
    #[tokio::test(start_paused = true)]
    async fn a_steady_sender_reserves_ahead_and_gives_back_what_it_does_not_use() {
        const LIMIT: u64 = 1_000;
        let (store, _dir) = omniroute_store::testing::fresh_sqlite_store().await;
        let store: Arc<dyn Store> = Arc::new(store);
        let (a, b) = (
            DailyCounts::new(Arc::clone(&store)),
            DailyCounts::new(Arc::clone(&store)),
        );
        // A sends one at a time for over a second: its rate is measured.
        let started = Instant::now();
        let mut sent_by_a = 0;
        while started.elapsed() < Duration::from_millis(1_200) {
            sent_by_a += a.take("acme", DAY.into(), 1, LIMIT).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sent_by_a += a.take("acme", DAY.into(), 1, LIMIT).await.unwrap();
        assert_eq!(sent_by_a, 121, "one each 10 ms for 1.2 s, and one more");
        // B asks for everything A did not send: A's credit is not in it.
        let mut got_by_b = b
            .take("acme", DAY.into(), LIMIT - sent_by_a, LIMIT)
            .await
            .unwrap();
        assert_eq!(
            got_by_b,
            LIMIT - sent_by_a - 7,
            "A holds its 7 of credit back from B"
        );
        // Unused, A's credit comes back, and B can have it all.
        let deadline = Instant::now() + Duration::from_secs(30);
        while sent_by_a + got_by_b < LIMIT {
            assert!(Instant::now() < deadline, "A's credit never came back");
            tokio::time::sleep(Duration::from_millis(50)).await;
            got_by_b += b.take("acme", DAY.into(), LIMIT, LIMIT).await.unwrap();
        }
        assert_eq!(sent_by_a + got_by_b, LIMIT);
        assert_eq!(b.take("acme", DAY.into(), 1, LIMIT).await.unwrap(), 0);
        assert_eq!(a.take("acme", DAY.into(), 1, LIMIT).await.unwrap(), 0);
    }
}
