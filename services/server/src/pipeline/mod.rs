//! The messaging pipeline's background work: the dispatcher, status
//! ingestion and event retention, started with the server and stopped with
//! it.

pub mod dispatcher;
pub mod reconcile;
pub mod routing;
pub mod statuses;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use omniroute_channel::{Adapter, Channel};
use omniroute_sandbox::{SandboxAdapter, SandboxConfig};
use omniroute_store::Store;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::settings::Settings;
use dispatcher::{Adapters, Dispatcher};

/// The running background tasks.
#[derive(Debug)]
pub struct Pipeline {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Builds the adapters: the sandbox for every channel while no real provider
/// is configured (and the sandbox is enabled).
pub fn adapters(settings: &Settings, sink: &statuses::StatusChannel) -> Adapters {
    let mut adapters: HashMap<Channel, Arc<dyn Adapter>> = HashMap::new();
    if settings.sandbox.enabled {
        let config = SandboxConfig {
            delivery_delay: Duration::from_millis(settings.sandbox.delivery_delay_ms),
            read_delay: Duration::from_millis(settings.sandbox.read_delay_ms),
            record_path: Some(settings.sandbox.record_path.clone())
                .filter(|p| !p.as_os_str().is_empty()),
            send_delay: Duration::from_millis(settings.sandbox.send_delay_ms),
        };
        for channel in Channel::ALL {
            adapters.insert(
                channel,
                Arc::new(SandboxAdapter::new(
                    channel,
                    config.clone(),
                    Arc::new(sink.clone()),
                )),
            );
        }
    }
    Arc::new(adapters)
}

/// Which tenant each provider account (WhatsApp phone number id, ...) serves.
pub fn accounts(_settings: &Settings) -> HashMap<(Channel, String), String> {
    HashMap::new()
}

impl Pipeline {
    /// Starts the dispatcher (when enabled), status ingestion and retention.
    pub fn start(
        store: Arc<dyn Store>,
        settings: &Settings,
        adapters: Adapters,
        sink: statuses::StatusChannel,
        reports: tokio::sync::mpsc::UnboundedReceiver<(omniroute_channel::StatusUpdate, u32)>,
    ) -> Pipeline {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        if settings.dispatch.enabled {
            let dispatcher = Dispatcher::new(
                Arc::clone(&store),
                Arc::clone(&adapters),
                settings.dispatch.clone(),
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
