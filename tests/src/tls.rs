//! TLS for the end-to-end tests: certificates made on the spot (a CA and
//! the server and client certificates it signs, with rcgen), tonic channels
//! over rustls (a connector of our own, so tonic needs no TLS feature), raw
//! handshakes that show which certificate the server presents, and HTTPS
//! requests to the webhook listener.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::HttpResponse;

/// The name every test server certificate is for (clients dial 127.0.0.1
/// and check this name).
pub const SERVER_NAME: &str = "localhost";

/// A certificate and its private key, in PEM, and the certificate in DER
/// (to compare with what a server presents).
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
}

impl Leaf {
    /// Writes the certificate and key to `dir/{name}.crt` and
    /// `dir/{name}.key`, replacing what was there; returns both paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write the certificate");
        std::fs::write(&key, &self.key_pem).expect("write the key");
        (cert, key)
    }
}

/// A certificate authority that signs server and client certificates.
#[derive(Debug)]
pub struct Authority {
    /// The CA's own certificate, PEM (what clients trust, and what
    /// `tls.client_ca_file` holds).
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Authority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes the CA certificate to `dir/{name}.crt`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(format!("{name}.crt"));
        std::fs::write(&path, &self.cert_pem).expect("write the CA certificate");
        path
    }

    /// A server certificate for [`SERVER_NAME`] (a fresh key and serial
    /// each time).
    pub fn server(&self) -> Leaf {
        self.leaf(SERVER_NAME, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate for `name`.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(name, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("leaf parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// A rustls client on *ring* that trusts `ca_pem`, presents `identity` when
/// given, and offers `alpn`.
pub fn client_config(ca_pem: &str, identity: Option<&Leaf>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM"))
        .expect("a CA certificate");
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots);
    let mut config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key PEM"),
            )
            .expect("a client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Dials `addr` and completes a TLS handshake for [`SERVER_NAME`].
pub async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(SERVER_NAME).map_err(io::Error::other)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// The certificate the server at `addr` presents to a new, full handshake
/// (never a resumed session, which keeps the certificate it began with).
pub async fn peer_certificate(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> io::Result<CertificateDer<'static>> {
    let mut config = (*config).clone();
    config.resumption = rustls::client::Resumption::disabled();
    let stream = connect(addr, Arc::new(config)).await?;
    let (_, connection) = stream.get_ref();
    connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.clone().into_owned())
        .ok_or_else(|| io::Error::other("no server certificate"))
}

/// The ALPN protocol the server at `addr` picks from `config`'s offer.
pub async fn negotiated_protocol(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> io::Result<Option<Vec<u8>>> {
    let stream = connect(addr, config).await?;
    Ok(stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
}

/// Connects tonic's channels over TLS: TCP to one address, then a rustls
/// handshake with ALPN `h2`.
#[derive(Debug, Clone)]
pub struct TlsConnector {
    addr: SocketAddr,
    config: Arc<ClientConfig>,
}

impl TlsConnector {
    /// Dials `addr` with `config` (whose ALPN becomes `h2`).
    pub fn new(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsConnector {
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        TlsConnector {
            addr,
            config: Arc::new(config),
        }
    }
}

impl tower::Service<Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let (addr, config) = (self.addr, Arc::clone(&self.config));
        Box::pin(async move { connect(addr, config).await.map(TokioIo::new) })
    }
}

/// A gRPC channel to the server on `port` of this host over TLS.
pub async fn channel(
    port: u16,
    config: Arc<ClientConfig>,
) -> Result<Channel, tonic::transport::Error> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Endpoint::from_shared(format!("https://{SERVER_NAME}:{port}"))
        .expect("uri")
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect_with_connector(TlsConnector::new(addr, config))
        .await
}

/// `GET path` over HTTPS (HTTP/1.1, as a provider calls a webhook).
pub async fn https_get(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    path: &str,
) -> io::Result<HttpResponse> {
    let mut stream = connect(addr, config).await?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw).await {
        Ok(_) => {}
        // A server that closes without close_notify after a complete
        // response (hyper does on Connection: close).
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no status line in {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok(HttpResponse { status, body })
}
