//! Fallback on a missed delivery deadline (the sandbox's never-delivers
//! number), also across a restart; a customer's reply canceling a pending
//! fallback; and `window closing` events. Over gRPC and the sandbox's
//! signed webhooks, on both stores.

use std::time::Duration;

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;

use crate::events::{next, subscribe_to};
use crate::messaging::{get_message, text_message, wait_for};
use crate::support::*;

crate::on_both_stores!(
    a_missed_deadline_hands_over_to_email,
    the_deadline_holds_across_a_restart,
    a_customer_reply_cancels_the_pending_fallback,
    a_closing_window_is_announced,
);

/// WhatsApp never reports delivery for numbers ending in 0003.
const SILENT: &str = "+4915123450003";

/// Anna, on a WhatsApp number that never reports delivery and on email,
/// with her WhatsApp window open.
async fn anna(app: &mut TestApp) -> String {
    let anna = create(
        app,
        "Anna",
        vec![whatsapp(SILENT), email("anna@example.com")],
    )
    .await
    .name;
    app.customer_writes("whatsapp", SILENT, "Hi").await;
    anna
}

fn within(anna: &str, body: &str, secs: i64) -> pb::SendMessageRequest {
    let mut message = text_message(body);
    message.deliver_within = Some(prost_types::Duration {
        seconds: secs,
        nanos: 0,
    });
    send_to(anna, message)
}

async fn send(app: &mut TestApp, request: pb::SendMessageRequest) -> pb::Message {
    app.messaging
        .send_message(request)
        .await
        .expect("accepted")
        .into_inner()
        .message
        .expect("a message")
}

fn attempts(message: &pb::Message) -> Vec<(i32, i32)> {
    message
        .attempts
        .iter()
        .map(|a| (a.channel, a.outcome))
        .collect()
}

fn both_sent() -> Vec<(i32, i32)> {
    let accepted = pb::AttemptOutcome::Accepted as i32;
    vec![
        (pb::Channel::Whatsapp as i32, accepted),
        (pb::Channel::Email as i32, accepted),
    ]
}

async fn a_missed_deadline_hands_over_to_email(mut app: TestApp) {
    let anna = anna(&mut app).await;
    let mut fallbacks = subscribe_to(&mut app, pb::EventType::MessageFallback).await;
    let message = send(&mut app, within(&anna, "Your code expires soon", 1)).await;
    let steps = &message.route.as_ref().expect("a route").steps;
    assert_eq!(
        steps[0].deliver_within,
        Some(prost_types::Duration {
            seconds: 1,
            nanos: 0
        })
    );
    assert_eq!(
        steps[1].deliver_within, None,
        "the last step has no deadline"
    );
    let delivered = wait_for(&mut app, &message.name, pb::MessageStatus::Delivered).await;
    assert_eq!(delivered.name, message.name, "one message id");
    assert_eq!(delivered.channel, pb::Channel::Email as i32);
    assert_eq!(attempts(&delivered), both_sent());
    assert!(
        delivered
            .status_history
            .iter()
            .any(|h| h.reason.contains("not delivered on whatsapp within 1 s")),
        "{:#?}",
        delivered.status_history
    );
    let event = next(&mut fallbacks).await;
    let change = event.route_change.expect("what routing did");
    assert_eq!(change.from_channel, pb::Channel::Whatsapp as i32);
    assert_eq!(change.to_channel, pb::Channel::Email as i32);
    assert_eq!(change.reason, "not delivered on whatsapp within 1 s");
}

async fn the_deadline_holds_across_a_restart(mut app: TestApp) {
    let anna = anna(&mut app).await;
    let message = send(&mut app, within(&anna, "Your parcel is at the door", 2)).await;
    wait_for(&mut app, &message.name, pb::MessageStatus::Sent).await;
    // The deadline is a row in the store, not a timer in this process.
    let mut app = app.restart_with(|_| {}).await;
    let delivered = wait_for(&mut app, &message.name, pb::MessageStatus::Delivered).await;
    assert_eq!(delivered.channel, pb::Channel::Email as i32);
    assert_eq!(attempts(&delivered), both_sent());
}

async fn a_customer_reply_cancels_the_pending_fallback(mut app: TestApp) {
    let anna = anna(&mut app).await;
    let message = send(&mut app, within(&anna, "Shall we call you back?", 3600)).await;
    wait_for(&mut app, &message.name, pb::MessageStatus::Sent).await;
    // Anna answers by email: she is there, nobody needs to chase her.
    app.customer_writes("email", "anna@example.com", "Yes please")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let canceled = loop {
        let m = get_message(&mut app, &message.name).await;
        if m.status_history
            .iter()
            .any(|h| h.reason == "the customer replied; fallback canceled")
        {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fallback was never canceled: {m:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(canceled.status, pb::MessageStatus::Sent as i32);
    assert_eq!(canceled.channel, pb::Channel::Whatsapp as i32);
    assert_eq!(canceled.attempts.len(), 1, "no email went out");
}

async fn a_closing_window_is_announced(app: TestApp) {
    // Announce a day and an hour ahead: a window just opened (24 hours)
    // closes within that at once.
    let mut app = app
        .restart_with(|s| {
            s.routing.window_closing_lead_secs = 25 * 3600;
            s.routing.window_check_interval_ms = 50;
        })
        .await;
    let anna = create(&mut app, "Anna", vec![whatsapp("+4915123456789")]).await;
    let mut closing = subscribe_to(&mut app, pb::EventType::WindowClosing).await;
    app.customer_writes("whatsapp", "+4915123456789", "Hello?")
        .await;
    let event = next(&mut closing).await;
    assert_eq!(event.contact, anna.name);
    let Some(pb::event::Payload::Window(window)) = event.payload else {
        panic!("a window: {event:?}")
    };
    assert_eq!(window.channel, pb::Channel::Whatsapp as i32);
    assert_eq!(window.line, "sandbox");
    let contact = get(&mut app, &anna.name).await;
    assert_eq!(contact.service_windows, vec![window]);
}
