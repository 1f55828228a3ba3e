//! Many at once: accepting sends together (each answered on its own, and
//! concurrent callers committed together), recording several outcomes and
//! status reports in one call, and the signal dispatchers wait for.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use omniroute_channel::Channel;
use omniroute_domain::{
    Accepted, AttemptOutcome, Completion, EventFilter, EventType, MessageStatus, NewMessage,
    NextStep,
};
use omniroute_store::StoreError;

use crate::messaging::{
    LONG, accept, attempt, claim, current, message, outbound, recipient, report, sent, wait_events,
};
use crate::support::*;

pub async fn accepting_many_answers_each_on_its_own(store: S) {
    let anna = recipient(&store).await;
    let bert = create(&store, named("Bert"), vec![email("bert@example.com")]).await;
    let keyed = |key: &str, hash: &str| NewMessage {
        idempotency_key: Some(key.into()),
        request_hash: hash.into(),
        ..outbound(anna)
    };
    let fresh = current(&store, T, outbound(anna)).await;
    let first = current(&store, T, keyed("k-1", "h-1")).await;
    let replay = current(&store, T, keyed("k-1", "h-1")).await;
    let conflict = current(&store, T, keyed("k-1", "h-2")).await;
    // Routed on Bert's version before his contact changed.
    let stale = current(&store, T, outbound(bert.id)).await;
    store
        .link_identity(T, bert.id, whatsapp("4915123456789"))
        .await
        .unwrap();
    let to_bert = current(&store, T, outbound(bert.id)).await;

    let answers = store
        .accept_messages(
            T,
            vec![fresh, first, replay, conflict, stale, to_bert.clone()],
        )
        .await
        .expect("accept_messages");
    assert_eq!(answers.len(), 6, "one answer per message, in order");
    let new = |i: usize| match &answers[i] {
        Ok(Accepted::New(m)) => m.clone(),
        other => panic!("message {i}: expected a new message, got {other:?}"),
    };
    let (m0, m1, m5) = (new(0), new(1), new(5));
    match &answers[2] {
        Ok(Accepted::Replayed(m)) => assert_eq!(m, &m1, "the same key and request replays"),
        other => panic!("expected a replay, got {other:?}"),
    }
    assert_err!(
        &answers[3],
        StoreError::IdempotencyConflict { existing } if *existing == m1.id
    );
    assert_err!(&answers[4], StoreError::ContactChanged(id) if *id == bert.id);
    assert_eq!(m5.contact_id, bert.id);

    // Exactly the three new messages were written, each with a job and an
    // event, and they read back as answered.
    for m in [&m0, &m1, &m5] {
        assert_eq!(&message(&store, m.id).await, m);
    }
    let jobs: HashSet<_> = claim(&store, LONG)
        .await
        .iter()
        .map(|j| j.message.id)
        .collect();
    assert_eq!(jobs, HashSet::from([m0.id, m1.id, m5.id]));
    let accepted = wait_events(
        &store,
        T,
        store.event_origin(),
        &EventFilter {
            types: vec![EventType::MessageAccepted],
            contact_id: None,
        },
        3,
    )
    .await;
    assert_eq!(accepted.len(), 3);
}

pub async fn concurrent_sends_are_each_committed_and_answered(store: S) {
    let contact = recipient(&store).await;
    let routed = current(&store, T, outbound(contact)).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let store = Arc::clone(&store);
        let new = NewMessage {
            correlation_ref: format!("order-{i}"),
            // Every fourth carries a key; two callers share each key.
            idempotency_key: (i % 4 == 0).then(|| format!("key-{}", i / 8)),
            ..routed.clone()
        };
        tasks.spawn(async move { (i, store.accept_message(T, new).await) });
    }
    let mut new = Vec::new();
    let mut replayed = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, answer) = joined.expect("the task ran");
        match answer.unwrap_or_else(|e| panic!("send {i}: {e:?}")) {
            Accepted::New(m) => {
                assert_eq!(m.correlation_ref, format!("order-{i}"));
                new.push(m.id);
            }
            Accepted::Replayed(m) => {
                // The twin that shares the key (i and i ± 4) won it.
                let twin = if i % 8 == 0 { i + 4 } else { i - 4 };
                assert_eq!(m.correlation_ref, format!("order-{twin}"), "send {i}");
                replayed += 1;
            }
        }
    }
    // 200 sends, 50 of them keyed in pairs: 25 of those replay their twin.
    assert_eq!(new.len(), 175);
    assert_eq!(replayed, 25);
    let unique: HashSet<_> = new.iter().collect();
    assert_eq!(unique.len(), 175, "every new message has its own id");
    let listed = store.list_messages(T, contact, None, 500).await.unwrap();
    assert_eq!(listed.len(), 175, "what was answered is what was stored");
    let mut claimed = 0;
    loop {
        let jobs = claim(&store, LONG).await;
        if jobs.is_empty() {
            break;
        }
        claimed += jobs.len();
    }
    assert_eq!(claimed, 175, "one job per message");
}

pub async fn outcomes_are_recorded_together_and_stale_ones_skipped(store: S) {
    let contact = recipient(&store).await;
    let a = accept(&store, outbound(contact)).await;
    let b = accept(&store, outbound(contact)).await;
    let c = accept(&store, outbound(contact)).await;
    let jobs = claim(&store, LONG).await;
    assert_eq!(jobs.len(), 3);
    let job = |id| jobs.iter().find(|j| j.message.id == id).unwrap().clone();
    let mut stale = job(c.id);
    stale.claim_token = uuid::Uuid::now_v7();
    let completions = vec![
        Completion {
            job: job(a.id),
            attempt: Some(attempt(&job(a.id), AttemptOutcome::Accepted)),
            next: sent("wamid.a"),
        },
        Completion {
            job: job(b.id),
            attempt: Some(attempt(
                &job(b.id),
                AttemptOutcome::Failed(omniroute_channel::ErrorClass::Permanent),
            )),
            next: NextStep::NextChannel {
                index: 1,
                due: omniroute_domain::now(),
                reason: String::new(),
            },
        },
        Completion {
            job: stale,
            attempt: None,
            next: NextStep::Fail {
                reason: "late".into(),
            },
        },
    ];
    let recorded = store.complete_jobs(&completions).await.unwrap();
    assert_eq!(recorded.len(), 3, "one answer per outcome, in order");
    let a_now = recorded[0].clone().expect("a's lease held");
    let b_now = recorded[1].clone().expect("b's lease held");
    assert!(recorded[2].is_none(), "a stale token changes nothing");
    assert_eq!(a_now.status, MessageStatus::Sent);
    assert_eq!(b_now.status, MessageStatus::Queued);
    assert_eq!(
        b_now.channel,
        Some(Channel::Email),
        "b moved to the next channel"
    );
    assert_eq!(message(&store, a.id).await, a_now);
    assert_eq!(message(&store, b.id).await, b_now);
    assert_eq!(message(&store, c.id).await, c, "c is untouched");
    // b is due again on its next channel; a is done; c is still leased.
    let again = claim(&store, LONG).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].message.id, again[0].plan_index), (b.id, 1));
}

pub async fn status_reports_are_applied_together_in_turn(store: S) {
    let contact = recipient(&store).await;
    let a = crate::messaging::accept_and_send(&store, contact, "p-a").await;
    let b = crate::messaging::accept_and_send(&store, contact, "p-b").await;
    let reports = vec![
        report(Some(a.id), MessageStatus::Delivered, "p-a"),
        report(None, MessageStatus::Delivered, "p-b"),
        report(Some(a.id), MessageStatus::Read, "p-a"),
        report(None, MessageStatus::Delivered, "p-unknown"),
        // A redelivered report after read changes nothing.
        report(Some(a.id), MessageStatus::Delivered, "p-a"),
    ];
    let applied = store.apply_provider_statuses(reports).await.unwrap();
    assert_eq!(applied.len(), 5, "one answer per report, in order");
    assert!(
        applied[3].is_none(),
        "an unknown provider id matches nothing"
    );
    let a_now = message(&store, a.id).await;
    let b_now = message(&store, b.id).await;
    assert_eq!(a_now.status, MessageStatus::Read);
    assert_eq!(b_now.status, MessageStatus::Delivered);
    let last = applied[4].as_ref().expect("the redelivered report matched");
    assert_eq!(last.message, a_now);
    assert_eq!(last.tenant, T, "a report answers whose message it was");
    let changes = wait_events(
        &store,
        T,
        store.event_origin(),
        &EventFilter {
            types: vec![EventType::MessageStatusChanged],
            contact_id: None,
        },
        5,
    )
    .await;
    let about_a: Vec<MessageStatus> = changes
        .iter()
        .filter(|e| e.message_id == Some(a.id))
        .filter_map(|e| match &e.payload {
            omniroute_domain::EventPayload::Message(m) => Some(m.status),
            _ => None,
        })
        .collect();
    assert_eq!(
        about_a,
        vec![
            MessageStatus::Sent,
            MessageStatus::Delivered,
            MessageStatus::Read,
        ],
        "each report that changed something is one event, in order (the \
         late delivered repeats the first: it changes nothing)"
    );
}

pub async fn dispatchers_are_woken_by_new_jobs_only(store: S) {
    let mut jobs = store.job_changes();
    jobs.borrow_and_update();
    let contact = recipient(&store).await;
    let m = accept(&store, outbound(contact)).await;
    tokio::time::timeout(Duration::from_secs(5), jobs.changed())
        .await
        .expect("a new job is signaled")
        .expect("the store is alive");
    jobs.borrow_and_update();
    let job = crate::messaging::claim_one(&store, m.id, LONG).await;
    crate::messaging::complete(&store, &job, AttemptOutcome::Accepted, sent("wamid.1")).await;
    store
        .apply_provider_status(report(Some(m.id), MessageStatus::Delivered, "wamid.1"))
        .await
        .unwrap();
    assert!(
        !jobs.has_changed().expect("the store is alive"),
        "a sent message and its report make no job due"
    );
    let retried = accept(&store, outbound(contact)).await;
    let job = crate::messaging::claim_one(&store, retried.id, LONG).await;
    let due = omniroute_domain::now();
    crate::messaging::complete(
        &store,
        &job,
        AttemptOutcome::Failed(omniroute_channel::ErrorClass::Transient),
        NextStep::RetryAt(due),
    )
    .await;
    assert!(
        jobs.has_changed().expect("the store is alive"),
        "a released job is due again"
    );
}
