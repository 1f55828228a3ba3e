//! The shared adapter conformance suite, with the fake Graph API scripted
//! for each outcome.

use omniroute_channel::conformance::{Harness, Outcome, run};
use omniroute_channel::{Adapter, Address, Channel, PhoneRegion};
use omniroute_whatsapp::WhatsAppAdapter;
use omniroute_whatsapp::fake::{FakeGraph, signed_headers};

use crate::{APP_SECRET, CUSTOMER, TENANT, fixture, setup};

struct Cloud {
    fake: FakeGraph,
    adapter: WhatsAppAdapter,
}

impl Harness for Cloud {
    fn adapter(&self) -> &dyn Adapter {
        &self.adapter
    }

    fn tenant(&self) -> &str {
        TENANT
    }

    async fn arrange(&mut self, outcome: Outcome) -> Address {
        match outcome {
            Outcome::Accept => {}
            // 131026: undeliverable; 131000: something went wrong, retry;
            // 130429: throughput exceeded.
            Outcome::Permanent => self.fake.fail_next(1, 400, 131026, None),
            Outcome::Transient => self.fake.fail_next(1, 500, 131000, None),
            Outcome::RateLimited => self.fake.fail_next(1, 400, 130429, Some("2")),
        }
        Address::parse(Channel::Whatsapp, CUSTOMER, PhoneRegion::default()).unwrap()
    }

    fn has_webhooks(&self) -> bool {
        true
    }

    fn signed_headers(&self, body: &[u8]) -> Vec<(String, String)> {
        signed_headers(APP_SECRET, body)
    }

    fn known_event_body(&self) -> Vec<u8> {
        fixture("inbound_text.json")
    }

    fn unknown_event_body(&self) -> Vec<u8> {
        br#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"4930555000111","phone_number_id":"106540352242922"},"messages":[{"from":"4915123456789","id":"wamid.unknown","timestamp":"1749416383","type":"hologram","hologram":{}}]}}]}]}"#.to_vec()
    }
}

#[tokio::test]
async fn passes_the_adapter_conformance_suite() {
    let (fake, adapter) = setup().await;
    // Others (the sandbox) read the crate's declaration: it is the adapter's.
    assert_eq!(adapter.capabilities(), omniroute_whatsapp::capabilities());
    run(&mut Cloud { fake, adapter }).await;
}

#[tokio::test]
async fn inbound_media_is_downloaded_on_request() {
    let (fake, adapter) = setup().await;
    fake.add_media("1200345678", "image/jpeg", "e3b0c442", 4);
    fake.set_media_content("1200345678", b"\xff\xd8\xff\xe0");
    let media = adapter.fetch_media(TENANT, "1200345678").await.unwrap();
    assert_eq!(media.mime_type, "image/jpeg");
    assert_eq!(media.bytes, b"\xff\xd8\xff\xe0");
    // Both requests carried the token: metadata from the Graph API, then the
    // bytes from the media URL.
    let requests = fake.requests();
    assert!(requests.iter().any(|r| r.path.ends_with("/1200345678")));
    assert!(requests.iter().any(|r| r.path == "/download/1200345678"));
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&*format!("Bearer {}", crate::TOKEN)))
    );
    // Another tenant cannot fetch it; an unknown id is an error.
    assert!(
        adapter
            .fetch_media("someone-else", "1200345678")
            .await
            .is_err()
    );
    assert!(adapter.fetch_media(TENANT, "999").await.is_err());
}
