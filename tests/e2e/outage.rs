//! A database outage as the server sees it (every connection cut, new ones
//! refused, through a proxy in front of PostgreSQL), then recovery: callers
//! get UNAVAILABLE with retry information (never INTERNAL), webhooks 503 so
//! the provider redelivers, health says NOT_SERVING, and once the database
//! is back everything works again without a restart and nothing accepted
//! is lost.

use std::time::Duration;

use omniroute_e2e::faults::proxied_pg_url;
use omniroute_e2e::{SANDBOX_SECRET, TestApp, http};
use omniroute_proto::v1 as pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt;

use crate::support::*;

const WAIT: Duration = Duration::from_secs(30);

async fn send(app: &mut TestApp, to: &str, body: &str) -> Result<pb::Message, tonic::Status> {
    try_send(app, text_to_address(email(to), body)).await
}

async fn health(app: &TestApp, service: &str) -> ServingStatus {
    let status = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health answers")
        .into_inner()
        .status;
    ServingStatus::try_from(status).expect("a serving status")
}

async fn wait_health(app: &TestApp, service: &str, want: ServingStatus) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while health(app, service).await != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service} never became {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Retries `call` until it stops answering UNAVAILABLE (the caller a gRPC
/// client's retry policy would be), failing on any other error.
async fn until_available<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match call().await {
            Ok(value) => return value,
            Err(e) if e.code() == Code::Unavailable && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("not available again: {e:?}"),
        }
    }
}

#[tokio::test]
async fn a_database_outage_answers_unavailable_and_recovers_without_loss() {
    let (proxy, url) = proxied_pg_url().await;
    let mut app = TestApp::spawn_on_pg(url, |s| {
        s.store.connect_timeout_secs = 1;
        // Deliveries wait long enough for the outage to catch some in flight.
        s.sandbox.delivery_delay_ms = 300;
    })
    .await;
    let mut accepted = Vec::new();
    for i in 0..5 {
        accepted.push(
            send(&mut app, &format!("c{i}@example.com"), "before")
                .await
                .unwrap(),
        );
    }
    for service in [
        "",
        "omniroute.v1.ContactService",
        "omniroute.v1.PreferenceService",
        "omniroute.v1.MessagingService",
        "omniroute.v1.EventService",
        "omniroute.v1.CallbackService",
        "omniroute.v1.EndpointService",
    ] {
        assert_eq!(
            health(&app, service).await,
            ServingStatus::Serving,
            "{service}"
        );
    }

    proxy.cut();
    // Every call that needs the database: UNAVAILABLE with RetryInfo.
    let err = send(&mut app, "during@example.com", "during")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.get_details_retry_info().is_some(), "{err:?}");
    let err = app
        .contacts
        .get_contact(pb::GetContactRequest {
            name: accepted[0].contact.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    let err = app
        .messaging
        .get_message(pb::GetMessageRequest {
            name: accepted[0].name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    // A customer's message: 503, so the provider redelivers it later.
    let body = br#"{"messages":[{"id":"in-outage-1","from":"+4915112345678","text":"hello?"}]}"#;
    let signature = format!(
        "sha256={}",
        omniroute_whatsapp::signature_hex(SANDBOX_SECRET, body)
    );
    let headers = [
        ("Content-Type", "application/json"),
        ("X-Hub-Signature-256", signature.as_str()),
    ];
    let answer = http(app.http_addr, "POST", "/webhooks/whatsapp", &headers, body).await;
    assert_eq!(answer.status, 503, "{answer:?}");
    wait_health(
        &app,
        "omniroute.v1.MessagingService",
        ServingStatus::NotServing,
    )
    .await;
    wait_health(&app, "", ServingStatus::NotServing).await;

    proxy.restore();
    wait_health(
        &app,
        "omniroute.v1.MessagingService",
        ServingStatus::Serving,
    )
    .await;
    // No restart: calls work again.
    let after = until_available(|| {
        let mut app = app.messaging.clone();
        async move {
            app.send_message(text_to_address(email("after@example.com"), "after"))
                .await
                .map(|r| r.into_inner().message.expect("message"))
        }
    })
    .await;
    accepted.push(after);
    // The redelivered webhook is recorded.
    let answer = http(app.http_addr, "POST", "/webhooks/whatsapp", &headers, body).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    // Nothing accepted was lost: every message is delivered (a claim whose
    // commit reached the database but whose answer was cut waits for its
    // lease, ten seconds here).
    for message in &accepted {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let now = until_available(|| {
                let mut app = app.messaging.clone();
                let name = message.name.clone();
                async move {
                    app.get_message(pb::GetMessageRequest { name })
                        .await
                        .map(|r| r.into_inner().message.expect("message"))
                }
            })
            .await;
            if now.status == pb::MessageStatus::Delivered as i32 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} was never delivered: {now:#?}",
                message.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn mail_by_smtp_during_an_outage_is_deferred_and_taken_when_redelivered() {
    let relay = omniroute_email::fake::FakeSmtp::start().await;
    let (proxy, url) = proxied_pg_url().await;
    let mut app = TestApp::spawn_on_pg(url, |s| {
        s.store.connect_timeout_secs = 1;
        s.email.enabled = true;
        s.email.relay_host = "127.0.0.1".into();
        s.email.relay_port = relay.port();
        s.email.tls = "none".into();
        s.email.senders = vec![omniroute::settings::EmailSender {
            tenant: "default".into(),
            from_address: "support@acme.example".into(),
            from_name: "ACME".into(),
            reply_domain: "reply.acme.example".into(),
            categories: Vec::new(),
        }];
        s.email.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let smtp = app.smtp_addr.expect("listening");
    let mail = "From: olga@example.com\r\nTo: support@acme.example\r\nSubject: Hello\r\n\
Message-ID: <olga-1@example.com>\r\n\r\nIs anyone there?\r\n";
    let to = ["support@acme.example"];

    proxy.cut();
    let deferred = omniroute_email::fake::deliver(smtp, "olga@example.com", &to, mail).await;
    let (code, text) = deferred.data.expect("answered");
    assert_eq!(code, 451, "the relay keeps it and delivers again: {text}");

    proxy.restore();
    wait_health(&app, "", ServingStatus::Serving).await;
    let taken = omniroute_email::fake::deliver(smtp, "olga@example.com", &to, mail).await;
    assert_eq!(taken.data.map(|d| d.0), Some(250));
    let contact = lookup(
        &mut app,
        pb::lookup_contact_request::Key::Address("olga@example.com".into()),
    )
    .await
    .expect("recorded once the store is back");
    let page = app
        .messaging
        .list_messages(pb::ListMessagesRequest {
            contact: contact.name.clone(),
            ..Default::default()
        })
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(page.messages.len(), 1, "{page:#?}");
}
