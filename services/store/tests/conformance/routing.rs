//! Routing's durable state: delivery deadlines as watches in the queue,
//! failure reports handing over to the next step, a customer's reply
//! canceling fallbacks, deferral events, and window-closing announcements.

use std::time::{Duration, SystemTime};

use omniroute_channel::content::Text;
use omniroute_channel::{Channel, Content};
use omniroute_domain::{
    AttemptOutcome, EventFilter, EventPayload, EventType, JobKind, MessageStatus, NewInbound,
    NextStep, ProviderStatus, TenantScope, now,
};
use uuid::Uuid;

use crate::messaging::*;
use crate::support::*;

/// A WhatsApp-then-email message whose WhatsApp step must be delivered
/// within `within`, accepted and sent on WhatsApp.
async fn sent_with_deadline(
    store: &S,
    contact: Uuid,
    within: Duration,
) -> omniroute_domain::Message {
    let mut new = outbound(contact);
    new.route.plan[0].deliver_within = Some(within);
    let m = accept(store, new).await;
    let job = claim_one(store, m.id, LONG).await;
    assert_eq!(job.kind, JobKind::Send);
    complete(store, &job, AttemptOutcome::Accepted, sent("wamid.w1")).await
}

fn customer_writes(from: &str, id: &str, window: Option<Duration>) -> NewInbound {
    NewInbound {
        channel: Channel::Email,
        from: email(from),
        profile_name: None,
        provider_user_id: None,
        provider_message_id: id.into(),
        time: now(),
        content: Content::Text(Text {
            body: "Thanks, got it".into(),
            ..Text::default()
        }),
        reply_to: None,
        line: "support@shop.example".into(),
        opens_window: window,
        also_opens: None,
        automatic: false,
        media_bytes: None,
    }
}

pub async fn a_missed_deadline_hands_over_to_the_next_step(store: S) {
    let contact = recipient(&store).await;
    // Due at once: the deadline passes as soon as it is sent.
    let m = sent_with_deadline(&store, contact, Duration::ZERO).await;
    assert_eq!(m.status, MessageStatus::Sent);
    let watch = claim_one(&store, m.id, LONG).await;
    assert_eq!(watch.kind, JobKind::Watch);
    assert_eq!(watch.plan_index, 0);
    let moved = store
        .complete_job(
            &watch,
            None,
            NextStep::NextChannel {
                index: 1,
                due: now(),
                reason: "not delivered within 0 s".into(),
            },
        )
        .await
        .unwrap()
        .expect("the lease is held");
    assert_eq!(moved.channel, Some(Channel::Email));
    assert_eq!(
        moved.status,
        MessageStatus::Sent,
        "what was sent stays sent"
    );
    let next = claim_one(&store, m.id, LONG).await;
    assert_eq!((next.kind, next.plan_index), (JobKind::Send, 1));
    let done = complete(&store, &next, AttemptOutcome::Accepted, sent("email.1")).await;
    assert_eq!(done.history.last().unwrap().channel, Some(Channel::Email));
    assert!(
        claim(&store, LONG).await.is_empty(),
        "the last step is not watched"
    );

    let events = wait_events(
        &store,
        T,
        store.event_origin(),
        &EventFilter {
            types: vec![EventType::MessageFallback],
            contact_id: None,
        },
        1,
    )
    .await;
    assert_eq!(events.len(), 1);
    let change = events[0].route.clone().expect("what routing did");
    assert_eq!(change.from, Some(Channel::Whatsapp));
    assert_eq!(change.to, Some(Channel::Email));
    assert_eq!(change.reason, "not delivered within 0 s");
}

pub async fn a_delivery_ends_the_watch(store: S) {
    let contact = recipient(&store).await;
    let m = sent_with_deadline(&store, contact, Duration::ZERO).await;
    let delivered = store
        .apply_provider_status(report(Some(m.id), MessageStatus::Delivered, "wamid.w1"))
        .await
        .unwrap()
        .unwrap()
        .message;
    assert_eq!(delivered.status, MessageStatus::Delivered);
    assert!(
        claim(&store, LONG).await.is_empty(),
        "a delivered message has nothing to watch"
    );
}

pub async fn a_failure_report_of_a_watched_step_hands_over(store: S) {
    let contact = recipient(&store).await;
    let m = sent_with_deadline(&store, contact, Duration::from_secs(3600)).await;
    assert!(
        claim(&store, LONG).await.is_empty(),
        "the deadline is an hour away"
    );
    let reported = store
        .apply_provider_status(ProviderStatus {
            reason: "131026: message undeliverable".into(),
            ..report(Some(m.id), MessageStatus::Failed, "wamid.w1")
        })
        .await
        .unwrap()
        .unwrap()
        .message;
    assert_eq!(
        reported.status,
        MessageStatus::Sent,
        "the next step takes over"
    );
    let last = reported.history.last().unwrap();
    assert_eq!(last.status, MessageStatus::Failed);
    assert!(last.reason.contains("131026"), "{last:?}");
    let watch = claim_one(&store, m.id, LONG).await;
    assert_eq!(watch.kind, JobKind::Watch, "the watch is due at once");
    assert_eq!(
        omniroute_domain::reported_failure(&watch).map(|h| h.status),
        Some(MessageStatus::Failed)
    );
}

pub async fn a_customer_reply_cancels_the_fallback(store: S) {
    let contact = recipient(&store).await;
    let m = sent_with_deadline(&store, contact, Duration::from_secs(3600)).await;
    store
        .record_inbound(T, customer_writes("anna@example.com", "mail-1", None))
        .await
        .unwrap();
    let replied = claim_one(&store, m.id, LONG).await;
    assert_eq!(replied.kind, JobKind::Replied);
    let ended = store
        .complete_job(
            &replied,
            None,
            NextStep::EndWatch {
                note: "the customer replied; fallback canceled".into(),
            },
        )
        .await
        .unwrap()
        .expect("the lease is held");
    assert_eq!(ended.status, MessageStatus::Sent);
    assert_eq!(
        ended.history.last().unwrap().reason,
        "the customer replied; fallback canceled"
    );
    assert!(claim(&store, LONG).await.is_empty());

    // Another contact's message keeps its watch.
    let other = create(&store, named("Ben"), vec![email("ben@example.com")])
        .await
        .id;
    let _ = sent_with_deadline(&store, other, Duration::from_secs(3600)).await;
    store
        .record_inbound(T, customer_writes("anna@example.com", "mail-2", None))
        .await
        .unwrap();
    assert!(claim(&store, LONG).await.is_empty(), "Ben did not reply");
}

pub async fn an_automatic_reply_cancels_nothing(store: S) {
    let contact = recipient(&store).await;
    let m = sent_with_deadline(&store, contact, Duration::from_secs(3600)).await;
    let out_of_office = NewInbound {
        automatic: true,
        ..customer_writes(
            "anna@example.com",
            "ooo-1",
            Some(Duration::from_secs(86_400)),
        )
    };
    let received = store.record_inbound(T, out_of_office).await.unwrap();
    assert!(
        matches!(received, omniroute_domain::Received::New(_)),
        "recorded"
    );
    assert!(
        claim(&store, LONG).await.is_empty(),
        "the watch of {} still waits for its deadline",
        m.id
    );
}

pub async fn the_last_step_is_not_watched(store: S) {
    let contact = recipient(&store).await;
    let mut new = outbound(contact);
    new.route.plan.truncate(1);
    new.route.plan[0].deliver_within = Some(Duration::ZERO);
    let m = accept(&store, new).await;
    let job = claim_one(&store, m.id, LONG).await;
    complete(&store, &job, AttemptOutcome::Accepted, sent("wamid.1")).await;
    assert!(claim(&store, LONG).await.is_empty());
}

pub async fn quiet_hours_log_a_deferral(store: S) {
    let contact = recipient(&store).await;
    let until = micros(SystemTime::now() + Duration::from_secs(6 * 3600));
    let mut new = outbound(contact);
    new.route.plan[0].not_before = Some(until);
    let m = accept(&store, new).await;
    assert_eq!(m.status, MessageStatus::Queued);
    let events = all_events(&store, 3).await;
    let kinds: Vec<EventType> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        &kinds[1..],
        [EventType::MessageAccepted, EventType::MessageDeferred]
    );
    let change = events[2].route.clone().expect("until when");
    assert_eq!(change.until, Some(until));
    assert_eq!(change.to, Some(Channel::Whatsapp));
    assert!(claim(&store, LONG).await.is_empty(), "held until then");
}

/// A step claimed inside quiet hours is held: no attempt, queued until
/// their end with a deferral event, and the claim not counted as an
/// attempt on the channel.
pub async fn a_step_claimed_in_quiet_hours_is_held(store: S) {
    let contact = recipient(&store).await;
    let m = accept(&store, outbound(contact)).await;
    let hold = |job, until| {
        let store = &store;
        async move {
            store
                .complete_job(&job, None, NextStep::Hold { until })
                .await
                .unwrap()
                .expect("the lease is held")
        }
    };
    // Held until a time that has come: claimed again, and the claim that
    // was held is not counted as an attempt.
    let job = claim_one(&store, m.id, LONG).await;
    assert_eq!(job.channel_attempt, 1);
    hold(job, now()).await;
    let job = claim_one(&store, m.id, LONG).await;
    assert_eq!((job.plan_index, job.channel_attempt), (0, 1));
    // Held for six hours: not due before then, with a deferral event.
    let until = micros(SystemTime::now() + Duration::from_secs(6 * 3600));
    let held = hold(job, until).await;
    assert_eq!(held.status, MessageStatus::Queued);
    assert!(held.attempts.is_empty());
    assert_eq!(
        held.history.last().unwrap().reason,
        omniroute_domain::HELD_FOR_QUIET_HOURS
    );
    let events = all_events(&store, 4).await;
    let last = events.last().unwrap();
    assert_eq!(last.kind, EventType::MessageDeferred);
    assert_eq!(last.route.clone().expect("until when").until, Some(until));
    assert_eq!(last.payload, payload(&held));
    assert!(claim(&store, LONG).await.is_empty(), "held until then");
}

pub async fn closing_windows_are_announced_once(store: S) {
    let contact = recipient(&store).await;
    store
        .record_inbound(
            T,
            customer_writes(
                "anna@example.com",
                "mail-1",
                Some(Duration::from_secs(3600)),
            ),
        )
        .await
        .unwrap();
    let everyone = TenantScope::AllBut(Vec::new());
    let lead = Duration::from_secs(600);
    assert_eq!(
        store
            .announce_closing_windows(&everyone, lead, 100)
            .await
            .unwrap(),
        0,
        "an hour left: not yet"
    );
    let lead = Duration::from_secs(2 * 3600);
    let other_tenant = TenantScope::Only("tenant-b".into());
    assert_eq!(
        store
            .announce_closing_windows(&other_tenant, lead, 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .announce_closing_windows(&everyone, lead, 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .announce_closing_windows(&everyone, lead, 100)
            .await
            .unwrap(),
        0,
        "announced once per window end"
    );
    // She writes again: the window moves, and its new end is announced.
    store
        .record_inbound(
            T,
            customer_writes(
                "anna@example.com",
                "mail-2",
                Some(Duration::from_secs(5400)),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .announce_closing_windows(&everyone, lead, 100)
            .await
            .unwrap(),
        1
    );
    let events = wait_events(
        &store,
        T,
        store.event_origin(),
        &EventFilter {
            types: vec![EventType::WindowClosing],
            contact_id: Some(contact),
        },
        2,
    )
    .await;
    assert_eq!(events.len(), 2);
    let EventPayload::Window(window) = &events[1].payload else {
        panic!("a window: {:?}", events[1].payload)
    };
    assert_eq!(window.channel, Channel::Email);
    assert_eq!(window.line, "support@shop.example");
    let contact = store.get_contact(T, contact).await.unwrap();
    assert_eq!(
        contact.window_until(Channel::Email, "support@shop.example"),
        Some(window.open_until)
    );
}
