//! The WhatsApp adapter against the fake Graph API over real HTTP, and its
//! webhooks with real signatures: the adapter conformance cases of STYLE
//! (success, permanent, transient, rate limited, bad signature rejected,
//! duplicate webhook tolerated, unknown event ignored) and every content
//! kind. One test binary; fixtures in tests/fixtures, written from the
//! formats in PROTOCOLS §1.

mod conformance;
mod errors;
mod limits;
mod send;
mod templates;
mod webhooks;

use std::time::Duration;

use omniroute_channel::{Address, Category, Channel, Content, OutboundMessage, PhoneRegion};
use omniroute_whatsapp::fake::FakeGraph;
use omniroute_whatsapp::{BusinessNumber, WhatsAppAdapter, WhatsAppConfig};

pub const TOKEN: &str = "EAAG-test-token";
pub const APP_SECRET: &str = "app-secret-for-tests";
pub const VERIFY_TOKEN: &str = "verify-me-please";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const WABA_ID: &str = "102290129340398";
pub const TENANT: &str = "acme";
pub const CUSTOMER: &str = "4915123456789";

/// A configuration for one number of [`TENANT`] against `base_url`.
pub fn config(base_url: &str) -> WhatsAppConfig {
    WhatsAppConfig {
        base_url: base_url.to_owned(),
        access_token: TOKEN.to_owned(),
        app_secret: APP_SECRET.to_owned(),
        verify_token: VERIFY_TOKEN.to_owned(),
        numbers: vec![BusinessNumber {
            phone_number_id: PHONE_NUMBER_ID.to_owned(),
            waba_id: WABA_ID.to_owned(),
            tenant: TENANT.to_owned(),
            line: "support-de".to_owned(),
            ..BusinessNumber::default()
        }],
        request_timeout: Duration::from_secs(10),
        ..WhatsAppConfig::default()
    }
}

/// A fake Graph API and an adapter pointed at it.
pub async fn setup() -> (FakeGraph, WhatsAppAdapter) {
    let fake = FakeGraph::start(TOKEN).await;
    let adapter = WhatsAppAdapter::new(config(&fake.base_url())).expect("valid config");
    (fake, adapter)
}

/// A message of [`TENANT`] to `to` (a wa_id).
pub fn message_to(to: &str, content: Content) -> OutboundMessage {
    OutboundMessage {
        tenant: TENANT.to_owned(),
        message_id: "msg-0001".to_owned(),
        to: Address::parse(Channel::Whatsapp, to, PhoneRegion::default()).expect("valid wa_id"),
        category: Category::Service,
        content,
        reply_to: None,
        attempt: 1,
        window_open_until: None,
        locale: None,
        trace_parent: String::new(),
    }
}

/// A message of [`TENANT`] to [`CUSTOMER`].
pub fn message(content: Content) -> OutboundMessage {
    message_to(CUSTOMER, content)
}

/// A fixture from tests/fixtures.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A text content.
pub fn text(body: &str) -> Content {
    Content::Text(omniroute_channel::content::Text {
        body: body.to_owned(),
        ..Default::default()
    })
}
