//! TLS on the gRPC listener and the webhook listener (`[tls]`), with rustls
//! on the *ring* provider, as the provider clients use.
//!
//! The certificate and key are read from PEM files at start and again on
//! SIGHUP or when their modification time changes ([`Tls::reload`]): the
//! certified key sits in a resolver behind a lock, so a reload needs no
//! restart, affects new handshakes only (connections open keep theirs), and
//! a reload that fails keeps what is in use. With `tls.client_ca_file` the
//! gRPC listener asks every client for a certificate signed by that CA and
//! refuses the handshake without one (mTLS); the webhook listener never
//! asks (providers have no client certificates).
//!
//! Connections are accepted on one task and their handshakes run
//! concurrently, each with [`HANDSHAKE_TIMEOUT`], so a slow or silent client
//! never holds up the next one.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_stream::{Stream, StreamExt as _};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::settings::{Material, SettingsError, TlsSettings, tls_provider as provider};

/// How long a client has to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections taken from the listener in one go before handshakes that
/// finished are handed on.
const ACCEPT_BURST: usize = 64;

/// How long accepting pauses after an error that is not one connection's
/// (out of file descriptors): the listener is not polled in a hot loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The current certified key, swapped by a reload; each handshake takes
/// the one in place when it starts.
#[derive(Debug)]
struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    fn swap(&self, key: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = key;
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

/// The listeners TLS serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// gRPC: ALPN `h2`, client certificates when `tls.client_ca_file` is set.
    Grpc,
    /// Webhooks: ALPN `h2` and `http/1.1`, never a client certificate.
    Http,
}

impl Listener {
    fn name(self) -> &'static str {
        match self {
            Listener::Grpc => "grpc",
            Listener::Http => "http",
        }
    }
}

/// The server's TLS: its configurations and what reloads them.
#[derive(Debug)]
pub struct Tls {
    settings: TlsSettings,
    provider: Arc<CryptoProvider>,
    certs: Arc<CertResolver>,
    /// Swapped whole on a reload when clients are verified (a new CA).
    grpc: RwLock<Arc<ServerConfig>>,
    http: Arc<ServerConfig>,
    /// The files' modification times when they were last read.
    stamps: Mutex<Vec<Option<SystemTime>>>,
}

impl Tls {
    /// TLS as `settings` ask for it, or `None` when it is off.
    pub fn from_settings(settings: &TlsSettings) -> Result<Option<Arc<Tls>>, SettingsError> {
        if !settings.enabled() {
            return Ok(None);
        }
        let provider = provider();
        let stamps = stamps(settings);
        let material = Material::load_with(settings, &provider)?;
        let certs = Arc::new(CertResolver {
            current: RwLock::new(material.key),
        });
        let grpc = server_config(&provider, &certs, material.clients, &[b"h2"])?;
        let http = server_config(&provider, &certs, None, &[b"h2", b"http/1.1"])?;
        Ok(Some(Arc::new(Tls {
            settings: settings.clone(),
            provider,
            certs,
            grpc: RwLock::new(Arc::new(grpc)),
            http: Arc::new(http),
            stamps: Mutex::new(stamps),
        })))
    }

    /// Whether the webhook listener serves TLS too (`tls.http`).
    pub fn serves_http(&self) -> bool {
        self.settings.http
    }

    /// Whether gRPC clients must present a certificate.
    pub fn mutual(&self) -> bool {
        self.settings.mutual()
    }

    /// Reads the files again and, when they are good, serves what they hold
    /// to new handshakes; on an error nothing changes.
    pub fn reload(&self) -> Result<(), SettingsError> {
        // Times before contents: a file written after its time was taken is
        // read again on the next look.
        let stamps = stamps(&self.settings);
        let loaded = Material::load_with(&self.settings, &self.provider);
        // Kept on failure too, so that broken files are reported once and
        // tried again when they change next.
        *self.stamps.lock().unwrap_or_else(PoisonError::into_inner) = stamps;
        let material = loaded?;
        let grpc = match material.clients {
            Some(clients) => Some(server_config(
                &self.provider,
                &self.certs,
                Some(clients),
                &[b"h2"],
            )?),
            None => None,
        };
        self.certs.swap(material.key);
        if let Some(grpc) = grpc {
            *self.grpc.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(grpc);
        }
        Ok(())
    }

    /// Reloads when a file's modification time moved since it was read;
    /// answers whether it reloaded.
    pub fn reload_if_changed(&self) -> Result<bool, SettingsError> {
        let now = stamps(&self.settings);
        let changed = *self.stamps.lock().unwrap_or_else(PoisonError::into_inner) != now;
        if changed {
            self.reload()?;
        }
        Ok(changed)
    }

    fn acceptor(&self, listener: Listener) -> TlsAcceptor {
        let config = match listener {
            Listener::Grpc => Arc::clone(&self.grpc.read().unwrap_or_else(PoisonError::into_inner)),
            Listener::Http => Arc::clone(&self.http),
        };
        TlsAcceptor::from(config)
    }

    /// The connections of `listener`, each once its handshake completed.
    pub fn incoming(self: &Arc<Self>, tcp: TcpListener, listener: Listener) -> TlsIncoming {
        TlsIncoming {
            listener: tcp,
            tls: Arc::clone(self),
            side: listener,
            handshakes: JoinSet::new(),
            pause: None,
        }
    }

    /// Serves `router` on `tcp` over TLS until `stopped` completes: then
    /// the listener closes at once, open connections finish what they are
    /// answering (HTTP/1.1 keep-alive ends, HTTP/2 gets GOAWAY) and this
    /// returns when they are gone.
    pub async fn serve_http(
        self: Arc<Self>,
        tcp: TcpListener,
        router: axum::Router,
        stopped: impl Future<Output = ()>,
    ) -> io::Result<()> {
        let mut incoming = self.incoming(tcp, Listener::Http);
        let graceful = GracefulShutdown::new();
        // Dropped with this future (after the shutdown grace), which ends
        // the connections still open.
        let mut connections = JoinSet::new();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                () = &mut stopped => break,
                Some(accepted) = incoming.next() => match accepted {
                    Ok(connection) => {
                        let watcher = graceful.watcher();
                        let service = TowerToHyperService::new(router.clone());
                        connections.spawn(async move {
                            let builder = Builder::new(TokioExecutor::new());
                            let served = builder.serve_connection(TokioIo::new(connection), service);
                            if let Err(e) = watcher.watch(served).await {
                                tracing::debug!(error = %e, "webhook connection ended with an error");
                            }
                        });
                    }
                    Err(e) => tracing::debug!(error = %e, "webhook connection not accepted"),
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(incoming);
        graceful.shutdown().await;
        while connections.join_next().await.is_some() {}
        Ok(())
    }

    /// Reloads on SIGHUP and, with `tls.reload_secs`, when the files change,
    /// until `stopped` completes. Successes are logged at info, failures at
    /// warn (naming the setting and the file).
    pub async fn watch(self: Arc<Self>, mut hangup: Hangup, stopped: impl Future<Output = ()>) {
        let mut ticks = (self.settings.reload_secs > 0).then(|| {
            let period = Duration::from_secs(self.settings.reload_secs);
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks
        });
        tokio::pin!(stopped);
        loop {
            let tick = async {
                match ticks.as_mut() {
                    Some(ticks) => {
                        ticks.tick().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = &mut stopped => return,
                () = hangup.recv() => {
                    tracing::info!("SIGHUP received: reloading the TLS files");
                    self.report(self.reload().map(|()| true));
                }
                () = tick => self.report(self.reload_if_changed()),
            }
        }
    }

    fn report(&self, outcome: Result<bool, SettingsError>) {
        match outcome {
            Ok(false) => {}
            Ok(true) => tracing::info!(
                cert_file = %self.settings.cert_file.display(),
                "TLS files reloaded: new handshakes use the new certificate"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "TLS files not reloaded; the certificate in use stays"
            ),
        }
    }
}

fn server_config(
    provider: &Arc<CryptoProvider>,
    certs: &Arc<CertResolver>,
    clients: Option<Arc<dyn ClientCertVerifier>>,
    alpn: &[&[u8]],
) -> Result<ServerConfig, SettingsError> {
    let builder = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| SettingsError::Invalid {
            key: "tls.cert_file",
            reason: format!("cannot make a TLS configuration: {e}"),
        })?;
    let builder = match clients {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let resolver: Arc<dyn ResolvesServerCert> = Arc::clone(certs) as Arc<dyn ResolvesServerCert>;
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The modification times of the files `settings` name (`None` where a
/// file cannot be read).
fn stamps(settings: &TlsSettings) -> Vec<Option<SystemTime>> {
    let mut files: Vec<&PathBuf> = vec![&settings.cert_file, &settings.key_file];
    if settings.mutual() {
        files.push(&settings.client_ca_file);
    }
    files
        .into_iter()
        .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .collect()
}

/// SIGHUP, installed when the server is built, so that a signal sent once
/// the server said it is listening is never missed (nor kills it).
#[derive(Debug)]
pub struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    /// Installs the handler (inside a Tokio runtime).
    pub fn install() -> io::Result<Hangup> {
        Ok(Hangup {
            #[cfg(unix)]
            signal: Some(tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::hangup(),
            )?),
        })
    }

    /// Completes at the next SIGHUP (never where there are none).
    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = self.signal.as_mut() {
            if signal.recv().await.is_some() {
                return;
            }
            self.signal = None;
        }
        std::future::pending::<()>().await;
    }
}

/// Connections whose TLS handshake completed, as a stream (what tonic's
/// `serve_with_incoming_shutdown` takes). Dropping it closes the listener
/// and abandons the handshakes under way.
#[derive(Debug)]
pub struct TlsIncoming {
    listener: TcpListener,
    tls: Arc<Tls>,
    side: Listener,
    handshakes: JoinSet<Option<TlsConnection>>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TlsIncoming {
    fn handshake(&mut self, tcp: TcpStream) {
        // As the plain listener does: small gRPC frames go out at once.
        let _ = tcp.set_nodelay(true);
        let info = tcp.connect_info();
        let acceptor = self.tls.acceptor(self.side);
        let side = self.side.name();
        self.handshakes.spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => Some(TlsConnection { stream, info }),
                Ok(Err(e)) => {
                    tracing::debug!(listener = side, peer = ?info.remote_addr, error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(listener = side, peer = ?info.remote_addr, "TLS handshake timed out");
                    None
                }
            }
        });
    }
}

/// Accept errors that are one connection's, not the listener's.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}

impl Stream for TlsIncoming {
    type Item = io::Result<TlsConnection>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(pause) = this.pause.as_mut()
            && pause.as_mut().poll(cx).is_ready()
        {
            this.pause = None;
        }
        if this.pause.is_none() {
            let mut taken = 0;
            while taken < ACCEPT_BURST {
                match this.listener.poll_accept(cx) {
                    Poll::Ready(Ok((tcp, _))) => {
                        this.handshake(tcp);
                        taken += 1;
                    }
                    Poll::Ready(Err(e)) if is_connection_error(&e) => taken += 1,
                    Poll::Ready(Err(e)) => {
                        tracing::warn!(listener = this.side.name(), error = %e, "cannot accept connections; trying again shortly");
                        let mut pause = Box::pin(tokio::time::sleep(ACCEPT_PAUSE));
                        // Registers the wake-up.
                        let _ = pause.as_mut().poll(cx);
                        this.pause = Some(pause);
                        break;
                    }
                    Poll::Pending => break,
                }
            }
            if taken == ACCEPT_BURST {
                // More may be waiting: come back after handing these on.
                cx.waker().wake_by_ref();
            }
        }
        loop {
            match this.handshakes.poll_join_next(cx) {
                Poll::Ready(Some(Ok(Some(connection)))) => {
                    return Poll::Ready(Some(Ok(connection)));
                }
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A TLS connection whose handshake completed, with the TCP addresses
/// tonic puts on requests (`Request::remote_addr`).
#[derive(Debug)]
pub struct TlsConnection {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    info: TcpConnectInfo,
}

impl Connected for TlsConnection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::settings::tls_testing::{self as testing, Authority, write};

    fn settings(dir: &Path, cert: &testing::Leaf) -> TlsSettings {
        TlsSettings {
            cert_file: write(dir, "cert.pem", &cert.cert_pem),
            key_file: write(dir, "key.pem", &cert.key_pem),
            ..TlsSettings::default()
        }
    }

    fn served(tls: &Tls) -> Vec<u8> {
        tls.certs
            .current
            .read()
            .unwrap()
            .end_entity_cert()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn off_without_files() {
        assert!(
            Tls::from_settings(&TlsSettings::default())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_reload_swaps_the_certificate_and_a_failed_one_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let authority = Authority::new("omniroute test CA");
        let first = authority.server("localhost");
        let settings = settings(dir.path(), &first);
        let tls = Tls::from_settings(&settings).unwrap().unwrap();
        assert_eq!(served(&tls), first.der);
        assert!(!tls.reload_if_changed().unwrap(), "nothing changed");

        let second = authority.server("localhost");
        write(dir.path(), "cert.pem", &second.cert_pem);
        write(dir.path(), "key.pem", &second.key_pem);
        tls.reload().unwrap();
        assert_eq!(served(&tls), second.der);

        // Half a rotation (a new certificate, the old key): refused, and
        // the certificate in use stays.
        let third = authority.server("localhost");
        write(dir.path(), "cert.pem", &third.cert_pem);
        let error = tls.reload().unwrap_err().to_string();
        assert!(error.contains("tls.key_file"), "{error}");
        assert_eq!(served(&tls), second.der);
        // The rest of it lands: the change is seen and read.
        std::thread::sleep(Duration::from_millis(20));
        write(dir.path(), "key.pem", &third.key_pem);
        assert!(tls.reload_if_changed().unwrap());
        assert_eq!(served(&tls), third.der);
    }

    #[test]
    fn client_verification_follows_the_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let authority = Authority::new("omniroute test CA");
        let mut settings = settings(dir.path(), &authority.server("localhost"));
        settings.client_ca_file = write(dir.path(), "ca.pem", &authority.cert_pem);
        let tls = Tls::from_settings(&settings).unwrap().unwrap();
        assert!(tls.mutual());
        let grpc = Arc::clone(&tls.grpc.read().unwrap());
        let http = Arc::clone(&tls.http);
        assert_eq!(grpc.alpn_protocols, vec![b"h2".to_vec()]);
        assert_eq!(
            http.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        // A new CA makes a new gRPC configuration.
        let other = Authority::new("another CA");
        write(dir.path(), "ca.pem", &other.cert_pem);
        tls.reload().unwrap();
        assert!(!Arc::ptr_eq(&grpc, &tls.grpc.read().unwrap()));
    }
}
