//! TLS in the binary: settings that name a key of another certificate stop
//! it before it starts, and SIGHUP reloads the certificate files (new
//! handshakes get the new certificate; a broken file is refused and the
//! old certificate stays).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::start;

/// A CA and the server certificates it signs, for "localhost".
struct Authority {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    fn new() -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "omniroute test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Authority {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes a new server certificate and its key to `dir/server.crt` and
    /// `dir/server.key`; returns the certificate.
    fn issue(&self, dir: &Path) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("server.crt"), cert.pem()).unwrap();
        cert.der().clone()
    }

    /// A client that trusts this CA, offers `alpn` and never resumes a
    /// session (each handshake shows the certificate served now).
    fn client(&self, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).unwrap())
            .unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }
}

async fn handshake(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let addr: SocketAddr = addr.parse().unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("a TLS handshake")
}

async fn served(addr: &str, config: Arc<rustls::ClientConfig>) -> CertificateDer<'static> {
    let stream = handshake(addr, config).await;
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

fn tls_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "OMNIROUTE__TLS__CERT_FILE",
            dir.join("server.crt").display().to_string(),
        ),
        (
            "OMNIROUTE__TLS__KEY_FILE",
            dir.join("server.key").display().to_string(),
        ),
        ("OMNIROUTE__TLS__RELOAD_SECS", "0".to_owned()),
    ]
}

#[test]
fn a_key_of_another_certificate_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new();
    ca.issue(dir.path());
    let other = tempfile::tempdir().unwrap();
    ca.issue(other.path());
    let mut env = tls_env(dir.path());
    env[1].1 = other.path().join("server.key").display().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_omniroute"))
        .arg("check")
        .current_dir(dir.path())
        .env_clear()
        .envs(env)
        .output()
        .expect("omniroute runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tls.key_file"), "{stderr}");
    assert!(stderr.contains("does not match"), "{stderr}");
}

#[tokio::test]
async fn sighup_reloads_the_certificate_and_keeps_it_when_the_files_are_broken() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new();
    let first = ca.issue(dir.path());
    let env = tls_env(dir.path());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = start(dir.path(), &env);
    assert!(
        server
            .log()
            .iter()
            .any(|l| l.contains("omniroute listening") && l.contains("tls=\"on\"")),
        "{:?}",
        server.log()
    );
    let grpc = ca.client(b"h2");
    let web = ca.client(b"http/1.1");
    assert_eq!(served(server.addr(), grpc.clone()).await, first);
    assert_eq!(served(server.http_addr(), web.clone()).await, first);

    // The webhook listener answers HTTPS.
    let mut stream = handshake(server.http_addr(), web.clone()).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // New files, SIGHUP: new handshakes on both listeners get them.
    let second = ca.issue(dir.path());
    server.hangup();
    assert!(
        server.wait_for_log("TLS files reloaded", Duration::from_secs(10)),
        "{:?}",
        server.log()
    );
    assert_eq!(served(server.addr(), grpc.clone()).await, second);
    assert_eq!(served(server.http_addr(), web.clone()).await, second);

    // A broken certificate file, SIGHUP: refused, and the last good
    // certificate stays in use.
    std::fs::write(
        dir.path().join("server.crt"),
        "-----BEGIN CERTIFICATE-----\n",
    )
    .unwrap();
    server.hangup();
    assert!(
        server.wait_for_log("TLS files not reloaded", Duration::from_secs(10)),
        "{:?}",
        server.log()
    );
    let warning = server
        .log()
        .into_iter()
        .find(|l| l.contains("TLS files not reloaded"))
        .unwrap();
    assert!(warning.contains("tls.cert_file"), "{warning}");
    assert_eq!(served(server.addr(), grpc).await, second);

    assert!(server.terminate().success());
}
