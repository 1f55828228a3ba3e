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
