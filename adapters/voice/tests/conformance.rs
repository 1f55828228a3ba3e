//! The shared adapter conformance suite, with the fake Twilio API scripted
//! for each outcome and callbacks signed as Twilio signs them.

use omniroute_channel::conformance::{Harness, Outcome, WEBHOOK_URI, run};
use omniroute_channel::{Adapter, Address, Channel, PhoneRegion};
use omniroute_voice::VoiceAdapter;
use omniroute_voice::fake::FakeTwilio;
use omniroute_voice::twilio::{callbacks, signature};

mod support;

struct Telephony {
    fake: FakeTwilio,
    adapter: VoiceAdapter,
}

impl Harness for Telephony {
    fn adapter(&self) -> &dyn Adapter {
        &self.adapter
    }

    fn tenant(&self) -> &str {
        "acme"
    }

    async fn arrange(&mut self, outcome: Outcome) -> Address {
        match outcome {
            Outcome::Accept => {}
            Outcome::Permanent => self
                .fake
                .fail_next(1, 400, 21211, "not a valid phone number"),
            Outcome::Transient => self.fake.fail_next(1, 503, 20500, "Internal Server Error"),
            Outcome::RateLimited => self.fake.fail_next(1, 429, 20429, "Too Many Requests"),
        }
        Address::parse(Channel::Voice, "+4915112345678", PhoneRegion::default()).unwrap()
    }

    fn has_webhooks(&self) -> bool {
        true
    }

    fn signed_headers(&self, body: &[u8]) -> Vec<(String, String)> {
        let url = format!("{}{WEBHOOK_URI}", support::PUBLIC);
        vec![(
            signature::HEADER.to_owned(),
            signature::sign(support::TOKEN, &url, &callbacks::form(body)),
        )]
    }

    fn known_event_body(&self) -> Vec<u8> {
        b"AccountSid=AC00000000000000000000000000000001&CallSid=CA00000000000000000000000000000007&CallStatus=completed&Direction=outbound-api&From=%2B4930123456&To=%2B4915112345678&SequenceNumber=2&Timestamp=Tue%2C+01+Dec+2026+10%3A00%3A00+%2B0000".to_vec()
    }

    fn unknown_event_body(&self) -> Vec<u8> {
        b"AccountSid=AC00000000000000000000000000000001&CallSid=CA00000000000000000000000000000007&CallbackSource=conference-events".to_vec()
    }
}

#[tokio::test]
async fn the_voice_adapter_conforms() {
    let fake = FakeTwilio::start(support::ACCOUNT, support::TOKEN).await;
    let adapter = support::adapter(&fake);
    // Others (the sandbox) read the crate's declaration: it is the adapter's.
    assert_eq!(adapter.capabilities(), omniroute_voice::capabilities());
    run(&mut Telephony { fake, adapter }).await;
}
