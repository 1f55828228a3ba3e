//! The event stream: every change in order, resumable without loss.

use std::time::Duration;

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use tonic::Code;

use crate::support::*;

crate::on_both_stores!(
    subscriber_sees_every_event_in_order_and_resumes_without_loss,
    filters_and_bad_cursors,
);

const EVENT_WAIT: Duration = Duration::from_secs(20);

/// Opens a subscription.
pub(crate) async fn subscribe(
    app: &mut TestApp,
    request: pb::SubscribeRequest,
) -> tonic::Streaming<pb::SubscribeResponse> {
    app.events
        .subscribe(request)
        .await
        .expect("subscribe")
        .into_inner()
}

/// Opens a subscription from now to events of one type.
pub(crate) async fn subscribe_to(
    app: &mut TestApp,
    kind: pb::EventType,
) -> tonic::Streaming<pb::SubscribeResponse> {
    let request = pb::SubscribeRequest {
        types: vec![kind as i32],
        ..Default::default()
    };
    subscribe(app, request).await
}

/// The next event, or a panic after a generous wait.
pub(crate) async fn next(stream: &mut tonic::Streaming<pb::SubscribeResponse>) -> pb::Event {
    tokio::time::timeout(EVENT_WAIT, stream.message())
        .await
        .expect("an event arrives")
        .expect("stream ok")
        .expect("stream open")
        .event
        .expect("event")
}

fn kind(event: &pb::Event) -> pb::EventType {
    pb::EventType::try_from(event.r#type).unwrap()
}

fn status(event: &pb::Event) -> Option<pb::MessageStatus> {
    match &event.payload {
        Some(pb::event::Payload::Message(m)) => pb::MessageStatus::try_from(m.status).ok(),
        _ => None,
    }
}

async fn subscriber_sees_every_event_in_order_and_resumes_without_loss(mut app: TestApp) {
    let anna = create(&mut app, "Anna", vec![whatsapp("+4915123456789")]).await;
    // Anna wrote: the service window is open for free-form messages.
    app.customer_writes("whatsapp", "+4915123456789", "Where is my order?")
        .await;
    // From now: the contact's creation is in the past and not replayed.
    let mut live = subscribe(&mut app, pb::SubscribeRequest::default()).await;
    let mut request = text_to(&anna.name, "Your order has shipped");
    request.message.as_mut().unwrap().correlation_ref = "order-A-17".into();
    app.messaging.send_message(request).await.unwrap();

    // Read two events, then drop the stream. "From now" starts at the newest
    // event every reader can see; on PostgreSQL a commit from moments before
    // the call (the contact's creation) may still follow, never one is lost.
    let mut first = next(&mut live).await;
    while matches!(
        kind(&first),
        pb::EventType::ContactCreated | pb::EventType::MessageReceived
    ) {
        assert_eq!(first.contact, anna.name);
        first = next(&mut live).await;
    }
    assert_eq!(kind(&first), pb::EventType::MessageAccepted);
    assert_eq!(first.contact, anna.name);
    assert_eq!(
        first.correlation_ref, "order-A-17",
        "the caller's reference is echoed"
    );
    let second = next(&mut live).await;
    assert_eq!(status(&second), Some(pb::MessageStatus::Sent));
    drop(live);

    // Resume after the second: the rest arrives, nothing twice, nothing lost.
    let mut resumed = subscribe(&mut app, after_cursor(&second.cursor)).await;
    let third = next(&mut resumed).await;
    let fourth = next(&mut resumed).await;
    assert_eq!(status(&third), Some(pb::MessageStatus::Delivered));
    assert_eq!(status(&fourth), Some(pb::MessageStatus::Read));
    assert!(third.cursor > second.cursor && fourth.cursor > third.cursor);

    // From the beginning: the whole log in order, including the contact.
    let mut all = subscribe(&mut app, from_the_beginning()).await;
    let mut kinds = Vec::new();
    let mut cursors = Vec::new();
    for _ in 0..6 {
        let event = next(&mut all).await;
        kinds.push(kind(&event));
        cursors.push(event.cursor.clone());
    }
    use pb::EventType::*;
    assert_eq!(
        kinds,
        vec![
            ContactCreated,
            MessageReceived,
            MessageAccepted,
            MessageStatusChanged,
            MessageStatusChanged,
            MessageStatusChanged
        ]
    );
    assert_eq!(
        &cursors[2..],
        &[first.cursor, second.cursor, third.cursor, fourth.cursor]
    );
}

async fn filters_and_bad_cursors(mut app: TestApp) {
    let anna = create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    let bert = create(&mut app, "Bert", vec![email("bert@example.com")]).await;
    let mut failures = subscribe(
        &mut app,
        pb::SubscribeRequest {
            from_beginning: true,
            types: vec![pb::EventType::MessageFailed as i32],
            ..Default::default()
        },
    )
    .await;
    let mut berts = subscribe(
        &mut app,
        pb::SubscribeRequest {
            from_beginning: true,
            contact: bert.name.clone(),
            types: vec![pb::EventType::MessageAccepted as i32],
            ..Default::default()
        },
    )
    .await;
    for (contact, address) in [(&anna, "anna"), (&bert, "bert")] {
        let _ = address;
        app.messaging
            .send_message(text_to(&contact.name, "hello"))
            .await
            .unwrap();
    }
    let failing = send_ok(
        &mut app,
        text_to_address(email("fail-permanent@example.com"), "hello"),
    )
    .await;
    let failed = next(&mut failures).await;
    assert_eq!(kind(&failed), pb::EventType::MessageFailed);
    match failed.payload {
        Some(pb::event::Payload::Message(m)) => assert_eq!(m.name, failing.name),
        other => panic!("{other:?}"),
    }
    let accepted = next(&mut berts).await;
    assert_eq!(accepted.contact, bert.name);
    assert_eq!(kind(&accepted), pb::EventType::MessageAccepted);

    let err = app
        .events
        .subscribe(pb::SubscribeRequest {
            after_cursor: "not-a-cursor".into(),
            types: vec![pb::EventType::Unspecified as i32],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_invalid(&err, "after_cursor");
    assert_invalid(&err, "types[0]");
}
