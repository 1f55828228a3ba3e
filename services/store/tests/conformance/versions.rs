//! Contact versions: every change to a contact, its identities, preferences
//! or consent records moves its version, and a send routed on an older
//! version is refused (routed again by the caller) without writing anything.

use std::time::{Duration, SystemTime};

use omniroute_channel::content::Text;
use omniroute_channel::{Category, Channel, Content};
use omniroute_domain::{
    Accepted, ConsentAction, ContactLookup, EventFilter, NewInbound, NewMessage, PreferencesPatch,
    ProfilePatch,
};
use omniroute_store::StoreError;

use crate::messaging::{LONG, claim, current, outbound, wait_events};
use crate::support::*;

/// Asserts that `change` moved the contact's version past `before`, and
/// returns the new version.
async fn moved(store: &S, id: uuid::Uuid, before: i64, change: &str) -> i64 {
    let now = get(store, id).await.version;
    assert!(
        now > before,
        "{change} must move the version ({before} → {now})"
    );
    now
}

pub async fn every_change_to_a_contact_moves_its_version(store: S) {
    let anna = create(&store, named("Anna"), vec![email("anna@example.com")]).await;
    let v = anna.version;
    // A send to a new address is routed on the contact it creates, at the
    // version the creation answered.
    assert_eq!(get(&store, anna.id).await.version, v, "created at {v}");

    let patch = ProfilePatch {
        display_name: Some("Anna Meyer".into()),
        ..ProfilePatch::default()
    };
    store.update_contact(T, anna.id, patch).await.unwrap();
    let v = moved(&store, anna.id, v, "a profile update").await;

    store
        .link_identity(T, anna.id, whatsapp("4915123456789"))
        .await
        .unwrap();
    let v = moved(&store, anna.id, v, "linking an identity").await;

    store
        .unlink_identity(T, anna.id, email("anna@example.com"))
        .await
        .unwrap();
    let v = moved(&store, anna.id, v, "unlinking an identity").await;

    let prefs = PreferencesPatch {
        channel_order: Some(vec![Channel::Email]),
        ..PreferencesPatch::default()
    };
    store.update_preferences(T, anna.id, prefs).await.unwrap();
    let v = moved(&store, anna.id, v, "a preference change").await;

    let revoke = consent(
        Channel::Whatsapp,
        Category::Marketing,
        ConsentAction::Revoke,
        None,
    );
    store.record_consent(T, anna.id, revoke).await.unwrap();
    let v = moved(&store, anna.id, v, "a consent record").await;

    let inbound = NewInbound {
        channel: Channel::Whatsapp,
        from: whatsapp("4915123456789"),
        profile_name: Some("Anna".into()),
        provider_user_id: None,
        provider_message_id: "wamid.in-1".into(),
        time: SystemTime::now(),
        content: Content::Text(Text {
            body: "Hallo".into(),
            ..Text::default()
        }),
        reply_to: None,
        line: "106540352242922".into(),
        opens_window: Some(Duration::from_secs(24 * 3600)),
        also_opens: None,
        automatic: false,
        media_bytes: None,
    };
    store.record_inbound(T, inbound).await.unwrap();
    let v = moved(&store, anna.id, v, "a customer's message (the window)").await;

    let bert = create(&store, named("Bert"), vec![email("bert@example.com")]).await;
    store.merge_contacts(T, anna.id, &[bert.id]).await.unwrap();
    let v = moved(&store, anna.id, v, "a merge into the contact").await;
    moved(&store, bert.id, bert.version, "being merged away").await;

    store.erase_contact(T, anna.id).await.unwrap();
    moved(&store, anna.id, v, "an erasure").await;
}

pub async fn a_send_routed_on_an_old_version_writes_nothing(store: S) {
    let anna = create(&store, named("Anna"), vec![email("anna@example.com")]).await;
    let routed = current(&store, T, outbound(anna.id)).await;
    // The customer changes her preferences after the route was decided.
    let prefs = PreferencesPatch {
        channel_order: Some(vec![Channel::Email]),
        ..PreferencesPatch::default()
    };
    store.update_preferences(T, anna.id, prefs).await.unwrap();

    assert_err!(
        store.accept_message(T, routed.clone()).await,
        StoreError::ContactChanged(id) if id == anna.id
    );
    assert!(
        store
            .list_messages(T, anna.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(claim(&store, LONG).await.is_empty(), "no job was queued");
    let accepted = wait_events(
        &store,
        T,
        store.event_origin(),
        &EventFilter {
            types: vec![omniroute_domain::EventType::MessageAccepted],
            contact_id: None,
        },
        0,
    )
    .await;
    assert!(accepted.is_empty(), "no event was logged");

    // Routed again on the current version, it goes.
    let again = current(&store, T, routed).await;
    assert!(matches!(
        store.accept_message(T, again).await,
        Ok(Accepted::New(_))
    ));
}

pub async fn sends_to_merged_or_erased_contacts_are_refused(store: S) {
    let anna = create(&store, named("Anna"), vec![email("anna@example.com")]).await;
    let bert = create(&store, named("Bert"), vec![email("bert@example.com")]).await;
    let to_bert = current(&store, T, outbound(bert.id)).await;
    store.merge_contacts(T, anna.id, &[bert.id]).await.unwrap();
    // Routed before the merge: the caller must resolve Bert again (to Anna).
    assert_err!(
        store.accept_message(T, to_bert).await,
        StoreError::ContactChanged(id) if id == bert.id
    );
    let erased = store.erase_contact(T, anna.id).await.unwrap();
    let to_erased = NewMessage {
        contact_version: erased.version,
        ..outbound(anna.id)
    };
    assert_err!(
        store.accept_message(T, to_erased).await,
        StoreError::Erased(id) if id == anna.id
    );
    assert!(claim(&store, LONG).await.is_empty());
}

pub async fn routing_contacts_are_read_by_every_kind_of_lookup(store: S) {
    let anna = store
        .create_contact(
            T,
            omniroute_domain::NewContact {
                profile: omniroute_domain::Profile {
                    display_name: "Anna".into(),
                    external_ref: Some("crm-1".into()),
                    ..omniroute_domain::Profile::default()
                },
                identities: vec![email("anna@example.com"), whatsapp("4915123456789")],
            },
        )
        .await
        .unwrap();
    let bert = create(&store, named("Bert"), vec![email("bert@example.com")]).await;
    store.merge_contacts(T, anna.id, &[bert.id]).await.unwrap();
    let prefs = PreferencesPatch {
        channel_order: Some(vec![Channel::Email, Channel::Whatsapp]),
        ..PreferencesPatch::default()
    };
    store.update_preferences(T, anna.id, prefs).await.unwrap();
    let grant = consent(
        Channel::Email,
        Category::Marketing,
        ConsentAction::Grant,
        None,
    );
    store.record_consent(T, anna.id, grant).await.unwrap();
    let now = get(&store, anna.id).await;

    let lookups = [
        ContactLookup::Id(anna.id),
        ContactLookup::Id(bert.id),
        ContactLookup::ExternalRef("crm-1".into()),
        ContactLookup::Identity(Channel::Whatsapp, "4915123456789".into()),
        ContactLookup::Identity(Channel::Email, "bert@example.com".into()),
        ContactLookup::Id(uuid::Uuid::now_v7()),
        ContactLookup::ExternalRef("crm-none".into()),
        ContactLookup::Identity(Channel::Voice, "4915123456789".into()),
    ];
    let found = store.routing_contacts(T, &lookups).await.unwrap();
    assert_eq!(
        found.len(),
        lookups.len(),
        "one answer per lookup, in order"
    );
    for (lookup, found) in lookups.iter().zip(&found).take(5) {
        let found = found
            .as_ref()
            .unwrap_or_else(|| panic!("{lookup:?} finds Anna"));
        assert_eq!(found.contact, now, "{lookup:?}: the survivor, as stored");
        assert_eq!(
            found.preferences.channels.channel_order,
            vec![Channel::Email, Channel::Whatsapp]
        );
        assert_eq!(found.preferences.consents.len(), 1);
    }
    assert!(found[5..].iter().all(Option::is_none), "{:?}", &found[5..]);
    assert!(
        store
            .routing_contacts("tenant-b", &lookups)
            .await
            .unwrap()
            .iter()
            .all(Option::is_none),
        "tenants never see each other's contacts"
    );
}
