//! The server under test, in this process on a runtime of its own, and the
//! contacts the loads send to.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use omniroute::settings::{LogSettings, Secret};
use omniroute::{Application, Settings};
use omniroute_proto::v1 as pb;
use pb::contact_service_client::ContactServiceClient;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

use crate::cli::{Options, StoreKind};

/// Where the store under test lives: a temporary folder (the SQLite file)
/// and, for PostgreSQL, a fresh database. Servers come and go on it.
#[derive(Debug)]
pub struct StoreLocation {
    dir: tempfile::TempDir,
    /// The PostgreSQL database, when the store is PostgreSQL.
    pub pg_url: Option<String>,
}

impl StoreLocation {
    /// A temporary folder, and a fresh PostgreSQL database if asked for.
    pub async fn create(store: StoreKind) -> anyhow::Result<StoreLocation> {
        let dir = tempfile::tempdir().context("create a temporary folder for the store")?;
        let pg_url = match store {
            StoreKind::Embedded => None,
            StoreKind::Postgres => Some(fresh_pg_url().await?),
        };
        Ok(StoreLocation { dir, pg_url })
    }

    /// Drops the PostgreSQL database (once no server uses it).
    pub async fn remove(self) -> anyhow::Result<()> {
        match self.pg_url {
            Some(url) => drop_database(&url).await,
            None => Ok(()),
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// The gRPC port on 127.0.0.1.
    pub port: u16,
    /// The settings the server runs with, as the report shows them.
    pub settings: Settings,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The settings of the server under test: the defaults, except the listeners
/// (127.0.0.1, free ports), the store, the phone region (DE, as the seeded
/// contacts), sandbox delays, no send recording, and whether the
/// dispatcher runs.
pub fn settings(opts: &Options, location: &StoreLocation, dispatcher: bool) -> Settings {
    let mut settings = Settings::default();
    settings.grpc.listen = ([127, 0, 0, 1], 0).into();
    settings.http.listen = ([127, 0, 0, 1], 0).into();
    settings.grpc.shutdown_grace_secs = 2;
    settings.contacts.default_region = "DE".into();
    settings.store.path = location.dir.path().join("omniroute.db");
    settings.sandbox.delivery_delay_ms = opts.delivery_delay_ms;
    settings.sandbox.read_delay_ms = opts.read_delay_ms;
    settings.sandbox.record_path = PathBuf::new();
    settings.sandbox.send_delay_ms = 0;
    settings.dispatch.enabled = dispatcher;
    settings.quotas.per_day = opts.quota_per_day;
    if let Some(url) = &location.pg_url {
        settings.store.url = Secret::new(url);
        settings.store.pool_size = opts.pool_size;
    }
    if let Some(filter) = &opts.log {
        settings.log = LogSettings {
            filter: filter.clone(),
            ..LogSettings::default()
        };
    }
    settings
}

impl Server {
    /// Starts a server on `location`, on `runtime`.
    pub async fn start(
        opts: &Options,
        runtime: &tokio::runtime::Handle,
        location: &StoreLocation,
        dispatcher: bool,
    ) -> anyhow::Result<Server> {
        Server::start_with(opts, runtime, settings(opts, location, dispatcher)).await
    }

    /// Starts a server without dispatcher that delivers events to webhook
    /// endpoints (a key for their secrets, http:// to loopback allowed).
    pub async fn start_delivering(
        opts: &Options,
        runtime: &tokio::runtime::Handle,
        location: &StoreLocation,
    ) -> anyhow::Result<Server> {
        let mut settings = settings(opts, location, false);
        settings.endpoints.secret_key = Secret::new("YmVuY2htYXJrLWVuZHBvaW50cy1rZXktMzItYnl0ZXM=");
        settings.endpoints.allow_http_loopback = true;
        settings.endpoints.poll_interval_ms = 100;
        Server::start_with(opts, runtime, settings).await
    }

    async fn start_with(
        opts: &Options,
        runtime: &tokio::runtime::Handle,
        settings: Settings,
    ) -> anyhow::Result<Server> {
        settings
            .validate()
            .map_err(|e| anyhow!("benchmark settings: {e}"))?;
        if opts.log.is_some() {
            static LOGS: std::sync::Once = std::sync::Once::new();
            LOGS.call_once(|| omniroute::telemetry::init(&settings.log));
        }
        let (port_tx, port_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server_settings = settings.clone();
        let task = runtime.spawn(async move {
            let app = match Application::build(server_settings).await {
                Ok(app) => app,
                Err(e) => {
                    let _ = port_tx.send(Err(e));
                    return Ok(());
                }
            };
            let _ = port_tx.send(Ok(app.port()));
            app.run_until_stopped(async {
                let _ = stop_rx.await;
            })
            .await
        });
        let port = port_rx
            .await
            .map_err(|_| anyhow!("the server task ended before it listened"))?
            .context("start the server")?;
        Ok(Server {
            port,
            settings,
            stop: Some(stop_tx),
            task,
        })
    }

    /// Opens `n` HTTP/2 connections to the server: tonic's defaults, with
    /// TCP_NODELAY.
    pub async fn connect(&self, n: usize) -> anyhow::Result<Vec<Channel>> {
        let endpoint = Endpoint::from_shared(format!("http://127.0.0.1:{}", self.port))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10));
        let mut channels = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            channels.push(endpoint.connect().await.context("connect to the server")?);
        }
        Ok(channels)
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(Duration::from_secs(30), &mut self.task).await {
            Ok(joined) => joined.map_err(|e| anyhow!("server task: {e}"))?,
            Err(_) => {
                self.task.abort();
                Err(anyhow!("the server did not stop within 30 s"))
            }
        }
    }
}

/// A fresh PostgreSQL database (the test helper panics on failure: turn that
/// into an error).
async fn fresh_pg_url() -> anyhow::Result<String> {
    tokio::spawn(omniroute_store::testing::fresh_pg_url())
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(panic) => anyhow!(
                "{}",
                panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("creating the PostgreSQL database failed")
            ),
            Err(e) => anyhow!("creating the PostgreSQL database failed: {e}"),
        })
}

/// Drops the benchmark's database (after the server stopped).
async fn drop_database(url: &str) -> anyhow::Result<()> {
    let config: tokio_postgres::Config = url.parse()?;
    let name = config
        .get_dbname()
        .ok_or_else(|| anyhow!("the database URL names no database"))?
        .to_owned();
    if !name.starts_with("omniroute_test_") {
        return Err(anyhow!(
            "refusing to drop {name:?}: not a fresh test database"
        ));
    }
    let (client, connection) = tokio_postgres::connect(
        &omniroute_store::testing::admin_url(),
        tokio_postgres::NoTls,
    )
    .await?;
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// The WhatsApp id of seeded contact `i`: a German mobile number (+49 151 …)
/// whose last digit is 7, so that no sandbox magic suffix (`0001`…`0006`)
/// ever matches and every message is delivered.
pub fn wa_id(i: usize) -> String {
    format!("49151{i:07}7")
}

/// Creates contacts `from..to`, each with an email and a WhatsApp identity,
/// with CreateContact from `parallel` tasks; returns their names.
pub async fn seed_contacts(
    channels: &[Channel],
    from: usize,
    to: usize,
    parallel: usize,
) -> anyhow::Result<Vec<String>> {
    let n = to;
    let next = Arc::new(AtomicUsize::new(from));
    let mut tasks = JoinSet::new();
    for t in 0..parallel.max(1) {
        let mut client = ContactServiceClient::new(channels[t % channels.len()].clone());
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut created = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(created);
                }
                let contact = pb::Contact {
                    display_name: format!("Kundin {i}"),
                    locale: "de-DE".into(),
                    time_zone: "Europe/Berlin".into(),
                    external_ref: format!("crm-{i}"),
                    identities: vec![
                        pb::Identity {
                            channel: pb::Channel::Email as i32,
                            address: format!("kundin.{i}@example.de"),
                            ..Default::default()
                        },
                        pb::Identity {
                            channel: pb::Channel::Whatsapp as i32,
                            address: wa_id(i),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                };
                let response = client
                    .create_contact(pb::CreateContactRequest {
                        contact: Some(contact),
                    })
                    .await
                    .map_err(|s| anyhow!("CreateContact {i}: {:?} {}", s.code(), s.message()))?;
                let name = response
                    .into_inner()
                    .contact
                    .map(|c| c.name)
                    .ok_or_else(|| anyhow!("CreateContact answered no contact"))?;
                created.push(name);
            }
        });
    }
    let mut names = Vec::with_capacity(to.saturating_sub(from));
    while let Some(joined) = tasks.join_next().await {
        names.extend(joined??);
    }
    Ok(names)
}
