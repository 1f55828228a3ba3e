//! Fuzzes the `X-Hub-Signature-256` check, `omniroute_whatsapp::verify_hub_signature`
//! (WhatsApp's and the sandbox's webhooks), and `signature_hex`.
//!
//! Input: one byte `n`, then an app secret of `n % 33` bytes, then the header
//! value up to the first `\n`, then the body (bytes that are not UTF-8 are
//! replaced, as an HTTP layer handing over a header as text would).
//!
//! Asserts:
//! - neither function panics, whatever the header, body or secret;
//! - a refusal is `missing_signature`, `malformed_signature` or
//!   `invalid_signature`, and nothing verifies under an empty secret;
//! - `signature_hex` is 64 lower-case hex digits;
//! - a body signed correctly (`sha256=` + `signature_hex`) verifies, and the
//!   same signature fails for another body or another secret;
//! - a request without the header is `missing_signature`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use omniroute_channel::WebhookRequest;
use omniroute_whatsapp::{SIGNATURE_HEADER, signature_hex, verify_hub_signature};

fn verify(secret: &str, header: Option<&str>, body: &[u8]) -> Result<(), String> {
    let headers: Vec<(String, String)> = header
        .map(|value| (SIGNATURE_HEADER.to_owned(), value.to_owned()))
        .into_iter()
        .collect();
    let request = WebhookRequest {
        uri: "/webhooks/test",
        query: &[],
        headers: &headers,
        body,
    };
    verify_hub_signature(secret, &request).map_err(|e| e.code().to_owned())
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (secret, rest) = rest.split_at(usize::from(n % 33).min(rest.len()));
    let secret = String::from_utf8_lossy(secret);
    let (header, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let header = String::from_utf8_lossy(header);

    // The fuzzer's own header: any answer but a panic.
    match verify(&secret, Some(&header), body) {
        Ok(()) => assert!(!secret.is_empty(), "verified under an empty secret"),
        Err(code) => assert!(
            matches!(
                code.as_str(),
                "missing_signature" | "malformed_signature" | "invalid_signature"
            ),
            "unexpected refusal {code:?}"
        ),
    }

    let hex = signature_hex(&secret, body);
    assert_eq!(hex.len(), 64, "{hex}");
    assert!(
        hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "not lower-case hex: {hex}"
    );

    let signed = format!("sha256={hex}");
    if secret.is_empty() {
        assert!(verify(&secret, Some(&signed), body).is_err());
    } else {
        assert_eq!(verify(&secret, Some(&signed), body), Ok(()));
        let mut other_body = body.to_vec();
        other_body.push(b'x');
        assert_eq!(
            verify(&secret, Some(&signed), &other_body).err().as_deref(),
            Some("invalid_signature")
        );
        let other_secret = format!("{secret}x");
        assert_eq!(
            verify(&other_secret, Some(&signed), body).err().as_deref(),
            Some("invalid_signature")
        );
    }

    assert_eq!(
        verify(&secret, None, body).err().as_deref(),
        Some("missing_signature")
    );
});
