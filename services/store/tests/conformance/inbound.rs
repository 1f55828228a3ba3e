//! Inbound messages: recorded once per provider id, resolved to the contact
//! that owns the sender's address (or a new one), opening WhatsApp's service
//! window.

use std::time::{Duration, SystemTime};

use omniroute_channel::content::{InboundCall, Text};
use omniroute_channel::{Channel, Content};
use omniroute_domain::{Direction, EventType, MessageStatus, NewInbound, Received};

use crate::messaging::{accept_and_send, all_events, micros};
use crate::support::*;

fn inbound(from: &str, provider_id: &str, time: SystemTime) -> NewInbound {
    NewInbound {
        channel: Channel::Whatsapp,
        from: whatsapp(from),
        profile_name: Some("João Silva".into()),
        provider_user_id: None,
        provider_message_id: provider_id.into(),
        time,
        content: Content::Text(Text {
            body: "Where is my order?".into(),
            ..Text::default()
        }),
        reply_to: None,
        line: LINE.into(),
        opens_window: Some(WINDOW),
        also_opens: None,
        automatic: false,
        media_bytes: None,
    }
}

/// The business number the customer writes to.
const LINE: &str = "106540352242922";
/// How long a message keeps the window open (WhatsApp's 24 hours).
const WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

fn received(outcome: Received) -> omniroute_domain::Message {
    match outcome {
        Received::New(message) => message,
        Received::Duplicate => panic!("recorded as a duplicate"),
    }
}

pub async fn a_new_sender_becomes_a_contact_with_an_open_window(store: S) {
    let sent = micros(SystemTime::now() - Duration::from_secs(60));
    let message = received(
        store
            .record_inbound(T, inbound("5511987654321", "wamid.in1", sent))
            .await
            .unwrap(),
    );
    assert_eq!(message.direction, Direction::Inbound);
    assert_eq!(message.status, MessageStatus::Received);
    assert_eq!(message.provider_message_id.as_deref(), Some("wamid.in1"));
    let contact = store.get_contact(T, message.contact_id).await.unwrap();
    assert_eq!(contact.profile.display_name, "João Silva");
    assert_eq!(contact.identities.len(), 1);
    assert_eq!(contact.identities[0].address.key(), "5511987654321");
    assert_eq!(
        contact.window_until(Channel::Whatsapp, LINE),
        Some(sent + WINDOW)
    );
    assert_eq!(contact.identities[0].provider_user_id, None);
    assert_eq!(store.get_message(T, message.id).await.unwrap(), message);

    let events = all_events(&store, 2).await;
    let kinds: Vec<EventType> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventType::ContactCreated, EventType::MessageReceived]
    );

    // A business-scoped user id reported later is kept on the identity.
    let mut later = inbound("5511987654321", "wamid.in2", sent);
    later.provider_user_id = Some("BR.13491208655302741918".into());
    received(store.record_inbound(T, later).await.unwrap());
    let contact = store.get_contact(T, message.contact_id).await.unwrap();
    assert_eq!(
        contact.identities[0].provider_user_id.as_deref(),
        Some("BR.13491208655302741918")
    );
}

pub async fn redelivered_messages_are_recorded_once(store: S) {
    let now = micros(SystemTime::now());
    let first = received(
        store
            .record_inbound(T, inbound("4915123456789", "wamid.dup", now))
            .await
            .unwrap(),
    );
    let again = store
        .record_inbound(T, inbound("4915123456789", "wamid.dup", now))
        .await
        .unwrap();
    assert_eq!(again, Received::Duplicate);
    let timeline = store
        .list_messages(T, first.contact_id, None, 10)
        .await
        .unwrap();
    assert_eq!(timeline.len(), 1);
    all_events(&store, 2).await;
    let events = store
        .read_events(T, Default::default(), &Default::default(), 100)
        .await
        .unwrap();
    assert_eq!(events.len(), 2, "the duplicate wrote no event");
}

pub async fn a_known_sender_keeps_their_contact_and_name(store: S) {
    // The contact is known by the 13-digit Brazilian form; the customer
    // writes from the older 12-digit wa_id.
    let mut contact = store
        .create_contact(
            T,
            omniroute_domain::NewContact {
                profile: omniroute_domain::Profile {
                    display_name: "Dona Maria".into(),
                    ..Default::default()
                },
                identities: vec![whatsapp("5511987654321")],
            },
        )
        .await
        .unwrap();
    let message = received(
        store
            .record_inbound(
                T,
                inbound("551187654321", "wamid.br", micros(SystemTime::now())),
            )
            .await
            .unwrap(),
    );
    assert_eq!(message.contact_id, contact.id);
    contact = store.get_contact(T, contact.id).await.unwrap();
    assert_eq!(
        contact.profile.display_name, "Dona Maria",
        "a set name is kept"
    );
    assert_eq!(contact.identities.len(), 1);
    assert_eq!(contact.identities[0].address.wa_id(), Some("551187654321"));
    assert!(contact.window_until(Channel::Whatsapp, LINE).is_some());
}

pub async fn the_window_only_grows_and_replies_link_to_our_message(store: S) {
    let contact = store
        .create_contact(
            T,
            omniroute_domain::NewContact {
                identities: vec![whatsapp("4915123456789")],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ours = accept_and_send(&store, contact.id, "wamid.ours").await;
    let late = micros(SystemTime::now());
    let early = late - Duration::from_secs(3600);
    let mut reply = inbound("4915123456789", "wamid.r1", late);
    reply.reply_to = Some("wamid.ours".into());
    let reply = received(store.record_inbound(T, reply).await.unwrap());
    assert_eq!(reply.reply_to, Some(ours.id));
    // An older message delivered late does not shorten the window.
    received(
        store
            .record_inbound(T, inbound("4915123456789", "wamid.r0", early))
            .await
            .unwrap(),
    );
    let contact = store.get_contact(T, contact.id).await.unwrap();
    assert_eq!(
        contact.window_until(Channel::Whatsapp, LINE),
        Some(late + WINDOW)
    );
    // The timeline holds both directions, newest first.
    let timeline = store.list_messages(T, contact.id, None, 10).await.unwrap();
    let directions: Vec<Direction> = timeline.iter().map(|m| m.direction).collect();
    assert_eq!(
        directions,
        vec![Direction::Inbound, Direction::Inbound, Direction::Outbound]
    );
}

pub async fn merge_keeps_the_latest_window_and_erase_clears_it(store: S) {
    let now = micros(SystemTime::now());
    let a = received(
        store
            .record_inbound(
                T,
                inbound("4915123456789", "wamid.a", now - Duration::from_secs(7200)),
            )
            .await
            .unwrap(),
    );
    let b = received(
        store
            .record_inbound(T, inbound("4915199999999", "wamid.b", now))
            .await
            .unwrap(),
    );
    let merged = store
        .merge_contacts(T, a.contact_id, &[b.contact_id])
        .await
        .unwrap();
    assert_eq!(
        merged.window_until(Channel::Whatsapp, LINE),
        Some(now + WINDOW)
    );
    let erased = store.erase_contact(T, a.contact_id).await.unwrap();
    assert_eq!(erased.windows, Vec::new());
}

pub async fn media_a_message_carried_is_kept_per_tenant_until_erasure(store: S) {
    let now = micros(SystemTime::now());
    let pdf = b"%PDF-1.7 invoice".to_vec();
    let attachment = NewInbound {
        channel: Channel::Email,
        from: email("nina@example.com"),
        provider_message_id: "nina-1@example.com#1".into(),
        content: Content::Media(omniroute_channel::content::Media {
            kind: omniroute_channel::content::MediaKind::Document,
            url: String::new(),
            media_id: "nina-1@example.com#1".into(),
            caption: String::new(),
            filename: "invoice.pdf".into(),
            mime_type: "application/pdf".into(),
            sha256: String::new(),
        }),
        line: "support@acme.example".into(),
        opens_window: None,
        also_opens: None,
        media_bytes: Some(pdf.clone()),
        ..inbound("4915100000000", "unused", now)
    };
    let message = received(store.record_inbound(T, attachment.clone()).await.unwrap());
    assert_eq!(
        store.get_inbound_media(T, message.id).await.unwrap(),
        Some(pdf)
    );
    assert_eq!(
        store.record_inbound(T, attachment).await.unwrap(),
        Received::Duplicate,
        "a redelivery keeps one copy"
    );
    assert_eq!(
        store
            .get_inbound_media("tenant-b", message.id)
            .await
            .unwrap(),
        None,
        "another tenant sees nothing"
    );
    let text = received(
        store
            .record_inbound(T, inbound("4915100000001", "wamid.text", now))
            .await
            .unwrap(),
    );
    assert_eq!(store.get_inbound_media(T, text.id).await.unwrap(), None);
    store.erase_contact(T, message.contact_id).await.unwrap();
    assert_eq!(
        store.get_inbound_media(T, message.id).await.unwrap(),
        None,
        "erasure deletes the bytes"
    );
}

/// A customer who writes on WhatsApp and calls from the same number is one
/// contact: the call finds the WhatsApp identity's contact, links the
/// voice identity, and opens WhatsApp's window on the line it names.
pub async fn a_call_from_a_whatsapp_number_is_the_same_contact_and_opens_its_window(store: S) {
    let sent = micros(SystemTime::now() - Duration::from_secs(60));
    let first = received(
        store
            .record_inbound(
                T,
                inbound("5511987654321", "wamid.before", sent - WINDOW * 2),
            )
            .await
            .unwrap(),
    );
    let call = NewInbound {
        channel: Channel::Voice,
        from: voice("+55 11 98765-4321"),
        profile_name: None,
        provider_message_id: "CA0000000000000000000000000000c411".into(),
        content: Content::InboundCall(InboundCall {
            line: "+4930123456".into(),
        }),
        line: "+4930123456".into(),
        opens_window: None,
        also_opens: Some((Channel::Whatsapp, LINE.into(), WINDOW)),
        time: sent,
        ..inbound("5511987654321", "unused", sent)
    };
    let recorded = received(store.record_inbound(T, call).await.unwrap());
    assert_eq!(recorded.contact_id, first.contact_id, "the same contact");
    let contact = store.get_contact(T, first.contact_id).await.unwrap();
    let mut channels: Vec<Channel> = contact
        .identities
        .iter()
        .map(|i| i.address.channel())
        .collect();
    channels.sort();
    assert_eq!(channels, [Channel::Whatsapp, Channel::Voice], "{contact:?}");
    assert_eq!(
        contact.window_until(Channel::Whatsapp, LINE),
        Some(sent + WINDOW),
        "the call reopened the WhatsApp window"
    );
    assert_eq!(contact.window_until(Channel::Voice, "+4930123456"), None);
    // A WhatsApp message from a number known only by its voice identity
    // finds that contact too.
    let caller = received(
        store
            .record_inbound(
                T,
                NewInbound {
                    channel: Channel::Voice,
                    from: voice("+4915155500777"),
                    provider_message_id: "CA0000000000000000000000000000c412".into(),
                    opens_window: None,
                    ..inbound("4915155500777", "unused", sent)
                },
            )
            .await
            .unwrap(),
    );
    let writes = received(
        store
            .record_inbound(T, inbound("4915155500777", "wamid.after-call", sent))
            .await
            .unwrap(),
    );
    assert_eq!(writes.contact_id, caller.contact_id);
}
