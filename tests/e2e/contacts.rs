//! Contacts: create, read, update, list, link, lookup, merge, erase, export.

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use pb::lookup_contact_request::Key;
use tonic::Code;

use crate::support::*;

crate::on_both_stores!(
    create_get_update_list,
    lookup_by_every_address_form,
    link_conflict_names_the_owner,
    merge_moves_everything_and_old_name_resolves,
    erase_removes_personal_data_and_export_returns_everything,
);

async fn create_get_update_list(mut app: TestApp) {
    let created = create_contact(
        &mut app,
        pb::Contact {
            display_name: "Anna Schmidt".into(),
            locale: "de-de".into(),
            time_zone: "Europe/Berlin".into(),
            external_ref: "crm-4711".into(),
            labels: vec!["vip".into(), "b2c".into()],
            attributes: [("tier".to_owned(), "gold".to_owned())].into(),
            identities: vec![voice("+49 151 23456789"), email("Anna.Schmidt@Example.COM")],
            ..Default::default()
        },
    )
    .await;
    assert!(created.name.starts_with("contacts/"));
    assert_eq!(created.locale, "de-DE", "locale is canonicalized");
    assert_eq!(created.state, pb::ContactState::Active as i32);
    assert_eq!(
        addresses(&created),
        vec![
            "+4915123456789".to_owned(),
            "Anna.Schmidt@example.com".to_owned()
        ]
    );

    let fetched = get(&mut app, &created.name).await;
    assert_eq!(fetched, created);

    // Only the masked field changes.
    let updated = app
        .contacts
        .update_contact(pb::UpdateContactRequest {
            contact: Some(pb::Contact {
                name: created.name.clone(),
                display_name: "Anna Meyer".into(),
                locale: "fr-FR".into(),
                ..Default::default()
            }),
            update_mask: mask(&["display_name"]),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(updated.display_name, "Anna Meyer");
    assert_eq!(updated.locale, "de-DE");
    assert_eq!(updated.external_ref, "crm-4711");
    assert_eq!(updated.labels, vec!["vip".to_owned(), "b2c".to_owned()]);
    assert_eq!(
        get(&mut app, &created.name).await.display_name,
        "Anna Meyer"
    );

    // Lists page in creation order, each contact once, and filter by label.
    let mut names = vec![created.name.clone()];
    for i in 0..4 {
        names.push(
            create(&mut app, &format!("Customer {i}"), vec![])
                .await
                .name,
        );
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .contacts
            .list_contacts(pb::ListContactsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.contacts.len() <= 2);
        seen.extend(page.contacts.into_iter().map(|c| c.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, names);
    assert_eq!(pages, 3);
    let vips = app
        .contacts
        .list_contacts(pb::ListContactsRequest {
            label: "vip".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(vips.contacts.len(), 1);
    assert_eq!(vips.contacts[0].name, created.name);
}

async fn lookup_by_every_address_form(mut app: TestApp) {
    let anna = create(
        &mut app,
        "Anna",
        vec![voice("+49 151 23456789"), email("Anna.Schmidt@Example.COM")],
    )
    .await;
    for form in [
        "0151 23456789",
        "+49 151 23456789",
        "+4915123456789",
        "004915123456789",
        "4915123456789",
    ] {
        let found = lookup(&mut app, Key::Address(form.into()))
            .await
            .unwrap_or_else(|e| panic!("{form}: {e:?}"));
        assert_eq!(found.name, anna.name, "{form}");
    }
    for form in [
        "anna.schmidt@example.com",
        "ANNA.SCHMIDT@EXAMPLE.COM",
        " Anna.Schmidt@example.com ",
    ] {
        let found = lookup(&mut app, Key::Address(form.into())).await.unwrap();
        assert_eq!(found.name, anna.name, "{form}");
    }
    let found = lookup(&mut app, Key::Identity(voice("0151 23456789")))
        .await
        .unwrap();
    assert_eq!(found.name, anna.name);

    // A WhatsApp-only contact is found by its wa_id and by its phone number.
    let joao = create(&mut app, "João", vec![whatsapp("5511987654321")]).await;
    assert_eq!(joao.identities[0].address, "5511987654321");
    for form in ["5511987654321", "551187654321", "+55 11 98765-4321"] {
        let found = lookup(&mut app, Key::Address(form.into())).await.unwrap();
        assert_eq!(found.name, joao.name, "{form}");
        let found = lookup(&mut app, Key::Identity(whatsapp(form)))
            .await
            .unwrap();
        assert_eq!(found.name, joao.name, "{form}");
    }
    // The 12-digit Brazilian form is the same person: linking it refreshes
    // the wa_id replies go to, it adds no identity.
    let relinked = app
        .contacts
        .link_identity(link(&joao.name, whatsapp("551187654321")))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(relinked.identities.len(), 1);
    assert_eq!(relinked.identities[0].wa_id, "551187654321");

    // Mexico: 521 + 10 digits is the same as +52 + 10 digits.
    let maria = create(&mut app, "María", vec![whatsapp("5215512345678")]).await;
    let found = lookup(&mut app, Key::Address("+52 55 1234 5678".into()))
        .await
        .unwrap();
    assert_eq!(found.name, maria.name);

    // By external reference; and a miss is NOT_FOUND.
    app.contacts
        .update_contact(set_external_ref(&maria.name, "crm-9"))
        .await
        .unwrap();
    let found = lookup(&mut app, Key::ExternalRef("crm-9".into()))
        .await
        .unwrap();
    assert_eq!(found.name, maria.name);
    let miss = lookup(&mut app, Key::Address("+49 30 1234567".into()))
        .await
        .unwrap_err();
    assert_eq!(miss.code(), Code::NotFound);
}

async fn link_conflict_names_the_owner(mut app: TestApp) {
    let anna = create(&mut app, "Anna", vec![voice("+4915123456789")]).await;
    let bert = create(&mut app, "Bert", vec![email("bert@example.com")]).await;
    let err = app
        .contacts
        .link_identity(link(&bert.name, voice("0151 23456789")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains(&anna.name), "{}", err.message());
    assert_eq!(get(&mut app, &bert.name).await, bert, "bert is unchanged");
    assert_eq!(get(&mut app, &anna.name).await, anna, "anna is unchanged");

    // Creating a contact with a taken identity creates nothing.
    let before = list_all(&mut app).await;
    let err = app
        .contacts
        .create_contact(new_contact(
            "Dup",
            vec![
                email("new@example.com"),
                whatsapp("4915123456789"),
                voice("+49 151 23456789"),
            ],
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(list_all(&mut app).await, before);
    assert_eq!(
        lookup(&mut app, Key::Address("new@example.com".into()))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // The external reference is unique too.
    app.contacts
        .update_contact(set_external_ref(&anna.name, "crm-1"))
        .await
        .unwrap();
    let err = app
        .contacts
        .update_contact(set_external_ref(&bert.name, "crm-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&anna.name));
}

async fn merge_moves_everything_and_old_name_resolves(mut app: TestApp) {
    let anna = create(&mut app, "Anna", vec![voice("+4915123456789")]).await;
    let dup = create(
        &mut app,
        "",
        vec![email("anna@example.com"), whatsapp("4915199999999")],
    )
    .await;
    app.preferences
        .create_consent_record(record_consent(
            &dup.name,
            crate::preferences::grant(pb::Channel::Email, pb::Category::Marketing),
        ))
        .await
        .unwrap();

    let merged = app
        .contacts
        .merge_contacts(merge(&anna.name, &[&dup.name]))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(merged.name, anna.name);
    assert_eq!(merged.display_name, "Anna");
    assert_eq!(
        addresses(&merged),
        vec![
            "+4915123456789".to_owned(),
            "4915199999999".to_owned(),
            "anna@example.com".to_owned()
        ]
    );
    assert_eq!(merged.merged_contacts, vec![dup.name.clone()]);

    // The retired name resolves to the survivor, and so do its identities.
    assert_eq!(get(&mut app, &dup.name).await.name, anna.name);
    let found = lookup(&mut app, Key::Address("anna@example.com".into()))
        .await
        .unwrap();
    assert_eq!(found.name, anna.name);
    // Consents moved too.
    let records = app
        .preferences
        .list_consent_records(pb::ListConsentRecordsRequest {
            parent: anna.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .consent_records;
    assert_eq!(records.len(), 1);
    // The retired contact is no longer listed.
    let listed: Vec<String> = list_all(&mut app)
        .await
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(listed, vec![anna.name.clone()]);

    // Merging a contact into itself is refused.
    let err = app
        .contacts
        .merge_contacts(merge(&anna.name, &[&anna.name]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

async fn erase_removes_personal_data_and_export_returns_everything(mut app: TestApp) {
    let anna = create_contact(
        &mut app,
        pb::Contact {
            display_name: "Anna Schmidt".into(),
            external_ref: "crm-4711".into(),
            labels: vec!["vip".into()],
            identities: vec![voice("+4915123456789"), email("anna@example.com")],
            ..Default::default()
        },
    )
    .await;
    for action in [pb::ConsentAction::Grant, pb::ConsentAction::Revoke] {
        let mut record = crate::preferences::grant(pb::Channel::Email, pb::Category::Marketing);
        record.action = action as i32;
        app.preferences
            .create_consent_record(record_consent(&anna.name, record))
            .await
            .unwrap();
    }

    let export = export_contact(&mut app, &anna.name).await;
    assert_eq!(export.contact.as_ref().unwrap(), &anna);
    assert_eq!(export.consent_records.len(), 2);
    let prefs = export.preferences.unwrap();
    assert_eq!(prefs.consents.len(), 1);
    assert!(!prefs.consents[0].granted);
    assert!(export.export_time.is_some());

    let tombstone = app
        .contacts
        .delete_contact(pb::DeleteContactRequest {
            name: anna.name.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    assert_eq!(tombstone.name, anna.name);
    assert_eq!(tombstone.state, pb::ContactState::Erased as i32);
    assert!(tombstone.display_name.is_empty() && tombstone.external_ref.is_empty());
    assert!(tombstone.identities.is_empty() && tombstone.labels.is_empty());
    assert!(tombstone.erase_time.is_some());
    let erasure = tombstone.erasure.unwrap();
    assert_eq!(erasure.identities_removed, 2);
    assert_eq!(erasure.consent_records_removed, 2);

    // Nothing personal can be found any more.
    assert_eq!(
        get(&mut app, &anna.name).await.state,
        pb::ContactState::Erased as i32
    );
    for key in [
        Key::Address("+4915123456789".into()),
        Key::Address("anna@example.com".into()),
        Key::ExternalRef("crm-4711".into()),
    ] {
        assert_eq!(
            lookup(&mut app, key).await.unwrap_err().code(),
            Code::NotFound
        );
    }
    let export = export_contact(&mut app, &anna.name).await;
    assert!(export.consent_records.is_empty());
    assert!(export.contact.unwrap().identities.is_empty());
    // An erased contact cannot change, and is not listed.
    let err = app
        .contacts
        .link_identity(link(&anna.name, email("anna@example.com")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(list_all(&mut app).await.is_empty());
    // The freed address can belong to a new contact.
    let again = create(&mut app, "Anna again", vec![email("anna@example.com")]).await;
    assert_ne!(again.name, anna.name);
}
