//! Fuzzes inbound mail: raw bytes posted to `/webhooks/email`, through
//! `omniroute_email::inbound::parse` (the adapter's `parse_webhook`), with
//! one configured sender.
//!
//! Asserts: it never panics, whatever the bytes; an error is
//! `malformed_email`; parsing is a pure function of the bytes (times aside);
//! an inbound message is on the email channel, from an email address, with
//! a provider id; a status names a provider message id.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use omniroute_channel::{Channel, WebhookEvent};
use omniroute_email::EmailConfig;

static CONFIG: LazyLock<EmailConfig> = LazyLock::new(|| omniroute_email::fake::config(25));

fn without_times(events: &[WebhookEvent]) -> Vec<WebhookEvent> {
    events
        .iter()
        .cloned()
        .map(|mut e| {
            match &mut e {
                WebhookEvent::Inbound(m) => m.time = std::time::SystemTime::UNIX_EPOCH,
                WebhookEvent::Status(s) => s.time = std::time::SystemTime::UNIX_EPOCH,
                WebhookEvent::OptOut(_)
                | WebhookEvent::CallProgress(_)
                | WebhookEvent::MissedCall(_) => {}
                WebhookEvent::Ignored(_) => {}
            }
            e
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    match omniroute_email::inbound::parse(&CONFIG, data) {
        Err(e) => assert_eq!(e.code(), "malformed_email", "{e:?}"),
        Ok(events) => {
            let again =
                omniroute_email::inbound::parse(&CONFIG, data).expect("the same bytes parse again");
            assert_eq!(
                without_times(&events),
                without_times(&again),
                "a pure function of the bytes"
            );
            for event in &events {
                match event {
                    WebhookEvent::Inbound(m) => {
                        assert_eq!(m.channel, Channel::Email);
                        assert_eq!(m.from.channel(), Channel::Email);
                        assert!(!m.provider_message_id.is_empty());
                    }
                    WebhookEvent::Status(s) => {
                        assert_eq!(s.channel, Channel::Email);
                        assert!(!s.provider_message_id.is_empty());
                    }
                    WebhookEvent::OptOut(_) => {}
                    WebhookEvent::CallProgress(p) => panic!("mail carries no calls: {p:?}"),
                    WebhookEvent::MissedCall(m) => panic!("mail carries no calls: {m:?}"),
                    WebhookEvent::Ignored(_) => {}
                }
            }
        }
    }
});
