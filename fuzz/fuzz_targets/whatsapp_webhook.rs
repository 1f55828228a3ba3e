//! Fuzzes WhatsApp webhook parsing: the raw body of a Cloud API delivery,
//! handed to `Adapter::parse_webhook` of a `WhatsAppAdapter` with one
//! configured business number, as the server's webhook handler does after
//! the signature check. (`webhook::parse` itself is private to the crate.)
//!
//! Asserts, from webhook.rs's documented guarantees:
//! - it never panics, whatever the bytes;
//! - an error is a `malformed_webhook` of class `Permanent` (HTTP 400), and
//!   only a body that is not JSON or not a `whatsapp_business_account`
//!   object is one: a body that parses is such an object;
//! - parsing is a pure function of the body: parsing it twice gives the same
//!   events (times aside, since an item without a readable timestamp gets
//!   the time of parsing);
//! - inbound messages are on WhatsApp, from a WhatsApp address, to the
//!   configured phone number id (any other account is ignored); a status
//!   carries an error exactly when it is a failure.

#![no_main]

use std::sync::LazyLock;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use omniroute_channel::{Adapter, Channel, DeliveryStatus, ErrorClass, WebhookEvent};
use omniroute_whatsapp::{BusinessNumber, WhatsAppAdapter, WhatsAppConfig};

const PHONE_NUMBER_ID: &str = "106540352242922";

static ADAPTER: LazyLock<WhatsAppAdapter> = LazyLock::new(|| {
    let config = WhatsAppConfig {
        // Never called: parsing needs no HTTP.
        base_url: "http://127.0.0.1:9".to_owned(),
        access_token: "fuzz-token".to_owned(),
        app_secret: "fuzz-app-secret".to_owned(),
        verify_token: "fuzz-verify".to_owned(),
        numbers: vec![BusinessNumber {
            phone_number_id: PHONE_NUMBER_ID.to_owned(),
            waba_id: "102290129340398".to_owned(),
            tenant: "acme".to_owned(),
            line: "support".to_owned(),
            ..BusinessNumber::default()
        }],
        ..WhatsAppConfig::default()
    };
    WhatsAppAdapter::new(config).expect("a valid configuration")
});

/// The events with every time set to the epoch, to compare two parses.
fn timeless(events: &[WebhookEvent]) -> Vec<WebhookEvent> {
    events
        .iter()
        .cloned()
        .map(|event| match event {
            WebhookEvent::Inbound(mut m) => {
                m.time = SystemTime::UNIX_EPOCH;
                WebhookEvent::Inbound(m)
            }
            WebhookEvent::Status(mut s) => {
                s.time = SystemTime::UNIX_EPOCH;
                WebhookEvent::Status(s)
            }
            other => other,
        })
        .collect()
}

fuzz_target!(|body: &[u8]| {
    let adapter = &*ADAPTER;
    let first = adapter.parse_webhook(body);
    let events = match first {
        Ok(events) => events,
        Err(e) => {
            assert_eq!(e.code(), "malformed_webhook", "{e:?}");
            assert_eq!(e.class(), ErrorClass::Permanent, "{e:?}");
            assert!(adapter.parse_webhook(body).is_err(), "not deterministic");
            return;
        }
    };

    // Fields the envelope does not read are skipped unchecked (a lone
    // surrogate escape in one is no error), so only a body a strict JSON
    // reader accepts is compared.
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        assert_eq!(
            json.get("object").and_then(|o| o.as_str()),
            Some("whatsapp_business_account"),
            "a parsed webhook body is a whatsapp_business_account object"
        );
    }

    let again = adapter.parse_webhook(body).expect("parses again");
    assert_eq!(timeless(&events), timeless(&again), "not deterministic");

    for event in &events {
        match event {
            WebhookEvent::Inbound(m) => {
                assert_eq!(m.channel, Channel::Whatsapp);
                assert_eq!(m.account, PHONE_NUMBER_ID);
                assert_eq!(m.from.channel(), Channel::Whatsapp);
                assert!(!m.from.key().is_empty());
            }
            WebhookEvent::Status(s) => {
                assert_eq!(s.channel, Channel::Whatsapp);
                assert_eq!(
                    s.error.is_some(),
                    s.status == DeliveryStatus::Failed,
                    "a status has an error exactly when it failed: {s:?}"
                );
            }
            WebhookEvent::OptOut(o) => panic!("this webhook carries no opt-outs: {o:?}"),
            WebhookEvent::CallProgress(p) => panic!("this webhook carries no calls: {p:?}"),
            WebhookEvent::MissedCall(m) => panic!("this webhook carries no calls: {m:?}"),
            WebhookEvent::Ignored(_) => {}
        }
    }
});
