//! A callback's state between and during its calls, through the fake
//! Twilio API: after a call that did not reach the customer it is
//! scheduled again, at its next call's time, listed and cancelable as
//! such; while its call rings, canceling it ends the call; once the
//! customer answered, it is under way. Every change of its state is a
//! `CALLBACK_CHANGED` event with the callback and its `correlation_ref`.

use std::time::{Duration, SystemTime};

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use pb::CallbackState as State;
use pb::callback_service_client::CallbackServiceClient;
use tonic::Code;
use tonic::transport::Channel;

use crate::callbacks::{app, customer, get, schedule, wait_state};
use crate::voice::{PUBLIC, wait_for_call};

crate::on_both_stores!(
    between_two_calls_a_callback_is_scheduled_at_its_next_call_and_cancelable,
    canceling_a_callback_while_its_call_rings_ends_the_call,
    every_change_of_a_callbacks_state_is_an_event,
);

/// The callbacks ListCallbacks answers for `state`, by name.
async fn listed(client: &mut CallbackServiceClient<Channel>, state: State) -> Vec<String> {
    client
        .list_callbacks(pb::ListCallbacksRequest {
            state: state as i32,
            ..Default::default()
        })
        .await
        .expect("listed")
        .into_inner()
        .callbacks
        .into_iter()
        .map(|c| c.name)
        .collect()
}

fn cancel(name: &str) -> pb::CancelCallbackRequest {
    pb::CancelCallbackRequest {
        name: name.to_owned(),
    }
}

/// Nobody answers the first call; the retry plan calls again in ten
/// minutes. Meanwhile the callback is SCHEDULED at that time, with why,
/// listed as scheduled, and canceled for good when the customer asks for
/// no more calls.
async fn between_two_calls_a_callback_is_scheduled_at_its_next_call_and_cancelable(app_: TestApp) {
    let (mut app, fake, mut callbacks) = app(app_.backend(), |s| {
        s.routing.callback_retry_secs = vec![600, 600];
    })
    .await;
    let ida = customer(&mut app, "Ida", "+49 151 55500301").await;
    let created = schedule(&mut callbacks, &ida, None).await;
    let first = wait_for_call(&fake, 1).await;
    wait_state(&mut callbacks, &created.name, State::Dialing).await;
    assert_eq!(
        listed(&mut callbacks, State::Scheduled).await,
        Vec::<String>::new()
    );
    let ended = SystemTime::now();
    assert_eq!(fake.finish(&first.sid, "no-answer").await, [200, 200]);

    let waiting = wait_state(&mut callbacks, &created.name, State::Scheduled).await;
    let next = SystemTime::try_from(waiting.schedule_time.expect("a time")).unwrap();
    assert!(
        next >= ended + Duration::from_secs(599)
            && next <= SystemTime::now() + Duration::from_secs(601),
        "the next call, ten minutes on: {waiting:#?}"
    );
    assert_eq!(waiting.attempt_count, 1);
    assert!(
        waiting.status_reason.contains("call-no-answer"),
        "{}",
        waiting.status_reason
    );
    assert_eq!(
        listed(&mut callbacks, State::Scheduled).await,
        std::slice::from_ref(&created.name)
    );
    assert!(listed(&mut callbacks, State::Dialing).await.is_empty());

    // "Stop calling me": canceled, and nothing is left to call again.
    let canceled = callbacks
        .cancel_callback(cancel(&created.name))
        .await
        .expect("canceled between two calls")
        .into_inner()
        .callback
        .unwrap();
    assert_eq!(canceled.state, State::Canceled as i32, "{canceled:#?}");
    assert_eq!(canceled.status_reason, "canceled by caller");
    assert_eq!(
        get(&mut callbacks, &created.name).await.state,
        State::Canceled as i32
    );
    assert_eq!(
        listed(&mut callbacks, State::Canceled).await,
        std::slice::from_ref(&created.name)
    );
    assert!(listed(&mut callbacks, State::Scheduled).await.is_empty());
    let message = crate::messaging::get_message(&mut app, &canceled.message).await;
    assert_eq!(message.status, pb::MessageStatus::Canceled as i32);
    let queue = app.store().queue_stats().await.expect("queue stats");
    assert_eq!(queue.jobs, 0, "no call is due any more: {queue:?}");
    let again = callbacks
        .cancel_callback(cancel(&created.name))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    assert_eq!(fake.calls().len(), 1);
}

/// Canceled while the customer's phone rings: the call is ended through
/// Twilio, its end changes nothing more, and if the customer picks up
/// anyway the call is hung up, not bridged. Once the customer answered,
/// a callback is under way and cannot be canceled.
async fn canceling_a_callback_while_its_call_rings_ends_the_call(app_: TestApp) {
    let (mut app, fake, mut callbacks) = app(app_.backend(), |_| {}).await;
    let jan = customer(&mut app, "Jan", "+49 151 55500302").await;
    let created = schedule(&mut callbacks, &jan, None).await;
    let call = wait_for_call(&fake, 1).await;
    wait_state(&mut callbacks, &created.name, State::Dialing).await;
    let ringing = fake.status_params(&call, "ringing", 1);
    let status_url = format!("{PUBLIC}/webhooks/voice?leg=callback");
    assert_eq!(fake.post_signed(&status_url, &ringing).await.0, 200);

    let canceled = callbacks
        .cancel_callback(cancel(&created.name))
        .await
        .expect("canceled while it rings")
        .into_inner()
        .callback
        .unwrap();
    assert_eq!(canceled.state, State::Canceled as i32, "{canceled:#?}");
    assert_eq!(fake.calls()[0].status, "canceled", "the call was ended");
    // Twilio reports the canceled call: nothing changes.
    let end = fake.status_params(&call, "canceled", 2);
    assert_eq!(fake.post_signed(&status_url, &end).await.0, 200);
    // Picked up at the last moment: hung up, no bridge to the agent.
    let (status, twiml) = fake.answer(&call.sid, "human").await;
    assert_eq!(status, 200);
    assert!(!twiml.contains("<Dial"), "{twiml}");
    let message = crate::messaging::get_message(&mut app, &canceled.message).await;
    assert_eq!(message.status, pb::MessageStatus::Canceled as i32);
    let last = message.status_history.last().unwrap();
    assert_eq!(
        (last.status, last.reason.as_str()),
        (pb::MessageStatus::Canceled as i32, "canceled by caller"),
        "{:#?}",
        message.status_history
    );
    assert_eq!(fake.calls().len(), 1, "never called again");

    // Answered: under way, not cancelable.
    let kim = customer(&mut app, "Kim", "+49 151 55500303").await;
    let answered = schedule(&mut callbacks, &kim, None).await;
    let call = wait_for_call(&fake, 2).await;
    fake.answer(&call.sid, "human").await;
    wait_state(&mut callbacks, &answered.name, State::InProgress).await;
    let refused = callbacks
        .cancel_callback(cancel(&answered.name))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(
        get(&mut callbacks, &answered.name).await.state,
        State::InProgress as i32
    );
}

/// The `CALLBACK_CHANGED` events of one callback, until one in `last`.
async fn callback_events(
    stream: &mut tonic::Streaming<pb::SubscribeResponse>,
    name: &str,
    last: State,
) -> Vec<pb::Event> {
    let mut events = Vec::new();
    loop {
        let event = crate::events::next(stream).await;
        assert_eq!(event.r#type, pb::EventType::CallbackChanged as i32);
        let Some(pb::event::Payload::Callback(callback)) = &event.payload else {
            panic!("a callback event carries the callback: {event:#?}");
        };
        if callback.name != name {
            continue;
        }
        let done = callback.state == last as i32;
        events.push(event);
        if done {
            return events;
        }
    }
}

fn state_of(event: &pb::Event) -> State {
    match &event.payload {
        Some(pb::event::Payload::Callback(c)) => State::try_from(c.state).unwrap(),
        _ => State::Unspecified,
    }
}

/// Scheduled, dialing, scheduled again after a busy line, dialing, in
/// progress once answered, completed once bridged: each an event with the
/// callback as it was and its correlation reference; a cancellation too.
async fn every_change_of_a_callbacks_state_is_an_event(app_: TestApp) {
    let (mut app, fake, mut callbacks) = app(app_.backend(), |_| {}).await;
    let mut stream = crate::events::subscribe(
        &mut app,
        pb::SubscribeRequest {
            from_beginning: true,
            types: vec![pb::EventType::CallbackChanged as i32],
            ..Default::default()
        },
    )
    .await;
    let lea = customer(&mut app, "Lea", "+49 151 55500304").await;
    let created = schedule(&mut callbacks, &lea, None).await;
    let first = wait_for_call(&fake, 1).await;
    assert_eq!(fake.finish(&first.sid, "busy").await, [200, 200]);
    let second = wait_for_call(&fake, 2).await;
    fake.answer(&second.sid, "human").await;
    assert_eq!(fake.dial(&second.sid, "completed", 64).await.0, 200);
    assert_eq!(fake.hang_up(&second.sid).await, 200);

    let events = callback_events(&mut stream, &created.name, State::Completed).await;
    let states: Vec<State> = events.iter().map(state_of).collect();
    assert_eq!(
        states,
        [
            State::Scheduled,
            State::Dialing,
            State::Scheduled,
            State::Dialing,
            State::InProgress,
            State::Completed
        ],
        "{events:#?}"
    );
    for event in &events {
        assert_eq!(event.correlation_ref, "ticket-77");
        assert_eq!(event.contact, lea.name);
    }
    let callback = |i: usize| match &events[i].payload {
        Some(pb::event::Payload::Callback(c)) => c.clone(),
        _ => unreachable!(),
    };
    assert_eq!(callback(0).attempt_count, 0);
    assert_eq!(callback(1).attempt_count, 1);
    assert!(
        callback(2).status_reason.contains("call-busy"),
        "{:#?}",
        callback(2)
    );
    assert_eq!(callback(4).answered_by, "human");
    assert_eq!(callback(5).duration_seconds, 64);
    assert_eq!(callback(5).attempt_count, 2);

    // Canceled before its time: scheduled, then canceled.
    let later = SystemTime::now() + Duration::from_secs(3600);
    let waiting = schedule(&mut callbacks, &lea, Some(later)).await;
    callbacks
        .cancel_callback(cancel(&waiting.name))
        .await
        .expect("canceled");
    let events = callback_events(&mut stream, &waiting.name, State::Canceled).await;
    let states: Vec<State> = events.iter().map(state_of).collect();
    assert_eq!(states, [State::Scheduled, State::Canceled], "{events:#?}");
}
