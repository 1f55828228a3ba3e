//! Fuzzes the sandbox channels' webhook parsing, `Adapter::parse_webhook` of
//! `omniroute_sandbox::SandboxAdapter` (the simulated customer messages of
//! `POST /webhooks/{channel}`).
//!
//! Input: one byte choosing the channel (WhatsApp, email, voice) and the
//! phone region (US or DE), then the body.
//!
//! Asserts:
//! - it never panics, whatever the bytes;
//! - an error is a `malformed` of class `Permanent` (HTTP 400);
//! - a body that parses is a JSON object; each of its `messages` becomes one
//!   inbound text message on the adapter's channel, for the sandbox account,
//!   from an address on that channel, with a non-blank id; every other
//!   top-level key becomes one ignored event.

#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use omniroute_channel::{
    Adapter, Channel, Content, ErrorClass, PhoneRegion, StatusSink, StatusUpdate, WebhookEvent,
};
use omniroute_sandbox::{ACCOUNT, SandboxAdapter, SandboxConfig};

/// Parsing reports no statuses; sends (which would) are not fuzzed here.
#[derive(Debug)]
struct Discard;

impl StatusSink for Discard {
    fn report(&self, _: StatusUpdate) {}
}

static ADAPTERS: LazyLock<Vec<SandboxAdapter>> = LazyLock::new(|| {
    let regions: [PhoneRegion; 2] = [PhoneRegion::default(), "DE".parse().expect("a region")];
    regions
        .into_iter()
        .flat_map(|region| {
            Channel::ALL.into_iter().map(move |channel| {
                let config = SandboxConfig {
                    webhook_secret: "fuzz-sandbox-secret".to_owned(),
                    region,
                    ..SandboxConfig::default()
                };
                SandboxAdapter::new(channel, config, Arc::new(Discard))
            })
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let adapter = &ADAPTERS[usize::from(selector) % ADAPTERS.len()];
    let channel = adapter.channel();

    let events = match adapter.parse_webhook(body) {
        Ok(events) => events,
        Err(e) => {
            assert_eq!(e.code(), "malformed", "{e:?}");
            assert_eq!(e.class(), ErrorClass::Permanent, "{e:?}");
            return;
        }
    };

    let json: serde_json::Value =
        serde_json::from_slice(body).expect("a parsed sandbox body is JSON");
    let object = json
        .as_object()
        .expect("a parsed sandbox body is an object");
    let messages = object
        .get("messages")
        .and_then(|m| m.as_array())
        .map_or(0, Vec::len);
    let others = object.keys().filter(|k| *k != "messages").count();

    let mut inbound = 0;
    let mut ignored = 0;
    for event in &events {
        match event {
            WebhookEvent::Inbound(m) => {
                inbound += 1;
                assert_eq!(m.channel, channel);
                assert_eq!(m.account, ACCOUNT);
                assert_eq!(m.from.channel(), channel);
                assert!(!m.provider_message_id.trim().is_empty());
                assert!(matches!(m.content, Content::Text(_)), "{m:?}");
            }
            WebhookEvent::OptOut(o) => panic!("this webhook carries no opt-outs: {o:?}"),
            WebhookEvent::Ignored(_) => ignored += 1,
            WebhookEvent::CallProgress(p) => panic!("a sandbox webhook carries no calls: {p:?}"),
            WebhookEvent::MissedCall(m) => panic!("a sandbox webhook carries no calls: {m:?}"),
            WebhookEvent::Status(s) => panic!("a sandbox webhook carries no statuses: {s:?}"),
        }
    }
    assert_eq!(inbound, messages, "one inbound event per message");
    assert_eq!(ignored, others, "one ignored event per other key");
});
