//! The composition root: builds the store, the application core, the
//! pipeline and every face from the settings, binds the listeners, and runs
//! until a shutdown signal.
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

use omniroute_store::prelude::*;
use omniroute_store::{PgStore, PgStoreConfig, SqliteStore};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::api::ApiContext;
use crate::api::layer::AroundLayer;
use crate::app::App;
use crate::app::callbacks::CustomerCallbacks;
use crate::app::inbound::Ingress;
use crate::deliveries::Deliverer;
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
        let Application {
            listener,
            local_addr,
            http_listener,
            http_addr,
            metrics_listener,
            provider_listeners,
            store,
            settings,
            tls,
        } = self;
        let core = Core::assemble(&store, &settings)?;
        let pipeline = Pipeline::start(
            Arc::clone(&store),
            &settings,
            Arc::clone(&core.adapters),
            core.sink.clone(),
            core.reports,
            Arc::clone(&core.breakers),
        );
        let (health, health_service) = tonic_health::server::health_reporter();
        // SERVING once the store is open, which it is by the time `build`
        // returned; then following the store.
        crate::api::health::init(&health).await;
        let (tls, hangup) = tls.unzip();
        announce(&settings, local_addr, tls.as_deref());
        // On shutdown the listeners close and connections get GOAWAY; calls
        // in flight finish. A client that keeps an idle connection open must
        // not hold the process forever (hyper's graceful shutdown can wait
        // on such a connection indefinitely, hyperium/hyper#4170): after the
        // grace period the server futures are dropped, closing what is left.
        let grace = Duration::from_secs(settings.grpc.shutdown_grace_secs);
        let (stop, signal) = Stop::on(shutdown);
        let health_task = tokio::spawn(crate::api::health::follow_store(
            Arc::clone(&store),
            health,
            stop.receiver(),
        ));
        let ingress = Ingress::new(core.app.clone(), core.accounts, core.sink.clone())
            .with_customer_callbacks(CustomerCallbacks::new(
                settings.routing.call_me.clone(),
                settings.routing.missed_calls.clone(),
                core.app.clone(),
            ));
        let shared = crate::providers::Shared {
            app: core.app.clone(),
            ingress: ingress.clone(),
        };
        let mut tasks = serve_providers(&settings, provider_listeners, &shared, &stop);
        let http = serve_http(
            &settings,
            http_listener,
            http_addr,
            ingress,
            &shared,
            tls.as_ref(),
            &stop,
        );
        tasks.extend(
            tls.as_ref()
                .zip(hangup)
                .map(|(tls, hangup)| tokio::spawn(Arc::clone(tls).watch(hangup, stop.stopped()))),
        );
        // Webhook deliveries end with this future, even when it is dropped
        // rather than stopped: a replica that dies delivers nothing more.
        let mut deliveries = Owned(None);
        if settings.endpoints.deliver && core.app.endpoints_ready().is_ok() {
            let deliverer =
                Deliverer::new(Arc::clone(&store), core.app.clone(), &settings.endpoints)?;
            deliveries.0 = Some(tokio::spawn(deliverer.run(stop.stopped())));
        }
        let mut sink = Owned(None);
        #[cfg(feature = "nats")]
        if settings.nats.enabled {
            let publisher = crate::deliveries::nats::NatsSink::new(
                Arc::clone(&store),
                &settings.nats,
                &settings.api.default_tenant,
            );
            sink.0 = Some(tokio::spawn(publisher.run(stop.stopped())));
        }
        tasks.extend(metrics_listener.map(|listener| {
            serve_metrics(
                &settings,
                listener,
                Arc::clone(&store),
                core.breakers,
                &stop,
            )
        }));
        let routes = crate::api::routes(
            ApiContext::new(core.app, &settings),
            Duration::from_millis(settings.events.poll_interval_ms),
            settings.grpc.max_message_bytes,
            health_service,
        )?;
        let grpc = serve_grpc(&settings, &store, routes, listener, tls.as_ref(), &stop);
        let both = async {
            let (grpc, http) = tokio::join!(grpc, http);
            grpc.map_err(anyhow::Error::from)?;
            http.map_err(anyhow::Error::from)
        };
        let deadline = {
            let stopped = stop.stopped();
            async move {
                stopped.await;
                tokio::time::sleep(grace).await;
            }
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
        for task in [deliveries.0.take(), sink.0.take()].into_iter().flatten() {
            let _ = task.await;
        }
        for task in tasks {
            let _ = task.await;
        }
        served?;
        tracing::info!("omniroute stopped");
        Ok(())
    }
}

/// What the use cases, the pipeline and the faces share, assembled from
/// the settings: the channels' adapters (reporting into `sink`, read by
/// status ingestion from `reports`), the provider accounts' tenants, the
/// breakers, and the application core over routing.
struct Core {
    app: App,
    adapters: crate::channels::Adapters,
    accounts: crate::channels::Accounts,
    breakers: Arc<Breakers>,
    sink: statuses::StatusChannel,
    reports: tokio::sync::mpsc::UnboundedReceiver<statuses::Report>,
}

impl Core {
    fn assemble(store: &Arc<dyn Store>, settings: &Settings) -> anyhow::Result<Core> {
        let (sink, reports) = statuses::channel();
        let adapters = crate::providers::adapters(settings, &sink)?;
        let (default_policy, tenant_policies) = settings.routing.policies()?;
        let breakers = Arc::new(Breakers::new(
            settings.routing.breaker_failures,
            Duration::from_secs(settings.routing.breaker_cool_down_secs),
        ));
        let router = Router::new(
            Arc::clone(&adapters),
            default_policy,
            tenant_policies,
            Arc::clone(&breakers),
        );
        Ok(Core {
            app: App::new(Arc::clone(store), settings, Arc::clone(&adapters), router),
            accounts: crate::providers::accounts(settings),
            adapters,
            breakers,
            sink,
            reports,
        })
    }
}

/// A task that ends with its owner: aborted when dropped.
struct Owned(Option<tokio::task::JoinHandle<()>>);

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// The stop signal every listener and task follows: set once `shutdown`
/// completes.
#[derive(Clone)]
struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    /// The stop, and the future that sets it when `shutdown` completes.
    fn on(
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (Stop, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let signal = async move {
            shutdown.await;
            let _ = tx.send(true);
        };
        (Stop(rx), signal)
    }

    /// Completes once stopping.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    fn receiver(&self) -> tokio::sync::watch::Receiver<bool> {
        self.0.clone()
    }
}

/// Logs what serves where, and warns when anyone on the host acts for the
/// default tenant.
fn announce(settings: &Settings, addr: SocketAddr, tls: Option<&Tls>) {
    let tls_mode = match tls {
        None => "off",
        Some(tls) if tls.mutual() => "mutual",
        Some(_) => "on",
    };
    tracing::info!(%addr, store = store_kind(settings), tls = tls_mode, "omniroute listening");
    if !settings.auth.enabled {
        tracing::warn!(
            %addr,
            tenant = %settings.api.default_tenant,
            "authentication is off (auth.enabled = false): every caller on this host acts for the default tenant; serving loopback only"
        );
    }
}

/// Runs each enabled provider's own listener (email's SMTP listener).
fn serve_providers(
    settings: &Settings,
    listeners: Vec<(omniroute_channel::Channel, TcpListener)>,
    shared: &crate::providers::Shared,
    stop: &Stop,
) -> Vec<tokio::task::JoinHandle<()>> {
    listeners
        .into_iter()
        .filter_map(|(channel, listener)| {
            let provider = crate::providers::of(settings, channel)?;
            Some(tokio::spawn(provider.serve(
                settings,
                listener,
                shared.clone(),
                Box::pin(stop.stopped()),
            )))
        })
        .collect()
}

/// The webhook listener: provider webhooks and the providers' own routes
/// (links in mail), every request bounded by `http.request_timeout_secs`.
fn serve_http(
    settings: &Settings,
    listener: TcpListener,
    addr: SocketAddr,
    ingress: Ingress,
    shared: &crate::providers::Shared,
    tls: Option<&Arc<Tls>>,
    stop: &Stop,
) -> Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> {
    let routes = crate::http::bounded(
        webhooks::router(ingress, settings.http.max_body_bytes)
            .merge(crate::providers::routes(settings, shared)),
        Duration::from_secs(settings.http.request_timeout_secs),
    );
    let tls = tls.filter(|tls| tls.serves_http()).map(Arc::clone);
    tracing::info!(%addr, tls = tls.is_some(), "webhook listener ready");
    match tls {
        Some(tls) => Box::pin(tls.serve_http(listener, routes, stop.stopped())),
        None => Box::pin(
            axum::serve(listener, routes)
                .with_graceful_shutdown(stop.stopped())
                .into_future(),
        ),
    }
}

/// The metrics listener, bounded like the webhook listener: a scraper that
/// stalls holds nothing open.
fn serve_metrics(
    settings: &Settings,
    listener: TcpListener,
    store: Arc<dyn Store>,
    breakers: Arc<Breakers>,
    stop: &Stop,
) -> tokio::task::JoinHandle<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics listener ready");
    }
    let routes = crate::http::bounded(
        crate::scrape::router(store, breakers),
        Duration::from_secs(settings.http.request_timeout_secs),
    );
    let served = axum::serve(listener, routes)
        .with_graceful_shutdown(stop.stopped())
        .into_future();
    tokio::spawn(async move {
        if let Err(e) = served.await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    })
}

/// The gRPC listener: the API's routes behind the metrics, overload and
/// authentication layers, on TLS when `[tls]` is set.
fn serve_grpc(
    settings: &Settings,
    store: &Arc<dyn Store>,
    routes: tonic::service::Routes,
    listener: TcpListener,
    tls: Option<&Arc<Tls>>,
    stop: &Stop,
) -> Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>> {
    let authenticator = settings.auth.enabled.then(|| {
        Arc::new(crate::auth::Authenticator::new(
            Arc::clone(store),
            settings.auth.public_health,
            Duration::from_secs(settings.auth.cache_secs),
        ))
    });
    let server = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .timeout(Duration::from_secs(settings.grpc.request_timeout_secs))
        .layer(AroundLayer(crate::api::Observe))
        .layer(AroundLayer(crate::api::Overload::new(
            settings.grpc.max_concurrent_requests,
        )))
        .layer(AroundLayer(crate::auth::Auth::new(authenticator)))
        .add_routes(routes);
    match tls {
        Some(tls) => {
            Box::pin(server.serve_with_incoming_shutdown(
                tls.incoming(listener, Listener::Grpc),
                stop.stopped(),
            ))
        }
        None => Box::pin(server.serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            stop.stopped(),
        )),
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
