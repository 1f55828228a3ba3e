//! Deliveries to webhook endpoints: an endpoint's cursor starts where it
//! was registered, one deliverer holds it at a time, only the lease's
//! holder moves it, attempts are logged and found again by epoch, a
//! replay starts a new epoch, and a round that disables the endpoint does
//! so with an event. Cursors and attempts go with their endpoint.

use std::time::{Duration, SystemTime};

use omniroute_domain::{
    Cursor, DeliveryAttempt, DeliveryOutcome, DeliveryRound, EndpointLease, EndpointPatch,
    EventFilter, EventPayload, EventType, NewEndpoint, SealedSecret,
};
use omniroute_store::StoreError;
use uuid::Uuid;

use crate::messaging::wait_events;
use crate::support::*;

const LEASE: Duration = Duration::from_secs(30);

async fn register(store: &S) -> Uuid {
    let id = Uuid::now_v7();
    let start = store.event_head(T).await.unwrap();
    store
        .create_endpoint(
            T,
            NewEndpoint {
                id,
                url: "https://hooks.example.com/".to_owned(),
                description: String::new(),
                event_types: Vec::new(),
                contact: None,
                disabled: false,
                secret: SealedSecret(vec![1; 40]),
                start,
            },
        )
        .await
        .unwrap();
    id
}

async fn claim_one(store: &S) -> Option<EndpointLease> {
    let mut leases = store.claim_endpoints(10, LEASE).await.unwrap();
    assert!(leases.len() <= 1, "one endpoint registered");
    leases.pop()
}

fn attempt(lease: &EndpointLease, event: Cursor, outcome: DeliveryOutcome) -> DeliveryAttempt {
    DeliveryAttempt {
        id: Uuid::now_v7(),
        endpoint_id: lease.endpoint.id,
        event,
        event_type: EventType::ContactCreated,
        time: SystemTime::now(),
        outcome,
        status_code: Some(if outcome == DeliveryOutcome::Delivered {
            204
        } else {
            500
        }),
        latency: Duration::from_millis(12),
        error: String::new(),
        next_try_time: None,
        epoch: lease.epoch,
    }
}

fn round(lease: &EndpointLease, cursor: Cursor, attempts: Vec<DeliveryAttempt>) -> DeliveryRound {
    DeliveryRound {
        token: lease.token,
        cursor,
        next_time: SystemTime::now(),
        failing_since: None,
        failures: 0,
        disable: None,
        attempts,
    }
}

/// The positions of the `expected` events after `cursor` (once every
/// older transaction ended, so that they can be read).
async fn events_after(store: &S, cursor: Cursor, expected: usize) -> Vec<Cursor> {
    wait_events(store, T, cursor, &EventFilter::default(), expected)
        .await
        .into_iter()
        .map(|e| e.cursor)
        .collect()
}

fn of(contact: Uuid) -> EventFilter {
    EventFilter {
        types: Vec::new(),
        contact_id: Some(contact),
    }
}

pub async fn an_endpoint_starts_at_the_head_and_is_held_by_one(store: S) {
    let before = create(&store, named("Before"), vec![email("before@example.com")]).await;
    // Once its event can be read, it is behind the head.
    let origin = store.event_origin();
    assert_eq!(
        wait_events(&store, T, origin, &of(before.id), 1)
            .await
            .len(),
        1
    );
    let id = register(&store).await;
    let lease = claim_one(&store).await.expect("a new endpoint is due");
    assert_eq!(lease.endpoint.id, id);
    assert_eq!(lease.epoch, 0);
    assert!(
        claim_one(&store).await.is_none(),
        "leased: not claimed twice"
    );
    let after = create(&store, named("After"), vec![email("after@example.com")]).await;
    assert_eq!(
        wait_events(&store, T, lease.cursor, &of(after.id), 1)
            .await
            .len(),
        1
    );
    let read = store
        .read_events(T, lease.cursor, &of(before.id), 10)
        .await
        .unwrap();
    assert!(read.is_empty(), "registered after it: {read:?}");
    assert!(
        store
            .renew_endpoint_lease(T, id, lease.token, LEASE)
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_endpoint_lease(T, id, Uuid::now_v7(), LEASE)
            .await
            .unwrap()
    );
}

pub async fn only_the_lease_holder_moves_the_cursor(store: S) {
    let id = register(&store).await;
    for n in 0..3 {
        create(
            &store,
            named("C"),
            vec![email(&format!("c{n}@example.com"))],
        )
        .await;
    }
    let stale = store.claim_endpoints(1, Duration::ZERO).await.unwrap();
    let stale = stale.into_iter().next().unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let lease = claim_one(&store)
        .await
        .expect("an ended lease is claimed again");
    assert_ne!(lease.token, stale.token);
    let events = events_after(&store, lease.cursor, 3).await;
    assert_eq!(events.len(), 3);

    // The earlier holder's round logs its attempt but moves nothing.
    let late = attempt(&stale, events[0], DeliveryOutcome::Delivered);
    let held = store
        .finish_delivery_round(T, id, round(&stale, events[2], vec![late]))
        .await
        .unwrap();
    assert!(!held);
    // The holder delivers the second event, fails the first.
    let attempts = vec![
        attempt(&lease, events[0], DeliveryOutcome::Failed),
        attempt(&lease, events[1], DeliveryOutcome::Delivered),
    ];
    assert!(
        store
            .finish_delivery_round(T, id, round(&lease, lease.cursor, attempts))
            .await
            .unwrap()
    );
    let again = claim_one(&store).await.expect("released: due again");
    assert_eq!(again.cursor, lease.cursor);
    let delivered = store
        .delivered_events(T, id, again.epoch, &events)
        .await
        .unwrap();
    assert_eq!(delivered, vec![events[0], events[1]]);
    let logged = store.list_delivery_attempts(T, id, None, 10).await.unwrap();
    assert_eq!(logged.len(), 3);
    assert!(logged.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(logged[0].status_code, Some(204));
    assert_eq!(logged[0].latency, Duration::from_millis(12));
    let older = store
        .list_delivery_attempts(T, id, Some(logged[0].id), 10)
        .await
        .unwrap();
    assert_eq!(older.len(), 2);

    // All delivered: the cursor moves to the page's end.
    assert!(
        store
            .finish_delivery_round(T, id, round(&again, events[2], Vec::new()))
            .await
            .unwrap()
    );
    let moved = claim_one(&store).await.unwrap();
    assert_eq!(moved.cursor, events[2]);

    // A replay: a new epoch in which nothing was delivered yet.
    store.replay_endpoint(T, id, lease.cursor).await.unwrap();
    let replayed = claim_one(&store).await.expect("a replay ends the lease");
    assert_eq!(replayed.cursor, lease.cursor);
    assert_eq!(replayed.epoch, moved.epoch + 1);
    assert!(
        store
            .delivered_events(T, id, replayed.epoch, &events)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .finish_delivery_round(T, id, round(&moved, events[2], Vec::new()))
            .await
            .unwrap(),
        "the replay took the lease from the round before it"
    );
}

pub async fn a_round_that_disables_the_endpoint_says_so_in_the_log(store: S) {
    let id = register(&store).await;
    let lease = claim_one(&store).await.unwrap();
    let mut failing = round(&lease, lease.cursor, Vec::new());
    failing.failures = 7;
    failing.failing_since = Some(SystemTime::now());
    failing.next_time = SystemTime::now() + Duration::from_secs(3600);
    failing.disable = Some("the endpoint answered 410 Gone".to_owned());
    assert!(store.finish_delivery_round(T, id, failing).await.unwrap());
    let endpoint = store.get_endpoint(T, id).await.unwrap();
    assert!(endpoint.disabled);
    assert_eq!(endpoint.disabled_reason, "the endpoint answered 410 Gone");
    assert_eq!(endpoint.version, 2);
    let filter = EventFilter {
        types: vec![EventType::EndpointDisabled],
        contact_id: None,
    };
    let events = wait_events(&store, T, lease.cursor, &filter, 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].payload,
        EventPayload::Endpoint {
            endpoint_id: id,
            reason: "the endpoint answered 410 Gone".to_owned(),
        }
    );
    assert!(claim_one(&store).await.is_none(), "disabled: not delivered");

    // Enabled again: due at once, its failures forgotten.
    let patch = EndpointPatch {
        disabled: Some(false),
        ..EndpointPatch::default()
    };
    store.update_endpoint(T, id, patch).await.unwrap();
    let lease = claim_one(&store).await.expect("enabled: due now");
    assert_eq!((lease.failures, lease.failing_since), (0, None));
}

pub async fn cursors_and_attempts_go_with_their_endpoint(store: S) {
    let id = register(&store).await;
    let lease = claim_one(&store).await.unwrap();
    let logged = vec![attempt(&lease, lease.cursor, DeliveryOutcome::Delivered)];
    store
        .finish_delivery_round(T, id, round(&lease, lease.cursor, logged))
        .await
        .unwrap();
    store.delete_endpoint(T, id).await.unwrap();
    assert!(claim_one(&store).await.is_none());
    assert_err!(
        store.list_delivery_attempts(T, id, None, 10).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.replay_endpoint(T, id, Cursor::default()).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.list_delivery_attempts("tenant-b", id, None, 10).await,
        StoreError::NotFound { .. }
    );
}

pub async fn a_time_finds_the_position_before_its_first_event(store: S) {
    let early = create(&store, named("Early"), vec![email("early@example.com")]).await;
    let origin = store.event_origin();
    assert_eq!(
        wait_events(&store, T, origin, &of(early.id), 1).await.len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let late = create(&store, named("Late"), vec![email("late@example.com")]).await;
    let all = wait_events(&store, T, origin, &EventFilter::default(), 2).await;
    assert_eq!(all.len(), 2);
    let cursor = store.cursor_before(T, between).await.unwrap();
    let read = store
        .read_events(T, cursor, &EventFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].contact_id, Some(late.id));
    // From before everything: everything; after everything: the head.
    let first = store
        .cursor_before(T, SystemTime::UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!(
        store
            .read_events(T, first, &EventFilter::default(), 10)
            .await
            .unwrap()
            .len(),
        2
    );
    let future = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(
        store.cursor_before(T, future).await.unwrap(),
        store.event_head(T).await.unwrap()
    );
}

pub async fn a_sink_resumes_where_it_stood_and_is_held_by_one(store: S) {
    let first = store.claim_sink("nats", T, LEASE).await.unwrap();
    let first = first.expect("a new sink starts");
    assert_eq!(first.cursor, store.event_origin());
    assert_eq!(store.claim_sink("nats", T, LEASE).await.unwrap(), None);
    // Other sinks and tenants stand apart.
    assert!(store.claim_sink("other", T, LEASE).await.unwrap().is_some());
    assert!(
        store
            .claim_sink("nats", "tenant-b", LEASE)
            .await
            .unwrap()
            .is_some()
    );
    let moved = Cursor {
        xid: first.cursor.xid,
        seq: first.cursor.seq + 5,
    };
    assert!(
        store
            .advance_sink("nats", T, first.token, moved, Duration::ZERO)
            .await
            .unwrap()
    );
    // Released: the next claim resumes at the position, with a new token.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = store.claim_sink("nats", T, LEASE).await.unwrap().unwrap();
    assert_eq!(again.cursor, moved);
    assert_ne!(again.token, first.token);
    assert!(
        !store
            .advance_sink("nats", T, first.token, moved, LEASE)
            .await
            .unwrap(),
        "the old token moves nothing"
    );
}
