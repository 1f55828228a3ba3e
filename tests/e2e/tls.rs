//! TLS on the listeners (`[tls]`), with certificates made for each test: a
//! gRPC client that trusts the CA is answered and a plain-text one is not;
//! with `tls.client_ca_file` only clients with a certificate signed by that
//! CA get through; a reload (SIGHUP's work, or a changed file) serves the
//! new certificate to new handshakes; the webhook listener answers HTTPS
//! without asking for a client certificate, or stays plain with
//! `tls.http = false`.
//!
//! TLS does not touch the store, so these run on the embedded store only.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use omniroute::Settings;
use omniroute_e2e::tls::{self, Authority, Leaf};
use omniroute_e2e::{Backend, TestApp};
use omniroute_proto::v1 as pb;
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// Points `[tls]` at `leaf`'s files in `dir`.
fn use_files(settings: &mut Settings, dir: &Path, leaf: &Leaf) {
    let (cert, key) = leaf.write(dir, "server");
    settings.tls.cert_file = cert;
    settings.tls.key_file = key;
    settings.tls.reload_secs = 0;
}

async fn health(channel: Channel) -> Result<ServingStatus, tonic::Status> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(response.into_inner().status())
}

/// Whether a gRPC call over a channel made with `config` gets an answer
/// (a refused handshake fails either the connection or the first call).
async fn answered(app: &TestApp, config: std::sync::Arc<rustls::ClientConfig>) -> bool {
    match tls::channel(app.port, config).await {
        Ok(channel) => health(channel).await.is_ok(),
        Err(_) => false,
    }
}

/// Whether a plain-text HTTP/1.1 request to `addr` gets an HTTP answer.
async fn plain_http_answers(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    raw.starts_with(b"HTTP/")
}

fn grpc_addr(app: &TestApp) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], app.port))
}

/// The certificate the gRPC listener presents to a new handshake.
async fn grpc_certificate(app: &TestApp, config: &Arc<ClientConfig>) -> CertificateDer<'static> {
    tls::peer_certificate(grpc_addr(app), config.clone())
        .await
        .expect("a handshake")
}

/// A gRPC client's configuration: trusts `ca`, has no certificate.
fn grpc_client_trusting(ca: &Authority) -> Arc<ClientConfig> {
    tls::client_config(&ca.cert_pem, None, &[b"h2"])
}

/// A new test CA's server certificate in a new folder, served by a new app
/// with `more` settings (given the folder): the folder, the CA, the
/// certificate and the app.
async fn serving(
    more: impl FnOnce(&mut Settings, &Path),
) -> (tempfile::TempDir, Authority, Leaf, TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("omniroute test CA");
    let server = ca.server();
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        use_files(s, dir.path(), &server);
        more(s, dir.path());
    })
    .await;
    (dir, ca, server, app)
}

#[tokio::test]
async fn grpc_and_webhooks_serve_tls_and_a_reload_changes_the_certificate() {
    let (dir, ca, first, app) = serving(|_, _| {}).await;
    let trusting = grpc_client_trusting(&ca);
    // Clients that connect and never start their handshake hold up no one.
    let _silent_grpc = tokio::net::TcpStream::connect(grpc_addr(&app))
        .await
        .unwrap();
    let _silent_http = tokio::net::TcpStream::connect(app.http_addr).await.unwrap();

    // A client that trusts the CA is answered, by every service.
    let channel = tls::channel(app.port, trusting.clone())
        .await
        .expect("a TLS channel");
    assert_eq!(
        health(channel.clone()).await.expect("health over TLS"),
        ServingStatus::Serving
    );
    let mut contacts = pb::contact_service_client::ContactServiceClient::new(channel.clone());
    let created = contacts
        .create_contact(crate::support::new_contact("Tess", vec![]))
        .await
        .expect("a call over TLS")
        .into_inner();
    assert_eq!(created.contact.expect("the contact").display_name, "Tess");
    assert_eq!(
        tls::negotiated_protocol(grpc_addr(&app), trusting.clone())
            .await
            .unwrap()
            .as_deref(),
        Some(&b"h2"[..])
    );

    // Plain text is refused, and so is a client that does not trust the CA.
    assert!(health(app.channel.clone()).await.is_err(), "plain text");
    let stranger = Authority::new("another CA");
    assert!(
        !answered(&app, grpc_client_trusting(&stranger)).await,
        "a client that trusts another CA"
    );

    // The webhook listener serves the same certificate over HTTPS.
    let https = tls::client_config(&ca.cert_pem, None, &[b"http/1.1"]);
    let healthz = tls::https_get(app.http_addr, https.clone(), "/healthz")
        .await
        .expect("HTTPS");
    assert_eq!(healthz.status, 200, "{healthz:?}");
    assert_eq!(
        tls::peer_certificate(app.http_addr, https.clone())
            .await
            .unwrap(),
        first.der
    );
    assert!(
        !plain_http_answers(app.http_addr).await,
        "plain HTTP on the TLS webhook listener"
    );

    // A new certificate (same name, new key and serial), then a reload:
    // new handshakes get it on both listeners; the connection already open
    // goes on.
    assert_eq!(grpc_certificate(&app, &trusting).await, first.der);
    let second = ca.server();
    second.write(dir.path(), "server");
    app.reload_tls().expect("the reload succeeds");
    assert_eq!(grpc_certificate(&app, &trusting).await, second.der);
    assert_eq!(
        tls::peer_certificate(app.http_addr, https).await.unwrap(),
        second.der
    );
    assert_eq!(
        health(channel.clone()).await.expect("the open connection"),
        ServingStatus::Serving
    );

    // A broken file is refused and the certificate in use stays.
    std::fs::write(dir.path().join("server.key"), "not a key\n").unwrap();
    let error = app.reload_tls().unwrap_err().to_string();
    assert!(error.contains("tls.key_file"), "{error}");
    assert_eq!(grpc_certificate(&app, &trusting).await, second.der);
    assert!(answered(&app, trusting).await);
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn mutual_tls_lets_in_only_clients_with_a_certificate_from_the_ca() {
    let clients_ca = Authority::new("omniroute clients CA");
    let (_dir, ca, _server, app) = serving(|s, dir| {
        s.tls.client_ca_file = clients_ca.write(dir, "clients-ca");
    })
    .await;

    // No certificate: the handshake is refused.
    assert!(
        !answered(&app, grpc_client_trusting(&ca)).await,
        "a client without a certificate"
    );
    // A certificate from another CA (here the server's): refused too.
    let outsider = ca.client("outsider");
    assert!(
        !answered(
            &app,
            tls::client_config(&ca.cert_pem, Some(&outsider), &[b"h2"])
        )
        .await,
        "a client certificate the clients' CA did not sign"
    );
    // One the clients' CA signed: answered.
    let member = clients_ca.client("billing-service");
    let config = tls::client_config(&ca.cert_pem, Some(&member), &[b"h2"]);
    let channel = tls::channel(app.port, config).await.expect("mTLS channel");
    assert_eq!(
        health(channel).await.expect("health over mTLS"),
        ServingStatus::Serving
    );

    // Webhook callers are never asked for a certificate.
    let healthz = tls::https_get(
        app.http_addr,
        tls::client_config(&ca.cert_pem, None, &[b"http/1.1"]),
        "/healthz",
    )
    .await
    .expect("HTTPS without a client certificate");
    assert_eq!(healthz.status, 200, "{healthz:?}");
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn changed_files_are_picked_up_without_a_signal() {
    let (dir, ca, first, app) = serving(|s, _| s.tls.reload_secs = 1).await;
    let trusting = grpc_client_trusting(&ca);
    assert_eq!(grpc_certificate(&app, &trusting).await, first.der);
    let second = ca.server();
    second.write(dir.path(), "server");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if grpc_certificate(&app, &trusting).await == second.der {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate is served within tls.reload_secs"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await.expect("a clean stop");
}

#[tokio::test]
async fn webhooks_stay_plain_with_tls_http_off() {
    let (_dir, ca, _server, app) = serving(|s, _| s.tls.http = false).await;
    // gRPC is TLS ...
    assert!(answered(&app, grpc_client_trusting(&ca)).await);
    // ... and the webhook listener plain HTTP, for a proxy in front of it.
    let healthz = omniroute_e2e::http(app.http_addr, "GET", "/healthz", &[], &[]).await;
    assert_eq!(healthz.status, 200, "{healthz:?}");
    app.stop().await.expect("a clean stop");
}
