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
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_stream::{Stream, StreamExt as _};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::settings::{SettingsError, TlsSettings};

/// How long a client has to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections taken from the listener in one go before handshakes that
/// finished are handed on.
const ACCEPT_BURST: usize = 64;

/// How long accepting pauses after an error that is not one connection's
/// (out of file descriptors): the listener is not polled in a hot loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The crypto provider of every TLS configuration here: *ring*.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the `[tls]` files hold, read and checked: the certified key and,
/// with `client_ca_file`, the verifier of clients' certificates.
#[derive(Debug)]
pub struct Material {
    key: Arc<CertifiedKey>,
    clients: Option<Arc<dyn ClientCertVerifier>>,
}

impl Material {
    /// Reads the files `settings` name (TLS must be on): errors name the
    /// setting and the file, never the contents of the key.
    pub fn load(settings: &TlsSettings) -> Result<Material, SettingsError> {
        Material::load_with(settings, &provider())
    }

    fn load_with(
        settings: &TlsSettings,
        provider: &Arc<CryptoProvider>,
    ) -> Result<Material, SettingsError> {
        let chain = read_certificates(&settings.cert_file, "tls.cert_file")?;
        let key = read_key(&settings.key_file)?;
        let signing = provider.key_provider.load_private_key(key).map_err(|e| {
            invalid(
                "tls.key_file",
                format!(
                    "{} is not a private key rustls can use: {e}",
                    settings.key_file.display()
                ),
            )
        })?;
        let key = CertifiedKey::new(chain, signing);
        match key.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(_)) => {
                return Err(invalid(
                    "tls.key_file",
                    format!(
                        "the key in {} does not match the certificate in tls.cert_file {}",
                        settings.key_file.display(),
                        settings.cert_file.display()
                    ),
                ));
            }
            Err(e) => {
                return Err(invalid(
                    "tls.cert_file",
                    format!(
                        "{} does not start with a valid certificate: {e}",
                        settings.cert_file.display()
                    ),
                ));
            }
        }
        let clients = if settings.mutual() {
            Some(client_verifier(&settings.client_ca_file, provider)?)
        } else {
            None
        };
        Ok(Material {
            key: Arc::new(key),
            clients,
        })
    }
}

fn invalid(key: &'static str, reason: String) -> SettingsError {
    SettingsError::Invalid { key, reason }
}

/// What went wrong reading PEM from `path`, without echoing what is in it.
fn pem_error(key: &'static str, path: &Path, error: pem::Error) -> SettingsError {
    let reason = match error {
        pem::Error::Io(e) => format!("cannot read {}: {e}", path.display()),
        pem::Error::NoItemsFound => format!("no PEM item of the right kind in {}", path.display()),
        _ => format!("{} is not valid PEM", path.display()),
    };
    invalid(key, reason)
}

fn read_certificates(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, SettingsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(key, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(key, path, e))?;
    if certificates.is_empty() {
        return Err(invalid(
            key,
            format!(
                "no certificate (\"-----BEGIN CERTIFICATE-----\") in {}",
                path.display()
            ),
        ));
    }
    Ok(certificates)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, SettingsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => invalid(
            "tls.key_file",
            format!(
                "no private key (\"-----BEGIN PRIVATE KEY-----\", RSA or EC) in {}",
                path.display()
            ),
        ),
        other => pem_error("tls.key_file", path, other),
    })
}

fn client_verifier(
    path: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, SettingsError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(path, "tls.client_ca_file")? {
        roots.add(certificate).map_err(|e| {
            invalid(
                "tls.client_ca_file",
                format!("{} holds a certificate that is no CA: {e}", path.display()),
            )
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| {
            invalid(
                "tls.client_ca_file",
                format!("cannot verify clients with {}: {e}", path.display()),
            )
        })
}

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
        .map_err(|e| {
            invalid(
                "tls.cert_file",
                format!("cannot make a TLS configuration: {e}"),
            )
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

/// Certificates for tests: a CA and leaves it signs.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };

    /// A certificate and its key, in PEM.
    pub(crate) struct Leaf {
        pub(crate) cert_pem: String,
        pub(crate) key_pem: String,
        pub(crate) der: Vec<u8>,
    }

    /// A CA that signs leaves.
    pub(crate) struct Authority {
        pub(crate) cert_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    impl Authority {
        pub(crate) fn new(name: &str) -> Authority {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            Authority {
                cert_pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        }

        /// A server certificate for `name`.
        pub(crate) fn server(&self, name: &str) -> Leaf {
            self.leaf(name, ExtendedKeyUsagePurpose::ServerAuth)
        }

        fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
            let mut params = CertificateParams::new(vec![name.to_owned()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            Leaf {
                cert_pem: cert.pem(),
                key_pem: key.serialize_pem(),
                der: cert.der().to_vec(),
            }
        }
    }

    /// Writes `text` to `dir/name`.
    pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Authority, write};
    use super::*;

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
