//! Webhooks with real signatures: handshake, signature, and every event kind
//! of the envelope.

use std::time::{Duration, SystemTime};

use omniroute_channel::content::{Choice, Location, Media, MediaKind, Reaction, Unsupported};
use omniroute_channel::{
    Adapter, Channel, Content, DeliveryStatus, ErrorClass, InboundMessage, StatusUpdate,
    WebhookEvent, WebhookRequest,
};
use omniroute_whatsapp::WhatsAppAdapter;
use omniroute_whatsapp::fake::{sign, signed_headers};

use crate::*;

fn adapter() -> WhatsAppAdapter {
    // No HTTP is needed for webhooks: the base URL is never called.
    WhatsAppAdapter::new(config("http://127.0.0.1:9")).unwrap()
}

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Verifies a correctly signed delivery of `body`, then parses it.
fn deliver(adapter: &WhatsAppAdapter, body: &[u8]) -> Vec<WebhookEvent> {
    let headers = signed_headers(APP_SECRET, body);
    let request = WebhookRequest {
        uri: "/webhooks/test",
        query: &[],
        headers: &headers,
        body,
    };
    adapter
        .verify_signature(&request)
        .expect("signature verifies");
    adapter.parse_webhook(body).expect("parses")
}

fn inbound(event: &WebhookEvent) -> &InboundMessage {
    match event {
        WebhookEvent::Inbound(message) => message,
        other => panic!("expected an inbound message, got {other:?}"),
    }
}

fn status(event: &WebhookEvent) -> &StatusUpdate {
    match event {
        WebhookEvent::Status(status) => status,
        other => panic!("expected a status, got {other:?}"),
    }
}

fn ignored(event: &WebhookEvent) -> &str {
    match event {
        WebhookEvent::Ignored(reason) => reason,
        other => panic!("expected an ignored event, got {other:?}"),
    }
}

#[test]
fn the_documented_signature_test_vector() {
    let mut config = config("http://127.0.0.1:9");
    config.app_secret = "secret".into();
    let adapter = WhatsAppAdapter::new(config).unwrap();
    assert_eq!(
        sign("secret", b"test"),
        "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914"
    );
    let headers = [(
        "x-hub-signature-256".to_owned(),
        "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914".to_owned(),
    )];
    let request = WebhookRequest {
        uri: "/webhooks/test",
        query: &[],
        headers: &headers,
        body: b"test",
    };
    adapter.verify_signature(&request).unwrap();
}

#[test]
fn bad_and_missing_signatures_are_rejected() {
    let adapter = adapter();
    let body = fixture("inbound_text.json");
    let check = |headers: &[(String, String)], body: &[u8]| {
        adapter.verify_signature(&WebhookRequest {
            uri: "/webhooks/test",
            query: &[],
            headers,
            body,
        })
    };
    // Signed with another secret.
    let e = check(&signed_headers("not-our-secret", &body), &body).unwrap_err();
    assert_eq!(e.code(), "invalid_signature");
    // Our signature, but a body changed by one byte.
    let mut tampered = body.clone();
    tampered[40] ^= 1;
    let e = check(&signed_headers(APP_SECRET, &body), &tampered).unwrap_err();
    assert_eq!(e.code(), "invalid_signature");
    // No signature at all, or not in the sha256=<hex> form.
    let e = check(&[], &body).unwrap_err();
    assert_eq!(e.code(), "missing_signature");
    let wrong_form = [(
        "x-hub-signature-256".to_owned(),
        sign(APP_SECRET, &body).replace("sha256=", "sha1="),
    )];
    let e = check(&wrong_form, &body).unwrap_err();
    assert_eq!(e.code(), "malformed_signature");
    assert!(!e.is_retryable());
}

#[test]
fn the_subscription_handshake() {
    let adapter = adapter();
    let query = |mode: &str, token: &str| {
        vec![
            ("hub.mode".to_owned(), mode.to_owned()),
            ("hub.verify_token".to_owned(), token.to_owned()),
            ("hub.challenge".to_owned(), "1158201444".to_owned()),
        ]
    };
    let handshake = |query: &[(String, String)]| {
        adapter.verify_subscription(&WebhookRequest {
            uri: "/webhooks/test",
            query,
            headers: &[],
            body: b"",
        })
    };
    assert_eq!(
        handshake(&query("subscribe", VERIFY_TOKEN)).unwrap(),
        "1158201444"
    );
    let e = handshake(&query("subscribe", "guess")).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Configuration);
    assert!(handshake(&query("unsubscribe", VERIFY_TOKEN)).is_err());
    assert!(handshake(&query("subscribe", "")).is_err());
    assert!(
        handshake(&query("subscribe", VERIFY_TOKEN)[..2]).is_err(),
        "no challenge"
    );
}

#[test]
fn an_unset_verify_token_matches_nothing() {
    let mut config = config("http://127.0.0.1:9");
    config.verify_token.clear();
    let adapter = WhatsAppAdapter::new(config).unwrap();
    let query = [
        ("hub.mode".to_owned(), "subscribe".to_owned()),
        ("hub.verify_token".to_owned(), String::new()),
        ("hub.challenge".to_owned(), "1".to_owned()),
    ];
    assert!(
        adapter
            .verify_subscription(&WebhookRequest {
                uri: "/webhooks/test",
                query: &query,
                headers: &[],
                body: b"",
            })
            .is_err()
    );
}

#[test]
fn inbound_text() {
    let events = deliver(&adapter(), &fixture("inbound_text.json"));
    assert_eq!(events.len(), 1);
    let m = inbound(&events[0]);
    assert_eq!(m.channel, Channel::Whatsapp);
    assert_eq!(m.account, PHONE_NUMBER_ID);
    assert_eq!(
        m.provider_message_id,
        "wamid.HBgNNDkxNTEyMzQ1Njc4ORUCABIYFjNFQjBDNzU0"
    );
    assert_eq!(m.from.key(), CUSTOMER);
    assert_eq!(m.from.wa_id(), Some(CUSTOMER));
    assert_eq!(m.profile_name.as_deref(), Some("Anna Schmidt"));
    assert_eq!(m.provider_user_id.as_deref(), Some("DE.1234567890"));
    assert_eq!(m.time, at(1_749_416_383));
    assert_eq!(m.content, text("Wo ist meine Bestellung?"));
    assert_eq!(m.reply_to.as_deref(), Some("wamid.HBgLOURBOUND0000001"));
}

#[test]
fn interactive_replies_and_template_buttons_are_choices() {
    let events = deliver(&adapter(), &fixture("inbound_interactive.json"));
    let contents: Vec<&Content> = events.iter().map(|e| &inbound(e).content).collect();
    let choice = |id: &str, title: &str, description: &str| {
        Content::ChoiceReply(Choice {
            id: id.into(),
            title: title.into(),
            description: description.into(),
        })
    };
    assert_eq!(
        contents,
        [
            &choice("yes", "Ja", ""),
            &choice("slot-2", "Di 10:00", "Dienstag vormittag"),
            &choice("stop-promotions", "Stopp", ""),
        ]
    );
    let replies: Vec<Option<&str>> = events
        .iter()
        .map(|e| inbound(e).reply_to.as_deref())
        .collect();
    assert_eq!(
        replies,
        [
            Some("wamid.HBgLOURBOUND0000002"),
            Some("wamid.HBgLOURBOUND0000003"),
            Some("wamid.HBgLOURBOUND0000004")
        ]
    );
}

#[test]
fn inbound_media_of_every_kind() {
    let events = deliver(&adapter(), &fixture("inbound_media.json"));
    let media: Vec<&Media> = events
        .iter()
        .map(|e| match &inbound(e).content {
            Content::Media(m) => m,
            other => panic!("expected media, got {other:?}"),
        })
        .collect();
    let kinds: Vec<MediaKind> = media.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [
            MediaKind::Image,
            MediaKind::Document,
            MediaKind::Audio,
            MediaKind::Sticker,
            MediaKind::Video
        ]
    );
    assert_eq!(
        media[0],
        &Media {
            kind: MediaKind::Image,
            url: String::new(),
            media_id: "1479537139650973".into(),
            caption: "Der Karton ist beschädigt".into(),
            filename: String::new(),
            mime_type: "image/jpeg".into(),
            sha256: "b1d1a6c9e2a0f3e0f4c1c7d2c8f9a1b2c3d4e5f60718293a4b5c6d7e8f901234".into(),
        }
    );
    assert_eq!(media[1].filename, "rechnung.pdf");
    assert_eq!(media[1].mime_type, "application/pdf");
    assert_eq!(media[2].media_id, "3333");
}

#[test]
fn location_reaction_contacts_and_the_unhandled() {
    let events = deliver(&adapter(), &fixture("inbound_other.json"));
    assert_eq!(events.len(), 8);

    let location = inbound(&events[0]);
    assert_eq!(
        location.content,
        Content::Location(Location {
            latitude: 52.520008,
            longitude: 13.404954,
            label: "Alexanderplatz".into(),
            address: "Alexanderplatz 1, 10178 Berlin".into(),
        })
    );

    let reaction = inbound(&events[1]);
    assert_eq!(
        reaction.content,
        Content::Reaction(Reaction {
            message: "wamid.HBgLOURBOUND0000005".into(),
            emoji: "👍".into(),
        })
    );
    assert_eq!(
        reaction.reply_to.as_deref(),
        Some("wamid.HBgLOURBOUND0000005")
    );

    // Shared contacts become a text an agent can read.
    assert_eq!(
        inbound(&events[2]).content,
        text("Shared contact:\nMax Mustermann: +49 30 1234567, +49 151 7654321, max@example.com")
    );

    // What the Cloud API cannot show us is still a message from the
    // customer: recorded with Meta's error, so that an agent can answer.
    assert_eq!(
        inbound(&events[3]).content,
        Content::Unsupported(Unsupported {
            provider_type: String::new(),
            error_code: "131051".into(),
            error_message: "Message type unknown: Message type is currently not supported.".into(),
        })
    );
    assert!(ignored(&events[4]).contains("customer_changed_number"));
    // Types this adapter does not know yet, likewise.
    for (event, kind) in [(&events[5], "order"), (&events[6], "hologram")] {
        match &inbound(event).content {
            Content::Unsupported(u) => assert_eq!(u.provider_type, kind),
            other => panic!("{other:?}"),
        }
    }
    assert!(ignored(&events[7]).contains("cannot be addressed"));
}

#[test]
fn statuses_carry_our_id_and_classified_failures() {
    let events = deliver(&adapter(), &fixture("statuses.json"));
    assert_eq!(events.len(), 7);
    let expected = [
        (
            "wamid.HBgLFAKE0000000001",
            Some("msg-0001"),
            DeliveryStatus::Sent,
            1_749_416_700,
        ),
        (
            "wamid.HBgLFAKE0000000001",
            Some("msg-0001"),
            DeliveryStatus::Delivered,
            1_749_416_701,
        ),
        (
            "wamid.HBgLFAKE0000000001",
            Some("msg-0001"),
            DeliveryStatus::Read,
            1_749_416_702,
        ),
        (
            "wamid.HBgLFAKE0000000002",
            None,
            DeliveryStatus::Read,
            1_749_416_703,
        ),
        (
            "wamid.HBgLFAKE0000000003",
            Some("msg-0003"),
            DeliveryStatus::Failed,
            1_749_416_704,
        ),
        (
            "wamid.HBgLFAKE0000000004",
            Some("msg-0004"),
            DeliveryStatus::Failed,
            1_749_416_705,
        ),
    ];
    for (event, (wamid, ours, delivery, time)) in events.iter().zip(expected) {
        let s = status(event);
        assert_eq!(s.channel, Channel::Whatsapp);
        assert_eq!(s.provider_message_id, wamid);
        assert_eq!(s.message_id.as_deref(), ours);
        assert_eq!(s.status, delivery);
        assert_eq!(s.time, at(time));
        assert_eq!(s.error.is_some(), delivery == DeliveryStatus::Failed);
    }
    let window = status(&events[4]).error.as_ref().unwrap();
    assert_eq!(window.class(), ErrorClass::WindowClosed);
    assert_eq!(window.code(), "131047");
    assert!(window.message().contains("24 hours"));
    let undeliverable = status(&events[5]).error.as_ref().unwrap();
    assert_eq!(undeliverable.class(), ErrorClass::Permanent);
    assert_eq!(undeliverable.code(), "131026");
    assert!(ignored(&events[6]).contains("deleted"));
}

#[test]
fn an_unknown_phone_number_id_is_ignored() {
    let events = deliver(&adapter(), &fixture("unknown_number.json"));
    assert_eq!(events.len(), 1);
    let reason = ignored(&events[0]);
    assert!(reason.contains("unknown phone_number_id"), "{reason}");
    assert!(!reason.contains("999999999999999"), "masked: {reason}");
}

#[test]
fn a_duplicate_delivery_parses_to_the_same_events() {
    let adapter = adapter();
    for name in [
        "inbound_text.json",
        "inbound_interactive.json",
        "inbound_media.json",
        "inbound_other.json",
        "statuses.json",
    ] {
        let body = fixture(name);
        assert_eq!(deliver(&adapter, &body), deliver(&adapter, &body), "{name}");
    }
}

#[test]
fn every_entry_and_change_is_read() {
    let one: serde_json::Value = serde_json::from_slice(&fixture("inbound_text.json")).unwrap();
    let statuses: serde_json::Value = serde_json::from_slice(&fixture("statuses.json")).unwrap();
    let mut change = one["entry"][0]["changes"][0].clone();
    let status_change = statuses["entry"][0]["changes"][0].clone();
    change["value"]["statuses"] = status_change["value"]["statuses"].clone();
    let envelope = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [
            {"id": WABA_ID, "changes": [change, {"field": "account_update", "value": {"event": "X"}}]},
            {"id": WABA_ID, "changes": [status_change]}
        ]
    });
    let events = deliver(&adapter(), envelope.to_string().as_bytes());
    // 1 message + 7 statuses, 1 other field, 7 statuses.
    assert_eq!(events.len(), 16);
    assert!(matches!(events[0], WebhookEvent::Inbound(_)));
    assert!(ignored(&events[8]).contains("account_update"));
}

#[test]
fn malformed_bodies_are_errors() {
    let adapter = adapter();
    for body in [
        &b"{not json"[..],
        br#"{"object":"page","entry":[]}"#,
        br#"{"entry":[]}"#,
        br#"{"object":"whatsapp_business_account","entry":{"id":"1"}}"#,
        b"[]",
    ] {
        let e = adapter.parse_webhook(body).unwrap_err();
        assert_eq!(
            e.code(),
            "malformed_webhook",
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(!e.is_retryable());
    }
    // An empty but well-formed envelope is fine.
    assert_eq!(
        adapter
            .parse_webhook(br#"{"object":"whatsapp_business_account","entry":[]}"#)
            .unwrap(),
        []
    );
}

#[test]
fn odd_items_are_ignored_without_losing_the_rest() {
    let envelope = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "4930555000111", "phone_number_id": PHONE_NUMBER_ID},
            "messages": [
                {"from": CUSTOMER, "type": "text", "text": {"body": "no id"}},
                {"from": "not-a-number", "id": "wamid.BAD", "timestamp": "1", "type": "text", "text": {"body": "x"}},
                {"from": CUSTOMER, "id": "wamid.OK", "timestamp": "1749416383", "type": "text", "text": {"body": "ok"}}
            ],
            "statuses": [{"status": "sent"}],
            "errors": [{"code": 131000, "title": "Something went wrong"}]
        }}]}]
    });
    let events = deliver(&adapter(), envelope.to_string().as_bytes());
    assert_eq!(events.len(), 5);
    assert!(ignored(&events[0]).contains("malformed message"));
    assert!(ignored(&events[1]).contains("not a valid wa_id"));
    assert_eq!(inbound(&events[2]).provider_message_id, "wamid.OK");
    assert!(ignored(&events[3]).contains("malformed status"));
    assert!(ignored(&events[4]).contains("131000"));
}

#[test]
fn a_brazilian_twelve_digit_wa_id_keeps_its_form() {
    let envelope = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "4930555000111", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "João"}, "wa_id": "551187654321"}],
            "messages": [{"from": "551187654321", "id": "wamid.BR", "timestamp": "1749416383",
                          "type": "text", "text": {"body": "Olá"}}]
        }}]}]
    });
    let events = deliver(&adapter(), envelope.to_string().as_bytes());
    let m = inbound(&events[0]);
    assert_eq!(
        m.from.wa_id(),
        Some("551187654321"),
        "reply to the form last seen"
    );
    assert_eq!(m.profile_name.as_deref(), Some("João"));
}
