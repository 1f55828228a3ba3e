//! The metrics listener's face (`metrics.listen`): `GET /metrics` renders
//! the process's registry (`crate::metrics`), with the gauges that are read
//! at each scrape (the queue, the breakers, the connection pools) read then.

use std::time::Duration;

use crate::routing::breaker::Breakers;

/// The metrics listener's routes: `GET /metrics`, with the queue read from
/// `store` and the breakers' state at each scrape.
pub fn router(
    store: std::sync::Arc<dyn omniroute_store::Store>,
    breakers: std::sync::Arc<Breakers>,
) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let store = std::sync::Arc::clone(&store);
            let breakers = std::sync::Arc::clone(&breakers);
            async move {
                let now = std::time::SystemTime::now();
                let stats = tokio::time::timeout(Duration::from_secs(5), store.queue_stats()).await;
                match stats {
                    Ok(Ok(stats)) => {
                        let oldest = stats
                            .earliest_due
                            .and_then(|due| now.duration_since(due).ok())
                            .unwrap_or_default();
                        crate::metrics::METRICS.set_queue(stats.jobs, oldest);
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "queue stats unavailable for this scrape");
                    }
                    Err(_) => tracing::debug!("queue stats timed out for this scrape"),
                }
                crate::metrics::METRICS
                    .set_breakers_open(i64::try_from(breakers.open_count(now)).unwrap_or(0));
                crate::metrics::METRICS.set_pools(&store.pool_use());
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    crate::metrics::METRICS.render(),
                )
            }
        }),
    )
}
