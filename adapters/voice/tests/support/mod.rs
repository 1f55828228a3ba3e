//! What the adapter tests share: the account, the public URL, the adapter
//! on a fake API.

#![allow(dead_code)]

use std::time::Duration;

use omniroute_voice::fake::FakeTwilio;
use omniroute_voice::{VoiceAdapter, VoiceConfig, VoiceNumber};

pub const ACCOUNT: &str = "AC00000000000000000000000000000001";
pub const TOKEN: &str = "twilio-auth-token";
pub const PUBLIC: &str = "https://router.acme.example";

pub fn config(fake: &FakeTwilio) -> VoiceConfig {
    VoiceConfig {
        api_base: fake.base_url(),
        account_sid: ACCOUNT.into(),
        auth_token: TOKEN.into(),
        public_base_url: PUBLIC.into(),
        numbers: vec![VoiceNumber {
            tenant: "acme".into(),
            number: "+4930123456".into(),
            forward_to: None,
            greeting: String::new(),
        }],
        ring_timeout: Duration::from_secs(30),
        request_timeout: Duration::from_secs(5),
        default_language: "de-DE".into(),
        gather_digit: true,
        machine_detection: omniroute_voice::MachineDetection::NotReached,
    }
}

pub fn adapter(fake: &FakeTwilio) -> VoiceAdapter {
    VoiceAdapter::new(config(fake)).expect("adapter")
}
