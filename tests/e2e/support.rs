//! Small builders and assertions shared by the scenarios.

use omniroute_e2e::TestApp;
use omniroute_proto::v1 as pb;
use pb::send_message_request::Recipient;
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

/// A contact with a display name and identities (and nothing else).
pub fn named_contact(name: &str, identities: Vec<pb::Identity>) -> pb::Contact {
    pb::Contact {
        display_name: name.to_owned(),
        identities,
        ..Default::default()
    }
}

/// A CreateContact request for a contact with a display name and
/// identities.
pub fn new_contact(name: &str, identities: Vec<pb::Identity>) -> pb::CreateContactRequest {
    pb::CreateContactRequest {
        contact: Some(named_contact(name, identities)),
    }
}

/// Creates `contact`; the created contact.
pub async fn create_contact(app: &mut TestApp, contact: pb::Contact) -> pb::Contact {
    app.contacts
        .create_contact(pb::CreateContactRequest {
            contact: Some(contact),
        })
        .await
        .expect("create contact")
        .into_inner()
        .contact
        .expect("contact in response")
}

/// Creates a contact with a display name and identities.
pub async fn create(app: &mut TestApp, name: &str, identities: Vec<pb::Identity>) -> pb::Contact {
    create_contact(app, named_contact(name, identities)).await
}

/// An update mask naming `paths`.
pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

/// An UpdateContact request setting a contact's external reference.
pub fn set_external_ref(contact: &str, external_ref: &str) -> pb::UpdateContactRequest {
    pb::UpdateContactRequest {
        contact: Some(pb::Contact {
            name: contact.to_owned(),
            external_ref: external_ref.to_owned(),
            ..Default::default()
        }),
        update_mask: mask(&["external_ref"]),
    }
}

/// A LinkIdentity request.
pub fn link(contact: &str, identity: pb::Identity) -> pb::LinkIdentityRequest {
    pb::LinkIdentityRequest {
        contact: contact.to_owned(),
        identity: Some(identity),
    }
}

/// A MergeContacts request: `sources` into `contact`.
pub fn merge(contact: &str, sources: &[&str]) -> pb::MergeContactsRequest {
    pb::MergeContactsRequest {
        contact: contact.to_owned(),
        source_contacts: sources.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// A contact's export.
pub async fn export_contact(app: &mut TestApp, contact: &str) -> pb::ContactExport {
    app.contacts
        .export_contact(pb::ExportContactRequest {
            name: contact.to_owned(),
        })
        .await
        .expect("export")
        .into_inner()
        .export
        .expect("export in response")
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

/// A CreateConsentRecord request appending `record` to a contact's ledger.
pub fn record_consent(contact: &str, record: pb::ConsentRecord) -> pb::CreateConsentRecordRequest {
    pb::CreateConsentRecordRequest {
        parent: contact.to_owned(),
        consent_record: Some(record),
    }
}

/// Consent to a category of messages on a channel, given (or revoked) on
/// the checkout form.
#[derive(Clone, Copy)]
pub struct Consent(pub pb::Channel, pub pb::Category);

impl Consent {
    /// Appends a grant to the contact's consent ledger.
    pub async fn grant(self, app: &mut TestApp, contact: &str) {
        self.record(app, contact, pb::ConsentAction::Grant).await;
    }

    /// Appends a revocation to the contact's consent ledger.
    pub async fn revoke(self, app: &mut TestApp, contact: &str) {
        self.record(app, contact, pb::ConsentAction::Revoke).await;
    }

    async fn record(self, app: &mut TestApp, contact: &str, action: pb::ConsentAction) {
        let Consent(channel, category) = self;
        let record = pb::ConsentRecord {
            channel: channel as i32,
            category: category as i32,
            action: action as i32,
            source: "checkout-form".into(),
            legal_basis: pb::LegalBasis::Consent as i32,
            ..Default::default()
        };
        app.preferences
            .create_consent_record(record_consent(contact, record))
            .await
            .expect("consent recorded");
    }
}

/// A contact's preferences.
pub async fn get_preferences(app: &mut TestApp, contact: &str) -> pb::Preferences {
    app.preferences
        .get_preferences(pb::GetPreferencesRequest {
            name: format!("{contact}/preferences"),
        })
        .await
        .expect("get preferences")
        .into_inner()
        .preferences
        .expect("preferences in response")
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

/// A send of `message` to a contact ("contacts/…").
pub fn send_to(contact: &str, message: pb::Message) -> pb::SendMessageRequest {
    pb::SendMessageRequest {
        recipient: Some(Recipient::Contact(contact.to_owned())),
        message: Some(message),
        idempotency_key: String::new(),
    }
}

/// A send of `message` to an address.
pub fn send_to_address(identity: pb::Identity, message: pb::Message) -> pb::SendMessageRequest {
    pb::SendMessageRequest {
        recipient: Some(Recipient::Address(identity)),
        message: Some(message),
        idempotency_key: String::new(),
    }
}

/// A send of a transactional text to a contact ("contacts/…").
pub fn text_to(contact: &str, body: &str) -> pb::SendMessageRequest {
    send_to(contact, crate::messaging::text_message(body))
}

/// A send of a transactional text to an address.
pub fn text_to_address(identity: pb::Identity, body: &str) -> pb::SendMessageRequest {
    send_to_address(identity, crate::messaging::text_message(body))
}

/// Sends; the accepted message.
pub async fn send_ok(app: &mut TestApp, request: pb::SendMessageRequest) -> pb::Message {
    app.messaging
        .send_message(request)
        .await
        .expect("send accepted")
        .into_inner()
        .message
        .expect("message in response")
}

/// Sends; the accepted message or the refusal.
pub async fn try_send(
    app: &mut TestApp,
    request: pb::SendMessageRequest,
) -> Result<pb::Message, Status> {
    app.messaging
        .send_message(request)
        .await
        .map(|r| r.into_inner().message.expect("message in response"))
}

/// Sends a transactional text to a contact ("contacts/…"); the accepted
/// message.
pub async fn send_text(app: &mut TestApp, contact: &str, body: &str) -> pb::Message {
    send_ok(app, text_to(contact, body)).await
}

/// A callback on a contact ("contacts/…"), to put through to `agent`.
pub fn callback_for(contact: &str, agent: &str) -> pb::Callback {
    pb::Callback {
        contact: contact.to_owned(),
        agent_address: agent.to_owned(),
        ..Default::default()
    }
}

/// A CreateCallback request for `callback`.
pub fn callback_request(callback: pb::Callback) -> pb::CreateCallbackRequest {
    pb::CreateCallbackRequest {
        callback: Some(callback),
        idempotency_key: String::new(),
    }
}

/// A subscription to the whole event log, from its first event.
pub fn from_the_beginning() -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        from_beginning: true,
        ..Default::default()
    }
}

/// A subscription resuming after `cursor`.
pub fn after_cursor(cursor: &str) -> pb::SubscribeRequest {
    pb::SubscribeRequest {
        after_cursor: cursor.to_owned(),
        ..Default::default()
    }
}

/// Asserts that the message is DELIVERED and no failure is in its status
/// history.
pub async fn assert_delivered_without_a_failure(app: &mut TestApp, name: &str) {
    let message = crate::messaging::get_message(app, name).await;
    assert_eq!(message.status, pb::MessageStatus::Delivered as i32);
    assert!(
        message
            .status_history
            .iter()
            .all(|h| h.status != pb::MessageStatus::Failed as i32),
        "{:#?}",
        message.status_history
    );
}
