//! CallbackService end to end, through the fake Twilio API: a callback is
//! scheduled (inside business hours, at the next opening when asked for
//! while closed), placed, answered by a person and bridged to the agent
//! line with `<Dial>`; a busy line, a busy agent or a machine is tried
//! again per the retry plan until it runs out; a callback can be canceled
//! before it is dialled; bad requests change nothing.

use std::time::{Duration, SystemTime};

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use omniroute_voice::fake::FakeTwilio;
use pb::callback_service_client::CallbackServiceClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::support::*;
use crate::voice::{app_with_twilio_and, wait_for_call};

crate::on_both_stores!(
    a_callback_is_answered_and_bridged_to_the_agent,
    busy_lines_busy_agents_and_machines_are_called_again,
    callbacks_that_come_before_the_call_is_recorded_apply_in_order,
    unanswered_until_the_retry_plan_runs_out,
    asked_while_closed_it_is_placed_at_the_next_opening,
    canceled_before_dialing_it_is_never_placed,
    bad_requests_change_nothing,
    a_call_me_tap_on_whatsapp_is_called_back_once,
    an_inbound_call_lands_on_the_contact_opens_whatsapp_and_a_missed_one_is_called_back,
);

pub(crate) const AGENT: &str = "+4930555000111";

pub(crate) async fn app(
    backend: omniroute_e2e::Backend,
    adjust: impl FnOnce(&mut omniroute::Settings),
) -> (TestApp, FakeTwilio, CallbackServiceClient<Channel>) {
    let (app, fake) = app_with_twilio_and(backend, |s| {
        // Retries at once: the plan's waits are routing's arithmetic,
        // tested there.
        s.routing.callback_retry_secs = vec![0, 0];
        adjust(s);
    })
    .await;
    let client = CallbackServiceClient::new(app.channel.clone());
    (app, fake, client)
}

pub(crate) async fn schedule(
    client: &mut CallbackServiceClient<Channel>,
    contact: &pb::Contact,
    schedule_time: Option<SystemTime>,
) -> pb::Callback {
    client
        .create_callback(callback_request(pb::Callback {
            greeting: "Hallo, hier ist Acme. Wir verbinden Sie.".into(),
            reason: "order 1234 arrived damaged".into(),
            correlation_ref: "ticket-77".into(),
            schedule_time: schedule_time.map(prost_types::Timestamp::from),
            ..callback_for(&contact.name, AGENT)
        }))
        .await
        .expect("scheduled")
        .into_inner()
        .callback
        .expect("a callback")
}

pub(crate) async fn get(client: &mut CallbackServiceClient<Channel>, name: &str) -> pb::Callback {
    client
        .get_callback(pb::GetCallbackRequest { name: name.into() })
        .await
        .expect("found")
        .into_inner()
        .callback
        .unwrap()
}

/// Waits until the callback is in `state`.
pub(crate) async fn wait_state(
    client: &mut CallbackServiceClient<Channel>,
    name: &str,
    state: pb::CallbackState,
) -> pb::Callback {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let callback = get(client, name).await;
        if callback.state == state as i32 {
            return callback;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {:?}, not {state:?}: {callback:#?}",
            pb::CallbackState::try_from(callback.state)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The reasons of the failures in a callback message's history, in order.
async fn failure_reasons(app: &mut TestApp, message: &str) -> Vec<String> {
    crate::messaging::get_message(app, message)
        .await
        .status_history
        .into_iter()
        .filter(|h| h.status == pb::MessageStatus::Failed as i32)
        .map(|h| h.reason)
        .collect()
}

pub(crate) async fn customer(app: &mut TestApp, name: &str, number: &str) -> pb::Contact {
    create(app, name, vec![voice(number)]).await
}

async fn a_callback_is_answered_and_bridged_to_the_agent(app_: TestApp) {
    let (mut app, fake, mut callbacks) = app(app_.backend(), |_| {}).await;
    let anna = customer(&mut app, "Anna", "+49 151 55500011").await;
    let created = schedule(&mut callbacks, &anna, None).await;
    assert!(created.name.starts_with("callbacks/"), "{}", created.name);
    assert_eq!(created.contact, anna.name);
    assert_eq!(created.agent_address, AGENT);
    assert_eq!(created.reason, "order 1234 arrived damaged");
    assert_eq!(created.correlation_ref, "ticket-77");
    assert_eq!(created.state, pb::CallbackState::Scheduled as i32);

    let call = wait_for_call(&fake, 1).await;
    assert_eq!(call.to, "+4915155500011");
    assert_eq!(call.from, "+4930123456");
    assert_eq!(call.machine_detection.as_deref(), Some("Enable"));
    let dialing = wait_state(&mut callbacks, &created.name, pb::CallbackState::Dialing).await;
    assert_eq!(dialing.attempt_count, 1);

    // Anna answers: greeted, then bridged to the agent line.
    let (status, twiml) = fake.answer(&call.sid, "human").await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains("<Say language=\"de-DE\">Hallo, hier ist Acme. Wir verbinden Sie.</Say>"),
        "{twiml}"
    );
    assert!(twiml.contains("<Dial callerId=\"+4930123456\""), "{twiml}");
    let talking = wait_state(&mut callbacks, &created.name, pb::CallbackState::InProgress).await;
    assert_eq!(talking.answered_by, "human");
    // They talk for 95 s; then the call ends.
    let (status, after) = fake.dial(&call.sid, "completed", 95).await;
    assert_eq!(status, 200);
    assert!(after.contains("<Hangup/>"), "{after}");
    assert_eq!(fake.calls()[0].dialed, [AGENT]);
    assert_eq!(fake.hang_up(&call.sid).await, 200);
    let done = wait_state(&mut callbacks, &created.name, pb::CallbackState::Completed).await;
    assert_eq!(done.duration_seconds, 95);
    assert_eq!(done.answered_by, "human");
    assert_eq!(done.status_reason, "");

    // The call's end after the bridge is no failure: the message was
    // delivered once and nothing failed.
    assert_delivered_without_a_failure(&mut app, &done.message).await;
    assert_eq!(fake.calls().len(), 1, "placed once");

    // Listed for its contact and by state.
    let listed = callbacks
        .list_callbacks(pb::ListCallbacksRequest {
            contact: anna.name.clone(),
            state: pb::CallbackState::Completed as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.callbacks.len(), 1);
    assert_eq!(listed.callbacks[0].name, created.name);
    let scheduled = callbacks
        .list_callbacks(pb::ListCallbacksRequest {
            state: pb::CallbackState::Scheduled as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(scheduled.callbacks.is_empty(), "{scheduled:#?}");
}

async fn busy_lines_busy_agents_and_machines_are_called_again(app_: TestApp) {
    let (mut app, fake, mut callbacks) = app(app_.backend(), |s| {
        s.routing.callback_retry_secs = vec![0, 0, 0];
    })
    .await;
    let ben = customer(&mut app, "Ben", "+49 151 55500022").await;
    let created = schedule(&mut callbacks, &ben, None).await;
    // The line is busy.
    let first = wait_for_call(&fake, 1).await;
    assert_eq!(fake.finish(&first.sid, "busy").await, [200, 200]);
    // A machine answers: not reached, hung up without a bridge.
    let second = wait_for_call(&fake, 2).await;
    let (_, twiml) = fake.answer(&second.sid, "machine_start").await;
    assert!(!twiml.contains("<Dial"), "{twiml}");
    assert_eq!(fake.hang_up(&second.sid).await, 200);
    // Ben answers, but the agent line is busy: called again later.
    let third = wait_for_call(&fake, 3).await;
    let (_, twiml) = fake.answer(&third.sid, "human").await;
    assert!(twiml.contains("<Dial"), "{twiml}");
    assert_eq!(fake.dial(&third.sid, "busy", 0).await.0, 200);
    assert_eq!(fake.hang_up(&third.sid).await, 200);
    // Then it works.
    let fourth = wait_for_call(&fake, 4).await;
    fake.answer(&fourth.sid, "human").await;
    fake.dial(&fourth.sid, "completed", 30).await;
    fake.hang_up(&fourth.sid).await;
    let done = wait_state(&mut callbacks, &created.name, pb::CallbackState::Completed).await;
    assert_eq!(done.attempt_count, 4);
    assert_eq!(done.duration_seconds, 30);
    let failures = failure_reasons(&mut app, &done.message).await;
    assert_eq!(
        failures.len(),
        3,
        "one per unsuccessful call: {failures:#?}"
    );
    for (failure, code) in failures
        .iter()
        .zip(["call-busy", "call-machine", "agent-busy"])
    {
        assert!(failure.contains(code), "{failure}");
    }
    assert_eq!(fake.calls().len(), 4);
}

/// A provider can play a call's callbacks before its answer to placing
/// the call reaches the router, so before the attempt is recorded. Those
/// reports wait, in their order, and apply once it is: the busy agent line
/// counts as such (not the hang-up after it), and who answered and how long
/// the agent talked are kept.
async fn callbacks_that_come_before_the_call_is_recorded_apply_in_order(app_: TestApp) {
    let (mut app, fake, mut callbacks) = app(app_.backend(), |_| {}).await;
    let dora = customer(&mut app, "Dora", "+49 151 55500044").await;
    fake.hold_answers();
    let created = schedule(&mut callbacks, &dora, None).await;
    // Answered and the agent line busy; then the router hears of the call,
    // and the hang-up comes while the busy line's report waits to be tried
    // again: the hang-up waits behind it.
    let first = wait_for_call(&fake, 1).await;
    let (_, twiml) = fake.answer(&first.sid, "human").await;
    assert!(twiml.contains("<Dial"), "{twiml}");
    assert_eq!(fake.dial(&first.sid, "busy", 0).await.0, 200);
    fake.release_held();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while crate::messaging::get_message(&mut app, &created.message)
        .await
        .attempts
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(fake.hang_up(&first.sid).await, 200);
    // Called again: 42 seconds with the agent, all before it is recorded.
    let second = wait_for_call(&fake, 2).await;
    fake.answer(&second.sid, "human").await;
    assert_eq!(fake.dial(&second.sid, "completed", 42).await.0, 200);
    assert_eq!(fake.hang_up(&second.sid).await, 200);
    fake.release_held();
    let done = wait_state(&mut callbacks, &created.name, pb::CallbackState::Completed).await;
    assert_eq!(done.attempt_count, 2, "{done:#?}");
    assert_eq!(done.answered_by, "human", "{done:#?}");
    assert_eq!(done.duration_seconds, 42, "{done:#?}");
    let failures = failure_reasons(&mut app, &done.message).await;
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert!(failures[0].contains("agent-busy"), "{failures:#?}");
}

async fn unanswered_until_the_retry_plan_runs_out(app_: TestApp) {
    let (mut app, fake, mut callbacks) = app(app_.backend(), |_| {}).await;
    let cleo = customer(&mut app, "Cleo", "+49 151 55500033").await;
    let created = schedule(&mut callbacks, &cleo, None).await;
    // The plan has two retries: three calls.
    for n in 1..=3 {
        let placed = wait_for_call(&fake, n).await;
        assert_eq!(fake.finish(&placed.sid, "no-answer").await, [200, 200]);
    }
    let gave_up = wait_state(&mut callbacks, &created.name, pb::CallbackState::NoAnswer).await;
    assert!(
        gave_up
            .status_reason
            .contains("retries exhausted after 3 attempts"),
        "{}",
        gave_up.status_reason
    );
    assert_eq!(gave_up.attempt_count, 3);
    assert_eq!(fake.calls().len(), 3, "no fourth call");
}

/// The weekday name of `time` in UTC, as the settings write it.
fn weekday(time: jiff::Timestamp) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][time
        .to_zoned(jiff::tz::TimeZone::UTC)
        .weekday()
        .to_monday_zero_offset() as usize]
}

async fn asked_while_closed_it_is_placed_at_the_next_opening(app_: TestApp) {
    // The business opens at the next whole minute (UTC) at least 3 s away,
    // until midnight: now it is closed.
    let now = jiff::Timestamp::now();
    let opening = (now + jiff::SignedDuration::from_secs(63))
        .round(
            jiff::TimestampRound::new()
                .smallest(jiff::Unit::Minute)
                .mode(jiff::RoundMode::Trunc),
        )
        .unwrap();
    let local = opening.to_zoned(jiff::tz::TimeZone::UTC);
    let span = format!(
        "{} {:02}:{:02}-24:00",
        weekday(opening),
        local.hour(),
        local.minute()
    );
    let (mut app, fake, mut callbacks) = app(app_.backend(), move |s| {
        s.routing.business_hours = vec![span];
        s.routing.business_time_zone = "UTC".into();
    })
    .await;
    let dora = customer(&mut app, "Dora", "+49 151 55500044").await;
    // Asked for a latest time before the opening: no time to call.
    let err = callbacks
        .create_callback(callback_request(pb::Callback {
            latest_time: Some(prost_types::Timestamp::from(
                SystemTime::from(opening) - Duration::from_secs(1),
            )),
            ..callback_for(&dora.name, AGENT)
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("business hours"),
        "{}",
        err.message()
    );

    let created = schedule(&mut callbacks, &dora, None).await;
    assert_eq!(created.state, pb::CallbackState::Scheduled as i32);
    assert_eq!(
        created.schedule_time,
        Some(prost_types::Timestamp::from(SystemTime::from(opening))),
        "planned for the opening"
    );
    let listed = callbacks
        .list_callbacks(pb::ListCallbacksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.callbacks.len(), 1, "the refused one was not kept");
    // Placed once the business opens, not before.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while fake.calls().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never placed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its outcome is recorded just after the provider took the call.
    let message =
        crate::whatsapp::wait_status(&mut app, &created.message, pb::MessageStatus::Sent).await;
    let placed = message.attempts[0].start_time.expect("a start time");
    assert!(
        SystemTime::try_from(placed).unwrap() >= SystemTime::from(opening),
        "placed at {placed:?}, before the opening {opening}"
    );
}

async fn canceled_before_dialing_it_is_never_placed(app_: TestApp) {
    let (mut app, fake, mut callbacks) = app(app_.backend(), |_| {}).await;
    let emil = customer(&mut app, "Emil", "+49 151 55500055").await;
    let later = SystemTime::now() + Duration::from_secs(3600);
    let created = schedule(&mut callbacks, &emil, Some(later)).await;
    assert_eq!(created.state, pb::CallbackState::Scheduled as i32);
    let canceled = callbacks
        .cancel_callback(pb::CancelCallbackRequest {
            name: created.name.clone(),
        })
        .await
        .expect("canceled")
        .into_inner()
        .callback
        .unwrap();
    assert_eq!(canceled.state, pb::CallbackState::Canceled as i32);
    assert_eq!(
        get(&mut callbacks, &created.name).await.state,
        pb::CallbackState::Canceled as i32
    );
    let again = callbacks
        .cancel_callback(pb::CancelCallbackRequest {
            name: created.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert!(fake.calls().is_empty(), "never dialled");
}

async fn bad_requests_change_nothing(app_: TestApp) {
    let (mut app, _fake, mut callbacks) = app(app_.backend(), |_| {}).await;
    let fritz = customer(&mut app, "Fritz", "+49 151 55500066").await;
    let field_names = |status: &tonic::Status| -> Vec<String> {
        use tonic_types::StatusExt;
        status
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default()
    };
    // An agent line that is not a number, a greeting too long to say, an
    // expiry in the past.
    let err = callbacks
        .create_callback(callback_request(pb::Callback {
            greeting: "x".repeat(2000),
            latest_time: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..callback_for(&fritz.name, "the front desk")
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let fields = field_names(&err);
    assert!(
        fields.contains(&"callback.agent_address".to_owned())
            && fields.contains(&"callback.latest_time".to_owned()),
        "{fields:?}"
    );
    // The greeting is the voice adapter's rule, checked once routing has
    // the call: alone it is refused too.
    let err = callbacks
        .create_callback(callback_request(pb::Callback {
            greeting: "x".repeat(2000),
            ..callback_for(&fritz.name, AGENT)
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(field_names(&err), ["callback.greeting"]);
    // No contact; an unknown one; a contact without a phone number.
    let err = callbacks
        .create_callback(callback_request(callback_for("", AGENT)))
        .await
        .unwrap_err();
    assert_eq!(field_names(&err), ["callback.contact"]);
    let mail_only = create(&mut app, "Greta", vec![email("greta@example.com")]).await;
    let err = callbacks
        .create_callback(callback_request(callback_for(&mail_only.name, AGENT)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    // A message's name is no callback's.
    let text = send_text(&mut app, &fritz.name, "hello").await;
    let id = text.name.trim_start_matches("messages/");
    let err = callbacks
        .get_callback(pb::GetCallbackRequest {
            name: format!("callbacks/{id}"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = callbacks
        .get_callback(pb::GetCallbackRequest {
            name: "messages/x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let listed = callbacks
        .list_callbacks(pb::ListCallbacksRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.callbacks.is_empty(), "{listed:#?}");
}

async fn a_call_me_tap_on_whatsapp_is_called_back_once(app_: TestApp) {
    let graph = omniroute_whatsapp::fake::FakeGraph::start("EAAG-test-token").await;
    let base = graph.base_url();
    let (mut app, fake, mut callbacks) = app(app_.backend(), move |s| {
        crate::whatsapp::use_graph(s, base);
        s.routing.call_me = vec![omniroute::settings::CallMeButton {
            tenant: "default".into(),
            button_id: "call_me".into(),
            agent_address: AGENT.into(),
            greeting: "Sie wollten angerufen werden.".into(),
        }];
    })
    .await;
    // A tap on another button is only a reply.
    let other = crate::whatsapp::inbound_button("wamid.OTHER", "4915155500088", "later", "Later");
    assert_eq!(crate::whatsapp::webhook(&app, &other).await.status, 200);
    // The tap, delivered twice (Meta redelivers).
    let tap = crate::whatsapp::inbound_button("wamid.TAP", "4915155500088", "call_me", "Call me");
    for _ in 0..2 {
        assert_eq!(crate::whatsapp::webhook(&app, &tap).await.status, 200);
    }
    let call = wait_for_call(&fake, 1).await;
    // The number they write from, called.
    assert_eq!(call.to, "+4915155500088");
    let listed = callbacks
        .list_callbacks(pb::ListCallbacksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .callbacks;
    assert_eq!(listed.len(), 1, "one callback for the tap: {listed:#?}");
    assert_eq!(listed[0].agent_address, AGENT);
    assert_eq!(listed[0].correlation_ref, "call-me:call_me");
    let (_, twiml) = fake.answer(&call.sid, "human").await;
    assert!(twiml.contains("Sie wollten angerufen werden."), "{twiml}");
    // The contact is the one who tapped, on WhatsApp.
    let contact = crate::support::get(&mut app, &listed[0].contact).await;
    assert!(
        contact
            .identities
            .iter()
            .any(|i| i.channel == pb::Channel::Whatsapp as i32),
        "{contact:#?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.calls().len(), 1, "called once");
}

async fn an_inbound_call_lands_on_the_contact_opens_whatsapp_and_a_missed_one_is_called_back(
    app_: TestApp,
) {
    let graph = omniroute_whatsapp::fake::FakeGraph::start("EAAG-test-token").await;
    let base = graph.base_url();
    let (mut app, fake, mut callbacks) = app(app_.backend(), move |s| {
        crate::whatsapp::use_graph(s, base);
        s.voice.numbers[0].forward_to = "+4930555000222".into();
        s.voice.numbers[0].greeting = "Willkommen bei Acme.".into();
        s.routing.missed_calls = vec![omniroute::settings::MissedCallCallback {
            tenant: "default".into(),
            agent_address: AGENT.into(),
            greeting: "Sie haben uns angerufen.".into(),
        }];
    })
    .await;
    // Hanna writes on WhatsApp from the number she calls from, but not for
    // a long time: her window is closed, so free-form text cannot go.
    let hanna = create(&mut app, "Hanna", vec![whatsapp("+49 151 55500123")]).await;
    let free_form = |contact: &str| {
        send_to(
            contact,
            pb::Message {
                channel: pb::Channel::Whatsapp as i32,
                ..crate::messaging::text_message("Wir haben Ihren Anruf gesehen")
            },
        )
    };
    let refused = app
        .messaging
        .send_message(free_form(&hanna.name))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    // She calls: greeted, then put through to the agent line, showing her
    // number.
    let url = format!("{}/webhooks/voice", crate::voice::PUBLIC);
    let (sid, status, twiml) = fake.ring_in(&url, "+4915155500123", "+4930123456").await;
    assert_eq!(status, 200);
    assert!(
        twiml.contains("<Say language=\"de-DE\">Willkommen bei Acme.</Say>"),
        "{twiml}"
    );
    assert!(
        twiml.contains("<Dial callerId=\"+4915155500123\"")
            && twiml.contains("<Number>+4930555000222</Number>"),
        "{twiml}"
    );
    // The call is hers, on the same contact, with her voice number linked.
    let messages = crate::reliability::timeline(&mut app, &hanna.name).await;
    let call = messages
        .iter()
        .find(|m| m.direction == pb::Direction::Inbound as i32)
        .expect("the call is recorded on her contact");
    assert_eq!(call.channel, pb::Channel::Voice as i32);
    match &call.content.as_ref().unwrap().kind {
        Some(pb::content::Kind::InboundCall(c)) => assert_eq!(c.line, "+4930123456"),
        other => panic!("{other:?}"),
    }
    let contact = crate::support::get(&mut app, &hanna.name).await;
    assert!(
        contact
            .identities
            .iter()
            .any(|i| i.channel == pb::Channel::Voice as i32 && i.address == "+4915155500123"),
        "{contact:#?}"
    );
    // It opened her WhatsApp window: free-form text goes now.
    let sent = send_ok(&mut app, free_form(&hanna.name)).await;
    assert_eq!(sent.channel, pb::Channel::Whatsapp as i32);

    // Nobody takes the agent line: a missed call, called back once.
    let (status, _) = fake.dial(&sid, "no-answer", 0).await;
    assert_eq!(status, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while fake.placed().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never called back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let back = fake.placed().remove(0);
    assert_eq!(back.to, "+4915155500123");
    let listed = callbacks
        .list_callbacks(pb::ListCallbacksRequest {
            contact: hanna.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .callbacks;
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0].correlation_ref, "missed-call");
    assert_eq!(listed[0].agent_address, AGENT);
    // A stranger's call creates their contact.
    let (_, status, _) = fake.ring_in(&url, "+4915155500999", "+4930123456").await;
    assert_eq!(status, 200);
    let found = app
        .contacts
        .lookup_contact(pb::LookupContactRequest {
            key: Some(pb::lookup_contact_request::Key::Identity(voice(
                "+4915155500999",
            ))),
        })
        .await
        .expect("the caller became a contact")
        .into_inner();
    assert!(found.contact.is_some());
}
