//! The event log: order, cursors, filters, "from now", pruning, contact
//! events, and what erasure leaves of messages and events.

use std::collections::BTreeMap;
use std::time::Duration;

use omniroute_channel::Content;
use omniroute_channel::content::Text;
use omniroute_domain::{
    AttemptOutcome, Cursor, EventFilter, EventPayload, EventType, MessageStatus, NewMessage, now,
};
use uuid::Uuid;

use crate::messaging::*;
use crate::support::*;

fn only(types: &[EventType]) -> EventFilter {
    EventFilter {
        types: types.to_vec(),
        contact_id: None,
    }
}

fn of_contact(id: Uuid) -> EventFilter {
    EventFilter {
        types: Vec::new(),
        contact_id: Some(id),
    }
}

pub async fn events_are_read_in_log_order_with_cursor_paging(store: S) {
    let contact = recipient(&store).await;
    let mut messages = Vec::new();
    for _ in 0..3 {
        messages.push(accept(&store, outbound(contact)).await);
    }
    let events = all_events(&store, 4).await;
    assert_eq!(events[0].kind, EventType::ContactCreated);
    assert_eq!(events[0].contact_id, Some(contact));
    assert_eq!(events[0].message_id, None);
    for (event, message) in events[1..].iter().zip(&messages) {
        assert_eq!(event.kind, EventType::MessageAccepted);
        assert_eq!(event.message_id, Some(message.id));
        assert_eq!(event.time, message.create_time);
    }
    assert!(
        events.windows(2).all(|w| w[0].cursor < w[1].cursor),
        "cursors grow in log order"
    );
    assert!(events[0].cursor > store.event_origin());
    for event in &events {
        assert_eq!(Cursor::decode(&event.cursor.encode()), Some(event.cursor));
    }

    // Pages of two, each resuming after the last cursor seen.
    let all = EventFilter::default();
    let mut paged = Vec::new();
    let mut after = store.event_origin();
    loop {
        let page = store.read_events(T, after, &all, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = last.cursor;
        paged.extend(page);
    }
    assert_eq!(paged, events);
    assert!(
        store
            .read_events(T, events[3].cursor, &all, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .read_events(T, events[1].cursor, &all, 10)
            .await
            .unwrap(),
        events[2..].to_vec()
    );
}

pub async fn events_filter_by_type_contact_and_tenant(store: S) {
    let anna = recipient(&store).await;
    let bert = create(&store, named("Bert"), vec![email("bert@example.com")]).await;
    let a1 = accept(&store, outbound(anna)).await;
    let b1 = accept(&store, outbound(bert.id)).await;
    store.cancel_message(T, a1.id).await.unwrap();
    let all = all_events(&store, 5).await;

    let origin = store.event_origin();
    let accepted = store
        .read_events(T, origin, &only(&[EventType::MessageAccepted]), 10)
        .await
        .unwrap();
    assert_eq!(
        accepted.iter().map(|e| e.message_id).collect::<Vec<_>>(),
        vec![Some(a1.id), Some(b1.id)]
    );
    let two_types = store
        .read_events(
            T,
            origin,
            &only(&[EventType::ContactCreated, EventType::MessageStatusChanged]),
            10,
        )
        .await
        .unwrap();
    assert_eq!(
        two_types.iter().map(|e| e.kind).collect::<Vec<_>>(),
        vec![
            EventType::ContactCreated,
            EventType::ContactCreated,
            EventType::MessageStatusChanged
        ]
    );

    let berts = store
        .read_events(T, origin, &of_contact(bert.id), 10)
        .await
        .unwrap();
    assert_eq!(
        berts,
        all.iter()
            .filter(|e| e.contact_id == Some(bert.id))
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(berts.len(), 2);
    let both = EventFilter {
        types: vec![EventType::MessageStatusChanged],
        contact_id: Some(anna),
    };
    let annas = store.read_events(T, origin, &both, 10).await.unwrap();
    assert_eq!(annas.len(), 1);
    assert_eq!(annas[0].message_id, Some(a1.id));

    // Another tenant sees none of it.
    let other = EventFilter::default();
    assert!(
        store
            .read_events("tenant-b", origin, &other, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.event_head("tenant-b").await.unwrap(), origin);
}

pub async fn event_head_reads_from_now(store: S) {
    let contact = recipient(&store).await;
    accept(&store, outbound(contact)).await;
    let seen = all_events(&store, 2).await;
    let head = store.event_head(T).await.unwrap();
    assert_eq!(head, seen[1].cursor, "the newest event");

    let later = accept(&store, outbound(contact)).await;
    let fresh = wait_events(&store, T, head, &EventFilter::default(), 1).await;
    assert_eq!(fresh.len(), 1, "only what happened after the head");
    assert_eq!(fresh[0].message_id, Some(later.id));
    assert_eq!(store.event_head(T).await.unwrap(), fresh[0].cursor);
}

pub async fn cursors_are_checked_against_the_tenants_log(store: S) {
    use omniroute_domain::CursorCheck;
    let contact = recipient(&store).await;
    accept(&store, outbound(contact)).await;
    let seen = all_events(&store, 2).await;
    let ours = seen[1].cursor;
    assert_eq!(
        store.check_cursor(T, ours).await.unwrap(),
        CursorCheck::Issued
    );
    // Another tenant never issued it.
    assert_ne!(
        store.check_cursor("tenant-b", ours).await.unwrap(),
        CursorCheck::Issued
    );
    // Past the head: the log was restored from before it, or reset.
    let past = Cursor {
        xid: ours.xid,
        seq: ours.seq + 1_000,
    };
    assert_eq!(
        store.check_cursor(T, past).await.unwrap(),
        CursorCheck::PastHead { head: ours }
    );
    // Before the head, where no event of ours sits (pruned, or foreign).
    let gap = Cursor {
        xid: seen[0].cursor.xid,
        seq: seen[0].cursor.seq - 1,
    };
    assert_eq!(
        store.check_cursor(T, gap).await.unwrap(),
        CursorCheck::Unknown
    );
    // After a prune, the pruned event's cursor is no longer one of ours.
    tokio::time::sleep(Duration::from_millis(10)).await;
    store.prune_events(now()).await.unwrap();
    assert_ne!(
        store.check_cursor(T, ours).await.unwrap(),
        CursorCheck::Issued
    );
}

pub async fn prune_deletes_only_older_events(store: S) {
    let contact = recipient(&store).await;
    accept(&store, outbound(contact)).await;
    all_events(&store, 2).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let cut = now();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let kept = accept(&store, outbound(contact)).await;
    all_events(&store, 3).await;

    assert_eq!(store.prune_events(cut).await.unwrap(), 2);
    let left = all_events(&store, 1).await;
    assert_eq!(left[0].message_id, Some(kept.id));
    assert_eq!(store.prune_events(cut).await.unwrap(), 0);

    // Positions are never handed out again after a prune: a reader resuming
    // from its cursor still sees what comes next.
    let after = left[0].cursor;
    let next = accept(&store, outbound(contact)).await;
    let fresh = wait_events(&store, T, after, &EventFilter::default(), 1).await;
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].message_id, Some(next.id));
}

pub async fn contacts_log_creation_merge_and_erasure(store: S) {
    let anna = recipient(&store).await;
    let bert = create(&store, named("Bert"), vec![email("bert@example.com")]).await;
    let carl = create(&store, named("Carl"), vec![email("carl@example.com")]).await;
    let created = all_events(&store, 3).await;
    for (event, id) in created.iter().zip([anna, bert.id, carl.id]) {
        assert_eq!(event.kind, EventType::ContactCreated);
        assert_eq!(event.contact_id, Some(id));
        assert_eq!(
            event.payload,
            EventPayload::Contact {
                contact_id: id,
                merged: Vec::new()
            }
        );
    }

    store
        .merge_contacts(T, anna, &[bert.id, carl.id])
        .await
        .unwrap();
    let merged = all_events(&store, 4).await.pop().unwrap();
    assert_eq!(merged.kind, EventType::ContactMerged);
    assert_eq!(merged.contact_id, Some(anna));
    let EventPayload::Contact {
        contact_id,
        mut merged,
    } = merged.payload
    else {
        panic!("a contact payload, got {:?}", merged.payload);
    };
    merged.sort();
    assert_eq!(contact_id, anna);
    assert_eq!(merged, vec![bert.id, carl.id]);

    store.erase_contact(T, anna).await.unwrap();
    let erased = all_events(&store, 5).await.pop().unwrap();
    assert_eq!(erased.kind, EventType::ContactErased);
    assert_eq!(erased.contact_id, Some(anna));
    assert_eq!(erased.payload, EventPayload::Empty);

    // Erasing again changes nothing and logs nothing.
    store.erase_contact(T, anna).await.unwrap();
    all_events(&store, 5).await;
}

pub async fn erase_redacts_messages_and_events(store: S) {
    let anna = recipient(&store).await;
    let bystander = create(&store, named("Bert"), vec![email("bert@example.com")]).await;
    let sent_message = accept_and_send(&store, anna, "wamid.1").await;
    let pending = accept(&store, outbound(anna)).await;
    let scheduled = accept(
        &store,
        NewMessage {
            send_time: Some(now() + Duration::from_secs(3600)),
            ..outbound(anna)
        },
    )
    .await;
    let untouched = accept(&store, outbound(bystander.id)).await;
    let before = all_events(&store, 7).await;

    let tombstone = store.erase_contact(T, anna).await.unwrap();
    let (_, summary) = tombstone.erasure.expect("erased");
    assert_eq!(summary.messages_redacted, 3);

    let redacted = |m: &omniroute_domain::Message| {
        assert_eq!(m.content, Content::Text(Text::default()), "{m:?}");
        assert!(m.overrides.is_empty());
        assert!(m.metadata.is_empty());
        assert_eq!(m.correlation_ref, "");
        assert_eq!(m.route, None);
        assert!(m.attempts.is_empty());
    };
    let sent_now = message(&store, sent_message.id).await;
    redacted(&sent_now);
    assert_eq!(sent_now.status, MessageStatus::Sent, "what happened stays");
    assert_eq!(sent_now.history, sent_message.history);
    for id in [pending.id, scheduled.id] {
        let m = message(&store, id).await;
        redacted(&m);
        assert_eq!(
            m.status,
            MessageStatus::Canceled,
            "nothing more goes to an erased contact"
        );
    }
    let jobs = claim(&store, LONG).await;
    assert_eq!(
        jobs.iter().map(|j| j.message.id).collect::<Vec<_>>(),
        vec![untouched.id],
        "the erased contact's jobs are gone"
    );
    assert_eq!(message(&store, untouched.id).await, untouched);

    let after = wait_events(
        &store,
        T,
        store.event_origin(),
        &EventFilter::default(),
        before.len() + 1,
    )
    .await;
    assert_eq!(after.last().unwrap().kind, EventType::ContactErased);
    let annas: Vec<_> = after
        .iter()
        .filter(|e| e.contact_id == Some(anna))
        .collect();
    assert!(annas.len() >= 5, "events are emptied, not deleted");
    for event in &annas {
        assert_eq!(event.payload, EventPayload::Empty, "{:?}", event.kind);
        assert_eq!(event.metadata, BTreeMap::new());
        assert_eq!(event.correlation_ref, "");
    }
    let berts: Vec<_> = after
        .iter()
        .filter(|e| e.contact_id == Some(bystander.id))
        .collect();
    assert_eq!(berts.len(), 2);
    assert_eq!(berts[1].payload, payload(&untouched));
}

pub async fn erase_redacts_events_written_before_a_merge(store: S) {
    let anna = recipient(&store).await;
    let bert = create(&store, named("Bert"), vec![whatsapp("4915123456789")]).await;
    let m = accept(&store, outbound(bert.id)).await;
    let job = claim_one(&store, m.id, LONG).await;
    complete(&store, &job, AttemptOutcome::Accepted, sent("wamid.1")).await;
    store.merge_contacts(T, anna, &[bert.id]).await.unwrap();
    store.erase_contact(T, anna).await.unwrap();

    let events = all_events(&store, 6).await;
    let about_message: Vec<_> = events
        .iter()
        .filter(|e| e.message_id == Some(m.id))
        .collect();
    assert_eq!(about_message.len(), 2);
    for event in about_message {
        assert_eq!(
            event.payload,
            EventPayload::Empty,
            "the message's content was logged under the retired id"
        );
        assert_eq!(event.correlation_ref, "");
        assert!(event.metadata.is_empty());
    }
}
