//! Merges and erasure, and the backend-specific checks of what survives a
//! restart.

use omniroute_channel::{Category, Channel};
use omniroute_domain::{
    ChannelPreferences, ConsentAction, ContactState, ErasureSummary, Preferences, PreferencesPatch,
    Profile, ProfilePatch, QuietHours, now,
};
use omniroute_store::prelude::*;
use omniroute_store::testing::{fresh_pg_url, fresh_sqlite_store, pg_config};
use omniroute_store::{PgStore, SqliteStore, StoreError};
use uuid::Uuid;

use crate::support::*;

fn channel_preferences(order: &[Channel]) -> ChannelPreferences {
    ChannelPreferences {
        channel_order: order.to_vec(),
        categories: Vec::new(),
        quiet_hours: Some(QuietHours {
            start_minute: 22 * 60,
            end_minute: 7 * 60,
        }),
    }
}

async fn set_preferences(store: &S, id: Uuid, prefs: &ChannelPreferences) -> Preferences {
    let patch = PreferencesPatch {
        channel_order: Some(prefs.channel_order.clone()),
        categories: Some(prefs.categories.clone()),
        quiet_hours: Some(prefs.quiet_hours),
        ..PreferencesPatch::default()
    };
    store.update_preferences(T, id, patch).await.unwrap()
}

pub async fn merge_moves_identities_consents_and_profile(store: S) {
    let survivor = create(
        &store,
        Profile {
            labels: strings(&["vip"]),
            attributes: attributes(&[("tier", "gold")]),
            ..named("Anna")
        },
        vec![email("anna@example.com")],
    )
    .await;
    let source = create(
        &store,
        Profile {
            display_name: "Anna S.".into(),
            locale: "de-DE".into(),
            time_zone: "Europe/Berlin".into(),
            external_ref: None,
            labels: strings(&["b2b", "vip"]),
            attributes: attributes(&[("tier", "silver"), ("city", "Köln")]),
        },
        vec![whatsapp("4915123456789")],
    )
    .await;
    let kept = append_grant(&store, survivor.id, Channel::Email, Category::Marketing).await;
    let moved = append_grant(&store, source.id, Channel::Whatsapp, Category::Service).await;
    let source_prefs = channel_preferences(&[Channel::Whatsapp, Channel::Email]);
    set_preferences(&store, source.id, &source_prefs).await;

    let merged = store
        .merge_contacts(T, survivor.id, &[source.id])
        .await
        .unwrap();
    assert_eq!(merged.id, survivor.id);
    assert_eq!(merged.state, ContactState::Active);
    let expected = Profile {
        display_name: "Anna".into(),
        locale: "de-DE".into(),
        time_zone: "Europe/Berlin".into(),
        external_ref: None,
        labels: strings(&["vip", "b2b"]),
        attributes: attributes(&[("tier", "gold"), ("city", "Köln")]),
    };
    assert_eq!(
        merged.profile, expected,
        "the survivor wins; empty fields are filled"
    );
    let all = [email("anna@example.com"), whatsapp("4915123456789")];
    assert_eq!(identity_keys(&merged), address_keys(&all));
    assert_eq!(merged.merged_from, vec![source.id]);
    assert_eq!(merged.create_time, survivor.create_time);

    assert_eq!(get(&store, survivor.id).await, merged);
    assert_eq!(
        get(&store, source.id).await,
        merged,
        "the source id resolves"
    );
    assert_eq!(
        owner_of(&store, &keys("0151 23456789")).await,
        Some(survivor.id)
    );
    assert_eq!(ids(&list_all(&store).await), vec![survivor.id]);

    let ledger = store.list_consents(T, source.id, None, 10).await.unwrap();
    let mut moved = moved;
    moved.contact_id = survivor.id;
    assert_eq!(ledger, vec![kept, moved]);
    let prefs = store.get_preferences(T, source.id).await.unwrap();
    assert_eq!(prefs.contact_id, survivor.id);
    assert_eq!(prefs.channels, source_prefs, "taken from the source");
    assert_eq!(prefs.consents.len(), 2);
    assert_eq!(
        (prefs.time_zone.as_str(), prefs.locale.as_str()),
        ("Europe/Berlin", "de-DE")
    );

    // Writes through the retired id reach the survivor.
    let patch = ProfilePatch {
        display_name: Some("Anna Schmidt".into()),
        ..ProfilePatch::default()
    };
    let updated = store.update_contact(T, source.id, patch).await.unwrap();
    assert_eq!(updated.id, survivor.id);
    assert_eq!(
        get(&store, survivor.id).await.profile.display_name,
        "Anna Schmidt"
    );
}

pub async fn merge_keeps_the_survivors_preferences(store: S) {
    let survivor = create(&store, named("a"), Vec::new()).await;
    let source = create(&store, named("b"), Vec::new()).await;
    let survivor_prefs = channel_preferences(&[Channel::Email]);
    set_preferences(&store, survivor.id, &survivor_prefs).await;
    set_preferences(&store, source.id, &channel_preferences(&[Channel::Voice])).await;

    store
        .merge_contacts(T, survivor.id, &[source.id])
        .await
        .unwrap();
    let prefs = store.get_preferences(T, survivor.id).await.unwrap();
    assert_eq!(prefs.channels, survivor_prefs);
}

pub async fn merge_chains_resolve_to_the_last_survivor(store: S) {
    let a = create(&store, named("a"), vec![email("a@example.com")]).await;
    let b = create(&store, named("b"), vec![email("b@example.com")]).await;
    let c = create(&store, named("c"), vec![email("c@example.com")]).await;
    let d = create(&store, named("d"), vec![email("d@example.com")]).await;
    let e = create(&store, named("e"), vec![email("e@example.com")]).await;

    store.merge_contacts(T, b.id, &[a.id]).await.unwrap();
    let merged = store.merge_contacts(T, c.id, &[b.id]).await.unwrap();
    assert_eq!(merged.id, c.id);
    assert_eq!(merged.merged_from, vec![a.id, b.id]);
    assert_eq!(identity_keys(&merged).len(), 3);
    for id in [a.id, b.id, c.id] {
        assert_eq!(get(&store, id).await, merged, "{id} resolves to c");
    }
    assert_eq!(owner_of(&store, &keys("a@example.com")).await, Some(c.id));

    // A retired id works as survivor and as source; sources already merged
    // into the survivor are skipped.
    let again = store
        .merge_contacts(T, a.id, &[b.id, d.id, e.id, d.id])
        .await
        .unwrap();
    assert_eq!(again.id, c.id);
    assert_eq!(again.merged_from, vec![a.id, b.id, d.id, e.id]);
    assert_eq!(identity_keys(&again).len(), 5);
    assert_eq!(get(&store, e.id).await, again);
    let linked = store
        .link_identity(T, b.id, email("f@example.com"))
        .await
        .unwrap();
    assert_eq!(linked.id, c.id);
    assert_eq!(ids(&list_all(&store).await), vec![c.id]);
}

pub async fn merge_refuses_itself_and_erased_contacts(store: S) {
    let a = create(&store, named("a"), vec![email("a@example.com")]).await;
    let b = create(&store, named("b"), vec![email("b@example.com")]).await;
    let erased = create(&store, named("gone"), Vec::new()).await;
    store.erase_contact(T, erased.id).await.unwrap();

    assert_err!(
        store.merge_contacts(T, a.id, &[a.id]).await,
        StoreError::InvalidMerge(_)
    );
    assert_err!(
        store.merge_contacts(T, a.id, &[erased.id]).await,
        StoreError::InvalidMerge(_)
    );
    // All or nothing: the valid source of a refused merge stays as it was.
    assert_err!(
        store.merge_contacts(T, a.id, &[b.id, erased.id]).await,
        StoreError::InvalidMerge(_)
    );
    assert_err!(
        store.merge_contacts(T, erased.id, &[b.id]).await,
        StoreError::Erased(id) if id == erased.id
    );
    assert_eq!(get(&store, a.id).await, a);
    assert_eq!(get(&store, b.id).await, b);
    assert_eq!(ids(&list_all(&store).await), vec![a.id, b.id]);
}

pub async fn merge_moves_the_external_ref_when_the_survivor_has_none(store: S) {
    let with_ref = |name: &str, external_ref: Option<&str>| Profile {
        external_ref: external_ref.map(str::to_owned),
        ..named(name)
    };
    let survivor = create(&store, with_ref("a", None), Vec::new()).await;
    let source = create(&store, with_ref("b", Some("crm-9")), Vec::new()).await;
    let merged = store
        .merge_contacts(T, survivor.id, &[source.id])
        .await
        .unwrap();
    assert_eq!(merged.profile.external_ref.as_deref(), Some("crm-9"));
    let found = store.find_by_external_ref(T, "crm-9").await.unwrap();
    assert_eq!(found, Some(merged));

    // A survivor with its own reference keeps it; the retired contact's is
    // never found on the retired row.
    let keeper = create(&store, with_ref("c", Some("crm-1")), Vec::new()).await;
    let other = create(&store, with_ref("d", Some("crm-2")), Vec::new()).await;
    let merged = store
        .merge_contacts(T, keeper.id, &[other.id])
        .await
        .unwrap();
    assert_eq!(merged.profile.external_ref.as_deref(), Some("crm-1"));
    let found = store.find_by_external_ref(T, "crm-1").await.unwrap();
    assert_eq!(found.map(|c| c.id), Some(keeper.id));
    let found = store.find_by_external_ref(T, "crm-2").await.unwrap();
    assert!(
        found.as_ref().is_none_or(|c| c.id == keeper.id),
        "{found:?}"
    );
}

pub async fn erase_removes_personal_data(store: S) {
    let profile = full_profile();
    let identities = vec![email("anna@example.com"), whatsapp("4915123456789")];
    let anna = create(&store, profile.clone(), identities.clone()).await;
    for action in [
        ConsentAction::Grant,
        ConsentAction::Revoke,
        ConsentAction::Grant,
    ] {
        let record = consent(Channel::Email, Category::Marketing, action, None);
        store.record_consent(T, anna.id, record).await.unwrap();
    }
    set_preferences(&store, anna.id, &channel_preferences(&[Channel::Email])).await;
    let before = now();

    let erased = store.erase_contact(T, anna.id).await.unwrap();
    assert_eq!(erased.id, anna.id);
    assert_eq!(erased.state, ContactState::Erased);
    assert_eq!(erased.profile, Profile::default());
    assert!(erased.identities.is_empty());
    assert_eq!(erased.create_time, anna.create_time);
    let (erase_time, summary) = erased.erasure.expect("erasure details");
    assert!(erase_time >= before);
    assert_eq!(erased.update_time, erase_time);
    let expected = ErasureSummary {
        identities_removed: 2,
        consent_records_removed: 3,
        messages_redacted: 0,
    };
    assert_eq!(summary, expected);
    assert_eq!(get(&store, anna.id).await, erased);

    assert!(
        store
            .list_consents(T, anna.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let prefs = store.get_preferences(T, anna.id).await.unwrap();
    assert_eq!(prefs.channels, ChannelPreferences::default());
    assert!(prefs.consents.is_empty());
    assert_eq!(prefs.update_time, None);
    assert_eq!((prefs.time_zone.as_str(), prefs.locale.as_str()), ("", ""));
    assert_eq!(owner_of(&store, &keys("anna@example.com")).await, None);
    assert_eq!(owner_of(&store, &keys("0151 23456789")).await, None);
    assert_eq!(store.find_by_external_ref(T, "crm-1").await.unwrap(), None);

    // The identities and the reference are free for a new contact.
    let again = create(&store, profile, identities).await;
    assert_ne!(again.id, anna.id);
    assert_eq!(
        owner_of(&store, &keys("0151 23456789")).await,
        Some(again.id)
    );
    assert_eq!(get(&store, anna.id).await, erased, "the tombstone stays");
}

pub async fn erase_is_idempotent_and_freezes_the_contact(store: S) {
    let anna = create(&store, named("Anna"), vec![email("anna@example.com")]).await;
    let other = create(&store, named("other"), Vec::new()).await;
    let erased = store.erase_contact(T, anna.id).await.unwrap();
    assert_eq!(store.erase_contact(T, anna.id).await.unwrap(), erased);

    let is_anna = |id: uuid::Uuid| id == anna.id;
    assert_err!(
        store.update_contact(T, anna.id, ProfilePatch::default()).await,
        StoreError::Erased(id) if is_anna(id)
    );
    assert_err!(
        store.link_identity(T, anna.id, email("anna@example.com")).await,
        StoreError::Erased(id) if is_anna(id)
    );
    assert_err!(
        store.unlink_identity(T, anna.id, email("anna@example.com")).await,
        StoreError::Erased(id) if is_anna(id)
    );
    assert_err!(
        store.update_preferences(T, anna.id, PreferencesPatch::default()).await,
        StoreError::Erased(id) if is_anna(id)
    );
    let grant = consent(
        Channel::Email,
        Category::Marketing,
        ConsentAction::Grant,
        None,
    );
    assert_err!(
        store.record_consent(T, anna.id, grant).await,
        StoreError::Erased(id) if is_anna(id)
    );
    assert_eq!(get(&store, anna.id).await, erased);
    let export = store.export_contact(T, anna.id).await.unwrap();
    assert_eq!(export.contact, erased);
    assert!(export.consent_records.is_empty());
    assert_eq!(get(&store, other.id).await, other);
}

pub async fn merged_id_of_an_erased_survivor_resolves_to_the_tombstone(store: S) {
    let source = create(&store, named("a"), vec![email("a@example.com")]).await;
    let survivor = create(&store, named("b"), vec![email("b@example.com")]).await;
    store
        .merge_contacts(T, survivor.id, &[source.id])
        .await
        .unwrap();

    // Erasing through the retired id erases the survivor.
    let tombstone = store.erase_contact(T, source.id).await.unwrap();
    assert_eq!(tombstone.id, survivor.id);
    assert_eq!(tombstone.state, ContactState::Erased);
    assert_eq!(tombstone.erasure.unwrap().1.identities_removed, 2);
    assert_eq!(get(&store, source.id).await, tombstone);
    assert_eq!(get(&store, survivor.id).await, tombstone);
    assert_eq!(store.erase_contact(T, source.id).await.unwrap(), tombstone);
    assert_err!(
        store.update_contact(T, source.id, ProfilePatch::default()).await,
        StoreError::Erased(id) if id == survivor.id
    );
    let prefs = store.get_preferences(T, source.id).await.unwrap();
    assert_eq!(prefs.contact_id, survivor.id);
}

/// SQLite only: a committed contact is in the file after the store is closed.
pub async fn store_file_survives_reopen() {
    let (store, _dir) = fresh_sqlite_store().await;
    let path = store.path().to_owned();
    let store: S = std::sync::Arc::new(store);
    let anna = create(&store, named("Anna"), vec![email("anna@example.com")]).await;
    append_grant(&store, anna.id, Channel::Email, Category::Marketing).await;
    set_preferences(&store, anna.id, &channel_preferences(&[Channel::Email])).await;
    let before = store.export_contact(T, anna.id).await.unwrap();
    drop(store);

    let reopened = SqliteStore::open(&path).await.unwrap();
    assert_eq!(reopened.export_contact(T, anna.id).await.unwrap(), before);
    let found = reopened
        .find_by_keys(T, &keys("anna@example.com"))
        .await
        .unwrap();
    assert_eq!(found.map(|c| c.id), Some(anna.id));
}

/// PostgreSQL only: replicas starting together migrate once, and a later
/// start finds the schema and the data in place.
pub async fn migrations_are_idempotent() {
    let url = fresh_pg_url().await;
    let config = pg_config(url.clone());
    let (first, second) = tokio::join!(PgStore::connect(&config), PgStore::connect(&config));
    let (first, second) = (first.unwrap(), second.unwrap());
    let first: S = std::sync::Arc::new(first);
    let anna = create(&first, named("Anna"), vec![email("anna@example.com")]).await;
    assert_eq!(second.get_contact(T, anna.id).await.unwrap(), anna);

    let third = PgStore::connect(&config).await.unwrap();
    assert_eq!(third.get_contact(T, anna.id).await.unwrap(), anna);

    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<i32> = (1..=versions.len() as i32).collect();
    assert!(!versions.is_empty());
    assert_eq!(versions, expected, "each migration applied exactly once");
}

/// SQLite only: erasure reaches the bytes of the store's files. After
/// DeleteContact, neither the database file nor its WAL holds the name,
/// the addresses, the consent evidence, what the customer wrote or what
/// the provider reported of a call (`secure_delete` zeroes deleted
/// content; the WAL is emptied into the database file).
pub async fn erasure_leaves_no_personal_bytes_in_the_store_files() {
    let (store, dir) = fresh_sqlite_store().await;
    let path = store.path().to_owned();
    let store: S = std::sync::Arc::new(store);
    let marks = [
        "Zacharias Quellenhof",
        "zq7731@example.com",
        "4915177312345",
        "Quellenhof-evidence",
        "my locker code is 7731",
        "passport-scan-bytes-7731",
        "answered-by-zq7731",
    ];
    let zach = create(
        &store,
        named(marks[0]),
        vec![email(marks[1]), whatsapp("+49 151 77312345")],
    )
    .await;
    let mut grant = consent(
        Channel::Email,
        Category::Marketing,
        ConsentAction::Grant,
        None,
    );
    grant.evidence = marks[3].into();
    store.record_consent(T, zach.id, grant).await.unwrap();
    let received = store
        .record_inbound(
            T,
            omniroute_domain::NewInbound {
                channel: Channel::Whatsapp,
                from: whatsapp("+49 151 77312345"),
                profile_name: Some(marks[0].into()),
                provider_user_id: None,
                provider_message_id: "wamid.shred.1".into(),
                time: std::time::SystemTime::now(),
                content: omniroute_channel::Content::Text(omniroute_channel::content::Text {
                    body: marks[4].into(),
                    ..Default::default()
                }),
                reply_to: None,
                line: "main".into(),
                opens_window: None,
                also_opens: None,
                automatic: false,
                media_bytes: None,
            },
        )
        .await
        .unwrap();
    assert!(matches!(received, omniroute_domain::Received::New(_)));
    // An attachment whose bytes the store keeps.
    let attachment = omniroute_domain::NewInbound {
        channel: Channel::Email,
        from: email(marks[1]),
        provider_message_id: "shred-2@example.com#1".into(),
        content: omniroute_channel::Content::Media(omniroute_channel::content::Media {
            kind: omniroute_channel::content::MediaKind::Document,
            url: String::new(),
            media_id: "shred-2@example.com#1".into(),
            caption: String::new(),
            filename: "passport.pdf".into(),
            mime_type: "application/pdf".into(),
            sha256: String::new(),
        }),
        media_bytes: Some(marks[5].as_bytes().to_vec()),
        profile_name: None,
        provider_user_id: None,
        time: std::time::SystemTime::now(),
        reply_to: None,
        line: "support@acme.example".into(),
        opens_window: None,
        also_opens: None,
        automatic: false,
    };
    store.record_inbound(T, attachment).await.unwrap();
    // A callback, with what the provider reported of its call.
    let call = crate::callbacks::callback(zach.id, None);
    crate::callbacks::send_callback(&store, call, "call-shred-1").await;
    assert!(
        store
            .record_call_progress(Channel::Voice, "call-shred-1", Some(marks[6]), Some(30))
            .await
            .unwrap()
    );
    // Someone else's data stays.
    create(&store, named("Ben Keeps"), vec![email("ben@example.com")]).await;

    let contains = |needle: &str| -> Vec<String> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&*path.file_name().unwrap().to_string_lossy())
            })
            .filter(|e| {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    for mark in [marks[0], marks[5], marks[6]] {
        assert!(
            !contains(mark).is_empty(),
            "{mark:?} is in the files before the erasure (the check can fail)"
        );
    }

    store.erase_contact(T, zach.id).await.unwrap();
    for mark in marks {
        let found = contains(mark);
        assert!(
            found.is_empty(),
            "{mark:?} is still in {found:?} after the erasure"
        );
    }
    assert!(!contains("Ben Keeps").is_empty(), "other contacts are kept");
}
