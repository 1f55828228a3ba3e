//! Callbacks: outbound callback requests listed in the order they are due,
//! by contact and status, read one at a time, with the progress of their
//! current call as the telephony provider reports it.

use std::time::{Duration, SystemTime};

use omniroute_channel::content::CallbackRequest;
use omniroute_channel::{Channel, Content};
use omniroute_domain::{
    AttemptOutcome, Callback, CallbackFilter, CallbackMark, CallbackState, EventFilter,
    EventPayload, EventType, Message, MessageStatus, NewContact, NewInbound, NewMessage, NextStep,
    PlannedChannel, ProviderStatus, Received, callback_due, statuses_in,
};
use omniroute_store::StoreError;
use uuid::Uuid;

use crate::messaging::{
    LONG, accept, claim_one, complete, current, message, micros, outbound, recipient, report, sent,
};
use crate::support::*;

/// Another tenant.
const OTHER: &str = "tenant-b";

/// A callback request to `contact_id` on one voice step: due at
/// `send_time` (now when `None`; scheduled when in the future).
pub fn callback(contact_id: Uuid, send_time: Option<SystemTime>) -> NewMessage {
    NewMessage {
        content: Content::CallbackRequest(CallbackRequest {
            agent_address: "+4930123456".into(),
            greeting: "Hallo, hier ist Ihr Rückruf.".into(),
            language: "de".into(),
            ..CallbackRequest::default()
        }),
        send_time,
        ..single_voice_step(outbound(contact_id), "+49 151 23456789")
    }
}

/// `new` with a plan of one voice step to `number`.
fn single_voice_step(mut new: NewMessage, number: &str) -> NewMessage {
    new.route.plan = vec![PlannedChannel::to(&voice(number))];
    new.route.skipped.clear();
    new
}

/// Accepts a callback and has its call placed under `call_id` (its
/// provider id); it must be the one due job.
pub async fn send_callback(store: &S, new: NewMessage, call_id: &str) -> Message {
    let m = accept(store, new).await;
    let job = claim_one(store, m.id, LONG).await;
    complete(store, &job, AttemptOutcome::Accepted, sent(call_id)).await
}

/// `time` ago, as the stores keep it.
fn ago(time: Duration) -> Option<SystemTime> {
    Some(micros(SystemTime::now() - time))
}

const HOUR: Duration = Duration::from_secs(3600);

/// Every callback `filter` selects, read in pages of `limit`.
async fn list_all(store: &S, tenant: &str, filter: &CallbackFilter, limit: usize) -> Vec<Callback> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_callbacks(tenant, filter, after, limit)
            .await
            .expect("list_callbacks");
        assert!(page.len() <= limit, "a page holds at most the limit");
        let Some(last) = page.last() else {
            return all;
        };
        after = Some(CallbackMark::of(&last.message));
        all.extend(page);
    }
}

/// The ids of listed callbacks, in order.
fn listed_ids(listed: &[Callback]) -> Vec<Uuid> {
    listed.iter().map(|c| c.message.id).collect()
}

/// The ids of `messages` in list order: by when due, then id.
fn in_due_order(messages: &[&Message]) -> Vec<Uuid> {
    let mut sorted: Vec<&Message> = messages.to_vec();
    sorted.sort_by_key(|m| (callback_due(m), m.id));
    sorted.iter().map(|m| m.id).collect()
}

fn by_contact(contact_id: Uuid) -> CallbackFilter {
    CallbackFilter {
        contact_id: Some(contact_id),
        ..CallbackFilter::default()
    }
}

fn in_statuses(statuses: &[MessageStatus]) -> CallbackFilter {
    CallbackFilter {
        statuses: statuses.to_vec(),
        ..CallbackFilter::default()
    }
}

/// A customer's call to us on the voice line, carrying callback content:
/// inbound, so never a callback.
fn inbound_call(from: &str, provider_id: &str) -> NewInbound {
    NewInbound {
        channel: Channel::Voice,
        from: voice(from),
        profile_name: None,
        provider_user_id: None,
        provider_message_id: provider_id.into(),
        time: SystemTime::now(),
        content: callback(Uuid::nil(), None).content,
        reply_to: None,
        line: "+4930123456".into(),
        opens_window: None,
        also_opens: None,
        automatic: false,
        media_bytes: None,
    }
}

pub async fn callbacks_are_listed_by_due_time_then_id_in_pages(store: S) {
    let anna = recipient(&store).await;
    let one_hour = accept(&store, callback(anna, ago(HOUR))).await;
    let three_hours = accept(&store, callback(anna, ago(3 * HOUR))).await;
    let now_due = accept(&store, callback(anna, None)).await;
    // Due at the same time as `one_hour`: the id decides.
    let tied = accept(&store, callback(anna, one_hour.send_time)).await;
    let two_hours = accept(&store, callback(anna, ago(2 * HOUR))).await;
    let tomorrow = accept(
        &store,
        callback(anna, Some(micros(SystemTime::now() + 24 * HOUR))),
    )
    .await;
    assert_eq!(tomorrow.status, MessageStatus::Queued, "scheduled");
    // Never listed: a text message, a customer's call, another tenant's
    // callback.
    accept(&store, outbound(anna)).await;
    let incoming = store
        .record_inbound(T, inbound_call("+49 151 23456789", "call-in-1"))
        .await
        .unwrap();
    assert!(matches!(incoming, Received::New(_)));
    let bert = store
        .create_contact(
            OTHER,
            NewContact {
                profile: named("Bert"),
                identities: vec![email("bert@example.com")],
            },
        )
        .await
        .unwrap();
    let theirs = current(&store, OTHER, callback(bert.id, ago(4 * HOUR))).await;
    store.accept_message(OTHER, theirs).await.unwrap();

    let expected = in_due_order(&[
        &one_hour,
        &three_hours,
        &now_due,
        &tied,
        &two_hours,
        &tomorrow,
    ]);
    assert_eq!(expected[..2], [three_hours.id, two_hours.id], "by due time");
    assert!(expected[2..4].contains(&one_hour.id) && expected[2..4].contains(&tied.id));
    assert_eq!(expected[4..], [now_due.id, tomorrow.id]);
    let everything = CallbackFilter::default();
    let listed = store
        .list_callbacks(T, &everything, None, 100)
        .await
        .unwrap();
    assert_eq!(listed_ids(&listed), expected);
    for c in &listed {
        assert_eq!(
            c.message,
            message(&store, c.message.id).await,
            "listed as stored"
        );
        assert_eq!(c.progress, None, "no call reported yet");
        assert!(c.next_call.is_some(), "each waits for its first call");
    }
    for limit in [1, 2, 4] {
        let paged = list_all(&store, T, &everything, limit).await;
        assert_eq!(listed_ids(&paged), expected, "pages of {limit}");
    }
    // Strictly after a position, also one between two callbacks.
    let after_tie = CallbackMark::of(&message(&store, expected[2]).await);
    let rest = store
        .list_callbacks(T, &everything, Some(after_tie), 100)
        .await
        .unwrap();
    assert_eq!(listed_ids(&rest), expected[3..]);
    let between = CallbackMark {
        due: callback_due(&two_hours) + Duration::from_secs(1),
        id: Uuid::nil(),
    };
    let rest = store
        .list_callbacks(T, &everything, Some(between), 100)
        .await
        .unwrap();
    assert_eq!(listed_ids(&rest), expected[2..]);
    let last = CallbackMark::of(&tomorrow);
    assert!(
        store
            .list_callbacks(T, &everything, Some(last), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_callbacks(T, &everything, None, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let other = list_all(&store, OTHER, &everything, 10).await;
    assert_eq!(other.len(), 1, "each tenant lists its own");
    assert_eq!(other[0].message.contact_id, bert.id);
}

pub async fn callbacks_filter_by_contact_and_status(store: S) {
    let anna = recipient(&store).await;
    let bert = create(&store, named("Bert"), vec![email("bert@example.com")])
        .await
        .id;
    let called = send_callback(&store, callback(anna, ago(3 * HOUR)), "call-1").await;
    assert_eq!(called.status, MessageStatus::Sent);
    let waiting = accept(&store, callback(anna, ago(2 * HOUR))).await;
    let canceled = accept(&store, callback(anna, ago(HOUR))).await;
    let canceled = store.cancel_message(T, canceled.id).await.unwrap();
    assert_eq!(canceled.status, MessageStatus::Canceled);
    let scheduled = accept(
        &store,
        callback(anna, Some(micros(SystemTime::now() + HOUR))),
    )
    .await;
    let berts = accept(&store, callback(bert, ago(4 * HOUR))).await;
    let berts_text = accept(&store, outbound(bert)).await;
    assert_eq!(berts_text.status, MessageStatus::Accepted);

    let ids = |listed: Vec<Callback>| listed_ids(&listed);
    let annas = [called.id, waiting.id, canceled.id, scheduled.id];
    assert_eq!(ids(list_all(&store, T, &by_contact(anna), 2).await), annas);
    assert_eq!(
        ids(list_all(&store, T, &by_contact(bert), 2).await),
        [berts.id]
    );
    assert!(
        list_all(&store, T, &by_contact(Uuid::now_v7()), 2)
            .await
            .is_empty(),
        "an unknown contact has no callbacks"
    );
    assert_eq!(
        ids(list_all(&store, T, &CallbackFilter::default(), 2).await),
        [berts.id, called.id, waiting.id, canceled.id, scheduled.id]
    );
    assert_eq!(
        ids(list_all(&store, T, &in_statuses(&[MessageStatus::Sent]), 2).await),
        [called.id]
    );
    let pending = in_statuses(&[MessageStatus::Accepted, MessageStatus::Queued]);
    assert_eq!(
        ids(list_all(&store, T, &pending, 1).await),
        [berts.id, waiting.id, scheduled.id]
    );
    let annas_pending = CallbackFilter {
        contact_id: Some(anna),
        ..pending.clone()
    };
    assert_eq!(
        ids(list_all(&store, T, &annas_pending, 1).await),
        [waiting.id, scheduled.id]
    );
    assert!(
        list_all(&store, T, &in_statuses(&[MessageStatus::Failed]), 2)
            .await
            .is_empty()
    );

    // A merged id stands for its survivor, which now has both contacts'
    // callbacks.
    store.merge_contacts(T, anna, &[bert]).await.unwrap();
    assert_eq!(
        ids(list_all(&store, T, &by_contact(bert), 2).await),
        [berts.id, called.id, waiting.id, canceled.id, scheduled.id]
    );
}

pub async fn get_callback_finds_only_the_tenants_callbacks(store: S) {
    let anna = recipient(&store).await;
    let requested = accept(&store, callback(anna, None)).await;
    let found = store.get_callback(T, requested.id).await.unwrap();
    assert_eq!(found.message, requested);
    assert_eq!(found.progress, None);

    let text = accept(&store, outbound(anna)).await;
    let Received::New(incoming) = store
        .record_inbound(T, inbound_call("+49 151 23456789", "call-in-1"))
        .await
        .unwrap()
    else {
        panic!("a new inbound message")
    };
    for (tenant, id) in [
        (T, text.id),
        (T, incoming.id),
        (T, Uuid::now_v7()),
        (OTHER, requested.id),
    ] {
        assert_err!(
            store.get_callback(tenant, id).await,
            StoreError::NotFound { resource: "callbacks", id: ref missing } if *missing == id.to_string()
        );
    }
}

pub async fn call_progress_follows_the_current_call(store: S) {
    let anna = recipient(&store).await;
    let before = micros(SystemTime::now());
    let m = send_callback(&store, callback(anna, None), "call-1").await;
    let progress = |store: S, id: Uuid| async move {
        store
            .get_callback(T, id)
            .await
            .expect("get_callback")
            .progress
            .expect("progress")
    };

    // Only a callback's call is recorded: not an unknown one, not on
    // another channel, not a customer's call to us.
    store
        .record_inbound(T, inbound_call("+49 151 23456789", "call-in-1"))
        .await
        .unwrap();
    for (channel, call_id) in [
        (Channel::Voice, "call-unknown"),
        (Channel::Whatsapp, "call-1"),
        (Channel::Voice, "call-in-1"),
    ] {
        assert!(
            !store
                .record_call_progress(channel, call_id, Some("human"), Some(1))
                .await
                .unwrap(),
            "{channel:?} {call_id}"
        );
    }
    assert_eq!(store.get_callback(T, m.id).await.unwrap().progress, None);

    // The first report of the call.
    assert!(
        store
            .record_call_progress(Channel::Voice, "call-1", None, None)
            .await
            .unwrap()
    );
    let first = progress(store.clone(), m.id).await;
    assert_eq!(first.call_id, "call-1");
    assert_eq!(first.answered_by, "");
    assert_eq!(first.bridged_seconds, None);
    assert!(first.update_time >= before);

    // Later reports of the same call: what they say overwrites, what they
    // do not say is kept.
    let record = |answered_by: Option<&'static str>, bridged: Option<u32>| {
        let store = store.clone();
        async move {
            assert!(
                store
                    .record_call_progress(Channel::Voice, "call-1", answered_by, bridged)
                    .await
                    .unwrap()
            );
            progress(store, m.id).await
        }
    };
    let answered = record(Some("human"), None).await;
    assert_eq!(
        (answered.answered_by.as_str(), answered.bridged_seconds),
        ("human", None)
    );
    assert!(answered.update_time >= first.update_time);
    let bridged = record(None, Some(42)).await;
    assert_eq!(
        (bridged.answered_by.as_str(), bridged.bridged_seconds),
        ("human", Some(42))
    );
    let corrected = record(Some("machine_start"), None).await;
    assert_eq!(
        (corrected.answered_by.as_str(), corrected.bridged_seconds),
        ("machine_start", Some(42))
    );
    let kept = record(None, None).await;
    assert_eq!(
        (
            kept.call_id.as_str(),
            kept.answered_by.as_str(),
            kept.bridged_seconds
        ),
        ("call-1", "machine_start", Some(42))
    );
    assert!(kept.update_time >= corrected.update_time);
    let listed = store
        .list_callbacks(T, &by_contact(anna), None, 10)
        .await
        .unwrap();
    assert_eq!(
        listed,
        vec![Callback {
            message: message(&store, m.id).await,
            progress: Some(kept),
            next_call: None,
        }]
    );

    // The call failed; the operator retries, and a new call is placed: its
    // first report replaces everything the old call's said.
    let failed = store
        .apply_provider_status(ProviderStatus {
            channel: Channel::Voice,
            ..report(Some(m.id), MessageStatus::Failed, "call-1")
        })
        .await
        .unwrap()
        .expect("the callback")
        .message;
    assert_eq!(failed.status, MessageStatus::Failed);
    store.retry_message(T, m.id).await.unwrap();
    let job = claim_one(&store, m.id, LONG).await;
    complete(&store, &job, AttemptOutcome::Accepted, sent("call-2")).await;
    assert!(
        store
            .record_call_progress(Channel::Voice, "call-2", None, Some(5))
            .await
            .unwrap()
    );
    let second = progress(store.clone(), m.id).await;
    assert_eq!(
        (
            second.call_id.as_str(),
            second.answered_by.as_str(),
            second.bridged_seconds
        ),
        ("call-2", "", Some(5))
    );
    assert!(
        !store
            .record_call_progress(Channel::Voice, "call-1", Some("human"), None)
            .await
            .unwrap(),
        "the old call is no callback's any more"
    );
    assert_eq!(progress(store.clone(), m.id).await, second);
}

pub async fn erasure_deletes_the_contacts_call_progress(store: S) {
    let anna = recipient(&store).await;
    let bert = create(&store, named("Bert"), vec![email("bert@example.com")])
        .await
        .id;
    let annas = send_callback(&store, callback(anna, None), "call-anna").await;
    let berts = send_callback(&store, callback(bert, None), "call-bert").await;
    for call_id in ["call-anna", "call-bert"] {
        assert!(
            store
                .record_call_progress(Channel::Voice, call_id, Some("human"), Some(30))
                .await
                .unwrap()
        );
    }
    let berts_before = store.get_callback(T, berts.id).await.unwrap();

    store.erase_contact(T, anna).await.unwrap();
    assert_err!(
        store.get_callback(T, annas.id).await,
        StoreError::NotFound { .. }
    );
    assert!(
        list_all(&store, T, &by_contact(anna), 10).await.is_empty(),
        "an erased contact has no callbacks"
    );
    assert!(
        !store
            .record_call_progress(Channel::Voice, "call-anna", Some("human"), None)
            .await
            .unwrap(),
        "a late report brings no progress back"
    );
    assert_eq!(
        store.get_callback(T, berts.id).await.unwrap(),
        berts_before,
        "other contacts keep theirs"
    );
    assert_eq!(
        listed_ids(&list_all(&store, T, &CallbackFilter::default(), 10).await),
        [berts.id]
    );
}

/// PostgreSQL only: erasure deletes the erased contact's `call_progress`
/// rows, not only what the API shows of them.
pub async fn erasure_deletes_call_progress_rows() {
    let url = omniroute_store::testing::fresh_pg_url().await;
    let config = omniroute_store::testing::pg_config(url.clone());
    let store: S = std::sync::Arc::new(omniroute_store::PgStore::connect(&config).await.unwrap());
    let anna = recipient(&store).await;
    let annas = send_callback(&store, callback(anna, None), "call-anna").await;
    assert!(
        store
            .record_call_progress(Channel::Voice, "call-anna", Some("human"), Some(30))
            .await
            .unwrap()
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = |id: Uuid| {
        let client = &client;
        async move {
            client
                .query_one(
                    "SELECT count(*) FROM call_progress WHERE message_id = $1",
                    &[&id],
                )
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(rows(annas.id).await, 1);
    store.erase_contact(T, anna).await.unwrap();
    assert_eq!(rows(annas.id).await, 0);
}

/// A callback whose call's reports are watched (routing sets this for
/// channels that ring), as routing plans one.
fn watched_callback(contact_id: Uuid) -> NewMessage {
    let mut new = callback(contact_id, None);
    new.route.plan[0].watch_reports = true;
    new
}

/// The call `call_id` of a callback ended without reaching the customer.
fn call_ended(call_id: &str) -> ProviderStatus {
    ProviderStatus {
        channel: Channel::Voice,
        reason: "transient failure call-no-answer: nobody answered".into(),
        unless_delivered: true,
        ..report(None, MessageStatus::Failed, call_id)
    }
}

pub async fn a_callback_between_calls_is_scheduled_and_cancelable(store: S) {
    let anna = recipient(&store).await;
    let m = send_callback(&store, watched_callback(anna), "call-1").await;
    let state = |store: S, id: Uuid| async move {
        store
            .get_callback(T, id)
            .await
            .expect("get_callback")
            .state()
    };
    assert_eq!(state(store.clone(), m.id).await, CallbackState::Dialing);
    // Nobody answered; routing calls again in an hour.
    store
        .apply_provider_status(call_ended("call-1"))
        .await
        .unwrap();
    assert_eq!(
        state(store.clone(), m.id).await,
        CallbackState::Dialing,
        "routing has not decided yet"
    );
    let watch = claim_one(&store, m.id, LONG).await;
    let next = micros(SystemTime::now() + HOUR);
    store
        .complete_job(&watch, None, NextStep::RetryAt(next))
        .await
        .unwrap()
        .expect("the lease is held");
    let waiting = store.get_callback(T, m.id).await.unwrap();
    assert_eq!(waiting.state(), CallbackState::Scheduled);
    assert_eq!(
        waiting.message.status,
        MessageStatus::Sent,
        "statuses only move forward"
    );
    assert_eq!(waiting.next_call, Some(next));
    assert_eq!(waiting.schedule_time(), next);
    let scheduled = list_all(
        &store,
        T,
        &in_statuses(&statuses_in(CallbackState::Scheduled)),
        10,
    )
    .await;
    assert_eq!(listed_ids(&scheduled), [m.id]);

    // Canceled while it waits: no call is due any more.
    let canceled = store.cancel_callback(T, m.id).await.unwrap();
    assert_eq!(canceled.ringing, None);
    assert_eq!(canceled.callback.state(), CallbackState::Canceled);
    assert_eq!(canceled.callback.message, message(&store, m.id).await);
    assert_eq!(store.queue_stats().await.unwrap().jobs, 0);
    assert_err!(
        store.cancel_callback(T, m.id).await,
        StoreError::NotCancelable { .. }
    );
    // A late report of the call ends nothing more.
    let reported = store
        .apply_provider_status(call_ended("call-1"))
        .await
        .unwrap()
        .expect("the callback");
    assert_eq!(reported.message, canceled.callback.message, "unchanged");

    // Canceled while its call rings: the call to end is named.
    let ringing = send_callback(&store, watched_callback(anna), "call-2").await;
    let canceled = store.cancel_callback(T, ringing.id).await.unwrap();
    assert_eq!(canceled.ringing.as_deref(), Some("call-2"));
    assert_eq!(canceled.callback.state(), CallbackState::Canceled);
    // Answered: under way, not cancelable; another tenant's, not found.
    let answered = send_callback(&store, watched_callback(anna), "call-3").await;
    assert!(
        store
            .record_call_progress(Channel::Voice, "call-3", Some("human"), None)
            .await
            .unwrap()
    );
    assert_err!(
        store.cancel_callback(T, answered.id).await,
        StoreError::NotCancelable { .. }
    );
    assert_err!(
        store.cancel_callback(OTHER, answered.id).await,
        StoreError::NotFound { .. }
    );
    assert_eq!(
        state(store.clone(), answered.id).await,
        CallbackState::InProgress
    );
}

pub async fn every_callback_state_change_is_an_event(store: S) {
    let anna = recipient(&store).await;
    let m = send_callback(&store, watched_callback(anna), "call-1").await;
    store
        .apply_provider_status(call_ended("call-1"))
        .await
        .unwrap();
    let watch = claim_one(&store, m.id, LONG).await;
    store
        .complete_job(&watch, None, NextStep::RetryAt(micros(SystemTime::now())))
        .await
        .unwrap()
        .expect("the lease is held");
    let job = claim_one(&store, m.id, LONG).await;
    complete(&store, &job, AttemptOutcome::Accepted, sent("call-2")).await;
    for (answered_by, seconds) in [(Some("human"), None), (None, Some(64))] {
        assert!(
            store
                .record_call_progress(Channel::Voice, "call-2", answered_by, seconds)
                .await
                .unwrap()
        );
    }
    store
        .apply_provider_status(ProviderStatus {
            channel: Channel::Voice,
            ..report(None, MessageStatus::Delivered, "call-2")
        })
        .await
        .unwrap();
    store
        .apply_provider_status(call_ended("call-2"))
        .await
        .unwrap();

    let changes = EventFilter {
        types: vec![EventType::CallbackChanged],
        ..EventFilter::default()
    };
    let events = crate::messaging::wait_events(&store, T, store.event_origin(), &changes, 6).await;
    let callbacks: Vec<Callback> = events
        .iter()
        .map(|e| match &e.payload {
            EventPayload::Callback(c) => (**c).clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let states: Vec<CallbackState> = callbacks.iter().map(Callback::state).collect();
    assert_eq!(
        states,
        [
            CallbackState::Scheduled,
            CallbackState::Dialing,
            CallbackState::Scheduled,
            CallbackState::Dialing,
            CallbackState::InProgress,
            CallbackState::Completed,
        ]
    );
    assert!(events.iter().all(|e| e.message_id == Some(m.id)));
    assert_eq!(
        callbacks[5]
            .current_progress()
            .and_then(|p| p.bridged_seconds),
        Some(64)
    );
    assert_eq!(callbacks[5].message, message(&store, m.id).await);
    // A canceled one, and an operator's retry of a failed one.
    let canceled = accept(&store, callback(anna, None)).await;
    store.cancel_message(T, canceled.id).await.unwrap();
    let failing = send_callback(&store, callback(anna, None), "call-9").await;
    store
        .apply_provider_status(ProviderStatus {
            channel: Channel::Voice,
            ..report(None, MessageStatus::Failed, "call-9")
        })
        .await
        .unwrap();
    store.retry_message(T, failing.id).await.unwrap();
    let events = crate::messaging::wait_events(&store, T, store.event_origin(), &changes, 12).await;
    let of = |id: Uuid| -> Vec<CallbackState> {
        events
            .iter()
            .filter(|e| e.message_id == Some(id))
            .map(|e| match &e.payload {
                EventPayload::Callback(c) => c.state(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(
        of(canceled.id),
        [CallbackState::Scheduled, CallbackState::Canceled]
    );
    assert_eq!(
        of(failing.id),
        [
            CallbackState::Scheduled,
            CallbackState::Dialing,
            CallbackState::Failed,
            CallbackState::Scheduled
        ]
    );
}
