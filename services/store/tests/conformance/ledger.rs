//! Preferences, the consent ledger and exports.

use std::time::{Duration, SystemTime};

use omniroute_channel::{Category, Channel};
use omniroute_domain::{
    CategoryPreference, ChannelPreferences, ConsentAction, ConsentRecord, ConsentState, LegalBasis,
    NewConsent, OptStatus, PreferencesPatch, Profile, ProfilePatch, QuietHours, from_micros, now,
    to_micros,
};

use crate::support::*;

pub async fn preferences_default_empty_and_patch(store: S) {
    let profile = Profile {
        locale: "de-DE".into(),
        time_zone: "Europe/Berlin".into(),
        ..named("Anna")
    };
    let anna = create(&store, profile, Vec::new()).await;

    let initial = store.get_preferences(T, anna.id).await.unwrap();
    assert_eq!(initial.contact_id, anna.id);
    assert_eq!(initial.channels, ChannelPreferences::default());
    assert!(initial.channels.is_empty());
    assert_eq!(
        (initial.time_zone.as_str(), initial.locale.as_str()),
        ("Europe/Berlin", "de-DE")
    );
    assert!(initial.consents.is_empty());
    assert_eq!(initial.update_time, None);

    let categories = vec![
        CategoryPreference {
            category: Category::Marketing,
            status: Some(OptStatus::OptedOut),
            channels: Vec::new(),
        },
        CategoryPreference {
            category: Category::Transactional,
            status: Some(OptStatus::OptedIn),
            channels: vec![Channel::Whatsapp, Channel::Email],
        },
        CategoryPreference {
            category: Category::Service,
            status: None,
            channels: vec![Channel::Voice],
        },
    ];
    let quiet = QuietHours {
        start_minute: 1320,
        end_minute: 420,
    };
    let before = now();
    let set = store
        .update_preferences(
            T,
            anna.id,
            PreferencesPatch {
                channel_order: Some(vec![Channel::Email, Channel::Whatsapp]),
                categories: Some(categories.clone()),
                quiet_hours: Some(Some(quiet)),
                ..PreferencesPatch::default()
            },
        )
        .await
        .unwrap();
    let expected = ChannelPreferences {
        channel_order: vec![Channel::Email, Channel::Whatsapp],
        categories: categories.clone(),
        quiet_hours: Some(quiet),
    };
    assert_eq!(set.channels, expected);
    let set_time = set.update_time.expect("update_time is set");
    assert!(set_time >= before && set_time <= SystemTime::now());
    assert_eq!(set.time_zone, "Europe/Berlin", "untouched");
    assert_eq!(store.get_preferences(T, anna.id).await.unwrap(), set);

    // Time zone and locale are the contact's, in both directions.
    let localized = store
        .update_preferences(
            T,
            anna.id,
            PreferencesPatch {
                locale: Some("fr-FR".into()),
                ..PreferencesPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(localized.channels, expected);
    assert_eq!(
        (localized.time_zone.as_str(), localized.locale.as_str()),
        ("Europe/Berlin", "fr-FR")
    );
    assert!(localized.update_time >= set.update_time);
    assert_eq!(get(&store, anna.id).await.profile.locale, "fr-FR");
    let moved = ProfilePatch {
        time_zone: Some("America/New_York".into()),
        ..ProfilePatch::default()
    };
    store.update_contact(T, anna.id, moved).await.unwrap();
    let prefs = store.get_preferences(T, anna.id).await.unwrap();
    assert_eq!(prefs.time_zone, "America/New_York");
    assert_eq!(
        prefs.channels, expected,
        "a profile update keeps preferences"
    );
    let zoned = PreferencesPatch {
        time_zone: Some("Asia/Tokyo".into()),
        ..PreferencesPatch::default()
    };
    store.update_preferences(T, anna.id, zoned).await.unwrap();
    assert_eq!(get(&store, anna.id).await.profile.time_zone, "Asia/Tokyo");

    // Some(None) clears the quiet hours and nothing else.
    let cleared = store
        .update_preferences(
            T,
            anna.id,
            PreferencesPatch {
                quiet_hours: Some(None),
                ..PreferencesPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.channels.quiet_hours, None);
    assert_eq!(cleared.channels.channel_order, expected.channel_order);
    assert_eq!(cleared.channels.categories, categories);
    let emptied = store
        .update_preferences(
            T,
            anna.id,
            PreferencesPatch {
                channel_order: Some(Vec::new()),
                categories: Some(Vec::new()),
                ..PreferencesPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(emptied.channels.is_empty());
    assert!(emptied.update_time.is_some());
    assert_eq!(store.get_preferences(T, anna.id).await.unwrap(), emptied);
}

fn record_of(consent: &NewConsent, record: &ConsentRecord) -> bool {
    record.channel == consent.channel
        && record.category == consent.category
        && record.action == consent.action
        && record.source == consent.source
        && record.legal_basis == consent.legal_basis
        && record.evidence == consent.evidence
}

pub async fn consent_latest_record_time_decides(store: S) {
    let anna = create(&store, named("Anna"), Vec::new()).await;
    // Not a whole number of microseconds: stores keep microseconds.
    let an_hour_ago = SystemTime::now() - Duration::from_nanos(3_600_000_000_123);

    let grant = NewConsent {
        legal_basis: LegalBasis::Contract,
        ..consent(
            Channel::Email,
            Category::Marketing,
            ConsentAction::Grant,
            Some(an_hour_ago),
        )
    };
    let before = now();
    let granted = store
        .record_consent(T, anna.id, grant.clone())
        .await
        .unwrap();
    assert!(record_of(&grant, &granted));
    assert_eq!(granted.contact_id, anna.id);
    assert_eq!(granted.record_time, from_micros(to_micros(an_hour_ago)));
    assert!(granted.create_time >= before);
    let prefs = store.get_preferences(T, anna.id).await.unwrap();
    let state = ConsentState {
        channel: Channel::Email,
        category: Category::Marketing,
        granted: true,
        record_id: granted.id,
        record_time: granted.record_time,
    };
    assert_eq!(prefs.consents, vec![state]);

    let revoke = consent(
        Channel::Email,
        Category::Marketing,
        ConsentAction::Revoke,
        None,
    );
    let revoked = store
        .record_consent(T, anna.id, revoke.clone())
        .await
        .unwrap();
    assert!(record_of(&revoke, &revoked));
    assert_eq!(
        revoked.record_time, revoked.create_time,
        "now when not given"
    );
    let revoked_state = ConsentState {
        channel: Channel::Email,
        category: Category::Marketing,
        granted: false,
        record_id: revoked.id,
        record_time: revoked.record_time,
    };
    let prefs = store.get_preferences(T, anna.id).await.unwrap();
    assert_eq!(prefs.consents, vec![revoked_state.clone()]);

    // Stored later, but the customer acted earlier: it does not decide.
    let late = NewConsent {
        legal_basis: LegalBasis::LegitimateInterests,
        ..consent(
            Channel::Email,
            Category::Marketing,
            ConsentAction::Grant,
            Some(an_hour_ago - Duration::from_secs(86_400)),
        )
    };
    let late = store.record_consent(T, anna.id, late).await.unwrap();
    let other = NewConsent {
        legal_basis: LegalBasis::LegalObligation,
        ..consent(
            Channel::Whatsapp,
            Category::Transactional,
            ConsentAction::Grant,
            None,
        )
    };
    let other = store.record_consent(T, anna.id, other).await.unwrap();
    let prefs = store.get_preferences(T, anna.id).await.unwrap();
    assert_eq!(prefs.consents.len(), 2);
    assert!(prefs.consents.contains(&revoked_state));
    let whatsapp = prefs
        .consents
        .iter()
        .find(|c| c.channel == Channel::Whatsapp)
        .expect("a whatsapp consent");
    assert!(whatsapp.granted);
    assert_eq!(whatsapp.record_id, other.id);
    assert_eq!(
        prefs.update_time, None,
        "the ledger is not a preference change"
    );

    // The ledger keeps every record exactly as returned when stored.
    let ledger = store.list_consents(T, anna.id, None, 100).await.unwrap();
    assert_eq!(ledger, vec![granted, revoked, late, other]);
}

pub async fn list_consents_oldest_first_in_pages(store: S) {
    let anna = create(&store, named("Anna"), Vec::new()).await;
    let ben = create(&store, named("Ben"), Vec::new()).await;
    let mut recorded = Vec::new();
    for (i, category) in Category::ALL.into_iter().enumerate() {
        let action = if i % 2 == 0 {
            ConsentAction::Grant
        } else {
            ConsentAction::Revoke
        };
        // Record times run backwards: the order is the order of storing.
        let at = SystemTime::now() - Duration::from_secs(60 * (i as u64 + 1));
        let record = consent(Channel::Voice, category, action, Some(at));
        recorded.push(store.record_consent(T, anna.id, record).await.unwrap());
        let noise = consent(Channel::Email, category, action, None);
        store.record_consent(T, ben.id, noise).await.unwrap();
    }
    recorded.push(append_grant(&store, anna.id, Channel::Email, Category::Service).await);
    assert_eq!(recorded.len(), 5);

    let all = store.list_consents(T, anna.id, None, 100).await.unwrap();
    assert_eq!(all, recorded);
    let mut seen = Vec::new();
    let mut after = None;
    for expected_len in [2, 2, 1, 0] {
        let batch = store.list_consents(T, anna.id, after, 2).await.unwrap();
        assert_eq!(batch.len(), expected_len);
        if let Some(last) = batch.last() {
            after = Some(last.id);
        }
        seen.extend(batch);
    }
    assert_eq!(seen, recorded, "every record exactly once, oldest first");
    let ben_ledger = store.list_consents(T, ben.id, None, 100).await.unwrap();
    assert_eq!(ben_ledger.len(), 4);
    assert!(ben_ledger.iter().all(|r| r.contact_id == ben.id));
}

pub async fn export_holds_contact_preferences_and_ledger(store: S) {
    let profile = Profile {
        external_ref: Some("crm-1".into()),
        labels: strings(&["vip"]),
        ..named("Anna")
    };
    let anna = create(
        &store,
        profile,
        vec![email("anna@example.com"), whatsapp("4915123456789")],
    )
    .await;
    let other = create(&store, named("other"), vec![email("other@example.com")]).await;
    let first = append_grant(&store, anna.id, Channel::Email, Category::Marketing).await;
    let second = append_revocation(&store, other.id, Channel::Whatsapp, Category::Marketing).await;
    let patch = PreferencesPatch {
        channel_order: Some(vec![Channel::Whatsapp]),
        ..PreferencesPatch::default()
    };
    store.update_preferences(T, anna.id, patch).await.unwrap();
    store.merge_contacts(T, anna.id, &[other.id]).await.unwrap();

    let export = store.export_contact(T, other.id).await.unwrap();
    assert_eq!(export.contact, get(&store, anna.id).await);
    assert_eq!(export.contact.identities.len(), 3);
    assert_eq!(
        export.preferences,
        store.get_preferences(T, anna.id).await.unwrap()
    );
    assert_eq!(
        export.preferences.channels.channel_order,
        vec![Channel::Whatsapp]
    );
    let second = ConsentRecord {
        contact_id: anna.id,
        ..second
    };
    assert_eq!(export.consent_records, vec![first, second]);
    assert_eq!(
        export.consent_records,
        store.list_consents(T, anna.id, None, 100).await.unwrap()
    );
}
