//! EndpointService end to end: endpoints registered, read, listed in
//! pages, updated by mask, deleted, their secret rotated; the secret shown
//! once and never stored in clear; URLs that could reach private targets
//! refused; scopes and tenants kept apart.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use pb::endpoint_service_client::EndpointServiceClient;
use prost::Message as _;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::*;

crate::on_both_stores!(
    create_shows_the_secret_once_and_stores_it_sealed,
    endpoints_list_in_pages,
    update_changes_only_the_masked_fields,
    a_deleted_endpoint_is_not_found,
    rotation_returns_a_new_secret_and_the_previous_ones_expiry,
    unsafe_urls_are_refused_and_create_nothing,
    loopback_http_needs_its_setting,
    scopes_and_tenants_keep_endpoints_apart,
    without_a_key_endpoints_are_unavailable,
);

fn client(app: &TestApp) -> EndpointServiceClient<Channel> {
    EndpointServiceClient::new(app.channel.clone())
}

fn endpoint(url: &str) -> pb::Endpoint {
    pb::Endpoint {
        url: url.to_owned(),
        description: "orders".to_owned(),
        event_types: vec![
            pb::EventType::MessageFailed as i32,
            pb::EventType::MessageReceived as i32,
        ],
        ..Default::default()
    }
}

fn new_endpoint(url: &str) -> pb::CreateEndpointRequest {
    pb::CreateEndpointRequest {
        endpoint: Some(endpoint(url)),
    }
}

async fn create(app: &TestApp, url: &str) -> (pb::Endpoint, String) {
    let created = client(app)
        .create_endpoint(new_endpoint(url))
        .await
        .expect("create_endpoint")
        .into_inner();
    (created.endpoint.expect("an endpoint"), created.secret)
}

async fn get_endpoint(app: &TestApp, name: &str) -> Result<pb::Endpoint, tonic::Status> {
    client(app)
        .get_endpoint(pb::GetEndpointRequest {
            name: name.to_owned(),
        })
        .await
        .map(|r| r.into_inner().endpoint.expect("an endpoint"))
}

async fn list_page(app: &TestApp, size: i32, token: &str) -> pb::ListEndpointsResponse {
    client(app)
        .list_endpoints(pb::ListEndpointsRequest {
            page_size: size,
            page_token: token.to_owned(),
        })
        .await
        .expect("list_endpoints")
        .into_inner()
}

/// Everything the store holds, as bytes: the PostgreSQL table as text, or
/// the embedded store's files.
async fn stored_bytes(app: &TestApp) -> Vec<u8> {
    match app.store_url() {
        Some(url) => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connects");
            tokio::spawn(connection);
            let rows = client
                .query("SELECT e::text FROM endpoints e", &[])
                .await
                .expect("query");
            rows.iter()
                .flat_map(|r| r.get::<_, String>(0).into_bytes())
                .collect()
        }
        None => {
            let mut bytes = Vec::new();
            for file in ["omniroute.db", "omniroute.db-wal"] {
                if let Ok(b) = std::fs::read(app.data_dir().join(file)) {
                    bytes.extend(b);
                }
            }
            bytes
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn create_shows_the_secret_once_and_stores_it_sealed(app: TestApp) {
    let (created, secret) = create(&app, "https://hooks.example.com/omniroute").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&secret["whsec_".len()..])
        .expect("base64");
    assert_eq!(raw.len(), 24);
    assert!(created.name.starts_with("endpoints/"));
    assert_eq!(created.url, "https://hooks.example.com/omniroute");
    assert!(!created.etag.is_empty());
    // Get and List answer without it.
    let read = get_endpoint(&app, &created.name).await.unwrap();
    assert_eq!(read, created);
    let listed = list_page(&app, 0, "").await;
    assert_eq!(listed.endpoints, vec![created.clone()]);
    for answer in [read.encode_to_vec(), listed.encode_to_vec()] {
        assert!(!contains(&answer, secret.as_bytes()));
        assert!(!contains(&answer, &raw));
    }
    // The database holds neither the secret nor its bytes.
    let stored = stored_bytes(&app).await;
    assert!(contains(&stored, b"hooks.example.com"), "the row is read");
    assert!(!contains(&stored, secret.as_bytes()));
    assert!(!contains(&stored, &secret.as_bytes()["whsec_".len()..]));
    assert!(!contains(&stored, &raw));
    assert!(!contains(&stored, hex(&raw).as_bytes()));
}

async fn endpoints_list_in_pages(app: TestApp) {
    let mut names = Vec::new();
    for i in 0..3 {
        names.push(
            create(&app, &format!("https://h{i}.example.com/"))
                .await
                .0
                .name,
        );
    }
    let first = list_page(&app, 2, "").await;
    assert_eq!(first.endpoints.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = list_page(&app, 2, &first.next_page_token).await;
    assert_eq!(second.next_page_token, "");
    let seen: Vec<String> = first
        .endpoints
        .iter()
        .chain(&second.endpoints)
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(seen, names);
    let bad = client(&app)
        .list_endpoints(pb::ListEndpointsRequest {
            page_size: 2,
            page_token: "forged".to_owned(),
        })
        .await
        .unwrap_err();
    assert_invalid(&bad, "page_token");
}

async fn update_changes_only_the_masked_fields(app: TestApp) {
    let (created, _) = create(&app, "https://hooks.example.com/a").await;
    let mut change = endpoint("https://ignored.example.com/");
    change.name = created.name.clone();
    change.description = "billing".to_owned();
    change.disabled = true;
    change.etag = created.etag.clone();
    let updated = client(&app)
        .update_endpoint(pb::UpdateEndpointRequest {
            endpoint: Some(change.clone()),
            update_mask: mask(&["description", "disabled"]),
        })
        .await
        .expect("update_endpoint")
        .into_inner()
        .endpoint
        .unwrap();
    assert_eq!(updated.description, "billing");
    assert!(updated.disabled);
    assert_eq!(updated.url, "https://hooks.example.com/a");
    assert_ne!(updated.etag, created.etag);
    assert_eq!(get_endpoint(&app, &created.name).await.unwrap(), updated);
    // The old etag is stale: refused, nothing changed.
    change.description = "late".to_owned();
    let stale = client(&app)
        .update_endpoint(pb::UpdateEndpointRequest {
            endpoint: Some(change.clone()),
            update_mask: mask(&["description"]),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted, "{stale:?}");
    // A bad URL in the mask, or an unknown field: refused, nothing changed.
    change.etag.clear();
    change.url = "http://hooks.example.com/".to_owned();
    let bad = client(&app)
        .update_endpoint(pb::UpdateEndpointRequest {
            endpoint: Some(change.clone()),
            update_mask: mask(&["url", "description"]),
        })
        .await
        .unwrap_err();
    assert_invalid(&bad, "endpoint.url");
    let bad = client(&app)
        .update_endpoint(pb::UpdateEndpointRequest {
            endpoint: Some(change),
            update_mask: mask(&["secret"]),
        })
        .await
        .unwrap_err();
    assert_invalid(&bad, "update_mask.paths[0]");
    assert_eq!(get_endpoint(&app, &created.name).await.unwrap(), updated);
}

async fn a_deleted_endpoint_is_not_found(app: TestApp) {
    let (created, _) = create(&app, "https://hooks.example.com/").await;
    client(&app)
        .delete_endpoint(pb::DeleteEndpointRequest {
            name: created.name.clone(),
        })
        .await
        .expect("delete_endpoint");
    let gone = get_endpoint(&app, &created.name).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "{gone:?}");
    let again = client(&app)
        .delete_endpoint(pb::DeleteEndpointRequest { name: created.name })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

fn seconds_from_now(t: &prost_types::Timestamp) -> i64 {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    t.seconds - now
}

async fn rotation_returns_a_new_secret_and_the_previous_ones_expiry(app: TestApp) {
    let (created, first) = create(&app, "https://hooks.example.com/").await;
    assert_eq!(created.previous_secret_expire_time, None);
    let rotated = client(&app)
        .rotate_endpoint_secret(pb::RotateEndpointSecretRequest {
            name: created.name.clone(),
            previous_secret_grace: None,
        })
        .await
        .expect("rotate")
        .into_inner();
    assert!(rotated.secret.starts_with("whsec_"));
    assert_ne!(rotated.secret, first);
    let endpoint = rotated.endpoint.unwrap();
    let expiry = endpoint.previous_secret_expire_time.expect("an expiry");
    let left = seconds_from_now(&expiry);
    assert!((86_390..=86_401).contains(&left), "{left}");
    assert_eq!(get_endpoint(&app, &created.name).await.unwrap(), endpoint);
    // A grace of one minute.
    let rotated = client(&app)
        .rotate_endpoint_secret(pb::RotateEndpointSecretRequest {
            name: created.name.clone(),
            previous_secret_grace: Some(Duration::from_secs(60).try_into().unwrap()),
        })
        .await
        .expect("rotate")
        .into_inner();
    let left = seconds_from_now(
        &rotated
            .endpoint
            .unwrap()
            .previous_secret_expire_time
            .unwrap(),
    );
    assert!((50..=61).contains(&left), "{left}");
    // Neither secret is stored in clear.
    let stored = stored_bytes(&app).await;
    assert!(!contains(&stored, rotated.secret.as_bytes()));
    // Too long a grace is refused.
    let bad = client(&app)
        .rotate_endpoint_secret(pb::RotateEndpointSecretRequest {
            name: created.name,
            previous_secret_grace: Some(Duration::from_secs(8 * 86_400).try_into().unwrap()),
        })
        .await
        .unwrap_err();
    assert_invalid(&bad, "previous_secret_grace");
}

async fn unsafe_urls_are_refused_and_create_nothing(app: TestApp) {
    for url in [
        "http://hooks.example.com/",
        "ftp://hooks.example.com/",
        "https://10.0.0.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::1]/",
        "http://[::1]/",
        "https://user:pw@hooks.example.com/",
        "https://hooks.example.com/#x",
        "",
    ] {
        let refused = client(&app)
            .create_endpoint(new_endpoint(url))
            .await
            .unwrap_err();
        assert_invalid(&refused, "endpoint.url");
    }
    // Other fields at fault are named too.
    let mut bad = endpoint("https://hooks.example.com/");
    bad.event_types = vec![0];
    bad.contact = "people/1".to_owned();
    let refused = client(&app)
        .create_endpoint(pb::CreateEndpointRequest {
            endpoint: Some(bad),
        })
        .await
        .unwrap_err();
    assert_invalid(&refused, "endpoint.event_types[0]");
    assert_invalid(&refused, "endpoint.contact");
    assert!(list_page(&app, 0, "").await.endpoints.is_empty());
}

async fn loopback_http_needs_its_setting(app: TestApp) {
    let refused = client(&app)
        .create_endpoint(new_endpoint("http://127.0.0.1:9/hook"))
        .await
        .unwrap_err();
    assert_invalid(&refused, "endpoint.url");
    let app = app
        .respawn_with(|s| s.endpoints.allow_http_loopback = true)
        .await;
    let (created, _) = create(&app, "http://127.0.0.1:9/hook").await;
    assert_eq!(created.url, "http://127.0.0.1:9/hook");
    // Still not to other hosts.
    let refused = client(&app)
        .create_endpoint(new_endpoint("http://hooks.example.com/"))
        .await
        .unwrap_err();
    assert_invalid(&refused, "endpoint.url");
}

fn authed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("a header"),
    );
    request
}

async fn key(app: &TestApp, tenant: &str, scopes: &[&str]) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    omniroute::auth::issue(app.store().as_ref(), tenant, "test", &scopes, None)
        .await
        .expect("a key")
        .token
}

async fn scopes_and_tenants_keep_endpoints_apart(app: TestApp) {
    let app = app
        .respawn_with(|s| {
            s.auth.enabled = true;
            s.auth.cache_secs = 0;
        })
        .await;
    for tenant in ["acme", "globex"] {
        app.store().create_tenant(tenant, tenant).await.unwrap();
    }
    let writer = key(&app, "acme", &["endpoints.write", "endpoints.read"]).await;
    let reader = key(&app, "acme", &["endpoints.read"]).await;
    let globex = key(&app, "globex", &["endpoints.write", "endpoints.read"]).await;
    let mut c = client(&app);
    let created = c
        .create_endpoint(authed(new_endpoint("https://acme.example.com/"), &writer))
        .await
        .expect("create")
        .into_inner()
        .endpoint
        .unwrap();
    // A reader reads, and cannot create, change, rotate or delete.
    let listed = c
        .list_endpoints(authed(pb::ListEndpointsRequest::default(), &reader))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.endpoints.len(), 1);
    let denied = c
        .create_endpoint(authed(new_endpoint("https://acme.example.com/2"), &reader))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let denied = c
        .rotate_endpoint_secret(authed(
            pb::RotateEndpointSecretRequest {
                name: created.name.clone(),
                previous_secret_grace: None,
            },
            &reader,
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    // Another tenant finds nothing of it.
    let get = pb::GetEndpointRequest {
        name: created.name.clone(),
    };
    let hidden = c.get_endpoint(authed(get, &globex)).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    let hidden = c
        .delete_endpoint(authed(
            pb::DeleteEndpointRequest {
                name: created.name.clone(),
            },
            &globex,
        ))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let theirs = c
        .list_endpoints(authed(pb::ListEndpointsRequest::default(), &globex))
        .await
        .expect("list")
        .into_inner();
    assert!(theirs.endpoints.is_empty());
    let get = pb::GetEndpointRequest {
        name: created.name.clone(),
    };
    assert!(c.get_endpoint(authed(get, &reader)).await.is_ok());
}

async fn without_a_key_endpoints_are_unavailable(app: TestApp) {
    let app = app
        .respawn_with(|s| s.endpoints.secret_key = omniroute::settings::Secret::new(""))
        .await;
    let refused = client(&app)
        .create_endpoint(new_endpoint("https://hooks.example.com/"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("endpoints.secret_key"));
}
