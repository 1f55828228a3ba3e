//! Fuzzes Twilio's callbacks: form bodies posted to `/webhooks/voice`,
//! through the callback parser and the signature check.
//!
//! Asserts: neither panics, whatever the bytes; an error is
//! `malformed_callback`; parsing is a pure function of the bytes (times
//! aside); a parsed status or digits name a call by a sid Twilio gives
//! (`CA` and 32 hex digits); a signature made for the
//! parsed form verifies, and one for other bytes does not.

#![no_main]

use libfuzzer_sys::fuzz_target;
use omniroute_voice::provider::Callback;
use omniroute_voice::twilio::{callbacks, signature};

const URL: &str = "https://router.acme.example/webhooks/voice";

fn without_time(callback: Callback) -> Callback {
    match callback {
        Callback::Status {
            call_id,
            state,
            raw,
            answered_by,
            sequence,
            error_code,
            ..
        } => Callback::Status {
            call_id,
            state,
            raw,
            answered_by,
            sequence,
            time: std::time::SystemTime::UNIX_EPOCH,
            error_code,
        },
        other => other,
    }
}

fuzz_target!(|data: &[u8]| {
    let form = callbacks::form(data);
    let signed = signature::sign("token", URL, &form);
    assert!(signature::verify("token", URL, &form, &signed));
    assert!(!signature::verify("other", URL, &form, &signed));
    match callbacks::parse(data) {
        Err(e) => assert_eq!(e.code(), "malformed_callback", "{e:?}"),
        Ok(callback) => {
            let again = callbacks::parse(data).expect("the same bytes parse again");
            assert_eq!(without_time(callback.clone()), without_time(again));
            match callback {
                Callback::Status { call_id, .. }
                | Callback::Digits { call_id, .. }
                | Callback::Dialed { call_id, .. }
                | Callback::Incoming { call_id, .. } => {
                    assert!(callbacks::is_call_sid(&call_id), "{call_id:?}")
                }
                Callback::Other(_) => {}
            }
        }
    }
});
