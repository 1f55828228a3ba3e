//! Authentication and tenants end to end: with `auth.enabled`, every call
//! of every service needs an API key (missing, malformed, wrong, revoked
//! and expired keys are UNAUTHENTICATED), each method its scope
//! (PERMISSION_DENIED without it), and a tenant's key sees nothing of
//! another tenant's: not by name, not in lists, not on the event stream.
//! Health checks need no key.

use std::time::{Duration, SystemTime};

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use prost::Message as _;
use tonic::Code;

use crate::callbacks::AGENT;
use crate::support::*;

crate::on_both_stores!(
    every_call_needs_a_valid_key,
    each_method_needs_its_scope,
    a_tenant_sees_nothing_of_another,
    every_method_refuses_another_tenants_resources,
    admins_manage_tenants_and_keys,
);

async fn with_auth(app: TestApp) -> TestApp {
    app.respawn_with(|s| {
        s.auth.enabled = true;
        // Revocations at once, for the tests.
        s.auth.cache_secs = 0;
    })
    .await
}

async fn key(app: &TestApp, tenant: &str, scopes: &[&str]) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    omniroute::auth::issue(app.store().as_ref(), tenant, "test", &scopes, None)
        .await
        .expect("a key")
        .token
}

/// Creates the tenants Acme and Globex; their keys: Acme's with every
/// scope but admin, Globex's with `globex_scopes`.
async fn acme_and_globex(app: &TestApp, globex_scopes: &[&str]) -> (String, String) {
    for tenant in ["acme", "globex"] {
        app.store().create_tenant(tenant, tenant).await.unwrap();
    }
    (
        key(app, "acme", &["*"]).await,
        key(app, "globex", globex_scopes).await,
    )
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A CreateTenant request.
fn new_tenant(id: &str, display_name: &str) -> pb::CreateTenantRequest {
    pb::CreateTenantRequest {
        tenant: Some(pb::Tenant {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            ..Default::default()
        }),
    }
}

/// A CreateApiKey request.
fn new_api_key(tenant: &str, display_name: &str, scopes: &[&str]) -> pb::CreateApiKeyRequest {
    pb::CreateApiKeyRequest {
        api_key: Some(pb::ApiKey {
            tenant: tenant.to_owned(),
            display_name: display_name.to_owned(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }),
    }
}

/// `message` with the key's authorization.
fn authed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer(key).parse().expect("a header"));
    request
}

/// Creates a contact with `key`; the created contact.
async fn create_as(app: &TestApp, key: &str, request: pb::CreateContactRequest) -> pb::Contact {
    app.contacts
        .clone()
        .create_contact(authed(request, key))
        .await
        .expect("created")
        .into_inner()
        .contact
        .expect("contact in response")
}

/// A contact, read with `key`.
async fn get_contact_as(app: &TestApp, key: &str, name: &str) -> pb::Contact {
    app.contacts
        .clone()
        .get_contact(authed(
            pb::GetContactRequest {
                name: name.to_owned(),
            },
            key,
        ))
        .await
        .expect("found")
        .into_inner()
        .contact
        .expect("contact in response")
}

/// Every unary method of the v1 API, from the server's own descriptors
/// (so a method added later is in this table too).
fn unary_methods() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(omniroute_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptors");
    let mut paths = Vec::new();
    for file in set.file {
        if file.package() != "omniroute.v1" {
            continue;
        }
        for service in &file.service {
            for method in &service.method {
                if method.server_streaming() || method.client_streaming() {
                    continue;
                }
                paths.push(format!(
                    "/omniroute.v1.{}/{}",
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    paths.sort();
    paths
}

async fn every_call_needs_a_valid_key(app: TestApp) {
    let app = with_auth(app).await;
    let paths = unary_methods();
    assert!(paths.len() > 30, "{paths:?}");
    let good = key(&app, "default", &["*", "admin"]).await;
    let (prefix, _) = good["omr_".len()..].split_once('_').unwrap();
    let wrong_secret = format!("omr_{prefix}_{}", "0".repeat(64));
    for path in &paths {
        for (authorization, why) in [
            (None, "no key"),
            (Some("Basic dXNlcjpwYXNz".to_owned()), "not a bearer"),
            (Some("Bearer nope".to_owned()), "not a key"),
            (Some(bearer(&wrong_secret)), "a wrong secret"),
        ] {
            let err = omniroute_e2e::raw::unary_as(
                &app.channel,
                path,
                Vec::new(),
                authorization.as_deref(),
            )
            .await
            .unwrap_err();
            assert_eq!(err.code(), Code::Unauthenticated, "{path}, {why}: {err:?}");
        }
        // The key itself: past authentication (whatever the empty request
        // then gets).
        let answer =
            omniroute_e2e::raw::unary_as(&app.channel, path, Vec::new(), Some(&bearer(&good)))
                .await;
        if let Err(e) = answer {
            assert!(
                !matches!(e.code(), Code::Unauthenticated | Code::PermissionDenied),
                "{path}: {e:?}"
            );
        }
    }
    // Revoked and expired keys.
    let revoked = key(&app, "default", &["contacts.read"]).await;
    let record = app
        .store()
        .find_api_key(&revoked["omr_".len()..revoked.len() - 65])
        .await
        .unwrap()
        .expect("the key");
    app.store().revoke_api_key(None, record.id).await.unwrap();
    let expired = omniroute::auth::issue(
        app.store().as_ref(),
        "default",
        "expired",
        &["contacts.read".to_owned()],
        Some(SystemTime::now() - Duration::from_secs(1)),
    )
    .await
    .unwrap()
    .token;
    let mut contacts = app.contacts.clone();
    for (key, why) in [(&revoked, "revoked"), (&expired, "expired")] {
        let err = contacts
            .list_contacts(authed(pb::ListContactsRequest::default(), key))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{why}");
        assert!(err.message().contains(why), "{why}: {}", err.message());
    }
    // Health answers without a key.
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "omniroute.v1.MessagingService".into(),
        })
        .await
        .expect("health is public")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    // The event stream needs its key too.
    let mut events = app.events.clone();
    let err = events
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

/// The scope each method needs (the server's table, which this checks).
fn scope_of(path: &str) -> &'static str {
    let (service, method) = path
        .trim_start_matches("/omniroute.v1.")
        .split_once('/')
        .unwrap();
    let reads = matches!(
        method,
        "GetContact"
            | "ListContacts"
            | "LookupContact"
            | "ExportContact"
            | "GetPreferences"
            | "ListConsentRecords"
            | "GetMessage"
            | "ListMessages"
            | "GetMessageMedia"
            | "PreviewRoute"
            | "GetCallback"
            | "ListCallbacks"
            | "GetEndpoint"
            | "ListEndpoints"
            | "ListEndpointDeliveries"
    );
    match (service, reads) {
        ("ContactService", true) | ("PreferenceService", true) => "contacts.read",
        ("ContactService", false) => "contacts.write",
        ("PreferenceService", false) => "preferences.write",
        ("MessagingService", true) => "messages.read",
        ("MessagingService", false) => "messages.send",
        ("CallbackService", true) => "callbacks.read",
        ("CallbackService", false) => "callbacks.write",
        ("EventService", _) => "events.subscribe",
        ("EndpointService", true) => "endpoints.read",
        ("EndpointService", false) => "endpoints.write",
        _ => "admin",
    }
}

const ALL_SCOPES: [&str; 11] = [
    "messages.send",
    "messages.read",
    "contacts.read",
    "contacts.write",
    "preferences.write",
    "callbacks.read",
    "callbacks.write",
    "events.subscribe",
    "endpoints.read",
    "endpoints.write",
    "admin",
];

async fn each_method_needs_its_scope(app: TestApp) {
    let app = with_auth(app).await;
    // One key per scope: all the others, and only it.
    let mut without = std::collections::HashMap::new();
    let mut only = std::collections::HashMap::new();
    for scope in ALL_SCOPES {
        let others: Vec<&str> = ALL_SCOPES.iter().copied().filter(|s| *s != scope).collect();
        without.insert(scope, key(&app, "default", &others).await);
        only.insert(scope, key(&app, "default", &[scope]).await);
    }
    for path in unary_methods() {
        let scope = scope_of(&path);
        let err = omniroute_e2e::raw::unary_as(
            &app.channel,
            &path,
            Vec::new(),
            Some(&bearer(&without[scope])),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{path} without {scope}");
        assert!(err.message().contains(scope), "{}", err.message());
        if let Err(e) = omniroute_e2e::raw::unary_as(
            &app.channel,
            &path,
            Vec::new(),
            Some(&bearer(&only[scope])),
        )
        .await
        {
            assert!(
                !matches!(e.code(), Code::Unauthenticated | Code::PermissionDenied),
                "{path} with only {scope}: {e:?}"
            );
        }
    }
    // The stream: events.subscribe.
    let mut events = app.events.clone();
    let err = events
        .subscribe(authed(
            pb::SubscribeRequest::default(),
            &without["events.subscribe"],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    events
        .subscribe(authed(
            pb::SubscribeRequest::default(),
            &only["events.subscribe"],
        ))
        .await
        .expect("subscribed");
    // `*` is every scope but admin.
    let star = key(&app, "default", &["*"]).await;
    let err = omniroute_e2e::raw::unary_as(
        &app.channel,
        "/omniroute.v1.AdminService/ListTenants",
        Vec::new(),
        Some(&bearer(&star)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
}

async fn a_tenant_sees_nothing_of_another(app: TestApp) {
    let mut app = with_auth(app).await;
    let (acme, globex) = acme_and_globex(&app, &["*"]).await;
    // Globex follows its stream from the start.
    let mut globex_events = app
        .events
        .subscribe(authed(from_the_beginning(), &globex))
        .await
        .expect("subscribed")
        .into_inner();

    // Acme's contact, message and callback (which Globex must not list).
    let anna = create_as(
        &app,
        &acme,
        new_contact(
            "Anna",
            vec![email("anna@acme.example"), voice("+49 151 55500301")],
        ),
    )
    .await;
    let _message = app
        .messaging
        .send_message(authed(text_to(&anna.name, "Hallo Anna"), &acme))
        .await
        .expect("accepted")
        .into_inner()
        .message
        .unwrap();
    let mut callbacks =
        pb::callback_service_client::CallbackServiceClient::new(app.channel.clone());
    let _callback = callbacks
        .create_callback(authed(
            callback_request(pb::Callback {
                schedule_time: Some(prost_types::Timestamp::from(
                    SystemTime::now() + Duration::from_secs(3600),
                )),
                ..callback_for(&anna.name, AGENT)
            }),
            &acme,
        ))
        .await
        .expect("scheduled")
        .into_inner()
        .callback
        .unwrap();

    // (Naming it is refused by every method: the table below.) Nor does
    // Globex list it.
    let mut contacts = app.contacts.clone();
    let listed = contacts
        .list_contacts(authed(pb::ListContactsRequest::default(), &globex))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.contacts.is_empty(), "{listed:?}");
    let listed = callbacks
        .list_callbacks(authed(pb::ListCallbacksRequest::default(), &globex))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.callbacks.is_empty(), "{listed:?}");
    // The same address is a new contact of Globex's own.
    let own = create_as(
        &app,
        &globex,
        new_contact("Anna at Globex", vec![email("anna@acme.example")]),
    )
    .await;
    assert_ne!(own.name, anna.name);
    // Globex's stream: the first event is its own contact, none of Acme's.
    let first = tokio::time::timeout(Duration::from_secs(20), globex_events.message())
        .await
        .expect("an event")
        .expect("the stream")
        .expect("not ended");
    assert_eq!(first.event.expect("an event").contact, own.name);
    // Acme still sees its own.
    let mine = get_contact_as(&app, &acme, &anna.name).await;
    assert_eq!(mine.display_name, "Anna");
}

async fn admins_manage_tenants_and_keys(app: TestApp) {
    let app = with_auth(app).await;
    let admin = key(&app, "default", &["admin"]).await;
    let mut service = pb::admin_service_client::AdminServiceClient::new(app.channel.clone());
    let tenant = service
        .create_tenant(authed(new_tenant("initech", "Initech"), &admin))
        .await
        .expect("created")
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(tenant.id, "initech");
    let again = service
        .create_tenant(authed(new_tenant("initech", ""), &admin))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let bad = service
        .create_tenant(authed(new_tenant("Not A Tenant", ""), &admin))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    let created = service
        .create_api_key(authed(
            new_api_key("initech", "billing", &["contacts.read"]),
            &admin,
        ))
        .await
        .expect("a key")
        .into_inner();
    assert!(created.key.starts_with("omr_"), "{}", created.key);
    let record = created.api_key.unwrap();
    assert_eq!(record.tenant, "initech");
    // The new key works, for its tenant and scope only.
    let mut contacts = app.contacts.clone();
    contacts
        .list_contacts(authed(pb::ListContactsRequest::default(), &created.key))
        .await
        .expect("contacts.read");
    let listed = service
        .list_api_keys(authed(
            pb::ListApiKeysRequest {
                tenant: "initech".into(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, record.name);
    // Keys are never listed with their secret.
    assert!(!format!("{listed:?}").contains(&created.key[21..]));
    let unknown_scope = service
        .create_api_key(authed(new_api_key("initech", "", &["everything"]), &admin))
        .await
        .unwrap_err();
    assert_eq!(unknown_scope.code(), Code::InvalidArgument);
    let revoked = service
        .revoke_api_key(authed(
            pb::RevokeApiKeyRequest {
                name: record.name.clone(),
            },
            &admin,
        ))
        .await
        .expect("revoked")
        .into_inner()
        .api_key
        .unwrap();
    assert!(revoked.revoke_time.is_some());
    let err = contacts
        .list_contacts(authed(pb::ListContactsRequest::default(), &created.key))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

/// Every unary method of the v1 API (from the server's descriptors: a
/// method added later must join this table), called with Globex's key on
/// Acme's resources: nothing is found, nothing of Acme's comes back, and
/// nothing of Acme's changes.
async fn every_method_refuses_another_tenants_resources(app: TestApp) {
    use prost::Message as _;
    let mut app = with_auth(app).await;
    let (acme, globex) = acme_and_globex(&app, &["*", "admin"]).await;
    let anna = create_as(
        &app,
        &acme,
        new_contact(
            "Acme-Anna-7f3",
            vec![email("anna@acme.example"), voice("+49 151 55500401")],
        ),
    )
    .await;
    let bert = create_as(
        &app,
        &acme,
        new_contact("Bert", vec![email("bert@acme.example")]),
    )
    .await;
    let later = Some(prost_types::Timestamp::from(
        SystemTime::now() + Duration::from_secs(3600),
    ));
    let later_to = |contact: &str| {
        send_to(
            contact,
            pb::Message {
                send_time: later,
                ..crate::messaging::text_message("Hallo Anna")
            },
        )
    };
    let mut own = later_to(&anna.name);
    if let Some(m) = own.message.as_mut() {
        m.content = crate::messaging::text_message("acme-private-text").content;
    }
    let message = app
        .messaging
        .send_message(authed(own, &acme))
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    let mut callbacks =
        pb::callback_service_client::CallbackServiceClient::new(app.channel.clone());
    let callback = callbacks
        .create_callback(authed(
            callback_request(pb::Callback {
                schedule_time: later,
                ..callback_for(&anna.name, AGENT)
            }),
            &acme,
        ))
        .await
        .unwrap()
        .into_inner()
        .callback
        .unwrap();
    let mut endpoints =
        pb::endpoint_service_client::EndpointServiceClient::new(app.channel.clone());
    let endpoint = endpoints
        .create_endpoint(authed(
            pb::CreateEndpointRequest {
                endpoint: Some(pb::Endpoint {
                    url: "https://acme-hooks.example/omniroute".into(),
                    description: "acme-endpoint-desc".into(),
                    ..Default::default()
                }),
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap();
    let endpoint_id = endpoint.name.trim_start_matches("endpoints/").to_owned();
    let contact_id = anna.name.trim_start_matches("contacts/").to_owned();
    let message_id = message.name.trim_start_matches("messages/").to_owned();
    let callback_id = callback.name.trim_start_matches("callbacks/").to_owned();
    let prefs = format!("{}/preferences", anna.name);

    // Each method, and what it asks of Acme's data. `None`: a method that
    // names nothing of another tenant's (it is checked for leaks only).
    let request = |method: &str| -> Option<Vec<u8>> {
        let names = |name: &str| Some(name.to_owned());
        Some(match method {
            "CreateContact" => return None,
            "ListContacts" => pb::ListContactsRequest::default().encode_to_vec(),
            "GetContact" => pb::GetContactRequest {
                name: anna.name.clone(),
            }
            .encode_to_vec(),
            "UpdateContact" => pb::UpdateContactRequest {
                contact: Some(pb::Contact {
                    name: anna.name.clone(),
                    display_name: "Taken".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["display_name"]),
            }
            .encode_to_vec(),
            "DeleteContact" => pb::DeleteContactRequest {
                name: anna.name.clone(),
            }
            .encode_to_vec(),
            "LinkIdentity" => link(&anna.name, email("mine@globex.example")).encode_to_vec(),
            "UnlinkIdentity" => pb::UnlinkIdentityRequest {
                contact: anna.name.clone(),
                identity: Some(email("anna@acme.example")),
            }
            .encode_to_vec(),
            "LookupContact" => pb::LookupContactRequest {
                key: Some(pb::lookup_contact_request::Key::Address(
                    "anna@acme.example".into(),
                )),
            }
            .encode_to_vec(),
            "MergeContacts" => merge(&anna.name, &[&bert.name]).encode_to_vec(),
            "ExportContact" => pb::ExportContactRequest {
                name: anna.name.clone(),
            }
            .encode_to_vec(),
            "GetPreferences" => pb::GetPreferencesRequest {
                name: prefs.clone(),
            }
            .encode_to_vec(),
            "UpdatePreferences" => pb::UpdatePreferencesRequest {
                preferences: Some(pb::Preferences {
                    name: prefs.clone(),
                    locale: "fr".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["locale"]),
            }
            .encode_to_vec(),
            "CreateConsentRecord" => record_consent(
                &anna.name,
                pb::ConsentRecord {
                    channel: pb::Channel::Email as i32,
                    category: pb::Category::Marketing as i32,
                    action: pb::ConsentAction::Grant as i32,
                    source: "test".into(),
                    legal_basis: pb::LegalBasis::Consent as i32,
                    ..Default::default()
                },
            )
            .encode_to_vec(),
            "ListConsentRecords" => pb::ListConsentRecordsRequest {
                parent: anna.name.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
            "SendMessage" => later_to(&anna.name).encode_to_vec(),
            "BatchSendMessages" => pb::BatchSendMessagesRequest {
                requests: vec![later_to(&anna.name)],
            }
            .encode_to_vec(),
            "PreviewRoute" => pb::PreviewRouteRequest {
                send: Some(later_to(&anna.name)),
            }
            .encode_to_vec(),
            "GetMessage" => pb::GetMessageRequest {
                name: message.name.clone(),
            }
            .encode_to_vec(),
            "ListMessages" => pb::ListMessagesRequest {
                contact: anna.name.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
            "CancelMessage" => pb::CancelMessageRequest {
                name: message.name.clone(),
            }
            .encode_to_vec(),
            "RetryMessage" => pb::RetryMessageRequest {
                name: message.name.clone(),
            }
            .encode_to_vec(),
            "GetMessageMedia" => pb::GetMessageMediaRequest {
                name: message.name.clone(),
            }
            .encode_to_vec(),
            "MarkMessageRead" => pb::MarkMessageReadRequest {
                name: message.name.clone(),
            }
            .encode_to_vec(),
            "CreateCallback" => callback_request(callback_for(&anna.name, AGENT)).encode_to_vec(),
            "GetCallback" => pb::GetCallbackRequest {
                name: callback.name.clone(),
            }
            .encode_to_vec(),
            "ListCallbacks" => pb::ListCallbacksRequest {
                contact: names(&anna.name).unwrap_or_default(),
                ..Default::default()
            }
            .encode_to_vec(),
            "CancelCallback" => pb::CancelCallbackRequest {
                name: callback.name.clone(),
            }
            .encode_to_vec(),
            "CreateEndpoint" => return None,
            "ListEndpoints" => pb::ListEndpointsRequest::default().encode_to_vec(),
            "GetEndpoint" => pb::GetEndpointRequest {
                name: endpoint.name.clone(),
            }
            .encode_to_vec(),
            "UpdateEndpoint" => pb::UpdateEndpointRequest {
                endpoint: Some(pb::Endpoint {
                    name: endpoint.name.clone(),
                    description: "Taken".into(),
                    ..Default::default()
                }),
                update_mask: mask(&["description"]),
            }
            .encode_to_vec(),
            "DeleteEndpoint" => pb::DeleteEndpointRequest {
                name: endpoint.name.clone(),
            }
            .encode_to_vec(),
            "RotateEndpointSecret" => pb::RotateEndpointSecretRequest {
                name: endpoint.name.clone(),
                previous_secret_grace: None,
            }
            .encode_to_vec(),
            "ListEndpointDeliveries" => pb::ListEndpointDeliveriesRequest {
                name: endpoint.name.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
            "ReplayEndpoint" => pb::ReplayEndpointRequest {
                name: endpoint.name.clone(),
                after_cursor: String::new(),
                start_time: Some(prost_types::Timestamp::default()),
            }
            .encode_to_vec(),
            "SendTestEvent" => pb::SendTestEventRequest {
                name: endpoint.name.clone(),
            }
            .encode_to_vec(),
            // The operator's service: every tenant's keys, for admin keys
            // (checked by the scope test); it names no contact data.
            "CreateTenant" | "ListTenants" | "CreateApiKey" | "ListApiKeys" | "RevokeApiKey" => {
                return None;
            }
            other => panic!("{other}: a method this table does not know; add it"),
        })
    };
    // What only Acme's data holds; an id or address a request itself names
    // may come back in its own error text, which tells nothing.
    let markers = [
        "Acme-Anna-7f3",
        "acme-private-text",
        contact_id.as_str(),
        message_id.as_str(),
        callback_id.as_str(),
        endpoint_id.as_str(),
        "acme-hooks.example",
        "acme-endpoint-desc",
        "anna@acme.example",
        "4915155500401",
    ];
    for path in unary_methods() {
        let method = path.rsplit('/').next().unwrap().to_owned();
        let Some(body) = request(&method) else {
            continue;
        };
        let asked = String::from_utf8_lossy(&body).into_owned();
        match omniroute_e2e::raw::unary_as(&app.channel, &path, body, Some(&bearer(&globex))).await
        {
            Ok(answer) => {
                let text = String::from_utf8_lossy(&answer);
                for marker in markers.iter().filter(|m| !asked.contains(**m)) {
                    assert!(
                        !text.contains(marker),
                        "{method} answered Acme's {marker}: {text:?}"
                    );
                }
            }
            Err(e) => assert_eq!(e.code(), Code::NotFound, "{method}: {e:?}"),
        }
    }
    // Acme's data is as it was.
    let mut contacts = app.contacts.clone();
    let anna_now = get_contact_as(&app, &acme, &anna.name).await;
    assert_eq!(anna_now.display_name, "Acme-Anna-7f3");
    assert_eq!(anna_now.identities.len(), 2);
    let still = app
        .messaging
        .get_message(authed(
            pb::GetMessageRequest {
                name: message.name.clone(),
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    assert_eq!(
        still.status,
        pb::MessageStatus::Queued as i32,
        "not canceled"
    );
    let cb = callbacks
        .get_callback(authed(
            pb::GetCallbackRequest {
                name: callback.name.clone(),
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner()
        .callback
        .unwrap();
    assert_eq!(cb.state, pb::CallbackState::Scheduled as i32);
    let endpoint_now = endpoints
        .get_endpoint(authed(
            pb::GetEndpointRequest {
                name: endpoint.name.clone(),
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .unwrap();
    assert_eq!(endpoint_now, endpoint, "not changed, not rotated");
    let prefs_now = app
        .preferences
        .get_preferences(authed(
            pb::GetPreferencesRequest {
                name: prefs.clone(),
            },
            &acme,
        ))
        .await
        .unwrap()
        .into_inner()
        .preferences
        .unwrap();
    assert_ne!(prefs_now.locale, "fr");
    let mine = contacts
        .list_contacts(authed(pb::ListContactsRequest::default(), &acme))
        .await
        .unwrap()
        .into_inner()
        .contacts;
    assert_eq!(mine.len(), 2, "no merge, no erasure");
}
