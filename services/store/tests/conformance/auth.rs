//! Tenants and API keys: the default tenant the migration creates, tenants
//! created once each, keys stored for existing tenants only, found by
//! their prefix (unique across tenants), listed in creation order, revoked
//! once, within their own tenant.

use std::time::{Duration, SystemTime};

use omniroute_domain::{ApiKey, DEFAULT_TENANT, NewApiKey, Tenant};
use omniroute_store::StoreError;
use uuid::Uuid;

use crate::messaging::micros;
use crate::support::*;

/// Another tenant.
const OTHER: &str = "tenant-b";

/// A stand-in for the SHA-256 of a secret: 32 bytes, none of them alike.
fn hash(seed: u8) -> Vec<u8> {
    (0..32u8)
        .map(|i| seed.wrapping_add(i.wrapping_mul(7)))
        .collect()
}

/// A key of `tenant` with `prefix`, never expiring.
fn new_key(tenant: &str, prefix: &str) -> NewApiKey {
    NewApiKey {
        id: Uuid::now_v7(),
        tenant: tenant.to_owned(),
        name: format!("key {prefix}"),
        prefix: prefix.to_owned(),
        secret_hash: hash(prefix.len() as u8),
        scopes: strings(&["messages.send", "contacts.read"]),
        expire_time: None,
    }
}

/// Creates tenants [`T`] and [`OTHER`].
async fn two_tenants(store: &S) {
    for tenant in [T, OTHER] {
        store
            .create_tenant(tenant, "")
            .await
            .expect("create_tenant");
    }
}

/// Creates a key, panicking on failure.
async fn create_key(store: &S, key: NewApiKey) -> ApiKey {
    store.create_api_key(key).await.expect("create_api_key")
}

/// `keys` sorted in list order: by (create time, id).
fn in_list_order(mut keys: Vec<ApiKey>) -> Vec<ApiKey> {
    keys.sort_by_key(|k| (k.create_time, k.id));
    keys
}

pub async fn the_default_tenant_exists_after_migration(store: S) {
    let default = store
        .get_tenant(DEFAULT_TENANT)
        .await
        .unwrap()
        .expect("the migration creates the default tenant");
    assert_eq!(default.id, "default");
    assert_eq!(default.display_name, "Default");
    assert!(default.create_time <= SystemTime::now());
    assert_eq!(store.list_tenants().await.unwrap(), vec![default.clone()]);
    assert_eq!(
        store.get_tenant(DEFAULT_TENANT).await.unwrap(),
        Some(default),
        "reads back the same"
    );
    // Existing data keeps working under it: keys can be made for it.
    let key = create_key(&store, new_key(DEFAULT_TENANT, "dflt")).await;
    assert_eq!(key.tenant, DEFAULT_TENANT);
}

pub async fn tenants_are_created_once_and_listed_by_id(store: S) {
    let before = micros(SystemTime::now());
    let b = store.create_tenant(OTHER, "Tenant B").await.unwrap();
    let a = store.create_tenant(T, "").await.unwrap();
    let after = SystemTime::now();
    assert_eq!(
        (b.id.as_str(), b.display_name.as_str()),
        (OTHER, "Tenant B")
    );
    assert_eq!((a.id.as_str(), a.display_name.as_str()), (T, ""));
    for tenant in [&a, &b] {
        assert!(before <= tenant.create_time && tenant.create_time <= after);
        assert_eq!(micros(tenant.create_time), tenant.create_time);
        assert_eq!(
            store.get_tenant(&tenant.id).await.unwrap().as_ref(),
            Some(tenant)
        );
    }
    let listed: Vec<String> = store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, strings(&[DEFAULT_TENANT, T, OTHER]));
    assert_eq!(store.get_tenant("tenant-c").await.unwrap(), None);

    assert_err!(
        store.create_tenant(T, "Another A").await,
        StoreError::TenantExists(ref id) if id == T
    );
    assert_err!(
        store.create_tenant(DEFAULT_TENANT, "").await,
        StoreError::TenantExists(ref id) if id == DEFAULT_TENANT
    );
    assert_eq!(
        store.get_tenant(T).await.unwrap(),
        Some(a),
        "a refused create changes nothing"
    );
    assert_eq!(store.list_tenants().await.unwrap().len(), 3);
}

pub async fn concurrent_creates_of_one_tenant_have_one_winner(store: S) {
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.create_tenant("racer", &format!("racer {i}")).await })
        })
        .collect();
    let winner: Tenant = the_one_winner(tasks, |_, error| match error {
        StoreError::TenantExists(id) => assert_eq!(id, "racer"),
        e => panic!("a losing create must say the tenant exists, got {e:?}"),
    })
    .await;
    assert_eq!(store.get_tenant("racer").await.unwrap(), Some(winner));
}

pub async fn a_key_for_an_unknown_tenant_is_not_found(store: S) {
    assert_err!(
        store.create_api_key(new_key("nobody", "nbdy")).await,
        StoreError::NotFound { resource: "tenants", ref id } if id == "nobody"
    );
    assert_eq!(store.find_api_key("nbdy").await.unwrap(), None);
    assert_eq!(store.list_api_keys(None).await.unwrap(), Vec::new());
    assert_eq!(
        store.list_api_keys(Some("nobody")).await.unwrap(),
        Vec::new()
    );
}

pub async fn a_key_is_found_by_its_prefix_as_created(store: S) {
    two_tenants(&store).await;
    // An expire time with nanoseconds: kept to the microsecond.
    let expire = SystemTime::now() + Duration::from_secs(86_400) + Duration::from_nanos(1_234);
    let new = NewApiKey {
        expire_time: Some(expire),
        ..new_key(T, "or_live_a1b2")
    };
    let before = micros(SystemTime::now());
    let key = create_key(&store, new.clone()).await;
    let after = SystemTime::now();
    assert_eq!(key.id, new.id);
    assert_eq!(key.tenant, T);
    assert_eq!(key.name, new.name);
    assert_eq!(key.prefix, "or_live_a1b2");
    assert_eq!(key.secret_hash, new.secret_hash);
    assert_eq!(key.scopes, strings(&["messages.send", "contacts.read"]));
    assert!(before <= key.create_time && key.create_time <= after);
    assert_eq!(key.expire_time, Some(micros(expire)));
    assert_eq!(key.revoke_time, None);
    assert!(key.is_usable(SystemTime::now()));

    let found = store.find_api_key("or_live_a1b2").await.unwrap();
    assert_eq!(found.as_ref(), Some(&key), "equal, times included");
    assert_eq!(store.find_api_key("or_live_a1b3").await.unwrap(), None);
    assert_eq!(store.find_api_key("OR_LIVE_A1B2").await.unwrap(), None);
    assert_eq!(store.find_api_key("").await.unwrap(), None);

    // No scopes, no name, the other tenant: found as created too.
    let bare = create_key(
        &store,
        NewApiKey {
            name: String::new(),
            scopes: Vec::new(),
            ..new_key(OTHER, "or_live_zz")
        },
    )
    .await;
    assert_eq!(store.find_api_key("or_live_zz").await.unwrap(), Some(bare));
}

pub async fn keys_are_listed_by_creation_time_then_id(store: S) {
    two_tenants(&store).await;
    let mut mine = Vec::new();
    let mut theirs = Vec::new();
    for i in 0..6 {
        // Ids out of creation order, so that the order is the store's.
        let mut new = new_key(if i % 2 == 0 { T } else { OTHER }, &format!("list{i}"));
        new.id = Uuid::from_u128(u128::MAX - i);
        let key = create_key(&store, new).await;
        if key.tenant == T {
            mine.push(key);
        } else {
            theirs.push(key);
        }
    }
    let all = store.list_api_keys(None).await.unwrap();
    assert_eq!(all, in_list_order([mine.clone(), theirs.clone()].concat()));
    assert_eq!(
        store.list_api_keys(Some(T)).await.unwrap(),
        in_list_order(mine)
    );
    assert_eq!(
        store.list_api_keys(Some(OTHER)).await.unwrap(),
        in_list_order(theirs)
    );
    assert_eq!(
        store.list_api_keys(Some(DEFAULT_TENANT)).await.unwrap(),
        Vec::new()
    );
}

pub async fn revoking_a_key_keeps_the_first_time(store: S) {
    two_tenants(&store).await;
    let key = create_key(&store, new_key(T, "rvk1")).await;
    let kept = create_key(&store, new_key(T, "rvk2")).await;

    let before = micros(SystemTime::now());
    let revoked = store.revoke_api_key(None, key.id).await.unwrap();
    let after = SystemTime::now();
    let time = revoked.revoke_time.expect("revoked");
    assert!(before <= time && time <= after);
    assert_eq!(
        revoked,
        ApiKey {
            revoke_time: Some(time),
            ..key.clone()
        },
        "only the revoke time changes"
    );
    assert!(!revoked.is_usable(SystemTime::now()));
    assert!(!revoked.is_usable(key.create_time));
    assert_eq!(
        store.find_api_key("rvk1").await.unwrap().as_ref(),
        Some(&revoked),
        "a revoked key is still found, and refused by is_usable"
    );

    tokio::time::sleep(Duration::from_millis(2)).await;
    let again = store.revoke_api_key(Some(T), key.id).await.unwrap();
    assert_eq!(again, revoked, "revoking twice keeps the first time");
    assert_eq!(store.find_api_key("rvk1").await.unwrap(), Some(revoked));
    assert_eq!(
        store.find_api_key("rvk2").await.unwrap(),
        Some(kept),
        "other keys are untouched"
    );
}

pub async fn a_key_is_revoked_only_in_its_own_tenant(store: S) {
    two_tenants(&store).await;
    let key = create_key(&store, new_key(T, "own1")).await;
    for (tenant, id) in [
        (Some(OTHER), key.id),
        (Some("nobody"), key.id),
        (Some(T), Uuid::now_v7()),
        (None, Uuid::now_v7()),
    ] {
        assert_err!(
            store.revoke_api_key(tenant, id).await,
            StoreError::NotFound { resource: "api_keys", id: ref missing } if *missing == id.to_string()
        );
    }
    assert_eq!(
        store.find_api_key("own1").await.unwrap(),
        Some(key.clone()),
        "not revoked"
    );
    let revoked = store.revoke_api_key(Some(T), key.id).await.unwrap();
    assert!(revoked.revoke_time.is_some());
}

pub async fn an_expired_key_is_not_usable(store: S) {
    two_tenants(&store).await;
    let past = SystemTime::now() - Duration::from_secs(60);
    let key = create_key(
        &store,
        NewApiKey {
            expire_time: Some(past),
            ..new_key(T, "xprd")
        },
    )
    .await;
    assert_eq!(key.expire_time, Some(micros(past)));
    assert_eq!(key.revoke_time, None);
    assert!(!key.is_usable(SystemTime::now()));
    let found = store.find_api_key("xprd").await.unwrap().expect("found");
    assert_eq!(found, key);
    assert!(!found.is_usable(SystemTime::now()));
    assert!(found.is_usable(micros(past) - Duration::from_micros(1)));
}

pub async fn prefixes_are_unique_across_tenants(store: S) {
    two_tenants(&store).await;
    let first = create_key(&store, new_key(T, "uniq")).await;
    for tenant in [T, OTHER] {
        assert_err!(
            store.create_api_key(new_key(tenant, "uniq")).await,
            StoreError::ApiKeyPrefixTaken(ref prefix) if prefix == "uniq"
        );
    }
    assert_eq!(
        store.find_api_key("uniq").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.list_api_keys(None).await.unwrap(), vec![first]);

    // Racing creates with one prefix: one wins, the others are told.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let tenant = if i % 2 == 0 { T } else { OTHER };
            tokio::spawn(async move { store.create_api_key(new_key(tenant, "race")).await })
        })
        .collect();
    let winner: ApiKey = the_one_winner(tasks, |_, error| match error {
        StoreError::ApiKeyPrefixTaken(prefix) => assert_eq!(prefix, "race"),
        e => panic!("a losing create must say the prefix is taken, got {e:?}"),
    })
    .await;
    assert_eq!(store.find_api_key("race").await.unwrap(), Some(winner));
}

pub async fn debug_of_a_key_hides_its_hash(store: S) {
    two_tenants(&store).await;
    let new = new_key(T, "dbg1");
    let bytes = format!("{:?}", new.secret_hash);
    let shown = format!("{new:?}");
    assert!(!shown.contains(&bytes), "{shown}");
    let key = create_key(&store, new).await;
    let found = store.find_api_key("dbg1").await.unwrap().expect("found");
    for shown in [format!("{key:?}"), format!("{found:#?}")] {
        assert!(shown.contains("***"), "{shown}");
        assert!(!shown.contains(&bytes), "{shown}");
        assert!(!shown.contains("secret_hash: ["), "{shown}");
        assert!(shown.contains("dbg1"), "the rest is shown: {shown}");
    }
}

/// A daily quota is handed out up to its limit, per tenant and day, and a
/// request for more than is left gets what is left.
pub async fn daily_quotas_are_granted_up_to_their_limit(store: S) {
    let day = "2026-12-01";
    assert_eq!(store.consume_quota(T, day, 3, 5).await.unwrap(), 3);
    assert_eq!(
        store.consume_quota(T, day, 3, 5).await.unwrap(),
        2,
        "what is left"
    );
    assert_eq!(store.consume_quota(T, day, 1, 5).await.unwrap(), 0, "spent");
    // Another day, another tenant: their own.
    assert_eq!(store.consume_quota(T, "2026-12-02", 4, 5).await.unwrap(), 4);
    assert_eq!(store.consume_quota(OTHER, day, 5, 5).await.unwrap(), 5);
    // A raised limit gives the difference.
    assert_eq!(store.consume_quota(T, day, 10, 8).await.unwrap(), 3);
    // Racing takers never get more than the limit between them.
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move { store.consume_quota(T, "2026-12-03", 2, 9).await })
        })
        .collect();
    let mut total = 0;
    for taker in takers {
        total += taker.await.unwrap().unwrap();
    }
    assert_eq!(total, 9);
    // What was granted and not used is given back, for that day only.
    store.release_quota(T, "2026-12-03", 4).await.unwrap();
    assert_eq!(store.consume_quota(T, "2026-12-03", 9, 9).await.unwrap(), 4);
    assert_eq!(store.consume_quota(T, "2026-12-02", 9, 5).await.unwrap(), 1);
    // Never below nothing, and a day with no count is left alone.
    store.release_quota(OTHER, day, 50).await.unwrap();
    assert_eq!(store.consume_quota(OTHER, day, 9, 5).await.unwrap(), 5);
    store.release_quota(OTHER, "2026-11-30", 3).await.unwrap();
    assert_eq!(
        store
            .consume_quota(OTHER, "2026-11-30", 9, 2)
            .await
            .unwrap(),
        2
    );
}
