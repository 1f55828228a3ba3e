//! Fuzzes address normalization in `omniroute_channel`: `Address::parse` on
//! every channel (E.164 phone numbers and wa_ids via libphonenumber, email
//! addresses), `lookup_keys`, `mask` and `PhoneRegion::from_str`.
//!
//! Input: one byte choosing the default phone region, then the address as
//! text (invalid UTF-8 replaced). When the text has a `\n`, what comes before
//! it is first tried as a region code.
//!
//! Asserts, from address.rs's documentation (one key for every spelling of
//! the same address; voice numbers and wa_ids share it):
//! - nothing panics;
//! - a region code that parses reads back upper-cased (`code()`);
//! - voice and WhatsApp accept or refuse the same input alike, with one key
//!   of E.164 digits without the plus; the voice value is `+` and the key,
//!   the WhatsApp value is the key;
//! - normalizing is idempotent: the normalized value (and, for phones, the
//!   key and the wa_id as written; for email, the key) parses again to the
//!   same key and value;
//! - the email key is the value case-folded;
//! - `lookup_keys` answers exactly the keys `Address::parse` gives;
//! - a phone address's `Display` does not show the full number (when it
//!   is longer than the seven characters `mask` leaves visible).

#![no_main]

use libfuzzer_sys::fuzz_target;
use omniroute_channel::{Address, Channel, PhoneRegion, lookup_keys, mask};

const REGIONS: [&str; 10] = ["US", "DE", "BR", "MX", "GB", "IN", "FR", "JP", "AR", "CN"];

fn reparsed(channel: Channel, text: &str, region: PhoneRegion) -> Address {
    Address::parse(channel, text, region)
        .unwrap_or_else(|e| panic!("{channel} {text:?} does not parse again: {e}"))
}

fn check_phone(input: &str, region: PhoneRegion) {
    let voice = Address::parse(Channel::Voice, input, region);
    let whatsapp = Address::parse(Channel::Whatsapp, input, region);
    let (voice, whatsapp) = match (voice, whatsapp) {
        (Ok(v), Ok(w)) => (v, w),
        (Err(v), Err(w)) => {
            assert_eq!(v, w, "voice and whatsapp refuse {input:?} differently");
            return;
        }
        (v, w) => panic!("voice and whatsapp disagree on {input:?}: {v:?} / {w:?}"),
    };
    let key = voice.key();
    assert_eq!(key, whatsapp.key(), "voice and whatsapp keys differ");
    assert!(
        !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit()),
        "key {key:?} is not E.164 digits"
    );
    assert!(!key.starts_with('0'), "key {key:?} has no country code");
    assert_eq!(voice.channel(), Channel::Voice);
    assert_eq!(voice.value(), format!("+{key}"));
    assert_eq!(voice.wa_id(), None);
    assert_eq!(whatsapp.channel(), Channel::Whatsapp);
    assert_eq!(whatsapp.value(), key);
    let wa_id = whatsapp.wa_id().expect("a whatsapp address has a wa_id");

    for (channel, text) in [
        (Channel::Voice, voice.value()),
        (Channel::Voice, key),
        (Channel::Whatsapp, whatsapp.value()),
        (Channel::Whatsapp, wa_id),
    ] {
        let again = reparsed(channel, text, region);
        assert_eq!(again.key(), key, "{channel} {text:?} from {input:?}");
        let expected = match channel {
            Channel::Voice => voice.value(),
            _ => whatsapp.value(),
        };
        assert_eq!(again.value(), expected, "{channel} {text:?} from {input:?}");
    }

    assert_eq!(
        lookup_keys(input, region),
        Ok(vec![
            (Channel::Voice, key.to_owned()),
            (Channel::Whatsapp, key.to_owned())
        ])
    );
    // `mask` keeps three characters in front and four behind: only a value
    // longer than seven characters has a middle to hide.
    for address in [&voice, &whatsapp] {
        if address.value().chars().count() > 7 {
            let shown = address.to_string();
            assert!(!shown.contains(address.value()), "{shown} shows the number");
        }
    }
}

fn check_email(input: &str, region: PhoneRegion) {
    let Ok(email) = Address::parse(Channel::Email, input, region) else {
        return;
    };
    assert_eq!(email.channel(), Channel::Email);
    assert_eq!(email.wa_id(), None);
    assert!(email.value().contains('@'));
    assert_eq!(email.key(), email.value().to_lowercase(), "not case-folded");
    for text in [email.value(), email.key()] {
        let again = reparsed(Channel::Email, text, region);
        assert_eq!(again.key(), email.key(), "{text:?} from {input:?}");
    }
    let again = reparsed(Channel::Email, email.value(), region);
    assert_eq!(again.value(), email.value(), "from {input:?}");
    assert_eq!(
        lookup_keys(input, region),
        Ok(vec![(Channel::Email, email.key().to_owned())])
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut region: PhoneRegion = REGIONS[usize::from(selector) % REGIONS.len()]
        .parse()
        .expect("a known region");
    let mut input: &str = &text;
    if let Some((code, address)) = text.split_once('\n') {
        if let Ok(parsed) = code.parse::<PhoneRegion>() {
            assert_eq!(parsed.code(), code.trim().to_ascii_uppercase());
            region = parsed;
        }
        input = address;
    }

    let _ = mask(input);
    check_phone(input, region);
    check_email(input, region);

    // Without a channel: an '@' means email, anything else a phone number.
    let keys = lookup_keys(input, region);
    let channel = if input.contains('@') {
        Channel::Email
    } else {
        Channel::Voice
    };
    assert_eq!(
        keys.is_ok(),
        Address::parse(channel, input, region).is_ok(),
        "lookup_keys and parse disagree on {input:?}"
    );
});
