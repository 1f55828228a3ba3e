//! The messaging pipeline: accepting messages, idempotency, dispatch jobs
//! with leases, outcomes, cancellation, operator retries and provider
//! statuses.

use std::time::{Duration, SystemTime};

use omniroute_channel::content::{
    ComponentType, ParameterValue, Template, TemplateComponent, TemplateParameter, Text,
};
use omniroute_channel::{Category, Channel, Content, ErrorClass};
use omniroute_domain::{
    Accepted, Attempt, AttemptOutcome, ChannelOverride, ClaimedJob, Event, EventFilter,
    EventPayload, EventType, Message, MessageStatus, NewMessage, NextStep, PlannedChannel,
    Priority, ProviderStatus, RouteDecision, SentMark, SkipReason, SkippedChannel, now,
};
use omniroute_store::StoreError;
use uuid::Uuid;

use crate::support::*;

/// A lease that outlives every check.
pub const LONG: Duration = Duration::from_secs(600);

/// A lease short enough to expire within a check.
pub const SHORT: Duration = Duration::from_millis(50);

/// `time` as the stores keep it: to the microsecond.
pub fn micros(time: SystemTime) -> SystemTime {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after the epoch");
    SystemTime::UNIX_EPOCH + Duration::from_micros(since.as_micros() as u64)
}

/// A plan of WhatsApp, then email; voice skipped.
pub fn route() -> RouteDecision {
    RouteDecision {
        plan: vec![
            PlannedChannel {
                channel: Channel::Whatsapp,
                address: "+4915123456789".into(),
                key: "4915123456789".into(),
                wa_id: Some("4915123456789".into()),
                variant: Default::default(),
                deliver_within: None,
                not_before: None,
                watch_reports: false,
                evidence: Default::default(),
            },
            PlannedChannel {
                channel: Channel::Email,
                address: "anna@example.com".into(),
                key: "anna@example.com".into(),
                wa_id: None,
                variant: Default::default(),
                deliver_within: None,
                not_before: None,
                watch_reports: false,
                evidence: Default::default(),
            },
        ],
        skipped: vec![SkippedChannel {
            channel: Channel::Voice,
            reason: SkipReason::NoConsent,
            detail: "no consent for voice".into(),
        }],
        hold_until: None,
        decide_time: now(),
        inputs: Default::default(),
    }
}

/// A transactional text message to `contact_id`, due now.
///
/// Its `contact_version` is a placeholder: [`accept`] and [`current`] set
/// the contact's current one.
pub fn outbound(contact_id: Uuid) -> NewMessage {
    NewMessage {
        contact_id,
        contact_version: 0,
        category: Category::Transactional,
        content: Content::Text(Text {
            body: "Your parcel arrives today.".into(),
            subject: "Parcel 4711".into(),
            ..Text::default()
        }),
        overrides: Vec::new(),
        route: route(),
        priority: Priority::Normal,
        correlation_ref: "order-4711".into(),
        metadata: attributes(&[("order", "4711")]),
        send_time: None,
        expire_time: None,
        reply_to: None,
        idempotency_key: None,
        request_hash: "hash-1".into(),
    }
}

/// A contact to send to.
pub async fn recipient(store: &S) -> Uuid {
    create(store, named("Anna"), vec![email("anna@example.com")])
        .await
        .id
}

/// `new` routed on its contact's current version.
pub async fn current(store: &S, tenant: &str, mut new: NewMessage) -> NewMessage {
    new.contact_version = store
        .get_contact(tenant, new.contact_id)
        .await
        .expect("the contact")
        .version;
    new
}

/// Accepts a message that must be new (routed on its contact's current
/// version).
pub async fn accept(store: &S, message: NewMessage) -> Message {
    let message = current(store, T, message).await;
    match store.accept_message(T, message).await.expect("accept") {
        Accepted::New(m) => m,
        other => panic!("expected a new message, got {other:?}"),
    }
}

pub async fn claim(store: &S, lease: Duration) -> Vec<ClaimedJob> {
    store.claim_jobs(100, lease).await.expect("claim_jobs")
}

/// Claims the one due job, which must be for `id`.
pub async fn claim_one(store: &S, id: Uuid, lease: Duration) -> ClaimedJob {
    let mut jobs = claim(store, lease).await;
    assert_eq!(jobs.len(), 1, "exactly one due job: {jobs:?}");
    let job = jobs.remove(0);
    assert_eq!(job.message.id, id);
    job
}

pub async fn message(store: &S, id: Uuid) -> Message {
    store.get_message(T, id).await.expect("get_message")
}

/// An attempt on the job's channel.
pub fn attempt(job: &ClaimedJob, outcome: AttemptOutcome) -> Attempt {
    let planned = &job.message.route.as_ref().expect("a route").plan[job.plan_index];
    let failed = matches!(outcome, AttemptOutcome::Failed(_));
    Attempt {
        number: job.message.attempts.len() as u32 + 1,
        channel: planned.channel,
        address: planned.address.clone(),
        start_time: now(),
        end_time: now(),
        outcome,
        error_code: if failed {
            "131047".into()
        } else {
            String::new()
        },
        error_message: if failed {
            "provider said no".into()
        } else {
            String::new()
        },
        provider_message_id: if failed {
            String::new()
        } else {
            "wamid.1".into()
        },
    }
}

/// Completes a job, which must still hold its lease.
pub async fn complete(
    store: &S,
    job: &ClaimedJob,
    outcome: AttemptOutcome,
    next: NextStep,
) -> Message {
    store
        .complete_job(job, Some(attempt(job, outcome)), next)
        .await
        .expect("complete_job")
        .expect("the lease is held")
}

pub fn sent(provider_message_id: &str) -> NextStep {
    NextStep::Sent {
        provider_message_id: provider_message_id.into(),
    }
}

/// Accepts a message and has it sent under `provider_message_id`.
pub async fn accept_and_send(store: &S, contact_id: Uuid, provider_message_id: &str) -> Message {
    let m = accept(store, outbound(contact_id)).await;
    let job = claim_one(store, m.id, LONG).await;
    complete(
        store,
        &job,
        AttemptOutcome::Accepted,
        sent(provider_message_id),
    )
    .await
}

/// Reads a tenant's events after `after` until at least `expected` are there
/// (PostgreSQL hands out an event only once every older transaction of the
/// cluster ended, so a read right after a commit may briefly lag).
pub async fn wait_events(
    store: &S,
    tenant: &str,
    after: omniroute_domain::Cursor,
    filter: &EventFilter,
    expected: usize,
) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = store
            .read_events(tenant, after, filter, 1000)
            .await
            .expect("read_events");
        if events.len() >= expected || tokio::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every event of [`T`], expecting `expected` of them.
pub async fn all_events(store: &S, expected: usize) -> Vec<Event> {
    let events = wait_events(
        store,
        T,
        store.event_origin(),
        &EventFilter::default(),
        expected,
    )
    .await;
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(events.len(), expected, "events: {kinds:?}");
    events
}

/// The events about one message.
pub fn about(events: &[Event], id: Uuid) -> Vec<(EventType, EventPayload)> {
    events
        .iter()
        .filter(|e| e.message_id == Some(id))
        .map(|e| (e.kind, e.payload.clone()))
        .collect()
}

pub fn payload(message: &Message) -> EventPayload {
    EventPayload::Message(Box::new(message.clone()))
}

fn statuses(message: &Message) -> Vec<MessageStatus> {
    message.history.iter().map(|h| h.status).collect()
}

pub async fn accept_and_get_round_trip_every_field(store: S) {
    let contact = recipient(&store).await;
    let earlier = accept(&store, outbound(contact)).await;
    let base = now();
    // Sub-microsecond parts: the store keeps microseconds, and what accept
    // returns must equal what is read back.
    let send_time = base - Duration::from_nanos(1_000_123_456);
    let expire_time = base + Duration::from_nanos(86_400_000_000_789);
    let new = NewMessage {
        category: Category::Marketing,
        content: Content::Template(Template {
            name: "parcel_update".into(),
            language: "de".into(),
            components: vec![TemplateComponent {
                kind: ComponentType::Body,
                button_sub_type: String::new(),
                index: 0,
                parameters: vec![TemplateParameter {
                    name: "amount".into(),
                    value: ParameterValue::Currency {
                        code: "EUR".into(),
                        amount_1000: 12_990,
                        fallback_value: "12,99 €".into(),
                    },
                }],
            }],
        }),
        overrides: vec![ChannelOverride {
            channel: Channel::Email,
            content: Content::Text(Text {
                body: "Ihr Paket kommt heute.".into(),
                subject: "Paket „4711“".into(),
                html_body: "<p>Ihr Paket kommt heute.</p>".into(),
                ..Text::default()
            }),
            outside_window: false,
        }],
        priority: Priority::Low,
        correlation_ref: "campaign-9".into(),
        metadata: attributes(&[("campaign", "9"), ("ü", "ß")]),
        send_time: Some(send_time),
        expire_time: Some(expire_time),
        reply_to: Some(earlier.id),
        idempotency_key: Some("key-1".into()),
        request_hash: "hash-9".into(),
        ..outbound(contact)
    };
    let accepted = accept(&store, new.clone()).await;

    assert_eq!(accepted.contact_id, contact);
    assert_eq!(accepted.direction, omniroute_domain::Direction::Outbound);
    assert_eq!(accepted.category, new.category);
    assert_eq!(accepted.content, new.content);
    assert_eq!(accepted.overrides, new.overrides);
    assert_eq!(accepted.route, Some(new.route.clone()));
    assert_eq!(accepted.priority, Priority::Low);
    assert_eq!(accepted.correlation_ref, "campaign-9");
    assert_eq!(accepted.metadata, new.metadata);
    assert_eq!(accepted.send_time, Some(micros(send_time)));
    assert_eq!(accepted.expire_time, Some(micros(expire_time)));
    assert_eq!(accepted.reply_to, Some(earlier.id));
    assert_eq!(
        accepted.status,
        MessageStatus::Accepted,
        "a send time in the past is due now"
    );
    assert_eq!(statuses(&accepted), vec![MessageStatus::Accepted]);
    assert_eq!(
        accepted.channel,
        Some(Channel::Whatsapp),
        "the plan's first"
    );
    assert!(accepted.attempts.is_empty());
    assert_eq!(accepted.provider_message_id, None);
    assert_eq!(accepted.create_time, accepted.update_time);
    assert!(accepted.id > earlier.id, "ids grow in acceptance order");

    assert_eq!(message(&store, accepted.id).await, accepted);
    assert_err!(
        store.get_message("tenant-b", accepted.id).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.get_message(T, Uuid::now_v7()).await,
        StoreError::NotFound { .. }
    );

    let events = all_events(&store, 3).await;
    let accepted_event = events.last().expect("an event");
    assert_eq!(accepted_event.kind, EventType::MessageAccepted);
    assert_eq!(accepted_event.message_id, Some(accepted.id));
    assert_eq!(accepted_event.contact_id, Some(contact));
    assert_eq!(accepted_event.correlation_ref, "campaign-9");
    assert_eq!(accepted_event.metadata, new.metadata);
    assert_eq!(accepted_event.payload, payload(&accepted));
}

pub async fn scheduled_messages_wait_for_their_send_time(store: S) {
    let contact = recipient(&store).await;
    let later = accept(
        &store,
        NewMessage {
            send_time: Some(now() + Duration::from_secs(3600)),
            ..outbound(contact)
        },
    )
    .await;
    assert_eq!(later.status, MessageStatus::Queued);
    assert_eq!(later.history[0].reason, "scheduled");
    // A second away: time enough for the claim below to come before it,
    // however slow the machine.
    let due = now() + Duration::from_secs(1);
    let soon = accept(
        &store,
        NewMessage {
            send_time: Some(due),
            ..outbound(contact)
        },
    )
    .await;
    assert_eq!(soon.status, MessageStatus::Queued);

    assert!(claim(&store, LONG).await.is_empty(), "nothing is due yet");
    let until_due = due.duration_since(now()).unwrap_or_default();
    tokio::time::sleep(until_due + Duration::from_millis(50)).await;
    let job = claim_one(&store, soon.id, LONG).await;
    assert_eq!(job.message, soon, "claiming changes no status");
    assert_eq!((job.plan_index, job.channel_attempt), (0, 1));
    assert!(claim(&store, LONG).await.is_empty());
}

pub async fn idempotent_replay_returns_the_stored_message(store: S) {
    let contact = recipient(&store).await;
    let new = NewMessage {
        idempotency_key: Some("req-1".into()),
        ..outbound(contact)
    };
    let first = accept(&store, new.clone()).await;

    let again = store
        .accept_message(T, current(&store, T, new.clone()).await)
        .await
        .unwrap();
    assert_eq!(again, Accepted::Replayed(first.clone()));
    assert_eq!(again.message(), &first);
    // The same key in another tenant is another request.
    let elsewhere = store
        .create_contact(
            "tenant-b",
            omniroute_domain::NewContact {
                profile: named("Anna B"),
                identities: vec![email("anna@example.com")],
            },
        )
        .await
        .expect("a contact in tenant-b");
    let there = NewMessage {
        contact_id: elsewhere.id,
        contact_version: elsewhere.version,
        ..new
    };
    let other = store.accept_message("tenant-b", there).await.unwrap();
    assert!(matches!(&other, Accepted::New(m) if m.id != first.id));

    // Nothing new in this tenant: one message, one job, one event.
    assert_eq!(
        ids_of(&store.list_messages(T, contact, None, 10).await.unwrap()),
        vec![first.id]
    );
    let jobs = claim(&store, LONG).await;
    assert_eq!(jobs.len(), 2, "one job per tenant");
    assert_eq!(
        jobs.iter().filter(|j| j.tenant == T).count(),
        1,
        "the replay queued nothing"
    );
    let events = all_events(&store, 2).await;
    assert_eq!(about(&events, first.id).len(), 1);
}

pub async fn messages_are_found_by_their_idempotency_keys(store: S) {
    let contact = recipient(&store).await;
    let new = NewMessage {
        idempotency_key: Some("req-1".into()),
        ..outbound(contact)
    };
    let first = accept(&store, new.clone()).await;
    let keys = ["req-1", "unused", "req-1"].map(String::from);
    let found = store.messages_by_idempotency_keys(T, &keys).await.unwrap();
    assert_eq!(found.len(), 3, "one answer per key, in order");
    let (message, hash) = found[0].clone().expect("the key names the message");
    assert_eq!(message, first);
    assert_eq!(found[1], None);
    assert_eq!(found[2], found[0]);
    // The same request is a replay; another is a conflict.
    assert_eq!(
        omniroute_store::replay((message.clone(), hash.clone()), &new.request_hash).unwrap(),
        Accepted::Replayed(first.clone())
    );
    assert_err!(
        omniroute_store::replay((message, hash), "another-hash"),
        StoreError::IdempotencyConflict { existing } if existing == first.id
    );
    // Keys are per tenant.
    assert_eq!(
        store
            .messages_by_idempotency_keys("tenant-b", &keys[..1])
            .await
            .unwrap(),
        vec![None]
    );
    assert!(
        store
            .messages_by_idempotency_keys(T, &[])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn idempotency_key_reused_for_another_request_conflicts(store: S) {
    let contact = recipient(&store).await;
    let first = accept(
        &store,
        NewMessage {
            idempotency_key: Some("req-1".into()),
            ..outbound(contact)
        },
    )
    .await;
    let different = NewMessage {
        idempotency_key: Some("req-1".into()),
        request_hash: "hash-2".into(),
        correlation_ref: "another".into(),
        ..outbound(contact)
    };
    assert_err!(
        store.accept_message(T, current(&store, T, different).await).await,
        StoreError::IdempotencyConflict { existing } if existing == first.id
    );
    // Without a key, the same request is simply another message.
    accept(&store, outbound(contact)).await;
    accept(&store, outbound(contact)).await;
    let listed = store.list_messages(T, contact, None, 10).await.unwrap();
    assert_eq!(listed.len(), 3);
    all_events(&store, 4).await;
}

fn ids_of(messages: &[Message]) -> Vec<Uuid> {
    messages.iter().map(|m| m.id).collect()
}

pub async fn list_messages_newest_first_in_pages_and_by_merged_id(store: S) {
    let anna = recipient(&store).await;
    let other = create(&store, named("Anna S."), vec![whatsapp("4915123456789")]).await;
    let m1 = accept(&store, outbound(anna)).await;
    let m2 = accept(&store, outbound(anna)).await;
    let m3 = accept(&store, outbound(anna)).await;
    let o1 = accept(&store, outbound(other.id)).await;

    let page = store.list_messages(T, anna, None, 2).await.unwrap();
    assert_eq!(page, vec![m3.clone(), m2.clone()]);
    let rest = store.list_messages(T, anna, Some(m2.id), 2).await.unwrap();
    assert_eq!(rest, vec![m1.clone()]);
    assert!(
        store
            .list_messages(T, anna, Some(m1.id), 2)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids_of(&store.list_messages(T, other.id, None, 10).await.unwrap()),
        vec![o1.id]
    );

    store.merge_contacts(T, anna, &[other.id]).await.unwrap();
    let expected = vec![o1.id, m3.id, m2.id, m1.id];
    assert_eq!(
        ids_of(&store.list_messages(T, anna, None, 10).await.unwrap()),
        expected,
        "merge moves the retired contact's messages"
    );
    assert_eq!(
        ids_of(&store.list_messages(T, other.id, None, 10).await.unwrap()),
        expected,
        "a merged id lists the survivor's messages"
    );
    assert_eq!(message(&store, o1.id).await.contact_id, anna);

    assert_err!(
        store.list_messages(T, Uuid::now_v7(), None, 10).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.list_messages("tenant-b", anna, None, 10).await,
        StoreError::NotFound { .. }
    );
}

pub async fn claims_follow_priority_then_due_time(store: S) {
    let contact = recipient(&store).await;
    let with = |priority| NewMessage {
        priority,
        ..outbound(contact)
    };
    let low = accept(&store, with(Priority::Low)).await;
    let normal_1 = accept(&store, with(Priority::Normal)).await;
    let normal_2 = accept(&store, with(Priority::Normal)).await;
    let high = accept(&store, with(Priority::High)).await;

    let first = store.claim_jobs(2, LONG).await.unwrap();
    let rest = store.claim_jobs(10, LONG).await.unwrap();
    let order: Vec<Uuid> = first.iter().chain(&rest).map(|j| j.message.id).collect();
    assert_eq!(order, vec![high.id, normal_1.id, normal_2.id, low.id]);
    assert_eq!(first.len(), 2, "at most the limit");
    for job in first.iter().chain(&rest) {
        assert_eq!(job.tenant, T);
        assert_eq!((job.plan_index, job.channel_attempt), (0, 1));
    }
    let tokens: std::collections::HashSet<Uuid> =
        first.iter().chain(&rest).map(|j| j.claim_token).collect();
    assert_eq!(tokens.len(), 4, "every claim has its own token");
    assert!(claim(&store, LONG).await.is_empty(), "all leased");
}

pub async fn an_expired_lease_is_claimed_again_with_a_new_token(store: S) {
    let contact = recipient(&store).await;
    let m = accept(&store, outbound(contact)).await;
    let first = claim_one(&store, m.id, SHORT).await;
    assert_eq!(first.channel_attempt, 1);
    assert!(
        claim(&store, LONG).await.is_empty(),
        "a leased job is skipped"
    );

    tokio::time::sleep(SHORT * 2).await;
    let second = claim_one(&store, m.id, LONG).await;
    assert_ne!(second.claim_token, first.claim_token);
    assert_eq!(second.channel_attempt, 2, "the lost attempt counts");
    assert_eq!(second.plan_index, 0);
    assert!(claim(&store, LONG).await.is_empty());
}

pub async fn a_stale_claim_token_changes_nothing(store: S) {
    let contact = recipient(&store).await;
    let m = accept(&store, outbound(contact)).await;
    let stale = claim_one(&store, m.id, SHORT).await;
    tokio::time::sleep(SHORT * 2).await;
    let current = claim_one(&store, m.id, LONG).await;
    let before = message(&store, m.id).await;

    for next in [
        sent("wamid.late"),
        NextStep::RetryAt(now()),
        NextStep::NextChannel {
            index: 1,
            due: omniroute_domain::now(),
            reason: String::new(),
        },
        NextStep::Fail {
            reason: "late".into(),
        },
    ] {
        let outcome = store
            .complete_job(
                &stale,
                Some(attempt(&stale, AttemptOutcome::Accepted)),
                next,
            )
            .await
            .unwrap();
        assert_eq!(outcome, None, "the lease was lost");
    }
    assert_eq!(message(&store, m.id).await, before);
    all_events(&store, 2).await;
    assert!(
        claim(&store, LONG).await.is_empty(),
        "the current lease is untouched"
    );

    let done = complete(&store, &current, AttemptOutcome::Accepted, sent("wamid.1")).await;
    assert_eq!(done.status, MessageStatus::Sent);
    assert_eq!(
        store
            .complete_job(&current, None, sent("wamid.1"))
            .await
            .unwrap(),
        None,
        "a finished job is gone"
    );
}

pub async fn sent_deletes_the_job_and_keeps_the_attempt(store: S) {
    let contact = recipient(&store).await;
    let m = accept(&store, outbound(contact)).await;
    let job = claim_one(&store, m.id, LONG).await;
    let tried = attempt(&job, AttemptOutcome::Accepted);
    let done = store
        .complete_job(&job, Some(tried.clone()), sent("wamid.1"))
        .await
        .unwrap()
        .expect("the lease is held");

    assert_eq!(done.status, MessageStatus::Sent);
    assert_eq!(done.provider_message_id.as_deref(), Some("wamid.1"));
    assert_eq!(done.attempts, vec![tried]);
    assert_eq!(
        statuses(&done),
        vec![MessageStatus::Accepted, MessageStatus::Sent]
    );
    assert_eq!(message(&store, m.id).await, done);
    assert!(claim(&store, LONG).await.is_empty(), "the job is gone");

    let events = all_events(&store, 3).await;
    assert_eq!(
        about(&events, m.id),
        vec![
            (EventType::MessageAccepted, payload(&m)),
            (EventType::MessageStatusChanged, payload(&done)),
        ]
    );
}

pub async fn retry_at_requeues_the_same_channel(store: S) {
    let contact = recipient(&store).await;
    let m = accept(&store, outbound(contact)).await;
    let job = claim_one(&store, m.id, LONG).await;
    let transient = AttemptOutcome::Failed(ErrorClass::Transient);
    let queued = complete(&store, &job, transient, NextStep::RetryAt(now())).await;
    assert_eq!(queued.status, MessageStatus::Queued);
    assert_eq!(queued.channel, Some(Channel::Whatsapp));
    assert_eq!(queued.attempts.len(), 1);
    assert_eq!(
        statuses(&queued),
        vec![MessageStatus::Accepted, MessageStatus::Queued]
    );
    assert!(!queued.history[1].reason.is_empty(), "the attempt's error");

    let again = claim_one(&store, m.id, LONG).await;
    assert_eq!((again.plan_index, again.channel_attempt), (0, 2));
    assert_eq!(again.message, queued);
    let later = now() + Duration::from_secs(3600);
    let queued = complete(&store, &again, transient, NextStep::RetryAt(later)).await;
    assert_eq!(queued.status, MessageStatus::Queued);
    assert_eq!(queued.attempts.len(), 2);
    assert!(claim(&store, LONG).await.is_empty(), "due in an hour");

    let events = all_events(&store, 4).await;
    let kinds: Vec<_> = about(&events, m.id).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        vec![
            EventType::MessageAccepted,
            EventType::MessageStatusChanged,
            EventType::MessageStatusChanged
        ]
    );
    assert_eq!(events.last().unwrap().payload, payload(&queued));
}

pub async fn next_channel_moves_along_the_plan(store: S) {
    let contact = recipient(&store).await;
    let m = accept(&store, outbound(contact)).await;
    let job = claim_one(&store, m.id, LONG).await;
    let permanent = AttemptOutcome::Failed(ErrorClass::WindowClosed);
    let moved = complete(
        &store,
        &job,
        permanent,
        NextStep::NextChannel {
            index: 1,
            due: omniroute_domain::now(),
            reason: String::new(),
        },
    )
    .await;
    assert_eq!(moved.status, MessageStatus::Queued);
    assert_eq!(moved.channel, Some(Channel::Email));
    assert_eq!(moved.attempts.len(), 1);
    assert_eq!(moved.attempts[0].channel, Channel::Whatsapp);

    let next = claim_one(&store, m.id, LONG).await;
    assert_eq!(
        (next.plan_index, next.channel_attempt),
        (1, 1),
        "channel attempts restart on the next channel"
    );
    assert_eq!(next.message, moved);
    let done = complete(&store, &next, AttemptOutcome::Accepted, sent("mail-1")).await;
    assert_eq!(done.status, MessageStatus::Sent);
    assert_eq!(done.channel, Some(Channel::Email));
    assert_eq!(done.attempts[1].channel, Channel::Email);
    all_events(&store, 4).await;
}

pub async fn fail_deletes_the_job_and_logs_a_failure(store: S) {
    let contact = recipient(&store).await;
    let m = accept(&store, outbound(contact)).await;
    let job = claim_one(&store, m.id, LONG).await;
    let failed = complete(
        &store,
        &job,
        AttemptOutcome::Failed(ErrorClass::Permanent),
        NextStep::Fail {
            reason: "no channel left".into(),
        },
    )
    .await;
    assert_eq!(failed.status, MessageStatus::Failed);
    let last = failed.history.last().unwrap();
    assert_eq!(
        (last.status, last.reason.as_str()),
        (MessageStatus::Failed, "no channel left")
    );
    assert_eq!(message(&store, m.id).await, failed);
    assert!(claim(&store, LONG).await.is_empty(), "the job is gone");

    let events = all_events(&store, 3).await;
    assert_eq!(
        about(&events, m.id).last(),
        Some(&(EventType::MessageFailed, payload(&failed)))
    );
}

pub async fn cancel_only_pending_messages_nobody_is_sending(store: S) {
    let contact = recipient(&store).await;

    let pending = accept(&store, outbound(contact)).await;
    let canceled = store.cancel_message(T, pending.id).await.unwrap();
    assert_eq!(canceled.status, MessageStatus::Canceled);
    assert_eq!(
        statuses(&canceled),
        vec![MessageStatus::Accepted, MessageStatus::Canceled]
    );
    assert_eq!(message(&store, pending.id).await, canceled);
    let canceled_pending = canceled;
    assert!(claim(&store, LONG).await.is_empty(), "its job is gone");
    assert_err!(
        store.cancel_message(T, pending.id).await,
        StoreError::NotCancelable { id, status: MessageStatus::Canceled } if id == pending.id
    );

    let leased = accept(&store, outbound(contact)).await;
    let job = claim_one(&store, leased.id, LONG).await;
    assert_err!(
        store.cancel_message(T, leased.id).await,
        StoreError::Sending(id) if id == leased.id
    );
    assert_eq!(message(&store, leased.id).await, leased, "unchanged");
    let done = complete(&store, &job, AttemptOutcome::Accepted, sent("wamid.1")).await;
    assert_err!(
        store.cancel_message(T, done.id).await,
        StoreError::NotCancelable {
            status: MessageStatus::Sent,
            ..
        }
    );

    // A lease that expired belongs to a dead worker: cancel wins, and the
    // worker's late completion is refused.
    let abandoned = accept(&store, outbound(contact)).await;
    let dead = claim_one(&store, abandoned.id, SHORT).await;
    tokio::time::sleep(SHORT * 2).await;
    let canceled = store.cancel_message(T, abandoned.id).await.unwrap();
    assert_eq!(canceled.status, MessageStatus::Canceled);
    assert_eq!(
        store
            .complete_job(&dead, None, sent("wamid.2"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(message(&store, abandoned.id).await, canceled);

    assert_err!(
        store.cancel_message("tenant-b", leased.id).await,
        StoreError::NotFound { .. }
    );
    let events = all_events(&store, 7).await;
    assert_eq!(
        about(&events, pending.id).last(),
        Some(&(EventType::MessageStatusChanged, payload(&canceled_pending)))
    );
    assert_eq!(
        about(&events, abandoned.id).last(),
        Some(&(EventType::MessageStatusChanged, payload(&canceled)))
    );
}

pub async fn retry_requeues_only_failed_messages(store: S) {
    let contact = recipient(&store).await;
    let m = accept(&store, outbound(contact)).await;
    assert_err!(
        store.retry_message(T, m.id).await,
        StoreError::NotRetryable {
            status: MessageStatus::Accepted,
            ..
        }
    );
    assert_err!(
        store.retry_message(T, Uuid::now_v7()).await,
        StoreError::NotFound { .. }
    );

    let job = claim_one(&store, m.id, LONG).await;
    let failure = AttemptOutcome::Failed(ErrorClass::Permanent);
    let moved = complete(
        &store,
        &job,
        failure,
        NextStep::NextChannel {
            index: 1,
            due: omniroute_domain::now(),
            reason: String::new(),
        },
    )
    .await;
    let job = claim_one(&store, moved.id, LONG).await;
    let failed = complete(
        &store,
        &job,
        failure,
        NextStep::Fail {
            reason: "bounced".into(),
        },
    )
    .await;
    assert_eq!(failed.channel, Some(Channel::Email));

    let retried = store.retry_message(T, m.id).await.unwrap();
    assert_eq!(retried.status, MessageStatus::Queued);
    assert_eq!(
        retried.channel,
        Some(Channel::Whatsapp),
        "from the plan's start"
    );
    assert_eq!(retried.attempts, failed.attempts, "attempts are kept");
    assert_eq!(
        statuses(&retried),
        [statuses(&failed), vec![MessageStatus::Queued]].concat()
    );
    assert_eq!(message(&store, m.id).await, retried);
    let job = claim_one(&store, m.id, LONG).await;
    assert_eq!((job.plan_index, job.channel_attempt), (0, 1));
    assert_err!(
        store.retry_message(T, m.id).await,
        StoreError::NotRetryable {
            status: MessageStatus::Queued,
            ..
        }
    );

    let events = all_events(&store, 5).await;
    assert_eq!(
        about(&events, m.id).last(),
        Some(&(EventType::MessageStatusChanged, payload(&retried)))
    );
}

pub fn report(
    message_id: Option<Uuid>,
    status: MessageStatus,
    provider_id: &str,
) -> ProviderStatus {
    ProviderStatus {
        message_id,
        channel: Channel::Whatsapp,
        provider_message_id: provider_id.into(),
        status,
        time: now(),
        reason: String::new(),
        unless_delivered: false,
    }
}

pub async fn provider_statuses_only_move_forward(store: S) {
    let contact = recipient(&store).await;
    let m = accept_and_send(&store, contact, "wamid.1").await;
    let apply = |status: ProviderStatus| {
        let store = store.clone();
        async move {
            let reported = store
                .apply_provider_status(status)
                .await
                .unwrap()
                .expect("the message is found");
            assert_eq!(reported.tenant, T);
            reported.message
        }
    };

    let read = apply(report(Some(m.id), MessageStatus::Read, "wamid.1")).await;
    assert_eq!(read.status, MessageStatus::Read, "read implies delivered");
    all_events(&store, 4).await;

    // A late delivered (found by the provider's id) tells nothing new: read
    // implies delivered. It changes nothing and logs nothing, so that the
    // history never runs backwards.
    let late = apply(report(None, MessageStatus::Delivered, "wamid.1")).await;
    assert_eq!(late.status, MessageStatus::Read);
    assert_eq!(
        statuses(&late),
        vec![
            MessageStatus::Accepted,
            MessageStatus::Sent,
            MessageStatus::Read
        ]
    );
    assert_eq!(message(&store, m.id).await, late);
    assert_eq!(late, read);
    all_events(&store, 4).await;

    // The same report again changes nothing and logs nothing.
    let duplicate = apply(report(None, MessageStatus::Delivered, "wamid.1")).await;
    assert_eq!(duplicate, late);
    assert_eq!(message(&store, m.id).await, late);
    all_events(&store, 4).await;
}

pub async fn a_failure_after_delivery_keeps_the_delivery(store: S) {
    let contact = recipient(&store).await;
    let delivered_one = accept_and_send(&store, contact, "wamid.1").await;
    // A one-step message: nothing takes over when it fails.
    let mut single = outbound(contact);
    single.route.plan.truncate(1);
    let failed_one = accept(&store, single).await;
    let job = claim_one(&store, failed_one.id, LONG).await;
    complete(&store, &job, AttemptOutcome::Accepted, sent("wamid.2")).await;
    let apply = |status: ProviderStatus| {
        let store = store.clone();
        async move {
            store
                .apply_provider_status(status)
                .await
                .unwrap()
                .unwrap()
                .message
        }
    };
    let delivered = apply(report(None, MessageStatus::Delivered, "wamid.1")).await;
    assert_eq!(delivered.status, MessageStatus::Delivered);
    let kept = apply(ProviderStatus {
        reason: "expired".into(),
        ..report(None, MessageStatus::Failed, "wamid.1")
    })
    .await;
    assert_eq!(kept.status, MessageStatus::Delivered);
    assert_eq!(kept.history.last().unwrap().status, MessageStatus::Failed);

    let failed = apply(ProviderStatus {
        reason: "undeliverable".into(),
        ..report(Some(failed_one.id), MessageStatus::Failed, "wamid.2")
    })
    .await;
    assert_eq!(failed.status, MessageStatus::Failed);

    let events = all_events(&store, 8).await;
    let kinds = |id: Uuid| -> Vec<EventType> {
        about(&events, id)
            .into_iter()
            .map(|(k, _)| k)
            .skip(2)
            .collect()
    };
    assert_eq!(
        kinds(delivered_one.id),
        vec![
            EventType::MessageStatusChanged,
            EventType::MessageStatusChanged
        ],
        "a failure that did not fail the message is a status change"
    );
    assert_eq!(kinds(failed_one.id), vec![EventType::MessageFailed]);
}

pub async fn provider_statuses_for_unknown_messages_match_nothing(store: S) {
    let contact = recipient(&store).await;
    let m = accept_and_send(&store, contact, "wamid.1").await;
    let unknown = [
        report(Some(Uuid::now_v7()), MessageStatus::Delivered, "wamid.1"),
        report(None, MessageStatus::Delivered, "wamid.unknown"),
        ProviderStatus {
            channel: Channel::Email,
            ..report(None, MessageStatus::Delivered, "wamid.1")
        },
    ];
    for status in unknown {
        assert_eq!(
            store.apply_provider_status(status.clone()).await.unwrap(),
            None,
            "{status:?}"
        );
    }
    assert_eq!(message(&store, m.id).await, m);
    all_events(&store, 3).await;
}

pub async fn changes_are_signaled_after_writes(store: S) {
    let mut changes = store.changes();
    changes.borrow_and_update();
    let contact = recipient(&store).await;
    let before = *changes.borrow_and_update();
    let m = accept(&store, outbound(contact)).await;
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("a change is signaled after accept")
        .expect("the store is alive");
    assert!(*changes.borrow_and_update() > before);

    let job = claim_one(&store, m.id, LONG).await;
    let before = *changes.borrow_and_update();
    complete(&store, &job, AttemptOutcome::Accepted, sent("wamid.1")).await;
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("a change is signaled after a completion")
        .expect("the store is alive");
    assert!(*changes.borrow_and_update() > before);
}

pub async fn stale_sent_lists_messages_that_heard_nothing(store: S) {
    let contact = recipient(&store).await;
    let quiet = accept_and_send(&store, contact, "p-quiet").await;
    let heard = accept_and_send(&store, contact, "p-heard").await;
    let pending = accept(&store, outbound(contact)).await;
    let delivered = report(Some(heard.id), MessageStatus::Delivered, "p-heard");
    store.apply_provider_status(delivered).await.unwrap();

    let later = SystemTime::now() + Duration::from_secs(1);
    let start = SentMark::default();
    let stale: Vec<Uuid> = store
        .stale_sent(start, later, 10)
        .await
        .unwrap()
        .iter()
        .map(|(_, m)| m.id)
        .collect();
    assert_eq!(stale, vec![quiet.id], "only sent messages without news");
    assert!(!stale.contains(&pending.id));
    let earlier = quiet.update_time - Duration::from_secs(1);
    assert!(
        store
            .stale_sent(start, earlier, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.stale_sent(start, later, 0).await.unwrap().is_empty());
}

pub async fn stale_sent_pages_in_the_order_of_sending(store: S) {
    let contact = recipient(&store).await;
    let sent = [
        accept_and_send(&store, contact, "p-quiet-1").await,
        accept_and_send(&store, contact, "p-quiet-2").await,
        accept_and_send(&store, contact, "p-quiet-3").await,
    ];
    let start = SentMark::default();
    let later = SystemTime::now() + Duration::from_secs(1);
    let mut seen = Vec::new();
    let mut position = start;
    loop {
        let page = store.stale_sent(position, later, 1).await.unwrap();
        let Some((mark, message)) = page.into_iter().next() else {
            break;
        };
        assert!(mark > position, "positions only grow");
        position = mark;
        seen.push(message.id);
    }
    assert_eq!(seen, sent.iter().map(|m| m.id).collect::<Vec<_>>());
}
