//! Overload: past `grpc.max_concurrent_requests` calls in progress, one more
//! is refused at once with RESOURCE_EXHAUSTED and a retry delay (not queued);
//! an open event stream counts until it ends; health checks always answer.

use std::time::Duration;

use omniroute_e2e::{Backend, TestApp};
use omniroute_proto::v1 as pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt;

#[tokio::test]
async fn past_the_limit_a_call_is_refused_with_a_retry_delay_and_health_answers() {
    let mut app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.grpc.max_concurrent_requests = 1;
    })
    .await;
    let list = || pb::ListContactsRequest {
        page_size: 10,
        ..Default::default()
    };
    app.contacts
        .list_contacts(list())
        .await
        .expect("under the limit");

    // An open subscription holds the one slot.
    let stream = app
        .events
        .subscribe(pb::SubscribeRequest::default())
        .await
        .expect("subscribed")
        .into_inner();
    let refused = app.contacts.list_contacts(list()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let retry = refused.get_details_retry_info().expect("a retry delay");
    assert!(retry.retry_delay.is_some_and(|d| d > Duration::ZERO));
    let health = HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest {
            service: "omniroute.v1.ContactService".into(),
        })
        .await
        .expect("health is never refused")
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    // The stream ends: the slot is free again.
    drop(stream);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match app.contacts.list_contacts(list()).await {
            Ok(_) => break,
            Err(e) if e.code() == Code::ResourceExhausted => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the slot never came back"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
}

/// A request message over `grpc.max_message_bytes` is refused before it is
/// decoded (OUT_OF_RANGE) and creates nothing.
#[tokio::test]
async fn a_request_over_the_message_limit_is_refused_and_changes_nothing() {
    let mut app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.grpc.max_message_bytes = 16 * 1024;
    })
    .await;
    let big = crate::support::new_contact(&"x".repeat(32 * 1024), vec![]);
    let err = app.contacts.create_contact(big).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    let listed = app
        .contacts
        .list_contacts(pb::ListContactsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.contacts.is_empty());
    // Under the limit, the same call works.
    app.contacts
        .create_contact(crate::support::new_contact("Anna", vec![]))
        .await
        .expect("a small request");
}

/// A webhook whose body arrives too slowly is answered 408 and not
/// recorded (the provider delivers it again), instead of holding the
/// listener's worker.
#[tokio::test]
async fn a_webhook_that_uploads_too_slowly_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.http.request_timeout_secs = 1;
    })
    .await;
    let mut stream = tokio::net::TcpStream::connect(app.http_addr)
        .await
        .expect("connects");
    // A body of 100 bytes announced, 10 sent, then nothing.
    stream
        .write_all(
            b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: router\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"object\":",
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut answer))
        .await
        .expect("the router answers")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// A text to `quota{n}@example.com`.
fn quota_send(n: usize, category: pb::Category, idempotency_key: &str) -> pb::SendMessageRequest {
    pb::SendMessageRequest {
        recipient: Some(pb::send_message_request::Recipient::Address(pb::Identity {
            channel: pb::Channel::Email as i32,
            address: format!("quota{n}@example.com"),
            ..Default::default()
        })),
        message: Some(pb::Message {
            category: category as i32,
            content: Some(pb::Content {
                kind: Some(pb::content::Kind::Text(pb::TextContent {
                    body: "Your order has shipped".into(),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }),
        idempotency_key: idempotency_key.into(),
    }
}

/// Only messages accepted count against the daily quota: a retried send
/// (its idempotency key's replay) and a send routing refuses do not; and a
/// retry is answered with its message even once the quota is spent.
#[tokio::test]
async fn replays_and_refused_sends_cost_no_quota() {
    for backend in [Backend::Embedded, Backend::Postgres] {
        let mut app = TestApp::spawn_with(backend, |s| {
            s.quotas.per_day = 2;
        })
        .await;
        // Each send: to quota{n}@, with its category and key.
        let mut send = async |n: usize, category: pb::Category, key: &str| {
            app.messaging
                .send_message(quota_send(n, category, key))
                .await
                .map(|r| r.into_inner().message.unwrap())
        };
        let transactional = pb::Category::Transactional;
        let first = send(1, transactional, "order-17").await.expect("accepted");
        // The client retries: the same message, and no second count.
        for _ in 0..3 {
            let again = send(1, transactional, "order-17").await;
            assert_eq!(again.expect("the replay is answered").name, first.name);
        }
        // Marketing to an address that never opted in: refused by routing.
        let refused = send(2, pb::Category::Marketing, "").await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        send(3, transactional, "")
            .await
            .expect("the second message of the day fits");
        let past = send(4, transactional, "").await.unwrap_err();
        assert_eq!(
            past.code(),
            Code::ResourceExhausted,
            "{backend:?}: {past:?}"
        );
        // The quota spent, a retry of a send accepted before is still
        // answered with its message, and the key still guards its request.
        let late_retry = send(1, transactional, "order-17").await;
        assert_eq!(
            late_retry.expect("a replay needs no quota").name,
            first.name
        );
        let other_request = send(5, transactional, "order-17").await.unwrap_err();
        assert_eq!(
            other_request.code(),
            Code::AlreadyExists,
            "the key's conflict, not the quota: {other_request:?}"
        );
        // Neither refusal kept the new address it was sent to.
        for refused in [2, 4] {
            let key = pb::lookup_contact_request::Key::Identity(pb::Identity {
                channel: pb::Channel::Email as i32,
                address: format!("quota{refused}@example.com"),
                ..Default::default()
            });
            let found = app
                .contacts
                .lookup_contact(pb::LookupContactRequest { key: Some(key) })
                .await;
            assert_eq!(
                found.map(|_| ()).unwrap_err().code(),
                Code::NotFound,
                "{backend:?}: quota{refused}@ has no contact"
            );
        }
    }
}

/// A tenant's daily quota: the sends that fit go, the rest of a batch and
/// every send after it are refused with RESOURCE_EXHAUSTED, a retry delay
/// until the next UTC day and the quota named.
#[tokio::test]
async fn a_tenant_past_its_daily_quota_is_refused_with_a_retry_delay() {
    let mut app = TestApp::spawn_with(Backend::Embedded, |s| {
        s.quotas.tenants = vec![omniroute::settings::TenantQuota {
            tenant: "default".into(),
            per_day: Some(3),
            ..Default::default()
        }];
    })
    .await;
    let send = |n: usize| quota_send(n, pb::Category::Transactional, "");
    let batch = app
        .messaging
        .batch_send_messages(pb::BatchSendMessagesRequest {
            requests: (0..5).map(send).collect(),
        })
        .await
        .expect("a batch is answered item by item")
        .into_inner();
    let accepted = batch
        .results
        .iter()
        .filter(|r| matches!(r.result, Some(pb::batch_send_result::Result::Message(_))))
        .count();
    assert_eq!(accepted, 3, "{batch:#?}");
    let err = app.messaging.send_message(send(9)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let details = err.get_error_details();
    let delay = details
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("a retry delay");
    assert!(
        delay > Duration::ZERO && delay <= Duration::from_secs(86_400),
        "{delay:?}"
    );
    let info = details.error_info().expect("error info");
    assert_eq!(info.reason, "QUOTA_EXCEEDED");
    assert_eq!(
        info.metadata.get("quota").map(String::as_str),
        Some("per_day")
    );
}
