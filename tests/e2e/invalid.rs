//! Bad input: INVALID_ARGUMENT with a BadRequest naming each field at fault,
//! and nothing changed.

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use pb::lookup_contact_request::Key;
use tonic::Code;

use crate::support::*;

crate::on_both_stores!(
    bad_addresses_are_refused_and_change_nothing,
    unknown_update_mask_field_changes_nothing,
    tampered_page_tokens_are_refused,
    malformed_names_and_values,
    hostile_requests_get_clear_statuses_and_change_nothing,
);

async fn bad_addresses_are_refused_and_change_nothing(mut app: TestApp) {
    let err = app
        .contacts
        .create_contact(new_contact(
            "Nobody",
            vec![email("ok@example.com"), voice("call me maybe")],
        ))
        .await
        .unwrap_err();
    assert_invalid(&err, "contact.identities[1].address");
    assert!(list_all(&mut app).await.is_empty(), "nothing was created");
    assert_eq!(
        lookup(&mut app, Key::Address("ok@example.com".into()))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    let anna = create(&mut app, "Anna", vec![]).await;
    for (identity, field) in [
        (email("anna@@example.com"), "identity.address"),
        (email("anna at example.com"), "identity.address"),
        (voice("+49 1"), "identity.address"),
        (whatsapp("not-a-number"), "identity.address"),
        (
            identity(pb::Channel::Unspecified, "anna@example.com"),
            "identity.channel",
        ),
    ] {
        let err = app
            .contacts
            .link_identity(link(&anna.name, identity))
            .await
            .unwrap_err();
        assert_invalid(&err, field);
    }
    assert_eq!(get(&mut app, &anna.name).await, anna, "nothing was linked");

    let err = lookup(&mut app, Key::Address("12".into()))
        .await
        .unwrap_err();
    assert_invalid(&err, "address");
}

async fn unknown_update_mask_field_changes_nothing(mut app: TestApp) {
    let anna = create(&mut app, "Anna", vec![]).await;
    let renamed = pb::Contact {
        name: anna.name.clone(),
        display_name: "Changed".into(),
        ..Default::default()
    };
    let bad_values = pb::Contact {
        time_zone: "Mars/Olympus".into(),
        locale: "??".into(),
        ..renamed.clone()
    };
    for (contact, update_mask, fields) in [
        (
            renamed,
            mask(&["display_name", "shoe_size"]),
            &["update_mask.paths[1]"][..],
        ),
        // Bad values are reported together, each on its field.
        (
            bad_values,
            None,
            &["contact.time_zone", "contact.locale"][..],
        ),
    ] {
        let err = app
            .contacts
            .update_contact(pb::UpdateContactRequest {
                contact: Some(contact),
                update_mask,
            })
            .await
            .unwrap_err();
        for field in fields {
            assert_invalid(&err, field);
        }
        assert_eq!(get(&mut app, &anna.name).await, anna);
    }

    let err = app
        .preferences
        .update_preferences(pb::UpdatePreferencesRequest {
            preferences: Some(pb::Preferences {
                name: format!("{}/preferences", anna.name),
                channel_order: vec![pb::Channel::Email as i32, pb::Channel::Email as i32],
                quiet_hours: Some(pb::QuietHours {
                    start: "25:00".into(),
                    end: "07:00".into(),
                }),
                ..Default::default()
            }),
            update_mask: mask(&["channel_order", "quiet_hours", "consents"]),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "preferences.channel_order[1]");
    assert_invalid(&err, "preferences.quiet_hours.start");
    assert_invalid(&err, "update_mask.paths[2]");
    let prefs = get_preferences(&mut app, &anna.name).await;
    assert!(prefs.channel_order.is_empty() && prefs.quiet_hours.is_none());
}

async fn tampered_page_tokens_are_refused(mut app: TestApp) {
    for i in 0..3 {
        create(&mut app, &format!("C{i}"), vec![]).await;
    }
    // Pages of one contact, from `token`, of the contacts with `label`.
    let page_of_one = |token: &str, label: &str| pb::ListContactsRequest {
        page_size: 1,
        page_token: token.to_owned(),
        label: label.to_owned(),
        ..Default::default()
    };
    let page = app
        .contacts
        .list_contacts(page_of_one("", ""))
        .await
        .unwrap()
        .into_inner();
    let token = page.next_page_token;
    assert!(!token.is_empty());

    let mut tampered: Vec<char> = token.chars().collect();
    tampered[3] = if tampered[3] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    for (bad, label) in [
        (tampered, ""),
        ("not a token".to_owned(), ""),
        (format!("{token}x"), ""),
        // A token is bound to its query: another filter cannot reuse it.
        (token.clone(), "vip"),
    ] {
        let err = app
            .contacts
            .list_contacts(page_of_one(&bad, label))
            .await
            .unwrap_err();
        assert_invalid(&err, "page_token");
    }
    // The genuine token still works.
    let next = app
        .contacts
        .list_contacts(page_of_one(&token, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.contacts.len(), 1);
}

async fn malformed_names_and_values(mut app: TestApp) {
    let err = app
        .contacts
        .get_contact(pb::GetContactRequest {
            name: "contacts/42".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "name");
    let err = app
        .contacts
        .get_contact(pb::GetContactRequest {
            name: "contacts/0190f5c2-8a4e-7cc1-9c1e-2f8f4d1a2b3c".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = app
        .contacts
        .list_contacts(pb::ListContactsRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "page_size");
    let err = app
        .contacts
        .create_contact(pb::CreateContactRequest {
            contact: Some(pb::Contact {
                labels: vec![String::new()],
                attributes: [(String::new(), "x".to_owned())].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_invalid(&err, "contact.labels[0]");
    assert!(list_all(&mut app).await.is_empty());
    let anna = create(&mut app, "Anna", vec![]).await;
    let err = app
        .preferences
        .create_consent_record(record_consent(
            &anna.name,
            pb::ConsentRecord {
                channel: pb::Channel::Email as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    for field in [
        "consent_record.category",
        "consent_record.action",
        "consent_record.legal_basis",
        "consent_record.source",
    ] {
        assert_invalid(&err, field);
    }
}

/// Hostile input over gRPC, table-driven: oversized fields and batches,
/// values outside the enums, bytes that are not Protobuf. Each is refused
/// with a clear status (never INTERNAL), and nothing changes.
async fn hostile_requests_get_clear_statuses_and_change_nothing(mut app: TestApp) {
    use omniroute_e2e::raw;
    use prost::Message as _;
    let before = list_all(&mut app).await.len();
    let big = "x".repeat(300_000);
    let cases: Vec<(&str, &'static str, Vec<u8>, &[Code])> = vec![
        (
            "a display name of 300,000 characters",
            "/omniroute.v1.ContactService/CreateContact",
            new_contact(&big, vec![email("big@example.com")]).encode_to_vec(),
            &[Code::InvalidArgument],
        ),
        (
            "a message body past the 4 MiB request limit",
            "/omniroute.v1.MessagingService/SendMessage",
            text_to_address(email("big@example.com"), &"y".repeat(5 << 20)).encode_to_vec(),
            &[Code::ResourceExhausted, Code::OutOfRange],
        ),
        (
            "a batch of 501 sends",
            "/omniroute.v1.MessagingService/BatchSendMessages",
            pb::BatchSendMessagesRequest {
                requests: (0..501)
                    .map(|i| text_to_address(email(&format!("b{i}@example.com")), "hi"))
                    .collect(),
            }
            .encode_to_vec(),
            &[Code::InvalidArgument],
        ),
        (
            "a category outside the enum",
            "/omniroute.v1.MessagingService/SendMessage",
            send_to_address(
                email("enum@example.com"),
                pb::Message {
                    category: 99,
                    ..crate::messaging::text_message("hi")
                },
            )
            .encode_to_vec(),
            &[Code::InvalidArgument],
        ),
        (
            "bytes that are not Protobuf",
            "/omniroute.v1.ContactService/CreateContact",
            vec![0xff; 64],
            &[Code::InvalidArgument],
        ),
        (
            "a truncated message",
            "/omniroute.v1.ContactService/CreateContact",
            {
                let mut bytes =
                    new_contact("Trunc", vec![email("trunc@example.com")]).encode_to_vec();
                bytes.truncate(bytes.len() - 3);
                bytes
            },
            &[Code::InvalidArgument],
        ),
        (
            "groups nested past the decoder's depth limit",
            "/omniroute.v1.ContactService/CreateContact",
            {
                // Field 15 as a start-group tag, 200 levels deep, never closed.
                std::iter::repeat_n(0x7b_u8, 200).collect()
            },
            &[Code::InvalidArgument],
        ),
    ];
    for (what, path, body, codes) in cases {
        let err = raw::unary(&app.channel, path, body).await.expect_err(what);
        assert!(
            codes.contains(&err.code()),
            "{what}: {:?} {}",
            err.code(),
            err.message()
        );
    }
    assert_eq!(
        list_all(&mut app).await.len(),
        before,
        "nothing was created"
    );
}
