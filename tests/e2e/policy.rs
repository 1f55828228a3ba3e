//! Routing's rules over the real interface: consent from the ledger, the
//! WhatsApp window with template alternatives, fallback to the next channel,
//! quiet hours in the contact's zone, and PreviewRoute agreeing with what a
//! send stores. Sandbox channels throughout; customers write through the
//! sandbox's signed webhook.

use std::time::{Duration, SystemTime};

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use tonic::Code;

use crate::messaging::{text_message, wait_for};
use crate::support::*;

crate::on_both_stores!(
    the_window_decides_free_form_or_template,
    marketing_needs_an_opt_in_and_a_revocation_wins,
    a_permanent_failure_falls_back_to_email,
    quiet_hours_hold_messages_in_the_contacts_zone,
    quiet_hours_are_decided_for_the_send_time,
    preview_agrees_with_the_stored_decision,
);

const WHATSAPP_TRANSACTIONAL: Consent = Consent(pb::Channel::Whatsapp, pb::Category::Transactional);
const WHATSAPP_MARKETING: Consent = Consent(pb::Channel::Whatsapp, pb::Category::Marketing);

/// Creates Anna, on WhatsApp at `number` and by email; her name.
async fn anna_on_whatsapp_and_email(app: &mut TestApp, number: &str) -> String {
    create(
        app,
        "Anna",
        vec![whatsapp(number), email("anna@example.com")],
    )
    .await
    .name
}

fn template_override() -> pb::ChannelOverride {
    pb::ChannelOverride {
        channel: pb::Channel::Whatsapp as i32,
        content: Some(pb::Content {
            kind: Some(pb::content::Kind::Template(pb::TemplateContent {
                name: "order_shipped".into(),
                language: "en".into(),
                components: vec![],
            })),
        }),
        outside_window: true,
    }
}

fn plan(message: &pb::Message) -> Vec<i32> {
    message.route.as_ref().expect("a route").plan.clone()
}

fn skip_reason(message: &pb::Message, channel: pb::Channel) -> Option<i32> {
    message
        .route
        .as_ref()?
        .skipped
        .iter()
        .find(|s| s.channel == channel as i32)
        .map(|s| s.reason)
}

async fn the_window_decides_free_form_or_template(mut app: TestApp) {
    let anna = anna_on_whatsapp_and_email(&mut app, "+4915123456789").await;
    WHATSAPP_TRANSACTIONAL.grant(&mut app, &anna).await;

    // Anna never wrote: free form cannot go on WhatsApp; email carries it.
    let outside = try_send(&mut app, text_to(&anna, "Your order has shipped"))
        .await
        .expect("accepted");
    assert_eq!(plan(&outside), [pb::Channel::Email as i32]);
    assert_eq!(
        skip_reason(&outside, pb::Channel::Whatsapp),
        Some(pb::SkipReason::WindowClosed as i32)
    );

    // With a template alternative it goes on WhatsApp as that template.
    let mut message = text_message("Your order has shipped");
    message.overrides = vec![template_override()];
    let templated = try_send(&mut app, send_to(&anna, message))
        .await
        .expect("accepted");
    assert_eq!(
        plan(&templated),
        [pb::Channel::Whatsapp as i32, pb::Channel::Email as i32]
    );
    let step = &templated.route.as_ref().unwrap().steps[0];
    assert_eq!(
        step.content_variant,
        pb::ContentVariant::WindowAlternative as i32
    );
    let read = wait_for(&mut app, &templated.name, pb::MessageStatus::Read).await;
    assert_eq!(
        read.attempts.len(),
        1,
        "the template went at once: {read:#?}"
    );

    // Inside the window (Anna wrote) the free-form text goes on WhatsApp.
    app.customer_writes("whatsapp", "+4915123456789", "Where is it?")
        .await;
    let inside = try_send(&mut app, text_to(&anna, "It left today"))
        .await
        .expect("accepted");
    assert_eq!(plan(&inside)[0], pb::Channel::Whatsapp as i32);
    let windows = &inside
        .route
        .as_ref()
        .unwrap()
        .inputs
        .as_ref()
        .unwrap()
        .windows;
    assert_eq!(windows.len(), 1, "the window is shown with the decision");
    wait_for(&mut app, &inside.name, pb::MessageStatus::Read).await;

    // An explicit WhatsApp send of free form outside the window is refused
    // for a contact who never wrote.
    let ben = create(&mut app, "Ben", vec![whatsapp("+4915123450077")])
        .await
        .name;
    WHATSAPP_TRANSACTIONAL.grant(&mut app, &ben).await;
    let mut explicit = text_message("Hello");
    explicit.channel = pb::Channel::Whatsapp as i32;
    let refused = try_send(&mut app, send_to(&ben, explicit))
        .await
        .expect_err("window closed");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("template"), "{refused:?}");
}

async fn marketing_needs_an_opt_in_and_a_revocation_wins(mut app: TestApp) {
    let anna = create(&mut app, "Anna", vec![whatsapp("+4915123456789")])
        .await
        .name;
    // Even inside the window, and even naming the channel.
    app.customer_writes("whatsapp", "+4915123456789", "Hi")
        .await;
    let mut promo = text_message("20% off this weekend");
    promo.category = pb::Category::Marketing as i32;
    let refused = try_send(&mut app, send_to(&anna, promo.clone()))
        .await
        .expect_err("no opt-in");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let mut explicit = promo.clone();
    explicit.channel = pb::Channel::Whatsapp as i32;
    let refused = try_send(&mut app, send_to(&anna, explicit.clone()))
        .await
        .expect_err("no opt-in");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("marketing opt-in"),
        "{refused:?}"
    );

    WHATSAPP_MARKETING.grant(&mut app, &anna).await;
    let sent = try_send(&mut app, send_to(&anna, explicit.clone()))
        .await
        .expect("opted in");
    assert_eq!(plan(&sent), [pb::Channel::Whatsapp as i32]);
    let consents = &sent
        .route
        .as_ref()
        .unwrap()
        .inputs
        .as_ref()
        .unwrap()
        .consents;
    assert!(
        consents
            .iter()
            .any(|c| c.granted && c.consent_record.starts_with(&anna)),
        "the deciding record is shown: {consents:?}"
    );

    WHATSAPP_MARKETING.revoke(&mut app, &anna).await;
    let refused = try_send(&mut app, send_to(&anna, promo))
        .await
        .expect_err("revoked");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("revoked"), "{refused:?}");
}

async fn a_permanent_failure_falls_back_to_email(mut app: TestApp) {
    // The sandbox fails WhatsApp numbers ending in 0001 permanently.
    let anna = anna_on_whatsapp_and_email(&mut app, "+4915123450001").await;
    app.customer_writes("whatsapp", "+4915123450001", "Hi")
        .await;
    let message = try_send(&mut app, text_to(&anna, "Your invoice"))
        .await
        .expect("accepted");
    assert_eq!(
        plan(&message),
        [pb::Channel::Whatsapp as i32, pb::Channel::Email as i32]
    );
    let delivered = wait_for(&mut app, &message.name, pb::MessageStatus::Delivered).await;
    assert_eq!(delivered.name, message.name, "one message id");
    let attempts: Vec<(i32, i32)> = delivered
        .attempts
        .iter()
        .map(|a| (a.channel, a.outcome))
        .collect();
    assert_eq!(
        attempts,
        [
            (
                pb::Channel::Whatsapp as i32,
                pb::AttemptOutcome::Permanent as i32
            ),
            (
                pb::Channel::Email as i32,
                pb::AttemptOutcome::Accepted as i32
            ),
        ]
    );
    assert_eq!(delivered.channel, pb::Channel::Email as i32);
}

/// Quiet hours in Tokyo (UTC+9, no daylight saving) from `from` to `to`
/// minutes after now, local time.
fn quiet_in_tokyo(from: i64, to: i64) -> pb::QuietHours {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let minute = ((secs / 60 + 9 * 60) % 1440) as i64;
    let hhmm = |m: i64| {
        let m = m.rem_euclid(1440);
        format!("{:02}:{:02}", m / 60, m % 60)
    };
    pb::QuietHours {
        start: hhmm(minute + from),
        end: hhmm(minute + to),
    }
}

/// Quiet hours around now in Tokyo: from an hour ago to two hours from now.
fn quiet_around_now_in_tokyo() -> pb::QuietHours {
    quiet_in_tokyo(-60, 120)
}

/// Gives the contact quiet hours in Tokyo's zone.
async fn set_quiet_hours(app: &mut TestApp, contact: &str, quiet: pb::QuietHours) {
    app.preferences
        .update_preferences(pb::UpdatePreferencesRequest {
            preferences: Some(pb::Preferences {
                name: format!("{contact}/preferences"),
                quiet_hours: Some(quiet),
                time_zone: "Asia/Tokyo".into(),
                ..Default::default()
            }),
            update_mask: mask(&["quiet_hours", "time_zone"]),
        })
        .await
        .expect("preferences");
}

/// A message's hold, in minutes from now (rounded down).
fn held_minutes(message: &pb::Message) -> Option<u64> {
    let until = message.route.as_ref()?.hold_until?;
    let until = SystemTime::try_from(until).ok()?;
    Some(until.duration_since(SystemTime::now()).ok()?.as_secs() / 60)
}

async fn quiet_hours_hold_messages_in_the_contacts_zone(mut app: TestApp) {
    let anna = create(&mut app, "Anna", vec![email("anna@example.com")])
        .await
        .name;
    set_quiet_hours(&mut app, &anna, quiet_around_now_in_tokyo()).await;
    let held = try_send(&mut app, text_to(&anna, "Your statement is ready"))
        .await
        .expect("accepted");
    assert_eq!(held.status, pb::MessageStatus::Queued as i32, "{held:#?}");
    assert_eq!(held.status_history[0].reason, "held for quiet hours");
    let until = SystemTime::try_from(held.route.as_ref().unwrap().hold_until.unwrap()).unwrap();
    let now = SystemTime::now();
    assert!(
        until > now + Duration::from_secs(3600) && until <= now + Duration::from_secs(7260),
        "held until the end of Tokyo's quiet hours, two hours from now"
    );
    // Durably: still queued after a while, never sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = wait_for(&mut app, &held.name, pb::MessageStatus::Queued).await;
    assert!(still.attempts.is_empty());

    // An urgent message and an authentication code go now.
    let mut urgent = text_message("Your card was blocked");
    urgent.urgent = true;
    let now_sent = try_send(&mut app, send_to(&anna, urgent))
        .await
        .expect("accepted");
    assert_eq!(now_sent.status, pb::MessageStatus::Accepted as i32);
    assert!(now_sent.urgent);
    wait_for(&mut app, &now_sent.name, pb::MessageStatus::Delivered).await;
    let mut code = text_message("Your code is 123456");
    code.category = pb::Category::Authentication as i32;
    let code = try_send(&mut app, send_to(&anna, code))
        .await
        .expect("accepted");
    assert_eq!(code.status, pb::MessageStatus::Accepted as i32);
}

/// Quiet hours apply at the time a message goes: a send time inside them
/// holds it until they end, one after them goes at its time, and an urgent
/// call waits for them to end instead of being refused.
async fn quiet_hours_are_decided_for_the_send_time(mut app: TestApp) {
    let in_two_hours = |mut message: pb::Message| {
        message.send_time = Some((SystemTime::now() + Duration::from_secs(7200)).into());
        message
    };
    // Quiet from an hour to three hours from now: accepted outside them,
    // due inside them.
    let anna = create(&mut app, "Anna", vec![email("anna@example.com")])
        .await
        .name;
    set_quiet_hours(&mut app, &anna, quiet_in_tokyo(60, 180)).await;
    let held = try_send(
        &mut app,
        send_to(&anna, in_two_hours(text_message("Your statement is ready"))),
    )
    .await
    .expect("accepted");
    assert_eq!(held.status, pb::MessageStatus::Queued as i32, "{held:#?}");
    assert_eq!(held.status_history[0].reason, "held for quiet hours");
    let minutes = held_minutes(&held).expect("a hold");
    assert!(
        (178..=180).contains(&minutes),
        "held until the quiet hours end, three hours from now: {minutes} min"
    );

    // Quiet now until an hour from now; sent in two hours, after them: it
    // goes at its send time, with no hold that ends before it.
    let ben = create(&mut app, "Ben", vec![email("ben@example.com")])
        .await
        .name;
    set_quiet_hours(&mut app, &ben, quiet_in_tokyo(-60, 60)).await;
    let later = try_send(
        &mut app,
        send_to(&ben, in_two_hours(text_message("Your statement is ready"))),
    )
    .await
    .expect("accepted");
    assert_eq!(later.status_history[0].reason, "scheduled", "{later:#?}");
    assert_eq!(held_minutes(&later), None);
    let inputs = later.route.as_ref().unwrap().inputs.as_ref().unwrap();
    assert!(inputs.quiet_hours_end.is_none(), "{inputs:#?}");

    // An urgent call in quiet hours waits for their end (it is not refused).
    let carla = create(&mut app, "Carla", vec![voice("+4915123456789")])
        .await
        .name;
    set_quiet_hours(&mut app, &carla, quiet_around_now_in_tokyo()).await;
    let mut urgent = text_message("Your card was blocked");
    urgent.urgent = true;
    urgent.channel = pb::Channel::Voice as i32;
    let call = try_send(&mut app, send_to(&carla, urgent))
        .await
        .expect("accepted");
    assert_eq!(call.status_history[0].reason, "held for quiet hours");
    let minutes = held_minutes(&call).expect("a hold");
    assert!((118..=120).contains(&minutes), "{minutes} min");
}

async fn preview_agrees_with_the_stored_decision(mut app: TestApp) {
    let anna = anna_on_whatsapp_and_email(&mut app, "+4915123456789").await;
    let mut message = text_message("Your order has shipped");
    message.overrides = vec![template_override()];
    let request = send_to(&anna, message);
    let preview = app
        .messaging
        .preview_route(pb::PreviewRouteRequest {
            send: Some(request.clone()),
        })
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(preview.contact, anna);
    assert_eq!(preview.category, pb::Category::Transactional as i32);
    let timeline = |app: &mut TestApp| {
        let mut messaging = app.messaging.clone();
        let contact = anna.clone();
        async move {
            messaging
                .list_messages(pb::ListMessagesRequest {
                    contact,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .messages
                .len()
        }
    };
    assert_eq!(timeline(&mut app).await, 0, "a preview writes nothing");
    let sent = try_send(&mut app, request).await.expect("accepted");
    let (p, s) = (preview.route.unwrap(), sent.route.unwrap());
    assert_eq!(p.plan, s.plan);
    assert_eq!(p.skipped, s.skipped);
    assert_eq!(p.steps, s.steps);

    // A preview for an unknown address creates no contact.
    let unknown = text_to_address(email("new@example.com"), "Welcome");
    let preview = app
        .messaging
        .preview_route(pb::PreviewRouteRequest {
            send: Some(unknown),
        })
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(preview.contact, "");
    assert_eq!(preview.route.unwrap().plan, [pb::Channel::Email as i32]);
    let missing = app
        .contacts
        .lookup_contact(pb::LookupContactRequest {
            key: Some(pb::lookup_contact_request::Key::Address(
                "new@example.com".into(),
            )),
        })
        .await
        .expect_err("no contact was created");
    assert_eq!(missing.code(), Code::NotFound);

    // Bad input names the field inside the send.
    let bad = app
        .messaging
        .preview_route(pb::PreviewRouteRequest {
            send: Some(pb::SendMessageRequest::default()),
        })
        .await
        .expect_err("invalid");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("send.recipient"), "{bad:?}");
}
