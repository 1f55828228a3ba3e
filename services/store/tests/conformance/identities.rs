//! Identities: linking, uniqueness (also under concurrent writers), WhatsApp
//! forms, lookup by any spelling, unlinking.

use omniroute_channel::{Address, Channel};
use omniroute_domain::{NewContact, Profile};
use omniroute_store::StoreError;

use crate::support::*;

pub async fn link_is_idempotent_for_the_same_identity(store: S) {
    let created = create(&store, named("Anna"), vec![email("anna@example.com")]).await;

    // Another spelling of the same address is the same identity.
    let relinked = store
        .link_identity(T, created.id, email("ANNA@Example.com"))
        .await
        .unwrap();
    assert_eq!(
        relinked.identities, created.identities,
        "still one identity, unchanged"
    );
    assert_eq!(get(&store, created.id).await, relinked);

    let wa = whatsapp("4915123456789");
    let linked = store
        .link_identity(T, created.id, wa.clone())
        .await
        .unwrap();
    let expected = [email("anna@example.com"), wa.clone()];
    assert_eq!(identity_keys(&linked), address_keys(&expected));
    assert!(linked.update_time >= created.update_time);
    let again = store.link_identity(T, created.id, wa).await.unwrap();
    assert_eq!(again.identities, linked.identities);
    assert_eq!(
        owner_of(&store, &keys("0151 23456789")).await,
        Some(created.id)
    );
}

pub async fn linking_another_contacts_identity_changes_nothing(store: S) {
    let anna = create(&store, named("Anna"), vec![email("anna@example.com")]).await;
    let wa = whatsapp("4915123456789");
    let ben = create(&store, named("Ben"), vec![wa.clone()]).await;

    assert_err!(
        store.link_identity(T, ben.id, email("Anna@EXAMPLE.com")).await,
        StoreError::IdentityTaken { owner, channel: Channel::Email } if owner == anna.id
    );
    assert_err!(
        store.link_identity(T, anna.id, whatsapp("+49 151 23456789")).await,
        StoreError::IdentityTaken { owner, channel: Channel::Whatsapp } if owner == ben.id
    );
    assert_eq!(get(&store, anna.id).await, anna);
    assert_eq!(get(&store, ben.id).await, ben);
    assert_eq!(
        owner_of(&store, &key_of(&email("anna@example.com"))).await,
        Some(anna.id)
    );

    // The same number on another channel is another identity.
    let call = voice("+49 151 23456789");
    let with_voice = store.link_identity(T, anna.id, call.clone()).await.unwrap();
    assert_eq!(
        identity_keys(&with_voice),
        address_keys(&[email("anna@example.com"), call])
    );
    assert_eq!(get(&store, ben.id).await, ben);
}

pub async fn create_with_a_taken_identity_creates_nothing(store: S) {
    let anna = create(&store, named("Anna"), vec![whatsapp("4915123456789")]).await;
    let before = list_all(&store).await;

    let fresh = email("new@example.com");
    let refused = store
        .create_contact(
            T,
            NewContact {
                profile: Profile {
                    external_ref: Some("crm-new".into()),
                    ..named("Copy")
                },
                // The free identity comes first: it must not stay behind.
                identities: vec![fresh.clone(), whatsapp("+49 (0)151 / 234 567 89")],
            },
        )
        .await;
    assert_err!(
        refused,
        StoreError::IdentityTaken { owner, channel: Channel::Whatsapp } if owner == anna.id
    );
    assert_eq!(list_all(&store).await, before);
    assert_eq!(owner_of(&store, &key_of(&fresh)).await, None);
    assert_eq!(
        store.find_by_external_ref(T, "crm-new").await.unwrap(),
        None
    );
    assert_eq!(get(&store, anna.id).await, anna);

    // A contact listing one identity twice gets it once.
    let twice = create(
        &store,
        named("Twice"),
        vec![fresh.clone(), email("NEW@example.com")],
    )
    .await;
    assert_eq!(identity_keys(&twice), address_keys(&[fresh]));
}

pub async fn concurrent_creates_with_one_identity_have_one_owner(store: S) {
    let shared = email("shared@example.com");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let identities = vec![shared.clone(), email(&format!("own{i}@example.com"))];
            tokio::spawn(async move {
                let profile = named(&format!("racer {i}"));
                let contact = NewContact {
                    profile,
                    identities,
                };
                store.create_contact(T, contact).await
            })
        })
        .collect();
    let winner = the_one_winner(tasks, |winner, error| match error {
        StoreError::IdentityTaken { owner, channel } => {
            assert_eq!((*owner, *channel), (winner.id, Channel::Email));
        }
        e => panic!("a losing create must report the owner, got {e:?}"),
    })
    .await
    .id;
    assert_eq!(ids(&list_all(&store).await), vec![winner]);
    assert_eq!(owner_of(&store, &key_of(&shared)).await, Some(winner));
    assert_eq!(get(&store, winner).await.identities.len(), 2);
}

pub async fn concurrent_creates_with_one_external_ref_have_one_owner(store: S) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let contact = NewContact {
                    profile: Profile {
                        external_ref: Some("crm-race".into()),
                        ..named(&format!("racer {i}"))
                    },
                    identities: vec![email(&format!("own{i}@example.com"))],
                };
                store.create_contact(T, contact).await
            })
        })
        .collect();
    let winner = the_one_winner(tasks, |winner, error| match error {
        StoreError::ExternalRefTaken { owner } => assert_eq!(*owner, winner.id),
        e => panic!("a losing create must report the owner, got {e:?}"),
    })
    .await
    .id;
    assert_eq!(ids(&list_all(&store).await), vec![winner]);
    let found = store.find_by_external_ref(T, "crm-race").await.unwrap();
    assert_eq!(found.map(|c| c.id), Some(winner));
}

pub async fn whatsapp_relink_refreshes_the_wa_id(store: S) {
    let twelve = whatsapp("551187654321");
    let thirteen = whatsapp("5511987654321");
    assert_eq!(twelve.key(), thirteen.key());
    assert_ne!(twelve.wa_id(), thirteen.wa_id());

    let created = create(&store, named("Bruna"), vec![twelve.clone()]).await;
    assert_eq!(
        identity_keys(&created),
        address_keys(std::slice::from_ref(&twelve))
    );

    let relinked = store
        .link_identity(T, created.id, thirteen.clone())
        .await
        .unwrap();
    assert_eq!(relinked.identities.len(), 1, "one person, one identity");
    let identity = &relinked.identities[0];
    assert_eq!(identity.address.key(), "5511987654321");
    assert_eq!(identity.address.wa_id(), Some("5511987654321"));
    assert_eq!(identity.create_time, created.identities[0].create_time);
    assert_eq!(get(&store, created.id).await, relinked);

    // The last written form wins, in either direction.
    let back = store.link_identity(T, created.id, twelve).await.unwrap();
    assert_eq!(back.identities[0].address.wa_id(), Some("551187654321"));
    assert_eq!(get(&store, created.id).await.identities, back.identities);

    // A relink without a reported form keeps the last one.
    let stored = &back.identities[0].address;
    let bare = Address::from_stored(
        Channel::Whatsapp,
        stored.value().to_owned(),
        stored.key().to_owned(),
        None,
    );
    let kept = store.link_identity(T, created.id, bare).await.unwrap();
    assert_eq!(kept.identities[0].address.wa_id(), Some("551187654321"));

    let other = create(&store, named("Other"), Vec::new()).await;
    assert_err!(
        store.link_identity(T, other.id, thirteen).await,
        StoreError::IdentityTaken { owner, .. } if owner == created.id
    );
}

pub async fn find_by_keys_matches_every_spelling(store: S) {
    let anna = create(
        &store,
        named("Anna"),
        vec![whatsapp("4915123456789"), email("Anna.Schmidt@Example.com")],
    )
    .await;

    for input in ["0151 23456789", "+49 151 23456789", "0049-151-234-567-89"] {
        let found = store.find_by_keys(T, &keys(input)).await.unwrap();
        assert_eq!(found.as_ref(), Some(&anna), "{input}");
    }
    for input in ["anna.schmidt@example.com", "ANNA.SCHMIDT@EXAMPLE.COM"] {
        assert_eq!(
            owner_of(&store, &keys(input)).await,
            Some(anna.id),
            "{input}"
        );
    }
    assert_eq!(owner_of(&store, &keys("0151 23456788")).await, None);
    assert_eq!(owner_of(&store, &keys("anna@example.com")).await, None);

    // Keys are tried in order: the first one that has an owner decides.
    let ben = create(&store, named("Ben"), vec![voice("+49 151 23456789")]).await;
    let phone = keys("0151 23456789");
    assert_eq!(phone[0].0, Channel::Voice);
    assert_eq!(owner_of(&store, &phone).await, Some(ben.id));
    let reversed: Vec<_> = phone.iter().rev().cloned().collect();
    assert_eq!(owner_of(&store, &reversed).await, Some(anna.id));
}

pub async fn unlink_removes_only_linked_identities(store: S) {
    let wa = whatsapp("4915123456789");
    let anna = create(
        &store,
        named("Anna"),
        vec![email("anna@example.com"), wa.clone()],
    )
    .await;
    let ben = create(&store, named("Ben"), vec![email("ben@example.com")]).await;

    let unlinked = store
        .unlink_identity(T, anna.id, email("Anna@Example.com"))
        .await
        .unwrap();
    assert_eq!(
        identity_keys(&unlinked),
        address_keys(std::slice::from_ref(&wa))
    );
    assert!(unlinked.update_time >= anna.update_time);
    assert_eq!(get(&store, anna.id).await, unlinked);
    assert_eq!(owner_of(&store, &keys("anna@example.com")).await, None);

    assert_err!(
        store.unlink_identity(T, anna.id, email("anna@example.com")).await,
        StoreError::IdentityNotLinked(id) if id == anna.id
    );
    assert_err!(
        store.unlink_identity(T, anna.id, email("ben@example.com")).await,
        StoreError::IdentityNotLinked(id) if id == anna.id
    );
    // The same number on another channel is not linked either.
    assert_err!(
        store
            .unlink_identity(T, anna.id, voice("+4915123456789"))
            .await,
        StoreError::IdentityNotLinked(_)
    );
    assert_eq!(get(&store, ben.id).await, ben);
    assert_eq!(get(&store, anna.id).await, unlinked);

    // An unlinked identity is free again.
    let moved = store
        .link_identity(T, ben.id, email("anna@example.com"))
        .await
        .unwrap();
    assert_eq!(moved.identities.len(), 2);
    assert_eq!(
        owner_of(&store, &keys("anna@example.com")).await,
        Some(ben.id)
    );
}
