//! Small builders and assertions shared by the scenarios.

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use tonic::{Code, Status};
use tonic_types::StatusExt;

pub fn identity(channel: pb::Channel, address: &str) -> pb::Identity {
    pb::Identity {
        channel: channel as i32,
        address: address.to_owned(),
        ..Default::default()
    }
}

pub fn voice(address: &str) -> pb::Identity {
    identity(pb::Channel::Voice, address)
}

pub fn whatsapp(address: &str) -> pb::Identity {
    identity(pb::Channel::Whatsapp, address)
}

pub fn email(address: &str) -> pb::Identity {
    identity(pb::Channel::Email, address)
}

/// Creates a contact with a display name and identities.
pub async fn create(app: &mut TestApp, name: &str, identities: Vec<pb::Identity>) -> pb::Contact {
    app.contacts
        .create_contact(pb::CreateContactRequest {
            contact: Some(pb::Contact {
                display_name: name.to_owned(),
                identities,
                ..Default::default()
            }),
        })
        .await
        .expect("create contact")
        .into_inner()
        .contact
        .expect("contact in response")
}

pub async fn get(app: &mut TestApp, name: &str) -> pb::Contact {
    app.contacts
        .get_contact(pb::GetContactRequest {
            name: name.to_owned(),
        })
        .await
        .expect("get contact")
        .into_inner()
        .contact
        .expect("contact in response")
}

pub async fn lookup(
    app: &mut TestApp,
    key: pb::lookup_contact_request::Key,
) -> Result<pb::Contact, Status> {
    app.contacts
        .lookup_contact(pb::LookupContactRequest { key: Some(key) })
        .await
        .map(|r| r.into_inner().contact.expect("contact in response"))
}

pub async fn list_all(app: &mut TestApp) -> Vec<pb::Contact> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .contacts
            .list_contacts(pb::ListContactsRequest {
                page_size: 100,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("list contacts")
            .into_inner();
        all.extend(page.contacts);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

/// The addresses of a contact's identities, sorted.
pub fn addresses(contact: &pb::Contact) -> Vec<String> {
    let mut out: Vec<String> = contact
        .identities
        .iter()
        .map(|i| i.address.clone())
        .collect();
    out.sort();
    out
}

/// Asserts INVALID_ARGUMENT with a BadRequest naming `field`.
pub fn assert_invalid(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let bad_request = details
        .bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    assert!(
        bad_request
            .field_violations
            .iter()
            .any(|v| v.field == field),
        "no violation on {field}: {:?}",
        bad_request.field_violations
    );
}

/// Appends a grant (or a revocation) to a contact's consent ledger.
pub async fn consent(
    app: &mut TestApp,
    contact: &str,
    channel: pb::Channel,
    category: pb::Category,
    grant: bool,
) {
    app.preferences
        .create_consent_record(pb::CreateConsentRecordRequest {
            parent: contact.to_owned(),
            consent_record: Some(pb::ConsentRecord {
                channel: channel as i32,
                category: category as i32,
                action: if grant {
                    pb::ConsentAction::Grant
                } else {
                    pb::ConsentAction::Revoke
                } as i32,
                source: "checkout-form".into(),
                legal_basis: pb::LegalBasis::Consent as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("consent recorded");
}

/// Downloads a message's media with GetMessageMedia: the first chunk's
/// (MIME type, file name, size) and all the bytes.
pub async fn download_media(app: &mut TestApp, name: &str) -> ((String, String, i64), Vec<u8>) {
    let mut stream = app
        .messaging
        .get_message_media(pb::GetMessageMediaRequest {
            name: name.to_owned(),
        })
        .await
        .expect("media served")
        .into_inner();
    let mut bytes = Vec::new();
    let mut first = None;
    while let Some(chunk) = stream.message().await.expect("a chunk") {
        if first.is_none() {
            first = Some((
                chunk.mime_type.clone(),
                chunk.filename.clone(),
                chunk.size_bytes,
            ));
        }
        bytes.extend_from_slice(&chunk.data);
    }
    (first.expect("at least one chunk"), bytes)
}

/// Sets a contact's channel order (its preferences' `channel_order`).
pub async fn set_channel_order(app: &mut TestApp, contact: &str, order: &[pb::Channel]) {
    app.preferences
        .update_preferences(pb::UpdatePreferencesRequest {
            preferences: Some(pb::Preferences {
                name: format!("{contact}/preferences"),
                channel_order: order.iter().map(|c| *c as i32).collect(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["channel_order".into()],
            }),
        })
        .await
        .expect("preferences");
}

/// Sends a transactional text to a contact ("contacts/…"); the accepted
/// message.
pub async fn send_text(app: &mut TestApp, contact: &str, body: &str) -> pb::Message {
    app.messaging
        .send_message(pb::SendMessageRequest {
            recipient: Some(pb::send_message_request::Recipient::Contact(
                contact.to_owned(),
            )),
            message: Some(crate::messaging::text_message(body)),
            idempotency_key: String::new(),
        })
        .await
        .expect("accepted")
        .into_inner()
        .message
        .expect("a message")
}
