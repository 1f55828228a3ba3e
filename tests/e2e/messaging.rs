//! Messaging: durable sends through the sandbox channels, retries, failures,
//! idempotency, scheduling, cancellation, batches.

use std::time::{Duration, SystemTime};

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use pb::send_message_request::Recipient;
use tonic::Code;

use crate::support::*;

crate::on_both_stores!(
    send_is_delivered_then_read,
    idempotent_and_conflicting_resends,
    scheduled_send_fires_and_cancel_stops_it,
    transient_failures_are_retried_then_delivered,
    permanent_failure_fails_with_reason,
    exhausted_retries_dead_letter_until_operator_retry,
    expired_messages_fail,
    batch_items_succeed_or_fail_on_their_own,
    timeline_lists_newest_first,
    bad_sends_are_refused,
    a_refused_send_to_a_new_address_leaves_nothing_behind,
);

const STATUS_WAIT: Duration = Duration::from_secs(20);

pub async fn get_message(app: &mut TestApp, name: &str) -> pb::Message {
    app.messaging
        .get_message(pb::GetMessageRequest {
            name: name.to_owned(),
        })
        .await
        .expect("get message")
        .into_inner()
        .message
        .expect("message")
}

/// Polls until the message reaches `status`; panics with the message if it
/// never does.
pub async fn wait_for(app: &mut TestApp, name: &str, status: pb::MessageStatus) -> pb::Message {
    let deadline = tokio::time::Instant::now() + STATUS_WAIT;
    loop {
        let message = get_message(app, name).await;
        if message.status == status as i32 {
            return message;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{name} never reached {status:?}: {message:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn history(message: &pb::Message) -> Vec<pb::MessageStatus> {
    message
        .status_history
        .iter()
        .map(|h| pb::MessageStatus::try_from(h.status).unwrap())
        .collect()
}

/// A send of a transactional text to the contact with a company
/// reference.
fn text_to_ref(external_ref: &str, body: &str) -> pb::SendMessageRequest {
    pb::SendMessageRequest {
        recipient: Some(Recipient::ExternalRef(external_ref.to_owned())),
        message: Some(text_message(body)),
        idempotency_key: String::new(),
    }
}

pub fn text_message(body: &str) -> pb::Message {
    pb::Message {
        category: pb::Category::Transactional as i32,
        content: Some(pb::Content {
            kind: Some(pb::content::Kind::Text(pb::TextContent {
                body: body.to_owned(),
                ..Default::default()
            })),
        }),
        ..Default::default()
    }
}

async fn send_is_delivered_then_read(mut app: TestApp) {
    // The customer wrote on WhatsApp: free form may go inside the window.
    app.customer_writes("whatsapp", "+49 151 23456789", "Where is my order?")
        .await;
    let mut request = text_to_address(whatsapp("+49 151 23456789"), "Your order A-17 has shipped");
    let message = request.message.as_mut().unwrap();
    message.correlation_ref = "order-A-17".into();
    message.metadata = [("order".to_owned(), "A-17".to_owned())].into();
    let accepted = send_ok(&mut app, request).await;
    assert_eq!(accepted.status, pb::MessageStatus::Accepted as i32);
    assert_eq!(accepted.channel, pb::Channel::Whatsapp as i32);
    assert_eq!(accepted.correlation_ref, "order-A-17");
    assert_eq!(
        accepted.route.as_ref().unwrap().plan,
        vec![pb::Channel::Whatsapp as i32]
    );

    // The customer's message created the contact that owns the address.
    let contact = lookup(
        &mut app,
        pb::lookup_contact_request::Key::Address("0151 23456789".into()),
    )
    .await
    .unwrap();
    assert_eq!(contact.name, accepted.contact);

    let read = wait_for(&mut app, &accepted.name, pb::MessageStatus::Read).await;
    use pb::MessageStatus::*;
    assert_eq!(history(&read), vec![Accepted, Sent, Delivered, Read]);
    assert_eq!(read.attempts.len(), 1);
    let attempt = &read.attempts[0];
    assert_eq!(attempt.outcome, pb::AttemptOutcome::Accepted as i32);
    assert_eq!(attempt.channel, pb::Channel::Whatsapp as i32);
    assert!(!attempt.provider_message_id.is_empty());
    assert_eq!(read.provider_message_id, attempt.provider_message_id);
    assert_eq!(read.metadata.get("order").map(String::as_str), Some("A-17"));
}

async fn idempotent_and_conflicting_resends(mut app: TestApp) {
    let mut request = text_to_address(email("anna@example.com"), "Your code is 123456");
    request.idempotency_key = "otp-4711".into();
    let first = send_ok(&mut app, request.clone()).await;
    let again = send_ok(&mut app, request.clone()).await;
    assert_eq!(
        again.name, first.name,
        "the same key and request return the same message"
    );

    request.message.as_mut().unwrap().content = text_message("Your code is 999999").content;
    let err = app.messaging.send_message(request).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&first.name), "{}", err.message());

    let timeline = app
        .messaging
        .list_messages(pb::ListMessagesRequest {
            contact: first.contact.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert_eq!(timeline.len(), 1, "one message, however often it was sent");
    wait_for(&mut app, &first.name, pb::MessageStatus::Delivered).await;
}

async fn scheduled_send_fires_and_cancel_stops_it(mut app: TestApp) {
    let send_time = SystemTime::now() + Duration::from_millis(400);
    let mut request = text_to_address(email("anna@example.com"), "Reminder: your appointment");
    request.message.as_mut().unwrap().send_time = Some(send_time.into());
    let scheduled = send_ok(&mut app, request).await;
    assert_eq!(scheduled.status, pb::MessageStatus::Queued as i32);
    let delivered = wait_for(&mut app, &scheduled.name, pb::MessageStatus::Delivered).await;
    let started = SystemTime::try_from(delivered.attempts[0].start_time.unwrap()).unwrap();
    assert!(started >= send_time, "sent before its time");

    // A send far in the future is canceled before it goes out.
    let mut request = text_to_address(email("anna@example.com"), "Next year's reminder");
    request.message.as_mut().unwrap().send_time =
        Some((SystemTime::now() + Duration::from_secs(3600)).into());
    let later = send_ok(&mut app, request).await;
    let canceled = app
        .messaging
        .cancel_message(pb::CancelMessageRequest {
            name: later.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    assert_eq!(canceled.status, pb::MessageStatus::Canceled as i32);
    assert!(canceled.attempts.is_empty());
    let again = app
        .messaging
        .cancel_message(pb::CancelMessageRequest {
            name: later.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    // A delivered message cannot be canceled either.
    let err = app
        .messaging
        .cancel_message(pb::CancelMessageRequest {
            name: scheduled.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        get_message(&mut app, &later.name).await.status,
        pb::MessageStatus::Canceled as i32
    );
}

async fn transient_failures_are_retried_then_delivered(mut app: TestApp) {
    let accepted = send_ok(
        &mut app,
        text_to_address(email("fail-twice@example.com"), "Invoice"),
    )
    .await;
    let delivered = wait_for(&mut app, &accepted.name, pb::MessageStatus::Delivered).await;
    let outcomes: Vec<i32> = delivered.attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            pb::AttemptOutcome::Transient as i32,
            pb::AttemptOutcome::Transient as i32,
            pb::AttemptOutcome::Accepted as i32
        ]
    );
    use pb::MessageStatus::*;
    assert_eq!(
        history(&delivered),
        vec![Accepted, Queued, Queued, Sent, Delivered]
    );
    assert!(
        !delivered.status_history[1].reason.is_empty(),
        "a retry says why"
    );
}

async fn permanent_failure_fails_with_reason(mut app: TestApp) {
    let accepted = send_ok(
        &mut app,
        text_to_address(email("fail-permanent@example.com"), "Invoice"),
    )
    .await;
    let failed = wait_for(&mut app, &accepted.name, pb::MessageStatus::Failed).await;
    assert_eq!(failed.attempts.len(), 1);
    assert_eq!(
        failed.attempts[0].outcome,
        pb::AttemptOutcome::Permanent as i32
    );
    let reason = &failed.status_history.last().unwrap().reason;
    assert!(reason.contains("permanent"), "{reason}");
    // A bounce after acceptance fails the message too, and the attempt it
    // is about.
    let bounced = send_ok(
        &mut app,
        text_to_address(email("bounce@example.com"), "Invoice"),
    )
    .await;
    let bounced = wait_for(&mut app, &bounced.name, pb::MessageStatus::Failed).await;
    assert_eq!(
        bounced.attempts[0].outcome,
        pb::AttemptOutcome::Permanent as i32
    );
}

async fn exhausted_retries_dead_letter_until_operator_retry(app: TestApp) {
    // Sandbox "0002" numbers fail their first two attempts; with two attempts
    // allowed, the message runs out of retries, then an operator retry sends it.
    let mut app = app.respawn_with(|s| s.dispatch.max_attempts = 2).await;
    let accepted = send_ok(
        &mut app,
        text_to_address(voice("+49 151 23450002"), "Your callback"),
    )
    .await;
    let failed = wait_for(&mut app, &accepted.name, pb::MessageStatus::Failed).await;
    assert_eq!(failed.attempts.len(), 2);
    let reason = &failed.status_history.last().unwrap().reason;
    assert!(
        reason.contains("retries exhausted after 2 attempts"),
        "{reason}"
    );

    let requeued = app
        .messaging
        .retry_message(pb::RetryMessageRequest {
            name: accepted.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap();
    assert_eq!(requeued.status, pb::MessageStatus::Queued as i32);
    let delivered = wait_for(&mut app, &accepted.name, pb::MessageStatus::Delivered).await;
    assert_eq!(delivered.attempts.len(), 3);
    // Only failed messages can be retried.
    let err = app
        .messaging
        .retry_message(pb::RetryMessageRequest {
            name: accepted.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

async fn expired_messages_fail(app: TestApp) {
    let mut app = app
        .respawn_with(|s| {
            s.dispatch.max_attempts = 1000;
            s.dispatch.backoff_base_ms = 20;
            s.dispatch.backoff_cap_ms = 20;
        })
        .await;
    let mut request = text_to_address(email("fail-always@example.com"), "Your code is 123456");
    request.message.as_mut().unwrap().category = pb::Category::Authentication as i32;
    request.message.as_mut().unwrap().expire_time =
        Some((SystemTime::now() + Duration::from_millis(500)).into());
    let accepted = send_ok(&mut app, request).await;
    assert_eq!(
        accepted.priority,
        pb::Priority::High as i32,
        "codes go first"
    );
    let failed = wait_for(&mut app, &accepted.name, pb::MessageStatus::Failed).await;
    let reason = &failed.status_history.last().unwrap().reason;
    assert!(reason.contains("expired"), "{reason}");
}

async fn batch_items_succeed_or_fail_on_their_own(mut app: TestApp) {
    let requests = vec![
        text_to_address(email("a@example.com"), "one"),
        text_to_address(email("not an address"), "two"),
        text_to_address(email("c@example.com"), "three"),
    ];
    let results = app
        .messaging
        .batch_send_messages(pb::BatchSendMessagesRequest { requests })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(results.len(), 3);
    use pb::batch_send_result::Result as R;
    let first = match &results[0].result {
        Some(R::Message(m)) => m.clone(),
        other => panic!("{other:?}"),
    };
    match &results[1].result {
        Some(R::Error(e)) => {
            assert_eq!(e.code, Code::InvalidArgument as i32);
            assert_eq!(e.field_violations[0].field, "address.address");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&results[2].result, Some(R::Message(_))));
    wait_for(&mut app, &first.name, pb::MessageStatus::Delivered).await;

    let err = app
        .messaging
        .batch_send_messages(pb::BatchSendMessagesRequest { requests: vec![] })
        .await
        .unwrap_err();
    assert_invalid(&err, "requests");
}

async fn timeline_lists_newest_first(mut app: TestApp) {
    let anna = create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    app.contacts
        .update_contact(set_external_ref(&anna.name, "crm-4711"))
        .await
        .unwrap();
    // By the company's reference, too.
    let by_ref = send_ok(&mut app, text_to_ref("crm-4711", "by reference")).await;
    assert_eq!(by_ref.contact, anna.name);
    let unknown = app
        .messaging
        .send_message(text_to_ref("crm-0000", "nobody"))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let mut names = Vec::new();
    for i in 0..5 {
        let request = text_to(&anna.name, &format!("message {i}"));
        names.push(send_ok(&mut app, request).await.name);
    }
    names.push(by_ref.name);
    names.rotate_right(1);
    names.reverse();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .messaging
            .list_messages(pb::ListMessagesRequest {
                contact: anna.name.clone(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.messages.into_iter().map(|m| m.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, names);
}

async fn bad_sends_are_refused(mut app: TestApp) {
    let err = app
        .messaging
        .send_message(pb::SendMessageRequest {
            recipient: None,
            message: Some(pb::Message::default()),
            idempotency_key: String::new(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "recipient");
    assert_invalid(&err, "message.category");
    assert_invalid(&err, "message.content");
    assert!(list_all(&mut app).await.is_empty(), "nothing was created");

    // A contact without any identity cannot be reached.
    let nobody = create(&mut app, "Nobody", vec![]).await;
    let err = app
        .messaging
        .send_message(text_to(&nobody.name, "hello"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // An explicit channel without an identity there is refused too.
    let anna = create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    let mut message = text_message("hello");
    message.channel = pb::Channel::Voice as i32;
    let err = app
        .messaging
        .send_message(send_to(&anna.name, message))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = app
        .messaging
        .get_message(pb::GetMessageRequest {
            name: "messages/nope".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "name");
}

/// A send routing refuses keeps no personal data: a marketing message to
/// an address nobody opted in creates no contact and no CONTACT_CREATED
/// event, alone or in a batch beside a send that goes (whose contact is
/// created).
async fn a_refused_send_to_a_new_address_leaves_nothing_behind(mut app: TestApp) {
    use crate::events::{next, subscribe};
    let mut stream = subscribe(&mut app, pb::SubscribeRequest::default()).await;
    let marketing = |address: &str| {
        let mut request = text_to_address(email(address), "20% off this week");
        request.message.as_mut().unwrap().category = pb::Category::Marketing as i32;
        request
    };
    let refused = app
        .messaging
        .send_message(marketing("nobody@example.com"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let batch = app
        .messaging
        .batch_send_messages(pb::BatchSendMessagesRequest {
            requests: vec![
                marketing("nobody@example.com"),
                text_to_address(email("yes@example.com"), "Your order has shipped"),
            ],
        })
        .await
        .expect("answered item by item")
        .into_inner()
        .results;
    let Some(pb::batch_send_result::Result::Error(error)) = &batch[0].result else {
        panic!("the marketing item is refused: {batch:#?}");
    };
    assert_eq!(error.code, Code::FailedPrecondition as i32);
    let Some(pb::batch_send_result::Result::Message(accepted)) = &batch[1].result else {
        panic!("the transactional item goes: {batch:#?}");
    };
    let by_email = |address: &str| pb::lookup_contact_request::Key::Identity(email(address));
    let nobody = lookup(&mut app, by_email("nobody@example.com")).await;
    assert_eq!(nobody.unwrap_err().code(), Code::NotFound);
    let yes = lookup(&mut app, by_email("yes@example.com"))
        .await
        .expect("the accepted send's contact exists");
    assert_eq!(accepted.contact, yes.name);
    // The stream up to the accepted message: one contact created, Yes's.
    let mut created = Vec::new();
    loop {
        let event = next(&mut stream).await;
        if event.r#type == pb::EventType::ContactCreated as i32 {
            created.push(event.contact.clone());
        }
        if event.r#type == pb::EventType::MessageAccepted as i32 {
            break;
        }
    }
    assert_eq!(created, vec![yes.name]);
}
