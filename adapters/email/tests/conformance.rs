//! The shared adapter conformance suite, with the fake relay scripted for
//! each outcome and mail posted as the HTTP webhook.

use omniroute_channel::conformance::{Harness, Outcome, run};
use omniroute_channel::{Adapter, Address, Channel, PhoneRegion};
use omniroute_email::fake::WEBHOOK_SECRET as SECRET;
use omniroute_email::fake::{FakeSmtp, Stage};
use omniroute_email::{EmailAdapter, SIGNATURE_HEADER};

struct Relay {
    fake: FakeSmtp,
    adapter: EmailAdapter,
}

impl Harness for Relay {
    fn adapter(&self) -> &dyn Adapter {
        &self.adapter
    }

    fn tenant(&self) -> &str {
        "acme"
    }

    async fn arrange(&mut self, outcome: Outcome) -> Address {
        match outcome {
            Outcome::Accept => {}
            Outcome::Permanent => {
                self.fake
                    .fail_next(1, Stage::Rcpt, "550 5.1.1 No such user here")
            }
            Outcome::Transient => {
                self.fake
                    .fail_next(1, Stage::Data, "451 4.3.0 Temporary local problem")
            }
            Outcome::RateLimited => self.fake.fail_next(
                1,
                Stage::Data,
                "421 4.7.28 Our system has detected an unusual rate of mail; try again later",
            ),
        }
        Address::parse(Channel::Email, "anna@example.com", PhoneRegion::default()).unwrap()
    }

    fn has_webhooks(&self) -> bool {
        true
    }

    fn signed_headers(&self, body: &[u8]) -> Vec<(String, String)> {
        vec![(
            SIGNATURE_HEADER.to_owned(),
            format!(
                "sha256={}",
                omniroute_channel::signature::hmac_sha256_hex(SECRET, body)
            ),
        )]
    }

    fn known_event_body(&self) -> Vec<u8> {
        b"From: Anna <anna@example.com>\r\nTo: support@acme.example\r\nSubject: Hi\r\nMessage-ID: <k1@example.com>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n\r\nWhere is my order?\r\n".to_vec()
    }

    fn unknown_event_body(&self) -> Vec<u8> {
        // A read receipt (RFC 8098 disposition notification): a report, not
        // a customer's message, and no delivery status.
        b"From: anna@example.com\r\nTo: support@acme.example\r\nSubject: Read: Your order\r\nMessage-ID: <mdn1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nYour message was displayed.\r\n--m\r\nContent-Type: message/disposition-notification\r\n\r\nFinal-Recipient: rfc822; anna@example.com\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n--m--\r\n".to_vec()
    }
}

#[tokio::test]
async fn passes_the_adapter_conformance_suite() {
    let fake = FakeSmtp::start().await;
    let adapter = EmailAdapter::new(omniroute_email::fake::config(fake.port())).unwrap();
    // Others (the sandbox) read the crate's declaration: it is the adapter's.
    assert_eq!(adapter.capabilities(), omniroute_email::capabilities());
    run(&mut Relay { fake, adapter }).await;
}
