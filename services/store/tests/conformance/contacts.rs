//! Contacts: round trips, tenancy, listing, profile updates and external
//! references.

use std::time::SystemTime;

use omniroute_channel::{Category, Channel};
use omniroute_domain::{
    ConsentAction, ContactQuery, ContactState, NewContact, PreferencesPatch, Profile, ProfilePatch,
    from_micros, now, to_micros,
};
use omniroute_store::StoreError;
use uuid::Uuid;

use crate::support::*;

pub async fn create_and_get_round_trip_every_field(store: S) {
    let profile = Profile {
        display_name: "Anna Schmidt".into(),
        locale: "de-DE".into(),
        time_zone: "Europe/Berlin".into(),
        external_ref: Some("crm-1".into()),
        // Not sorted: the order given is kept.
        labels: strings(&["vip", "b2b", "anniversary"]),
        attributes: attributes(&[("tier", "gold"), ("city", "Köln"), ("empty", "")]),
    };
    let identities = vec![
        email("Anna.Schmidt@Example.COM"),
        whatsapp("+49 151 23456789"),
        voice("030 1234567"),
    ];
    let before = now();
    let created = create(&store, profile.clone(), identities.clone()).await;
    let after = SystemTime::now();

    assert_eq!(created.profile, profile);
    assert_eq!(created.state, ContactState::Active);
    assert!(created.merged_from.is_empty());
    assert_eq!(created.erasure, None);
    assert!(before <= created.create_time && created.create_time <= after);
    assert_eq!(created.update_time, created.create_time);
    assert_eq!(
        from_micros(to_micros(created.create_time)),
        created.create_time
    );
    assert_eq!(identity_keys(&created), address_keys(&identities));
    for identity in &created.identities {
        assert_eq!(identity.create_time, created.create_time);
        let given = identities
            .iter()
            .find(|a| a.channel() == identity.address.channel())
            .unwrap();
        assert_eq!(
            &identity.address, given,
            "the stored address is the one given"
        );
    }
    let stored_email = created
        .identities
        .iter()
        .find(|i| i.address.channel() == Channel::Email)
        .unwrap();
    assert_eq!(stored_email.address.value(), "Anna.Schmidt@example.com");
    assert_eq!(stored_email.address.key(), "anna.schmidt@example.com");

    // What is read back is exactly what create returned, times included.
    assert_eq!(get(&store, created.id).await, created);
    assert_eq!(list_all(&store).await, vec![created]);
}

pub async fn empty_profile_round_trips(store: S) {
    let created = create(&store, Profile::default(), Vec::new()).await;
    assert_eq!(created.profile, Profile::default());
    assert!(created.identities.is_empty());
    assert_eq!(get(&store, created.id).await, created);
}

pub async fn unknown_ids_are_not_found(store: S) {
    let known = create(&store, named("known"), vec![email("known@example.com")]).await;
    let unknown = Uuid::now_v7();
    let is_unknown = |resource: &str, id: &str| resource == "contacts" && id == unknown.to_string();

    assert_err!(store.get_contact(T, unknown).await, StoreError::NotFound { resource, id } if is_unknown(resource, &id));
    assert_err!(
        store
            .update_contact(T, unknown, ProfilePatch::default())
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .link_identity(T, unknown, email("x@example.com"))
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .unlink_identity(T, unknown, email("x@example.com"))
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.erase_contact(T, unknown).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.get_preferences(T, unknown).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .update_preferences(T, unknown, PreferencesPatch::default())
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .record_consent(
                T,
                unknown,
                consent(
                    Channel::Email,
                    Category::Marketing,
                    ConsentAction::Grant,
                    None
                )
            )
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.list_consents(T, unknown, None, 10).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.export_contact(T, unknown).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.merge_contacts(T, unknown, &[known.id]).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.merge_contacts(T, known.id, &[unknown]).await,
        StoreError::NotFound { .. }
    );
    assert_eq!(
        owner_of(&store, &key_of(&email("x@example.com"))).await,
        None
    );
    assert_eq!(owner_of(&store, &[]).await, None);
    assert_eq!(store.find_by_external_ref(T, "nobody").await.unwrap(), None);
    // Nothing above touched the known contact.
    assert_eq!(get(&store, known.id).await, known);
}

pub async fn tenants_are_isolated(store: S) {
    let address = email("anna@example.com");
    let profile = Profile {
        external_ref: Some("crm-1".into()),
        ..named("Anna")
    };
    let new = || NewContact {
        profile: profile.clone(),
        identities: vec![address.clone()],
    };
    let a = store.create_contact("a", new()).await.unwrap();

    assert_err!(
        store.get_contact("b", a.id).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store
            .update_contact("b", a.id, ProfilePatch::default())
            .await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.link_identity("b", a.id, email("b@example.com")).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.erase_contact("b", a.id).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.get_preferences("b", a.id).await,
        StoreError::NotFound { .. }
    );
    assert_err!(
        store.export_contact("b", a.id).await,
        StoreError::NotFound { .. }
    );
    let everything = ContactQuery {
        limit: 100,
        show_erased: true,
        ..ContactQuery::default()
    };
    assert!(
        store
            .list_contacts("b", everything.clone())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.find_by_keys("b", &key_of(&address)).await.unwrap(),
        None
    );
    assert_eq!(
        store.find_by_external_ref("b", "crm-1").await.unwrap(),
        None
    );

    // The same identity and external reference are free in another tenant.
    let b = store.create_contact("b", new()).await.unwrap();
    assert_ne!(a.id, b.id);
    let found_a = store.find_by_keys("a", &key_of(&address)).await.unwrap();
    let found_b = store.find_by_keys("b", &key_of(&address)).await.unwrap();
    assert_eq!(found_a.map(|c| c.id), Some(a.id));
    assert_eq!(found_b.map(|c| c.id), Some(b.id));
    let by_ref = store.find_by_external_ref("b", "crm-1").await.unwrap();
    assert_eq!(by_ref.map(|c| c.id), Some(b.id));
    assert_err!(
        store.merge_contacts("a", a.id, &[b.id]).await,
        StoreError::NotFound { .. }
    );
    assert_eq!(
        ids(&store.list_contacts("a", everything).await.unwrap()),
        vec![a.id]
    );
    // Erasing in one tenant leaves the other alone.
    store.erase_contact("a", a.id).await.unwrap();
    assert_eq!(store.get_contact("b", b.id).await.unwrap(), b);
}

pub async fn list_in_creation_order_and_page_each_contact_once(store: S) {
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(create(&store, named(&format!("c{i}")), Vec::new()).await.id);
    }
    assert_eq!(ids(&list_all(&store).await), created);
    assert_eq!(
        ids(&store.list_contacts(T, page(None, 2)).await.unwrap()),
        created[..2]
    );

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let batch = store.list_contacts(T, page(after, 3)).await.unwrap();
        assert!(batch.len() <= 3, "a page holds at most `limit` contacts");
        let Some(last) = batch.last() else { break };
        after = Some(last.id);
        seen.extend(ids(&batch));
        pages += 1;
        assert!(pages <= 3, "paging does not end");
    }
    assert_eq!(
        seen, created,
        "every contact exactly once, in creation order"
    );
    let tail = store
        .list_contacts(T, page(Some(created[5]), 10))
        .await
        .unwrap();
    assert_eq!(ids(&tail), created[6..]);
}

pub async fn list_filters_by_label(store: S) {
    let labelled = |name: &str, labels: &[&str]| Profile {
        labels: strings(labels),
        ..named(name)
    };
    let a = create(&store, labelled("a", &["vip", "b2b"]), Vec::new()).await;
    let b = create(&store, labelled("b", &["b2b"]), Vec::new()).await;
    create(&store, labelled("c", &[]), Vec::new()).await;
    let d = create(&store, labelled("d", &["VIP", "vip-candidate"]), Vec::new()).await;
    let labelled_with = |label: &str| ContactQuery {
        label: Some(label.to_owned()),
        limit: 100,
        ..ContactQuery::default()
    };
    let list = |query| {
        let store = store.clone();
        async move { ids(&store.list_contacts(T, query).await.unwrap()) }
    };
    assert_eq!(list(labelled_with("vip")).await, vec![a.id]);
    assert_eq!(list(labelled_with("b2b")).await, vec![a.id, b.id]);
    assert_eq!(list(labelled_with("VIP")).await, vec![d.id]);
    assert!(list(labelled_with("vi")).await.is_empty());
    assert!(list(labelled_with("nobody")).await.is_empty());
    // The filter and paging combine.
    let second = ContactQuery {
        after: Some(a.id),
        ..labelled_with("b2b")
    };
    assert_eq!(list(second).await, vec![b.id]);
}

pub async fn list_hides_erased_unless_asked_and_never_lists_merged(store: S) {
    let a = create(&store, named("a"), Vec::new()).await;
    let b = create(&store, named("b"), Vec::new()).await;
    let c = create(&store, named("c"), Vec::new()).await;
    let d = create(&store, named("d"), Vec::new()).await;
    store.erase_contact(T, b.id).await.unwrap();
    store.merge_contacts(T, d.id, &[c.id]).await.unwrap();

    assert_eq!(ids(&list_all(&store).await), vec![a.id, d.id]);
    let with_erased = ContactQuery {
        limit: 100,
        show_erased: true,
        ..ContactQuery::default()
    };
    let listed = store.list_contacts(T, with_erased).await.unwrap();
    assert_eq!(ids(&listed), vec![a.id, b.id, d.id]);
    assert_eq!(listed[1].state, ContactState::Erased);
    assert!(listed.iter().all(|c| c.state != ContactState::Merged));
}

pub async fn update_changes_only_the_given_fields(store: S) {
    let profile = full_profile();
    let created = create(&store, profile.clone(), vec![email("anna@example.com")]).await;

    let renamed = store
        .update_contact(
            T,
            created.id,
            ProfilePatch {
                display_name: Some("Anna Schmidt".into()),
                ..ProfilePatch::default()
            },
        )
        .await
        .unwrap();
    let expected = Profile {
        display_name: "Anna Schmidt".into(),
        ..profile.clone()
    };
    assert_eq!(renamed.profile, expected);
    assert_eq!(renamed.identities, created.identities);
    assert_eq!(renamed.create_time, created.create_time);
    assert!(renamed.update_time >= created.update_time);
    assert_eq!(get(&store, created.id).await, renamed);

    let patch = ProfilePatch {
        locale: Some("fr-FR".into()),
        time_zone: Some("Europe/Paris".into()),
        external_ref: Some(None),
        labels: Some(strings(&["b2b", "new"])),
        attributes: Some(attributes(&[("city", "Paris")])),
        ..ProfilePatch::default()
    };
    let patched = store.update_contact(T, created.id, patch).await.unwrap();
    let expected = Profile {
        display_name: "Anna Schmidt".into(),
        locale: "fr-FR".into(),
        time_zone: "Europe/Paris".into(),
        external_ref: None,
        labels: strings(&["b2b", "new"]),
        attributes: attributes(&[("city", "Paris")]),
    };
    assert_eq!(patched.profile, expected);
    assert_eq!(get(&store, created.id).await, patched);
    assert_eq!(store.find_by_external_ref(T, "crm-1").await.unwrap(), None);

    let unchanged = store
        .update_contact(T, created.id, ProfilePatch::default())
        .await
        .unwrap();
    assert_eq!(unchanged.profile, expected);
    let set = ProfilePatch {
        external_ref: Some(Some("crm-2".into())),
        ..ProfilePatch::default()
    };
    let with_ref = store.update_contact(T, created.id, set).await.unwrap();
    assert_eq!(with_ref.profile.external_ref.as_deref(), Some("crm-2"));
    assert_eq!(with_ref.profile.labels, expected.labels);
}

pub async fn external_ref_is_unique_per_tenant(store: S) {
    let with_ref = |name: &str, external_ref: &str| Profile {
        external_ref: Some(external_ref.to_owned()),
        ..named(name)
    };
    let a = create(&store, with_ref("a", "crm-1"), Vec::new()).await;
    let b = create(&store, named("b"), Vec::new()).await;

    let taken = store
        .create_contact(
            T,
            NewContact {
                profile: with_ref("c", "crm-1"),
                identities: vec![email("c@example.com")],
            },
        )
        .await;
    assert_err!(taken, StoreError::ExternalRefTaken { owner } if owner == a.id);
    assert_eq!(ids(&list_all(&store).await), vec![a.id, b.id]);
    assert_eq!(
        owner_of(&store, &key_of(&email("c@example.com"))).await,
        None
    );

    let steal = ProfilePatch {
        display_name: Some("b renamed".into()),
        external_ref: Some(Some("crm-1".into())),
        ..ProfilePatch::default()
    };
    assert_err!(
        store.update_contact(T, b.id, steal).await,
        StoreError::ExternalRefTaken { owner } if owner == a.id
    );
    assert_eq!(
        get(&store, b.id).await,
        b,
        "a refused update changes nothing"
    );

    // Setting a contact's own reference again is no conflict.
    let same = ProfilePatch {
        external_ref: Some(Some("crm-1".into())),
        ..ProfilePatch::default()
    };
    store.update_contact(T, a.id, same).await.unwrap();
    let found = store.find_by_external_ref(T, "crm-1").await.unwrap();
    assert_eq!(found, Some(get(&store, a.id).await));
    assert_eq!(store.find_by_external_ref(T, "crm-2").await.unwrap(), None);
    assert_eq!(store.find_by_external_ref(T, "CRM-1").await.unwrap(), None);

    // Once cleared, the reference is free for another contact.
    let clear = ProfilePatch {
        external_ref: Some(None),
        ..ProfilePatch::default()
    };
    store.update_contact(T, a.id, clear).await.unwrap();
    let take = ProfilePatch {
        external_ref: Some(Some("crm-1".into())),
        ..ProfilePatch::default()
    };
    store.update_contact(T, b.id, take).await.unwrap();
    let found = store.find_by_external_ref(T, "crm-1").await.unwrap();
    assert_eq!(found.map(|c| c.id), Some(b.id));
}
