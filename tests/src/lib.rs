//! Support for the end-to-end tests: a real omniroute server on a random
//! local port, over the embedded store (a fresh file) or PostgreSQL (a fresh
//! database), and tonic clients connected to it over TCP.
//!
//! Logs stay silent unless `TEST_LOG` is set (then they go to stderr at the
//! level it names, for example `TEST_LOG=debug`).

pub mod faults;
pub mod raw;
pub mod tls;

use std::sync::Once;

use omniroute::settings::{LogSettings, Secret};
use omniroute::{Application, Settings};
use omniroute_proto::v1::contact_service_client::ContactServiceClient;
use omniroute_proto::v1::event_service_client::EventServiceClient;
use omniroute_proto::v1::messaging_service_client::MessagingServiceClient;
use omniroute_proto::v1::preference_service_client::PreferenceServiceClient;
use tokio::sync::oneshot;

/// The test servers' `endpoints.secret_key`: base64 of 32 bytes.
pub const ENDPOINTS_KEY: &str = "ZW5kcG9pbnRzLWtleS1mb3ItdGVzdHMtb25seS0zMiE=";
use tonic::transport::Channel;

/// Which store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite store in a fresh temporary folder.
    Embedded,
    /// PostgreSQL, in a fresh database on the test server.
    Postgres,
}

/// A running server and clients connected to it.
#[derive(Debug)]
pub struct TestApp {
    /// The server's port.
    pub port: u16,
    /// The webhook listener's address.
    pub http_addr: std::net::SocketAddr,
    /// The SMTP listener's address, when `email.smtp_listen` is set.
    pub smtp_addr: Option<std::net::SocketAddr>,
    /// The metrics listener's address, when `metrics.listen` is set.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// ContactService client.
    pub contacts: ContactServiceClient<Channel>,
    /// PreferenceService client.
    pub preferences: PreferenceServiceClient<Channel>,
    /// MessagingService client.
    pub messaging: MessagingServiceClient<Channel>,
    /// EventService client.
    pub events: EventServiceClient<Channel>,
    /// The raw channel, for other clients. Plain text: with `[tls]` on it
    /// connects lazily and its calls fail (use [`tls::channel`]).
    pub channel: Channel,
    /// The server's TLS, when `[tls]` is set.
    tls: Option<std::sync::Arc<omniroute::tls::Tls>>,
    /// The server's store (to make API keys, as `omniroute keys` does);
    /// let go before a restart (the embedded file has one owner).
    store: Option<std::sync::Arc<dyn omniroute_store::Store>>,
    backend: Backend,
    /// The PostgreSQL database, for replicas.
    store_url: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), String>>>,
    _dir: tempfile::TempDir,
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(level) = std::env::var("TEST_LOG") {
            omniroute::telemetry::init(&LogSettings {
                filter: if level.is_empty() {
                    "info".into()
                } else {
                    level
                },
                ..LogSettings::default()
            });
        }
    });
}

impl TestApp {
    /// Starts a server on `backend` with phone region DE.
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, |_| {}).await
    }

    /// Starts a server after `adjust` changed its settings.
    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let url = match backend {
            Backend::Postgres => Some(omniroute_store::testing::fresh_pg_url().await),
            Backend::Embedded => None,
        };
        TestApp::spawn_on(backend, url, None, adjust).await
    }

    /// Starts a server on PostgreSQL at `url` (a database reached through a
    /// fault proxy, for instance) after `adjust` changed its settings.
    pub async fn spawn_on_pg(url: String, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        TestApp::spawn_on(Backend::Postgres, Some(url), None, adjust).await
    }

    /// Starts another server on this one's PostgreSQL database: a replica,
    /// as production runs several.
    ///
    /// # Panics
    ///
    /// On the embedded store, which one process owns.
    pub async fn replica(&self) -> TestApp {
        self.replica_with(|_| {}).await
    }

    /// [`TestApp::replica`] after `adjust` changed its settings.
    pub async fn replica_with(&self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        assert_eq!(self.backend, Backend::Postgres, "replicas need PostgreSQL");
        TestApp::spawn_on(self.backend, self.store_url.clone(), None, adjust).await
    }

    /// Ends the server at once, as a crash would in-process: its task is
    /// aborted, so whatever it had in flight stops where it was, with no
    /// shutdown (its leases stay until they expire).
    pub async fn kill(mut self) {
        self.shutdown.take();
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }

    /// Stops this server gracefully and starts another on the same store
    /// (the same database, or the same embedded file) after `adjust`: a
    /// restart, as a deploy does.
    pub async fn restart_with(mut self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        self.store = None;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("the server task")
                .expect("the server stops cleanly");
        }
        let dir = tempfile::tempdir().expect("temporary folder");
        let kept = std::mem::replace(&mut self._dir, dir);
        TestApp::spawn_on(self.backend, self.store_url.clone(), Some(kept), adjust).await
    }

    async fn spawn_on(
        backend: Backend,
        store_url: Option<String>,
        dir: Option<tempfile::TempDir>,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestApp {
        init_logs();
        let dir = dir.unwrap_or_else(|| tempfile::tempdir().expect("temporary folder"));
        let mut settings = Settings::default();
        settings.grpc.listen = "127.0.0.1:0".parse().expect("address");
        settings.http.listen = "127.0.0.1:0".parse().expect("address");
        settings.contacts.default_region = "DE".into();
        settings.store.path = dir.path().join("omniroute.db");
        // Quick sandbox and retries, so scenarios finish in moments.
        settings.sandbox.delivery_delay_ms = 20;
        settings.sandbox.read_delay_ms = 20;
        settings.dispatch.backoff_base_ms = 10;
        settings.dispatch.backoff_cap_ms = 50;
        settings.dispatch.poll_interval_ms = 20;
        settings.dispatch.max_attempts = 3;
        settings.dispatch.lease_secs = 10;
        settings.dispatch.send_timeout_secs = 5;
        settings.events.poll_interval_ms = 50;
        settings.grpc.shutdown_grace_secs = 1;
        // A fixed key for endpoints' secrets (EndpointService needs one).
        settings.endpoints.secret_key = Secret::new(ENDPOINTS_KEY);
        if let Some(url) = &store_url {
            settings.store.url = Secret::new(url);
            settings.store.pool_size = 4;
        }
        adjust(&mut settings);
        settings.validate().expect("test settings are valid");
        let plain = !settings.tls.enabled();
        let app = Application::build(settings).await.expect("server builds");
        let tls = app.tls();
        let port = app.port();
        let http_addr = app.http_addr();
        let smtp_addr = app.provider_addr(omniroute_channel::Channel::Email);
        let store = app.store();
        let metrics_addr = app.metrics_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            app.run_until_stopped(async {
                let _ = rx.await;
            })
            .await
            .map_err(|e| format!("{e:#}"))
        });
        let endpoint = Channel::from_shared(format!("http://127.0.0.1:{port}")).expect("uri");
        let channel = if plain {
            endpoint.connect().await.expect("client connects")
        } else {
            endpoint.connect_lazy()
        };
        TestApp {
            port,
            http_addr,
            smtp_addr,
            metrics_addr,
            contacts: ContactServiceClient::new(channel.clone()),
            preferences: PreferenceServiceClient::new(channel.clone()),
            messaging: MessagingServiceClient::new(channel.clone()),
            events: EventServiceClient::new(channel.clone()),
            channel,
            tls,
            store: Some(store),
            backend,
            store_url,
            shutdown: Some(tx),
            server: Some(server),
            _dir: dir,
        }
    }

    /// The PostgreSQL database's URL (`None` on the embedded store).
    pub fn store_url(&self) -> Option<&str> {
        self.store_url.as_deref()
    }

    /// The server's data folder (the embedded store's file is
    /// `omniroute.db` in it).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The server's store (to make API keys, as `omniroute keys` does).
    ///
    /// # Panics
    ///
    /// While a restart is under way (never between calls).
    pub fn store(&self) -> std::sync::Arc<dyn omniroute_store::Store> {
        std::sync::Arc::clone(self.store.as_ref().expect("the server's store"))
    }

    /// Reads the `[tls]` files again, as SIGHUP makes the binary do.
    ///
    /// # Panics
    ///
    /// Without `[tls]`.
    pub fn reload_tls(&self) -> Result<(), omniroute::settings::SettingsError> {
        self.tls.as_ref().expect("TLS is on").reload()
    }

    /// The store this server runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Stops this server and starts another on the same kind of store (a
    /// fresh one) with adjusted settings.
    pub async fn respawn_with(self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        let backend = self.backend;
        drop(self);
        TestApp::spawn_with(backend, adjust).await
    }

    /// Stops the server gracefully and reports how it ended.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.server.take() {
            Some(handle) => handle.await.map_err(|e| e.to_string())?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An HTTP/1.1 response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The body as text.
    pub body: String,
}

/// Sends one HTTP/1.1 request over a fresh TCP connection (as a provider
/// calls a webhook) and reads the whole response.
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    HttpResponse { status, body }
}

/// The key the test servers' sandbox signs simulated customer messages
/// with (the default `sandbox.webhook_secret`).
pub const SANDBOX_SECRET: &str = "sandbox-secret";

impl TestApp {
    /// A customer writes to the business on `channel` (a sandbox webhook,
    /// signed as the sandbox documents): the contact is resolved or created
    /// and, on WhatsApp, the service window opens.
    pub async fn customer_writes(&self, channel: &str, from: &str, text: &str) {
        let body = serde_json::json!({
            "messages": [{"id": format!("in-{}", uuid::Uuid::now_v7()), "from": from, "text": text}]
        });
        let bytes = serde_json::to_vec(&body).expect("json");
        let signature = format!(
            "sha256={}",
            omniroute_whatsapp::signature_hex(SANDBOX_SECRET, &bytes)
        );
        let response = http(
            self.http_addr,
            "POST",
            &format!("/webhooks/{channel}"),
            &[
                ("Content-Type", "application/json"),
                ("X-Hub-Signature-256", &signature),
            ],
            &bytes,
        )
        .await;
        assert_eq!(response.status, 200, "{response:?}");
    }
}
