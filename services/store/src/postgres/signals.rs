//! Change signals between replicas: `NOTIFY` after commits, `LISTEN` for
//! other replicas' commits.
//!
//! A commit that wrote jobs or events bumps [`Signals`]: readers in this
//! process wake at once (a `watch`; dispatchers watch a second one that
//! moves only when jobs became due), and the notifier task tells the other
//! replicas with `NOTIFY omniroute_changes` (payload `jobs` when jobs became
//! due). The notification is sent *after*
//! the commit, from its own short transaction, and coalesced: at most one is
//! in flight and at most one per [`NOTIFY_EVERY`], however many commits
//! happened meanwhile. (A `NOTIFY` inside the writing transaction would make
//! PostgreSQL serialize those commits on its notification queue lock; the
//! benchmark measured it halving commit throughput.) Signals are hints, never
//! the only trigger: every reader also polls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{Notify, watch};
use tokio_postgres::NoTls;

/// The notification channel replicas listen on.
pub(super) const CHANGES_CHANNEL: &str = "omniroute_changes";

/// The shortest time between two notifications.
const NOTIFY_EVERY: Duration = Duration::from_millis(10);

/// The change signal of one store.
#[derive(Debug)]
pub(super) struct Signals {
    /// Bumped after our own commits and on NOTIFY from other replicas.
    pub(super) changes: watch::Sender<u64>,
    /// Bumped when jobs became due (new messages, retries, fallbacks).
    pub(super) jobs: watch::Sender<u64>,
    /// Wakes the notifier; a wake-up while it is busy is kept, not repeated.
    notify: Notify,
    /// Whether the next notification must say that jobs became due.
    jobs_pending: AtomicBool,
    /// Names this store in its notifications, so that it ignores its own
    /// (it signaled those itself, at commit).
    origin: String,
}

impl Signals {
    pub(super) fn new() -> Arc<Signals> {
        Arc::new(Signals {
            changes: watch::Sender::new(0),
            jobs: watch::Sender::new(0),
            notify: Notify::new(),
            jobs_pending: AtomicBool::new(false),
            origin: uuid::Uuid::now_v7().simple().to_string(),
        })
    }

    /// Signals a commit that wrote events or jobs (`jobs`: made jobs due),
    /// here and to other replicas.
    pub(super) fn bump(&self, jobs: bool) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        if jobs {
            self.jobs.send_modify(|n| *n = n.wrapping_add(1));
            self.jobs_pending.store(true, Ordering::Release);
        }
        self.notify.notify_one();
    }

    /// Signals a change another replica made, here only.
    fn heard(&self, jobs: bool) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        if jobs {
            self.jobs.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// The end of a notification payload that says jobs became due (payloads
/// are `<origin>` or `<origin> jobs`).
const JOBS: &str = " jobs";

/// Aborts a background task when dropped.
#[derive(Debug)]
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Sends `NOTIFY omniroute_changes` after bumps, coalesced (see the module
/// documentation). Runs until the store drops the handle.
pub(super) fn spawn_notifier(pool: Pool, signals: Arc<Signals>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        loop {
            signals.notify.notified().await;
            let jobs = signals.jobs_pending.swap(false, Ordering::AcqRel);
            let payload = if jobs {
                format!("{}{JOBS}", signals.origin)
            } else {
                signals.origin.clone()
            };
            let sent = async {
                let client = pool.get().await.map_err(|e| e.to_string())?;
                let stmt = client
                    .prepare_cached("SELECT pg_notify($1, $2)")
                    .await
                    .map_err(|e| e.to_string())?;
                client
                    .execute(&stmt, &[&CHANGES_CHANNEL, &payload])
                    .await
                    .map_err(|e| e.to_string())
            };
            if let Err(error) = sent.await {
                tracing::warn!(%error, "notifying other replicas failed; they will poll");
            }
            tokio::time::sleep(NOTIFY_EVERY).await;
        }
    }))
}

/// Listens for `NOTIFY omniroute_changes` on a dedicated connection and bumps
/// the signal for each; reconnects after a pause when the connection drops.
pub(super) fn spawn_listener(
    config: tokio_postgres::Config,
    signals: Weak<Signals>,
) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        loop {
            match config.connect(NoTls).await {
                Ok((client, mut connection)) => {
                    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                    // The connection ends by itself once `client` is dropped.
                    tokio::spawn(async move {
                        while let Some(Ok(message)) =
                            std::future::poll_fn(|cx| connection.poll_message(cx)).await
                        {
                            if let tokio_postgres::AsyncMessage::Notification(n) = message
                                && tx.send(n.payload().to_owned()).is_err()
                            {
                                break;
                            }
                        }
                    });
                    let listen = format!("LISTEN {CHANGES_CHANNEL}");
                    if client.batch_execute(&listen).await.is_ok() {
                        while let Some(payload) = rx.recv().await {
                            let Some(signals) = signals.upgrade() else {
                                return;
                            };
                            let jobs = payload.ends_with(JOBS);
                            if payload.strip_suffix(JOBS).unwrap_or(&payload) != signals.origin {
                                signals.heard(jobs);
                            }
                        }
                    }
                    tracing::warn!("postgres LISTEN connection lost; reconnecting");
                }
                Err(e) => tracing::warn!(error = %e, "postgres LISTEN connection failed; retrying"),
            }
            if signals.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }))
}
