//! Webhook signatures of the `sha256=<hex>` kind: an HMAC-SHA256 over the
//! raw body with a shared secret, in a header (Meta's X-Hub-Signature-256,
//! omniroute's own X-Omniroute-Signature for mail posted by HTTP), checked
//! in constant time before anything is parsed.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{AdapterError, ErrorClass, WebhookRequest};

/// `HMAC-SHA256(secret, body)` as lower-case hex.
pub fn hmac_sha256_hex(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac accepts keys of any length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `SHA-256(bytes)` as lower-case hex (the digest media is named by).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

fn refused(code: &str, message: String) -> AdapterError {
    AdapterError::new(ErrorClass::Configuration, code, message)
}

/// Checks `<header>: sha256=<hex>` (`header` in lower case) over the raw
/// body of `request`.
pub fn verify_sha256(
    secret: &str,
    header: &str,
    request: &WebhookRequest<'_>,
) -> Result<(), AdapterError> {
    let value = request
        .header(header)
        .ok_or_else(|| refused("missing_signature", format!("{header} is missing")))?;
    let expected = value
        .trim()
        .strip_prefix("sha256=")
        .and_then(decode_hex)
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| {
            refused(
                "malformed_signature",
                format!("{header} is not sha256=<hex>"),
            )
        })?;
    if secret.is_empty() {
        return Err(refused("invalid_signature", "no secret configured".into()));
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac accepts keys of any length");
    mac.update(request.body);
    mac.verify_slice(&expected).map_err(|_| {
        refused(
            "invalid_signature",
            format!("{header} does not match the body"),
        )
    })
}
