//! Voice through Twilio, end to end: a message routed to voice becomes a
//! call placed through the fake Twilio API (HTTP Basic auth checked, the
//! documented formats), whose signed callbacks (through a proxy, signed for
//! the public URL) move the message on, and whose pressed digit is the
//! customer's reply.

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use omniroute_voice::fake::FakeTwilio;

use crate::reliability::timeline;
use crate::support::*;
use crate::whatsapp::wait_status;

crate::on_both_stores!(
    a_notification_call_is_delivered_and_its_digit_answers_the_message,
    busy_then_answered_and_bad_signatures_are_handled,
    out_of_order_and_repeated_callbacks_apply_once,
    unanswered_calls_are_tried_until_the_attempts_run_out,
    a_voice_step_of_a_plan_calls_when_the_email_before_it_fails,
    unanswered_calls_hand_over_to_the_next_step_saying_the_retries_ran_out,
    a_call_speaks_the_language_twilio_has_for_the_customers_locale,
    a_script_too_long_for_inline_twiml_is_fetched_when_the_call_is_answered,
    a_call_ends_once_a_busy_after_completed_changes_nothing,
    signed_requests_that_fit_no_call_of_ours_store_nothing,
);

const ACCOUNT: &str = "AC00000000000000000000000000000009";
const TOKEN: &str = "voice-auth-token";
pub(crate) const PUBLIC: &str = "https://router.acme.example";

async fn app_with_twilio(backend: omniroute_e2e::Backend) -> (TestApp, FakeTwilio) {
    app_with_twilio_and(backend, |_| {}).await
}

/// A server calling through a fake Twilio (callbacks through a proxy,
/// signed for the public URL), with `adjust`ed settings.
pub(crate) async fn app_with_twilio_and(
    backend: omniroute_e2e::Backend,
    adjust: impl FnOnce(&mut omniroute::settings::Settings),
) -> (TestApp, FakeTwilio) {
    let fake = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let api = fake.base_url();
    let app = TestApp::spawn_with(backend, |s| {
        s.voice.enabled = true;
        s.voice.api_base = api;
        s.voice.account_sid = ACCOUNT.into();
        s.voice.auth_token = omniroute::settings::Secret::new(TOKEN);
        s.voice.public_base_url = PUBLIC.into();
        s.voice.language = "de-DE".into();
        s.voice.gather_digit = true;
        s.voice.numbers = vec![omniroute::settings::VoiceNumberSettings {
            tenant: "default".into(),
            number: "+4930123456".into(),
            ..Default::default()
        }];
        adjust(s);
    })
    .await;
    fake.behind_proxy(PUBLIC, &format!("http://{}", app.http_addr));
    (app, fake)
}

async fn call(
    app: &mut TestApp,
    name: &str,
    number: &str,
    locale: &str,
    body: &str,
) -> pb::Message {
    let contact = pb::Contact {
        locale: locale.to_owned(),
        ..named_contact(name, vec![voice(number)])
    };
    let contact = create_contact(app, contact).await;
    send_text(app, &contact.name, body).await
}

async fn a_notification_call_is_delivered_and_its_digit_answers_the_message(app: TestApp) {
    let (mut app, fake) = app_with_twilio(app.backend()).await;
    let accepted = call(
        &mut app,
        "Uwe",
        "+49 151 55500066",
        "",
        "Ihr Termin ist morgen um 10 Uhr",
    )
    .await;
    let sent = wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    assert_eq!(sent.channel, pb::Channel::Voice as i32);
    let placed = fake.calls();
    assert_eq!(placed.len(), 1);
    assert_eq!(sent.provider_message_id, placed[0].sid);
    assert_eq!(placed[0].to, "+4915155500066");
    assert!(
        placed[0]
            .twiml
            .contains("<Say language=\"de-DE\" loop=\"2\">Ihr Termin ist morgen um 10 Uhr</Say>"),
        "{}",
        placed[0].twiml
    );
    // The customer presses 1: the answer to the message, and the call ends.
    let (status, twiml) = fake.press(&placed[0].sid, "1").await;
    assert_eq!(status, 200);
    assert!(twiml.contains("<Hangup/>"), "{twiml}");
    assert_eq!(
        fake.finish(&placed[0].sid, "completed").await,
        [200, 200, 200]
    );
    let delivered = wait_status(&mut app, &accepted.name, pb::MessageStatus::Delivered).await;
    assert_eq!(delivered.channel, pb::Channel::Voice as i32);
    let messages = timeline(&mut app, &accepted.contact).await;
    let answer = messages
        .iter()
        .find(|m| m.direction == pb::Direction::Inbound as i32)
        .expect("the pressed digit is recorded");
    assert_eq!(answer.reply_to, accepted.name);
    match &answer.content.as_ref().unwrap().kind {
        Some(pb::content::Kind::ChoiceReply(c)) => assert_eq!(c.id, "1"),
        other => panic!("{other:?}"),
    }
}

async fn busy_then_answered_and_bad_signatures_are_handled(app: TestApp) {
    let (mut app, fake) = app_with_twilio(app.backend()).await;
    // Vera's locale decides the language the call speaks in.
    let accepted = call(
        &mut app,
        "Vera",
        "+33 6 12 34 56 78",
        "fr",
        "Votre colis arrive aujourd'hui",
    )
    .await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let sid = fake.calls()[0].sid.clone();
    assert!(
        fake.calls()[0]
            .twiml
            .contains("<Say language=\"fr-FR\" loop=\"2\">Votre colis arrive aujourd'hui</Say>"),
        "{}",
        fake.calls()[0].twiml
    );
    // A callback signed with another token: 401, nothing changes.
    let forged = FakeTwilio::start(ACCOUNT, "someone-else").await;
    forged.behind_proxy(PUBLIC, &format!("http://{}", app.http_addr));
    let params = fake.status_params(&fake.calls()[0], "completed", 9);
    let (status, _) = forged
        .post_signed(&format!("{PUBLIC}/webhooks/voice"), &params)
        .await;
    assert_eq!(status, 401);
    let message = crate::messaging::get_message(&mut app, &accepted.name).await;
    assert_eq!(message.status, pb::MessageStatus::Sent as i32, "unchanged");
    // Busy: routing calls again; the second call is answered.
    assert_eq!(fake.finish(&sid, "busy").await, [200, 200]);
    let second = wait_for_call(&fake, 2).await;
    assert_ne!(second.sid, sid);
    assert_eq!(second.to, fake.calls()[0].to, "the same customer");
    assert_eq!(fake.finish(&second.sid, "completed").await, [200, 200, 200]);
    let delivered = wait_status(&mut app, &accepted.name, pb::MessageStatus::Delivered).await;
    assert_eq!(delivered.provider_message_id, second.sid);
    let busy = delivered
        .status_history
        .iter()
        .find(|h| h.status == pb::MessageStatus::Failed as i32)
        .expect("the busy call is in the history");
    assert!(busy.reason.contains("call-busy"), "{busy:?}");
}

/// Waits until the fake has placed `n` calls; the last.
pub(crate) async fn wait_for_call(
    fake: &FakeTwilio,
    n: usize,
) -> omniroute_voice::fake::PlacedCall {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let calls = fake.calls();
        if calls.len() >= n {
            return calls[n - 1].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} calls placed",
            calls.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn unanswered_calls_are_tried_until_the_attempts_run_out(app: TestApp) {
    let (mut app, fake) = app_with_twilio(app.backend()).await;
    let accepted = call(&mut app, "Xaver", "+49 151 55500099", "", "Ihr Termin").await;
    // The tests allow three attempts (dispatch.max_attempts).
    for n in 1..=3 {
        let placed = wait_for_call(&fake, n).await;
        assert_eq!(fake.finish(&placed.sid, "no-answer").await, [200, 200]);
    }
    let failed = wait_status(&mut app, &accepted.name, pb::MessageStatus::Failed).await;
    let last = failed.status_history.last().unwrap();
    assert_eq!(last.status, pb::MessageStatus::Failed as i32);
    assert!(
        last.reason.contains("retries exhausted after 3 attempts")
            && last.reason.contains("call-no-answer"),
        "{last:?}"
    );
    assert_eq!(fake.calls().len(), 3, "no fourth call");
    assert_eq!(failed.attempts.len(), 3);
}

async fn out_of_order_and_repeated_callbacks_apply_once(app: TestApp) {
    let (mut app, fake) = app_with_twilio(app.backend()).await;
    let accepted = call(&mut app, "Wim", "+49 151 55500088", "", "Ihr Termin").await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let placed = fake.calls()[0].clone();
    let url = format!("{PUBLIC}/webhooks/voice");
    // The end arrives first, twice; the earlier steps after it.
    for (status, sequence) in [
        ("completed", 3),
        ("completed", 3),
        ("ringing", 1),
        ("in-progress", 2),
    ] {
        let params = fake.status_params(&placed, status, sequence);
        assert_eq!(fake.post_signed(&url, &params).await.0, 200, "{status}");
    }
    let message = wait_status(&mut app, &accepted.name, pb::MessageStatus::Delivered).await;
    assert_eq!(
        message.status,
        pb::MessageStatus::Delivered as i32,
        "nothing moved it back"
    );
    let delivered = message
        .status_history
        .iter()
        .filter(|h| h.status == pb::MessageStatus::Delivered as i32)
        .count();
    assert_eq!(delivered, 1, "applied once: {:#?}", message.status_history);
}

async fn a_voice_step_of_a_plan_calls_when_the_email_before_it_fails(app: TestApp) {
    let (mut app, fake) = app_with_twilio(app.backend()).await;
    // Email first (the default order), then voice; the sandbox refuses this
    // mailbox for good.
    let contact = create(
        &mut app,
        "Yusuf",
        vec![
            email("fail-permanent@example.com"),
            voice("+49 151 55500077"),
        ],
    )
    .await;
    let accepted = send_text(&mut app, &contact.name, "Ihre Bestellung ist da").await;
    assert_eq!(accepted.channel, pb::Channel::Email as i32, "email first");
    let placed = wait_for_call(&fake, 1).await;
    assert!(
        placed.twiml.contains("Ihre Bestellung ist da"),
        "{}",
        placed.twiml
    );
    assert_eq!(fake.finish(&placed.sid, "completed").await, [200, 200, 200]);
    let delivered = wait_status(&mut app, &accepted.name, pb::MessageStatus::Delivered).await;
    assert_eq!(
        delivered.channel,
        pb::Channel::Voice as i32,
        "delivered by the call"
    );
    assert_eq!(
        delivered
            .attempts
            .iter()
            .map(|a| a.channel)
            .collect::<Vec<_>>(),
        [pb::Channel::Email as i32, pb::Channel::Voice as i32]
    );
}

/// Voice first, email behind it: three calls nobody answers use up the
/// attempts, and the hand-over to email says so, with the count and the
/// last error (not that voice failed after accepting the call).
async fn unanswered_calls_hand_over_to_the_next_step_saying_the_retries_ran_out(app: TestApp) {
    let (mut app, fake) = app_with_twilio_and(app.backend(), |s| {
        s.routing.channel_order = vec![
            omniroute_channel::Channel::Voice,
            omniroute_channel::Channel::Email,
        ];
    })
    .await;
    let contact = create(
        &mut app,
        "Zora",
        vec![voice("+49 151 55500111"), email("zora@example.com")],
    )
    .await;
    let accepted = send_text(&mut app, &contact.name, "Ihr Paket ist da").await;
    assert_eq!(accepted.channel, pb::Channel::Voice as i32, "voice first");
    for n in 1..=3 {
        let placed = wait_for_call(&fake, n).await;
        assert_eq!(fake.finish(&placed.sid, "no-answer").await, [200, 200]);
    }
    let delivered = wait_status(&mut app, &accepted.name, pb::MessageStatus::Delivered).await;
    assert_eq!(
        delivered.channel,
        pb::Channel::Email as i32,
        "{delivered:#?}"
    );
    assert_eq!(fake.calls().len(), 3, "no fourth call");
    let handed_over = delivered
        .status_history
        .iter()
        .find(|h| h.reason.starts_with("falling back to email"))
        .unwrap_or_else(|| panic!("no hand-over: {:#?}", delivered.status_history));
    assert_eq!(
        handed_over.reason,
        "falling back to email: retries exhausted after 3 attempts; \
         last error call-no-answer: nobody answered",
    );
}

/// A customer's locale becomes the language Twilio speaks for it:
/// Traditional Chinese in Taiwan is Taiwanese Mandarin (`zh-TW`), not the
/// mainland's; a region Twilio has no voice for falls back to the
/// language's own.
async fn a_call_speaks_the_language_twilio_has_for_the_customers_locale(app: TestApp) {
    let (mut app, fake) = app_with_twilio(app.backend()).await;
    for (n, (name, number, locale, spoken)) in [
        ("Mei", "+886 912 345 678", "zh-Hant-TW", "zh-TW"),
        ("Ka Yan", "+852 5123 4567", "zh-Hant-HK", "zh-HK"),
        ("Lukas", "+41 78 123 45 67", "de-LI", "de-DE"),
    ]
    .into_iter()
    .enumerate()
    {
        call(&mut app, name, number, locale, "Ihr Termin").await;
        let placed = wait_for_call(&fake, n + 1).await;
        assert!(
            placed
                .twiml
                .contains(&format!("<Say language=\"{spoken}\"")),
            "{locale}: {}",
            placed.twiml
        );
    }
}

/// Twilio takes at most 4,000 characters of TwiML with a call (error
/// 32018, which the fake answers too). A text whose escapes make it longer
/// goes as a `Url` the router answers, when the call is answered, with the
/// message's script; its digit and its end count as always.
async fn a_script_too_long_for_inline_twiml_is_fetched_when_the_call_is_answered(app: TestApp) {
    let (mut app, fake) = app_with_twilio(app.backend()).await;
    let text = format!("Fragen & Antworten: {}", "&".repeat(970));
    let accepted = call(&mut app, "Ada", "+49 151 55500133", "", &text).await;
    let placed = wait_for_call(&fake, 1).await;
    assert!(placed.twiml.is_empty(), "{}", placed.twiml);
    assert!(
        placed
            .url
            .starts_with(&format!("{PUBLIC}/webhooks/voice?leg=script&")),
        "{}",
        placed.url
    );
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let (status, twiml) = fake.answer(&placed.sid, "human").await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains(&format!(
            "<Say language=\"de-DE\" loop=\"2\">Fragen &amp; Antworten: {}</Say>",
            "&amp;".repeat(970)
        )),
        "{twiml}"
    );
    // The customer presses 1 (the script's gather), then hangs up.
    let (status, _) = fake.press(&placed.sid, "1").await;
    assert_eq!(status, 200);
    fake.hang_up(&placed.sid).await;
    let delivered = wait_status(&mut app, &accepted.name, pb::MessageStatus::Delivered).await;
    assert_eq!(delivered.attempts.len(), 1, "placed once");
    let messages = timeline(&mut app, &accepted.contact).await;
    assert!(
        messages
            .iter()
            .any(|m| m.direction == pb::Direction::Inbound as i32 && m.reply_to == accepted.name),
        "the digit answers the message: {messages:#?}"
    );
}

/// Twilio ends a call once. A `busy` for a call that completed (a stray or
/// replayed report) neither adds a failure to the delivered message's
/// history nor puts another status event on the stream.
async fn a_call_ends_once_a_busy_after_completed_changes_nothing(app: TestApp) {
    let (mut app, fake) = app_with_twilio(app.backend()).await;
    let accepted = call(&mut app, "Uwe", "+49 151 55500066", "", "Ihr Termin").await;
    let placed = wait_for_call(&fake, 1).await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    assert_eq!(fake.finish(&placed.sid, "completed").await, [200, 200, 200]);
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Delivered).await;
    let url = format!("{PUBLIC}/webhooks/voice");
    let busy = fake.status_params(&placed, "busy", 9);
    assert_eq!(fake.post_signed(&url, &busy).await.0, 200, "acknowledged");
    // A later send to the contact marks where the busy report's effect
    // would have been logged.
    let marker = send_text(&mut app, &accepted.contact, "Noch etwas").await;
    assert_delivered_without_a_failure(&mut app, &accepted.name).await;
    let mut events = crate::events::subscribe(
        &mut app,
        pb::SubscribeRequest {
            from_beginning: true,
            contact: accepted.contact.clone(),
            ..Default::default()
        },
    )
    .await;
    let mut after_delivery = Vec::new();
    let mut delivered = false;
    loop {
        let event = crate::events::next(&mut events).await;
        let Some(pb::event::Payload::Message(m)) = &event.payload else {
            continue;
        };
        if m.name == marker.name {
            break;
        }
        if m.name != accepted.name {
            continue;
        }
        if delivered {
            after_delivery.push(event.clone());
        }
        delivered |= m.status == pb::MessageStatus::Delivered as i32;
    }
    assert!(delivered, "the delivery is on the stream");
    assert!(after_delivery.is_empty(), "{after_delivery:#?}");
}

/// Signed requests (signed as Twilio signs them, with the account's token)
/// that fit no call of ours are answered plainly and store nothing: digits
/// outside a gather of ours, or for another call than the gather's message;
/// another account's call; a CallSid Twilio never gives; a call coming in
/// without a caller.
async fn signed_requests_that_fit_no_call_of_ours_store_nothing(app: TestApp) {
    let (mut app, fake) = app_with_twilio_and(app.backend(), |s| {
        s.voice.numbers[0].forward_to = "+4930555000222".into();
    })
    .await;
    let url = format!("{PUBLIC}/webhooks/voice");
    let nobody = |app: &mut TestApp, number: &str| {
        let key = pb::lookup_contact_request::Key::Identity(voice(number));
        let mut contacts = app.contacts.clone();
        async move {
            let found = contacts
                .lookup_contact(pb::LookupContactRequest { key: Some(key) })
                .await;
            assert_eq!(
                found.map(|_| ()).unwrap_err().code(),
                tonic::Code::NotFound,
                "no contact was made"
            );
        }
    };
    let base = |sid: &str, from: &str, to: &str, direction: &str| {
        vec![
            ("AccountSid", ACCOUNT.to_owned()),
            ("ApiVersion", "2010-04-01".to_owned()),
            ("CallSid", sid.to_owned()),
            ("Direction", direction.to_owned()),
            ("From", from.to_owned()),
            ("To", to.to_owned()),
        ]
    };
    // Digits for a call we never placed, to the number's URL: hung up.
    let mut digits = base(
        "CA0000000000000000000000000000dead",
        "+4930123456",
        "+4915155500201",
        "outbound-api",
    );
    digits.push(("Digits", "1".to_owned()));
    let (status, twiml) = fake.post_signed(&url, &digits).await;
    assert_eq!(status, 200);
    assert!(twiml.contains("<Hangup/>"), "{twiml}");
    nobody(&mut app, "+4915155500201").await;

    // Digits posted to a real call's gather, but for another call.
    let accepted = call(&mut app, "Uwe", "+49 151 55500202", "", "Ihr Termin").await;
    let placed = wait_for_call(&fake, 1).await;
    wait_status(&mut app, &accepted.name, pb::MessageStatus::Sent).await;
    let gather = placed
        .twiml
        .split("action=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(|a| a.replace("&amp;", "&"))
        .expect("the call gathers");
    let mut other = base(
        "CA0000000000000000000000000000beef",
        "+4930123456",
        "+4915155500202",
        "outbound-api",
    );
    other.push(("Digits", "1".to_owned()));
    let (status, twiml) = fake.post_signed(&gather, &other).await;
    assert_eq!(status, 200);
    assert!(twiml.contains("<Hangup/>"), "{twiml}");
    // The call's own digit still counts: the one reply on the contact.
    assert_eq!(fake.press(&placed.sid, "2").await.0, 200);
    let replies: Vec<pb::Message> = timeline(&mut app, &accepted.contact)
        .await
        .into_iter()
        .filter(|m| m.direction == pb::Direction::Inbound as i32)
        .collect();
    assert_eq!(replies.len(), 1, "{replies:#?}");
    match &replies[0].content.as_ref().unwrap().kind {
        Some(pb::content::Kind::ChoiceReply(c)) => assert_eq!(c.id, "2"),
        other => panic!("{other:?}"),
    }

    // Another account's call coming in, signed with our token: refused.
    let foreign = FakeTwilio::start("AC00000000000000000000000000000077", TOKEN).await;
    foreign.behind_proxy(PUBLIC, &format!("http://{}", app.http_addr));
    let (_, status, twiml) = foreign.ring_in(&url, "+4915155500203", "+4930123456").await;
    assert_eq!(status, 401, "{twiml}");
    nobody(&mut app, "+4915155500203").await;

    // A CallSid Twilio never gives (5,000 characters): refused.
    let long = format!("CA{}", "0".repeat(4998));
    let mut ringing = base(&long, "+4915155500204", "+4930123456", "inbound");
    ringing.push(("CallStatus", "ringing".to_owned()));
    let (status, twiml) = fake.post_signed(&url, &ringing).await;
    assert_eq!(status, 400, "{twiml}");
    nobody(&mut app, "+4915155500204").await;
    let mut progress = fake.status_params(&placed, "completed", 7);
    for (name, value) in &mut progress {
        if *name == "CallSid" {
            value.clone_from(&long);
        }
    }
    assert_eq!(fake.post_signed(&url, &progress).await.0, 400);

    // A call coming in without a caller: refused, not put through with an
    // empty caller id.
    let anonymous: Vec<(&str, String)> = base(
        "CA0000000000000000000000000000f00d",
        "",
        "+4930123456",
        "inbound",
    )
    .into_iter()
    .filter(|(name, _)| *name != "From")
    .chain([("CallStatus", "ringing".to_owned())])
    .collect();
    let (status, twiml) = fake.post_signed(&url, &anonymous).await;
    assert_eq!(status, 400, "{twiml}");
    assert!(!twiml.contains("<Dial"), "{twiml}");
    let message = crate::messaging::get_message(&mut app, &accepted.name).await;
    assert_eq!(message.status, pb::MessageStatus::Sent as i32, "unchanged");
}
