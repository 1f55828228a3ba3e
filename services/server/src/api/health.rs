//! gRPC health (`grpc.health.v1.Health`): every served service has a
//! status. Every service keeps its data in the store, so each follows
//! the store: a ping every
//! [`EVERY`] turns them NOT_SERVING while the database cannot be reached
//! and SERVING again when it answers, so a load balancer or Kubernetes
//! stops sending traffic to a replica that cannot serve it.

use std::sync::Arc;
use std::time::Duration;

use omniroute_proto::v1 as pb;
use omniroute_store::prelude::*;
use tokio::sync::watch;
use tonic::server::NamedService;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How often the store is pinged.
pub const EVERY: Duration = Duration::from_secs(1);

/// The services whose health is the store's ("" is the whole server).
fn store_backed() -> [&'static str; 8] {
    use pb::admin_service_server::AdminServiceServer as A;
    use pb::callback_service_server::CallbackServiceServer as Cb;
    use pb::contact_service_server::ContactServiceServer as C;
    use pb::endpoint_service_server::EndpointServiceServer as En;
    use pb::event_service_server::EventServiceServer as E;
    use pb::messaging_service_server::MessagingServiceServer as M;
    use pb::preference_service_server::PreferenceServiceServer as P;
    [
        "",
        <C<crate::api::ContactApi> as NamedService>::NAME,
        <P<crate::api::PreferenceApi> as NamedService>::NAME,
        <M<crate::api::MessagingApi> as NamedService>::NAME,
        <E<crate::api::EventApi> as NamedService>::NAME,
        <Cb<crate::api::CallbackApi> as NamedService>::NAME,
        <A<crate::api::AdminApi> as NamedService>::NAME,
        <En<crate::api::EndpointApi> as NamedService>::NAME,
    ]
}

/// Sets the initial statuses (the store was open when the server was
/// built).
pub async fn init(health: &HealthReporter) {
    for name in store_backed() {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
}

/// Follows the store until `stop` turns true.
pub async fn follow_store(
    store: Arc<dyn Store>,
    health: HealthReporter,
    mut stop: watch::Receiver<bool>,
) {
    let mut serving = true;
    loop {
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
        let reachable = match tokio::time::timeout(EVERY * 2, store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                if serving {
                    tracing::warn!(error = %omniroute_store::error_chain(&e), "store unreachable; health NOT_SERVING");
                }
                false
            }
            Err(_) => {
                if serving {
                    tracing::warn!("store ping timed out; health NOT_SERVING");
                }
                false
            }
        };
        if reachable == serving {
            continue;
        }
        serving = reachable;
        if serving {
            tracing::info!("store reachable; health SERVING");
        }
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in store_backed() {
            health.set_service_status(name, status).await;
        }
    }
}
