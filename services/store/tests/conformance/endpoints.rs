//! Outbound webhook endpoints: created as given, read and listed in id
//! order within their tenant only, changed by patches (a stale version
//! refused, nothing changed), deleted, and their secret rotated with the
//! previous one kept beside its expiry. Secrets pass through as sealed
//! bytes, unchanged.

use std::time::{Duration, SystemTime};

use omniroute_domain::{
    Endpoint, EndpointPatch, EventType, NewEndpoint, SealedSecret, SecretRotation,
};
use omniroute_store::StoreError;
use uuid::Uuid;

use crate::messaging::micros;
use crate::support::*;

/// Another tenant.
const OTHER: &str = "tenant-b";

fn sealed(seed: u8) -> SealedSecret {
    SealedSecret((0..40u8).map(|i| seed.wrapping_add(i)).collect())
}

fn new_endpoint(url: &str) -> NewEndpoint {
    NewEndpoint {
        id: Uuid::now_v7(),
        url: url.to_owned(),
        description: "orders".to_owned(),
        event_types: vec![EventType::MessageFailed, EventType::ContactCreated],
        contact: Some(Uuid::now_v7()),
        disabled: false,
        secret: sealed(1),
        start: omniroute_domain::Cursor::default(),
    }
}

async fn create(store: &S, tenant: &str, url: &str) -> Endpoint {
    store
        .create_endpoint(tenant, new_endpoint(url))
        .await
        .expect("create_endpoint")
}

pub async fn endpoints_round_trip_every_field(store: S) {
    let new = new_endpoint("https://hooks.example.com/a");
    let created = store.create_endpoint(T, new.clone()).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.tenant, T);
    assert_eq!(created.version, 1);
    assert_eq!(created.previous_secret, None);
    let read = store.get_endpoint(T, new.id).await.unwrap();
    assert_eq!(read.url, new.url);
    assert_eq!(read.description, "orders");
    assert_eq!(read.event_types, new.event_types);
    assert_eq!(read.contact, new.contact);
    assert!(!read.disabled);
    assert_eq!(read.secret, sealed(1));
    assert_eq!(read.create_time, micros(created.create_time));
    assert_eq!(read.version, 1);
}

pub async fn endpoints_list_in_pages_within_their_tenant(store: S) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            create(&store, T, &format!("https://h.example.com/{i}"))
                .await
                .id,
        );
    }
    create(&store, OTHER, "https://other.example.com/").await;
    let first = store.list_endpoints(T, None, 2).await.unwrap();
    let second = store.list_endpoints(T, Some(first[1].id), 2).await.unwrap();
    let third = store
        .list_endpoints(T, Some(second[1].id), 2)
        .await
        .unwrap();
    let seen: Vec<Uuid> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|e| e.id)
        .collect();
    assert_eq!(seen, ids);
    assert_eq!(third.len(), 1);
    assert_eq!(
        store.list_endpoints(OTHER, None, 10).await.unwrap().len(),
        1
    );
}

pub async fn endpoints_are_found_only_in_their_tenant(store: S) {
    let e = create(&store, T, "https://hooks.example.com/").await;
    assert_err!(
        store.get_endpoint(OTHER, e.id).await,
        StoreError::NotFound {
            resource: "endpoints",
            ..
        }
    );
    assert_err!(
        store
            .update_endpoint(OTHER, e.id, EndpointPatch::default())
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .rotate_endpoint_secret(
                OTHER,
                e.id,
                SecretRotation {
                    secret: sealed(9),
                    previous_expire_time: SystemTime::now(),
                }
            )
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.delete_endpoint(OTHER, e.id).await,
        StoreError::NotFound { .. }
    );
    // Untouched by all of that.
    let read = store.get_endpoint(T, e.id).await.unwrap();
    assert_eq!(read.version, 1);
    assert_eq!(read.secret, sealed(1));
}

pub async fn endpoint_patches_change_only_their_fields(store: S) {
    let e = create(&store, T, "https://hooks.example.com/").await;
    let updated = store
        .update_endpoint(
            T,
            e.id,
            EndpointPatch {
                url: Some("https://new.example.com/x".to_owned()),
                event_types: Some(Vec::new()),
                contact: Some(None),
                disabled: Some(true),
                version: Some(1),
                ..EndpointPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.version, 2);
    let read = store.get_endpoint(T, e.id).await.unwrap();
    assert_eq!(read.url, "https://new.example.com/x");
    assert_eq!(read.description, "orders");
    assert!(read.event_types.is_empty());
    assert_eq!(read.contact, None);
    assert!(read.disabled);
    assert_eq!(read.version, 2);
    assert_eq!(read.secret, sealed(1));
    // A stale version changes nothing.
    assert_err!(
        store
            .update_endpoint(
                T,
                e.id,
                EndpointPatch {
                    description: Some("late".to_owned()),
                    version: Some(1),
                    ..EndpointPatch::default()
                },
            )
            .await,
        StoreError::Stale {
            resource: "endpoints",
            ..
        }
    );
    assert_eq!(
        store.get_endpoint(T, e.id).await.unwrap().description,
        "orders"
    );
}

pub async fn a_deleted_endpoint_is_gone(store: S) {
    let e = create(&store, T, "https://hooks.example.com/").await;
    store.delete_endpoint(T, e.id).await.unwrap();
    assert_err!(
        store.get_endpoint(T, e.id).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.delete_endpoint(T, e.id).await,
        StoreError::NotFound { .. }
    );
    assert!(store.list_endpoints(T, None, 10).await.unwrap().is_empty());
}

pub async fn endpoint_rotation_keeps_the_previous_secret_until_its_expiry(store: S) {
    let e = create(&store, T, "https://hooks.example.com/").await;
    let expire = micros(SystemTime::now() + Duration::from_secs(86_400));
    store
        .rotate_endpoint_secret(
            T,
            e.id,
            SecretRotation {
                secret: sealed(2),
                previous_expire_time: expire,
            },
        )
        .await
        .unwrap();
    let read = store.get_endpoint(T, e.id).await.unwrap();
    assert_eq!(read.secret, sealed(2));
    assert_eq!(read.previous_secret, Some(sealed(1)));
    assert_eq!(read.previous_secret_expire_time, Some(expire));
    assert_eq!(read.version, 2);
    // Another rotation: the one before becomes the previous.
    store
        .rotate_endpoint_secret(
            T,
            e.id,
            SecretRotation {
                secret: sealed(3),
                previous_expire_time: expire,
            },
        )
        .await
        .unwrap();
    let read = store.get_endpoint(T, e.id).await.unwrap();
    assert_eq!(read.secret, sealed(3));
    assert_eq!(read.previous_secret, Some(sealed(2)));
}
