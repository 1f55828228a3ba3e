//! Preferences and the consent ledger.

use std::time::{Duration, SystemTime};

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use tonic::Code;

use crate::support::*;

crate::on_both_stores!(preferences_round_trip, consent_ledger_history_and_state);

/// A valid grant for a channel and category.
pub fn grant(channel: pb::Channel, category: pb::Category) -> pb::ConsentRecord {
    pb::ConsentRecord {
        channel: channel as i32,
        category: category as i32,
        action: pb::ConsentAction::Grant as i32,
        source: "checkout-form".into(),
        legal_basis: pb::LegalBasis::Consent as i32,
        evidence: "ticked 'send me offers' on order A-17".into(),
        ..Default::default()
    }
}

async fn preferences_round_trip(mut app: TestApp) {
    let anna = create(&mut app, "Anna", vec![voice("+4915123456789")]).await;
    let name = format!("{}/preferences", anna.name);
    let empty = app
        .preferences
        .get_preferences(pb::GetPreferencesRequest { name: name.clone() })
        .await
        .unwrap()
        .into_inner()
        .preferences
        .unwrap();
    assert_eq!(empty.name, name);
    assert!(empty.channel_order.is_empty() && empty.categories.is_empty());
    assert!(empty.quiet_hours.is_none() && empty.update_time.is_none());

    let updated = app
        .preferences
        .update_preferences(pb::UpdatePreferencesRequest {
            preferences: Some(pb::Preferences {
                name: name.clone(),
                channel_order: vec![pb::Channel::Whatsapp as i32, pb::Channel::Email as i32],
                categories: vec![
                    pb::CategoryPreference {
                        category: pb::Category::Marketing as i32,
                        status: pb::OptStatus::OptedOut as i32,
                        channels: vec![],
                    },
                    pb::CategoryPreference {
                        category: pb::Category::Authentication as i32,
                        status: pb::OptStatus::OptedIn as i32,
                        channels: vec![pb::Channel::Voice as i32],
                    },
                ],
                quiet_hours: Some(pb::QuietHours {
                    start: "22:00".into(),
                    end: "07:30".into(),
                }),
                time_zone: "Europe/Berlin".into(),
                locale: "de-DE".into(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .unwrap()
        .into_inner()
        .preferences
        .unwrap();
    assert_eq!(
        updated.channel_order,
        vec![pb::Channel::Whatsapp as i32, pb::Channel::Email as i32]
    );
    assert_eq!(updated.categories.len(), 2);
    assert_eq!(updated.quiet_hours.as_ref().unwrap().end, "07:30");
    assert!(updated.update_time.is_some());
    // Time zone and locale are the contact's own fields.
    let contact = get(&mut app, &anna.name).await;
    assert_eq!(contact.time_zone, "Europe/Berlin");
    assert_eq!(contact.locale, "de-DE");

    // A masked update touches only the named field.
    let cleared = app
        .preferences
        .update_preferences(pb::UpdatePreferencesRequest {
            preferences: Some(pb::Preferences {
                name: name.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["quiet_hours"]),
        })
        .await
        .unwrap()
        .into_inner()
        .preferences
        .unwrap();
    assert!(cleared.quiet_hours.is_none());
    assert_eq!(cleared.channel_order, updated.channel_order);
    assert_eq!(cleared.time_zone, "Europe/Berlin");

    let fetched = app
        .preferences
        .get_preferences(pb::GetPreferencesRequest { name })
        .await
        .unwrap()
        .into_inner()
        .preferences
        .unwrap();
    assert_eq!(fetched, cleared);
}

async fn consent_ledger_history_and_state(mut app: TestApp) {
    let anna = create(&mut app, "Anna", vec![email("anna@example.com")]).await;
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    let mut append = async |action: pb::ConsentAction, category: pb::Category, when: SystemTime| {
        let mut record = grant(pb::Channel::Email, category);
        record.action = action as i32;
        record.record_time = Some(when.into());
        app.preferences
            .create_consent_record(record_consent(&anna.name, record))
            .await
            .unwrap()
            .into_inner()
            .consent_record
            .unwrap()
    };
    let granted = append(
        pb::ConsentAction::Grant,
        pb::Category::Marketing,
        now - 3 * day,
    )
    .await;
    assert!(
        granted
            .name
            .starts_with(&format!("{}/consentRecords/", anna.name))
    );
    assert_eq!(granted.source, "checkout-form");
    let revoked = append(
        pb::ConsentAction::Revoke,
        pb::Category::Marketing,
        now - day,
    )
    .await;
    // Recorded late, but it happened before the revocation: the revocation stands.
    let _late = append(
        pb::ConsentAction::Grant,
        pb::Category::Marketing,
        now - 2 * day,
    )
    .await;
    let transactional = append(pb::ConsentAction::Grant, pb::Category::Transactional, now).await;

    let prefs = get_preferences(&mut app, &anna.name).await;
    let marketing = prefs
        .consents
        .iter()
        .find(|c| c.category == pb::Category::Marketing as i32)
        .unwrap();
    assert!(!marketing.granted);
    assert_eq!(marketing.consent_record, revoked.name);
    let tx = prefs
        .consents
        .iter()
        .find(|c| c.category == pb::Category::Transactional as i32)
        .unwrap();
    assert!(tx.granted);
    assert_eq!(tx.consent_record, transactional.name);

    // The whole history, oldest first, page by page.
    let mut history = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .preferences
            .list_consent_records(pb::ListConsentRecordsRequest {
                parent: anna.name.clone(),
                page_size: 3,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        history.extend(page.consent_records);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(history.len(), 4);
    assert_eq!(history[0], granted);
    assert_eq!(history[1], revoked);
    assert_eq!(history[3], transactional);

    // A record for an unknown contact is NOT_FOUND.
    let err = app
        .preferences
        .create_consent_record(record_consent(
            "contacts/0190f5c2-8a4e-7cc1-9c1e-2f8f4d1a2b3c",
            grant(pb::Channel::Email, pb::Category::Marketing),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}
