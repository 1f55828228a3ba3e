//! Opaque, tamper-evident page tokens.
//!
//! A token carries the id of the last item of a page and a fingerprint of the
//! query it belongs to (tenant, method, filters), signed with HMAC-SHA-256
//! under `api.page_token_secret`. A token that was altered, truncated, signed
//! under another secret or replayed against a different query is refused with
//! INVALID_ARGUMENT on `page_token`, so a client can never page through data
//! its query would not show.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::AppError;

type HmacSha256 = Hmac<Sha256>;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const BODY_LEN: usize = 1 + 16 + 8;

/// Signs and checks page tokens.
#[derive(Clone)]
pub struct PageTokens {
    key: Vec<u8>,
}

impl std::fmt::Debug for PageTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokens(***)")
    }
}

fn fingerprint(query: &[&str]) -> [u8; 8] {
    let mut hasher = Sha256::new();
    for part in query {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

impl PageTokens {
    /// Tokens signed with `secret`.
    pub fn new(secret: &str) -> PageTokens {
        PageTokens {
            key: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length.
        HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    /// A token for the page after `last`, bound to `query`.
    pub fn issue(&self, query: &[&str], last: Uuid) -> String {
        let mut body = Vec::with_capacity(BODY_LEN + TAG_LEN);
        body.push(VERSION);
        body.extend_from_slice(last.as_bytes());
        body.extend_from_slice(&fingerprint(query));
        let mut mac = self.mac();
        mac.update(&body);
        let tag = mac.finalize().into_bytes();
        body.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The position a token stands for; `None` for an empty token (first page).
    pub fn check(&self, query: &[&str], token: &str) -> Result<Option<Uuid>, AppError> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            AppError::invalid(
                "page_token",
                "not a page token issued for this query; start again without one",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if bytes.len() != BODY_LEN + TAG_LEN || bytes[0] != VERSION {
            return Err(invalid());
        }
        let (body, tag) = bytes.split_at(BODY_LEN);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_truncated_left(tag).map_err(|_| invalid())?;
        if body[17..] != fingerprint(query) {
            return Err(invalid());
        }
        let id = Uuid::from_slice(&body[1..17]).map_err(|_| invalid())?;
        Ok(Some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tampering() {
        let tokens = PageTokens::new("secret");
        let id = Uuid::now_v7();
        let token = tokens.issue(&["t", "ListContacts"], id);
        assert_eq!(
            tokens.check(&["t", "ListContacts"], &token).unwrap(),
            Some(id)
        );
        assert_eq!(tokens.check(&["t", "ListContacts"], "").unwrap(), None);
        // Another query, another secret, a flipped character: all refused.
        assert!(tokens.check(&["t", "ListContacts", "vip"], &token).is_err());
        assert!(
            PageTokens::new("other")
                .check(&["t", "ListContacts"], &token)
                .is_err()
        );
        let mut chars: Vec<char> = token.chars().collect();
        chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert!(tokens.check(&["t", "ListContacts"], &tampered).is_err());
        assert!(tokens.check(&["t", "ListContacts"], "garbage!").is_err());
    }
}
