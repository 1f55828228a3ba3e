//! The application: builds the store and the gRPC server from settings, binds
//! its listener, and runs until a shutdown signal.
//!
//! [`Application::build`] binds before it returns, so a test can ask for port
//! 0 and read the real port from [`Application::port`]. Shutdown is graceful:
//! the listener closes at once and calls in flight finish.
//!
//! With `[tls]` the gRPC listener (and, with `tls.http`, the webhook
//! listener) serves TLS (see [`crate::tls`]); without it both are plain TCP
//! as they always were.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use omniroute_proto::v1::admin_service_server::AdminServiceServer;
use omniroute_proto::v1::callback_service_server::CallbackServiceServer;
use omniroute_proto::v1::contact_service_server::ContactServiceServer;
use omniroute_proto::v1::event_service_server::EventServiceServer;
use omniroute_proto::v1::messaging_service_server::MessagingServiceServer;
use omniroute_proto::v1::preference_service_server::PreferenceServiceServer;
use omniroute_store::{PgStore, PgStoreConfig, SqliteStore, Store};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::api::{
    AdminApi, ApiContext, CallbackApi, ContactApi, EventApi, MessagingApi, PreferenceApi,
};
use crate::app::App;
use crate::app::callbacks::CustomerCallbacks;
use crate::app::inbound::Ingress;
use crate::pipeline::{Pipeline, statuses};
use crate::routing::Router;
use crate::routing::breaker::Breakers;
use crate::settings::Settings;
use crate::tls::{Hangup, Listener, Tls};
use crate::webhooks;

/// A built, bound, not yet running server.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    http_listener: TcpListener,
    http_addr: SocketAddr,
    metrics_listener: Option<TcpListener>,
    provider_listeners: Vec<(omniroute_channel::Channel, TcpListener)>,
    store: Arc<dyn Store>,
    settings: Settings,
    /// TLS, when `[tls]` names a certificate, and the SIGHUP that reloads it.
    tls: Option<(Arc<Tls>, Hangup)>,
}

impl Application {
    /// Opens the store (applying migrations) and binds the gRPC listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let tls = match Tls::from_settings(&settings.tls)? {
            Some(tls) => {
                let hangup = Hangup::install().map_err(|e| {
                    anyhow::anyhow!(
                        "cannot install the SIGHUP handler that reloads tls.cert_file: {e}"
                    )
                })?;
                Some((tls, hangup))
            }
            None => None,
        };
        let store = open_store(&settings).await?;
        let listener = crate::net::listen(settings.grpc.listen, "grpc.listen")?;
        let local_addr = listener.local_addr()?;
        let http_listener = crate::net::listen(settings.http.listen, "http.listen")?;
        let http_addr = http_listener.local_addr()?;
        let metrics_listener = match settings.metrics.address()? {
            Some(address) => Some(crate::net::listen(address, "metrics.listen")?),
            None => None,
        };
        let provider_listeners = crate::providers::bind(&settings)?;
        Ok(Application {
            listener,
            local_addr,
            http_listener,
            http_addr,
            metrics_listener,
            provider_listeners,
            store,
            settings,
            tls,
        })
    }

    /// The server's TLS, when `[tls]` is set: [`Tls::reload`] does what
    /// SIGHUP does.
    pub fn tls(&self) -> Option<Arc<Tls>> {
        self.tls.as_ref().map(|(tls, _)| Arc::clone(tls))
    }

    /// The address of the metrics listener, when metrics are on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The address of the webhook (HTTP) listener.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address of the listener of `channel`'s provider (email's SMTP
    /// listener for inbound mail), if it has one.
    pub fn provider_addr(&self, channel: omniroute_channel::Channel) -> Option<SocketAddr> {
        self.provider_listeners
            .iter()
            .find(|(c, _)| *c == channel)
            .and_then(|(_, l)| l.local_addr().ok())
    }

    /// The port the gRPC listener is bound to.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The address the gRPC listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The store the application uses.
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    /// Serves until `shutdown` completes, then drains calls in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (sink, reports) = statuses::channel();
        let adapters = crate::providers::adapters(&self.settings, &sink)?;
        let accounts = crate::providers::accounts(&self.settings);
        let (default_policy, tenant_policies) = self.settings.routing.policies()?;
        let breakers = Arc::new(Breakers::new(
            self.settings.routing.breaker_failures,
            Duration::from_secs(self.settings.routing.breaker_cool_down_secs),
        ));
        let router = Router::new(
            Arc::clone(&adapters),
            default_policy,
            tenant_policies,
            Arc::clone(&breakers),
        );
        let app = App::new(
            Arc::clone(&self.store),
            &self.settings,
            Arc::clone(&adapters),
            router,
        );
        let ctx = ApiContext::new(app.clone(), &self.settings);
        let pipeline = Pipeline::start(
            Arc::clone(&self.store),
            &self.settings,
            Arc::clone(&adapters),
            sink.clone(),
            reports,
            Arc::clone(&breakers),
        );
        let event_poll = Duration::from_millis(self.settings.events.poll_interval_ms);

        let (health, health_service) = tonic_health::server::health_reporter();
        // SERVING once the store is open, which it is by the time `build`
        // returned; then following the store.
        crate::api::health::init(&health).await;

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(omniroute_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(omniroute_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let (tls, hangup) = self.tls.unzip();
        let tls_mode = match &tls {
            None => "off",
            Some(tls) if tls.mutual() => "mutual",
            Some(_) => "on",
        };
        tracing::info!(addr = %self.local_addr, store = store_kind(&self.settings), tls = tls_mode, "omniroute listening");
        if !self.settings.auth.enabled {
            tracing::warn!(
                addr = %self.local_addr,
                tenant = %self.settings.api.default_tenant,
                "authentication is off (auth.enabled = false): every caller on this host acts for the default tenant; serving loopback only"
            );
        }
        // On shutdown the listener closes and connections get GOAWAY; calls in
        // flight finish. A client that keeps an idle connection open must not
        // hold the process forever (hyper's graceful shutdown can wait on such
        // a connection indefinitely, hyperium/hyper#4170): after the grace
        // period the server future is dropped, closing what is left.
        let grace = Duration::from_secs(self.settings.grpc.shutdown_grace_secs);
        let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            let _ = stopping_tx.send(true);
        };
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let health_task = tokio::spawn(crate::api::health::follow_store(
            Arc::clone(&self.store),
            health,
            stopping.clone(),
        ));
        let deadline = {
            let stopped = stopped(stopping.clone());
            async move {
                stopped.await;
                tokio::time::sleep(grace).await;
            }
        };
        let ingress = Ingress::new(app.clone(), accounts, sink.clone()).with_customer_callbacks(
            CustomerCallbacks::new(
                self.settings.routing.call_me.clone(),
                self.settings.routing.missed_calls.clone(),
                app.clone(),
            ),
        );
        let shared = crate::providers::Shared {
            app: app.clone(),
            ingress: ingress.clone(),
        };
        let mut provider_tasks = Vec::new();
        for (channel, listener) in self.provider_listeners {
            if let Some(provider) = crate::providers::of(&self.settings, channel) {
                provider_tasks.push(tokio::spawn(provider.serve(
                    &self.settings,
                    listener,
                    shared.clone(),
                    Box::pin(stopped(stopping.clone())),
                )));
            }
        }
        let webhooks = crate::http::bounded(
            webhooks::router(ingress, self.settings.http.max_body_bytes)
                .merge(crate::providers::routes(&self.settings, &shared)),
            Duration::from_secs(self.settings.http.request_timeout_secs),
        );
        let http_tls = tls.as_ref().filter(|tls| tls.serves_http()).map(Arc::clone);
        tracing::info!(addr = %self.http_addr, tls = http_tls.is_some(), "webhook listener ready");
        let http: Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match http_tls {
            Some(tls) => {
                Box::pin(tls.serve_http(self.http_listener, webhooks, stopped(stopping.clone())))
            }
            None => Box::pin(
                axum::serve(self.http_listener, webhooks)
                    .with_graceful_shutdown(stopped(stopping.clone()))
                    .into_future(),
            ),
        };
        let reload_task = tls.as_ref().zip(hangup).map(|(tls, hangup)| {
            tokio::spawn(Arc::clone(tls).watch(hangup, stopped(stopping.clone())))
        });
        let metrics_task = self.metrics_listener.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "metrics listener ready");
            }
            // Bounded like the webhook listener: a scraper that stalls
            // holds nothing open.
            let routes = crate::http::bounded(
                crate::scrape::router(Arc::clone(&self.store), breakers),
                Duration::from_secs(self.settings.http.request_timeout_secs),
            );
            tokio::spawn(
                axum::serve(listener, routes)
                    .with_graceful_shutdown(stopped(stopping.clone()))
                    .into_future(),
            )
        });
        let max_message = self.settings.grpc.max_message_bytes;
        let routes = Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .timeout(Duration::from_secs(self.settings.grpc.request_timeout_secs))
            .layer(crate::metrics::GrpcMetricsLayer)
            .layer(crate::api::OverloadLayer::new(
                self.settings.grpc.max_concurrent_requests,
            ))
            .layer(crate::auth::AuthLayer::new(
                self.settings.auth.enabled.then(|| {
                    Arc::new(crate::auth::Authenticator::new(
                        Arc::clone(&self.store),
                        self.settings.auth.public_health,
                        Duration::from_secs(self.settings.auth.cache_secs),
                    ))
                }),
            ))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                ContactServiceServer::new(ContactApi::new(ctx.clone()))
                    .max_decoding_message_size(max_message),
            )
            .add_service(
                PreferenceServiceServer::new(PreferenceApi::new(ctx.clone()))
                    .max_decoding_message_size(max_message),
            )
            .add_service(
                MessagingServiceServer::new(MessagingApi::new(ctx.clone()))
                    .max_decoding_message_size(max_message),
            )
            .add_service(
                CallbackServiceServer::new(CallbackApi::new(ctx.clone()))
                    .max_decoding_message_size(max_message),
            )
            .add_service(
                AdminServiceServer::new(AdminApi::new(ctx.clone()))
                    .max_decoding_message_size(max_message),
            )
            .add_service(
                EventServiceServer::new(EventApi::new(ctx, event_poll))
                    .max_decoding_message_size(max_message),
            );
        let server: Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> =
            match &tls {
                Some(tls) => Box::pin(routes.serve_with_incoming_shutdown(
                    tls.incoming(self.listener, Listener::Grpc),
                    stopped(stopping),
                )),
                None => Box::pin(routes.serve_with_incoming_shutdown(
                    TcpIncoming::from(self.listener).with_nodelay(Some(true)),
                    stopped(stopping),
                )),
            };
        let both = async {
            let (grpc, http) = tokio::join!(server, http);
            grpc.map_err(anyhow::Error::from)?;
            http.map_err(anyhow::Error::from)
        };
        tokio::pin!(signal);
        let served = tokio::select! {
            result = async { tokio::join!(both, signal).0 } => result,
            () = deadline => {
                tracing::warn!(grace_secs = grace.as_secs(), "connections still open after the grace period; closing them");
                Ok(())
            }
        };
        // Sends in flight finish and record their outcome; unsent jobs stay
        // in the store for the next start or another replica.
        if tokio::time::timeout(grace, pipeline.stop()).await.is_err() {
            tracing::warn!(
                "sends still in flight after the grace period; their leases will expire"
            );
        }
        health_task.abort();
        if let Some(task) = reload_task {
            let _ = task.await;
        }
        if let Some(task) = metrics_task {
            let _ = task.await;
        }
        for task in provider_tasks {
            let _ = task.await;
        }
        served?;
        tracing::info!("omniroute stopped");
        Ok(())
    }
}

fn store_kind(settings: &Settings) -> &'static str {
    if settings.store.url.is_empty() {
        "embedded"
    } else {
        "postgres"
    }
}

/// Opens the store the settings name (the embedded file, or PostgreSQL).
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    if settings.store.url.is_empty() {
        let path = &settings.store.path;
        let store = SqliteStore::open(path).await.map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "cannot open the embedded store at store.path {}",
                path.display()
            ))
        })?;
        tracing::info!(path = %path.display(), "embedded store open");
        Ok(Arc::new(store))
    } else {
        let store = PgStore::connect(&PgStoreConfig {
            url: settings.store.url.expose().to_owned(),
            pool_size: settings.store.pool_size,
            connect_timeout: Duration::from_secs(settings.store.connect_timeout_secs),
            writers: settings.store.writers,
        })
        .await
        .map_err(|e| {
            anyhow::Error::new(e).context("cannot open the PostgreSQL store at store.url")
        })?;
        tracing::info!("postgres store open");
        Ok(Arc::new(store))
    }
}
