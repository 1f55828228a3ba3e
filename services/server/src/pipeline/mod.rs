//! The messaging pipeline's background work: the dispatcher, status
//! ingestion and event retention, started with the server and stopped with
//! it.

pub mod backoff;
pub mod dispatcher;
pub mod recipients;
pub mod reconcile;
pub mod statuses;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use omniroute_store::prelude::*;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::channels::Adapters;
use crate::settings::Settings;
use dispatcher::Dispatcher;

/// The running background tasks.
#[derive(Debug)]
pub struct Pipeline {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Pipeline {
    /// Starts the dispatcher (when enabled), status ingestion and retention.
    pub fn start(
        store: Arc<dyn Store>,
        settings: &Settings,
        adapters: Adapters,
        sink: statuses::StatusChannel,
        reports: tokio::sync::mpsc::UnboundedReceiver<statuses::Report>,
        breakers: Arc<crate::routing::breaker::Breakers>,
    ) -> Pipeline {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        if settings.dispatch.enabled {
            let dispatcher = Dispatcher::new(
                Arc::clone(&store),
                Arc::clone(&adapters),
                settings.dispatch.clone(),
                breakers,
            );
            tasks.spawn(dispatcher.run(stopped.clone()));
            tasks.spawn(reconcile::run(
                Arc::clone(&store),
                adapters,
                sink.clone(),
                Duration::from_secs(settings.dispatch.reconcile_after_secs),
                Duration::from_secs(settings.dispatch.reconcile_interval_secs),
                stopped.clone(),
            ));
        }
        tasks.spawn(statuses::run(
            Arc::clone(&store),
            sink,
            reports,
            stopped.clone(),
        ));
        tasks.spawn(crate::routing::windows::run(
            Arc::clone(&store),
            crate::routing::windows::scopes(&settings.routing),
            Duration::from_millis(settings.routing.window_check_interval_ms),
            stopped.clone(),
        ));
        let retention = Duration::from_secs(settings.events.retention_hours * 3600);
        tasks.spawn(prune_events(store, retention, stopped));
        Pipeline { stop, tasks }
    }

    /// Stops the tasks, letting sends in flight finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// A group for one store call: `first`, then whatever else arrives within
/// `linger` of it, at most `max` in all. Lingering trades a few
/// milliseconds of a background write (an outcome, a status report) for
/// fewer transactions when traffic is light; under load the group fills
/// before the time is up.
pub(crate) async fn gather<T>(
    first: T,
    queue: &mut mpsc::UnboundedReceiver<T>,
    max: usize,
    linger: Duration,
) -> Vec<T> {
    let mut group = vec![first];
    let deadline = tokio::time::Instant::now() + linger;
    while group.len() < max {
        match queue.try_recv() {
            Ok(item) => group.push(item),
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, queue.recv()).await {
                    Ok(Some(item)) => group.push(item),
                    Ok(None) | Err(_) => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        }
    }
    group
}

/// Deletes events older than the retention period, hourly.
async fn prune_events(store: Arc<dyn Store>, retention: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        if let Some(before) = SystemTime::now().checked_sub(retention) {
            match store.prune_events(before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "old events pruned"),
                Err(e) => tracing::warn!(error = %e, "pruning events failed"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => return,
        }
    }
}
