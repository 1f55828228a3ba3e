//! One-click unsubscribe (RFC 8058): marketing email carries
//! `List-Unsubscribe: <https://…/unsubscribe/email/TOKEN>` and
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click`; the mailbox provider
//! POSTs `List-Unsubscribe=One-Click` to the URL, and the server records a
//! marketing opt-out for email in the consent ledger. The token names the
//! tenant and the message, never an address, and is signed (HMAC-SHA256),
//! so that nobody can unsubscribe someone else by guessing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Where one-click unsubscribes go, and the key that signs their tokens.
#[derive(Clone)]
pub struct Unsubscribe {
    /// The public base URL of the router's HTTP listener, for example
    /// `https://router.acme.example`.
    pub base_url: String,
    /// The signing key.
    pub secret: String,
}

impl std::fmt::Debug for Unsubscribe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsubscribe")
            .field("base_url", &self.base_url)
            .field("secret", &"***")
            .finish()
    }
}

/// The path under the HTTP listener, before the token.
pub const PATH: &str = "/unsubscribe/email/";

/// The path of choice links (an interactive message's choices on email),
/// before the token.
pub const CHOICE_PATH: &str = "/choices/email/";

fn mac(secret: &str, payload: &[u8]) -> String {
    omniroute_channel::signature::hmac_sha256_hex(secret, payload)[..32].to_owned()
}

impl Unsubscribe {
    /// The token for `message_id` of `tenant`.
    pub fn token(&self, tenant: &str, message_id: &str) -> String {
        let payload = format!("{tenant}\n{message_id}");
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            mac(&self.secret, payload.as_bytes())
        )
    }

    /// The one-click URL for `message_id` of `tenant`.
    pub fn url(&self, tenant: &str, message_id: &str) -> String {
        format!(
            "{}{PATH}{}",
            self.base_url.trim_end_matches('/'),
            self.token(tenant, message_id)
        )
    }

    /// The address of the `mailto:` unsubscribe for `message_id`:
    /// `unsubscribe+<id><mac>@<reply domain>`, short enough for a mailbox
    /// name (64 characters); the reply domain names the tenant.
    pub fn mailbox(&self, message_id: &str, reply_domain: &str) -> String {
        let id = message_id.replace('-', "");
        format!(
            "unsubscribe+{id}{}@{reply_domain}",
            &mac(&self.secret, id.as_bytes())[..16]
        )
    }

    /// The message id an unsubscribe mailbox's local part names
    /// (`unsubscribe+…`), when its signature holds.
    pub fn verify_mailbox(&self, local_part: &str) -> Option<String> {
        let token = local_part.strip_prefix("unsubscribe+")?;
        if token.len() != 48 || self.secret.is_empty() {
            return None;
        }
        let (id, signature) = token.split_at(32);
        let expected = &mac(&self.secret, id.as_bytes())[..16];
        let same = expected
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        same.then(|| {
            uuid::Uuid::try_parse(id)
                .ok()
                .map(|u| u.hyphenated().to_string())
        })
        .flatten()
    }

    /// The link that picks `choice_id` of our interactive message
    /// `message_id` of `tenant`: the same signed tokens, naming the choice
    /// too (a token for one kind never verifies as the other).
    pub fn choice_url(&self, tenant: &str, message_id: &str, choice_id: &str) -> String {
        let payload = format!("choice\n{tenant}\n{message_id}\n{choice_id}");
        format!(
            "{}{CHOICE_PATH}{}.{}",
            self.base_url.trim_end_matches('/'),
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            mac(&self.secret, payload.as_bytes())
        )
    }

    /// The (tenant, message id, choice id) a choice link's token names,
    /// when its signature holds.
    pub fn verify_choice(&self, token: &str) -> Option<(String, String, String)> {
        let payload = self.open(token)?;
        let mut parts = payload.splitn(4, '\n');
        let (kind, tenant, message, choice) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (kind == "choice").then(|| (tenant.to_owned(), message.to_owned(), choice.to_owned()))
    }

    /// The (tenant, message id) a token names, when its signature holds.
    pub fn verify(&self, token: &str) -> Option<(String, String)> {
        let payload = self.open(token)?;
        let (tenant, message) = payload.split_once('\n')?;
        Some((tenant.to_owned(), message.to_owned()))
    }

    /// The payload of a signed token, when its signature holds.
    fn open(&self, token: &str) -> Option<String> {
        let (payload, signature) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let expected = mac(&self.secret, &payload);
        // Constant time: compare every byte.
        let same = expected.len() == signature.len()
            && expected
                .bytes()
                .zip(signature.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same || self.secret.is_empty() {
            return None;
        }
        String::from_utf8(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_the_message_and_are_signed() {
        let u = Unsubscribe {
            base_url: "https://router.acme.example/".into(),
            secret: "s3cret".into(),
        };
        let id = "01a232b1-1186-710f-972d-02f288bc6632";
        let url = u.url("acme", id);
        assert!(
            url.starts_with("https://router.acme.example/unsubscribe/email/"),
            "{url}"
        );
        let token = url.rsplit('/').next().unwrap();
        assert_eq!(u.verify(token), Some(("acme".into(), id.into())));
        assert!(!token.contains('@'), "no address in the token");
        // Tampered, or signed with another key: refused.
        let other = Unsubscribe {
            secret: "other".into(),
            ..u.clone()
        };
        assert_eq!(other.verify(token), None);
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("acme\nsomeone-else"),
            &token[token.len() - 32..]
        );
        assert_eq!(u.verify(&forged), None);
        assert_eq!(u.verify("garbage"), None);

        let mailbox = u.mailbox(id, "reply.acme.example");
        let (local, domain) = mailbox.split_once('@').unwrap();
        assert!(local.len() <= 64, "{local}");
        assert_eq!(domain, "reply.acme.example");
        assert_eq!(u.verify_mailbox(local), Some(id.to_owned()));
        assert_eq!(other.verify_mailbox(local), None);
        assert_eq!(u.verify_mailbox("unsubscribe+0000"), None);
    }

    #[test]
    fn choice_links_name_the_choice_and_are_no_unsubscribe() {
        let u = Unsubscribe {
            base_url: "https://router.acme.example".into(),
            secret: "s3cret".into(),
        };
        let id = "01a232b1-1186-710f-972d-02f288bc6632";
        let url = u.choice_url("acme", id, "slot-am");
        assert!(
            url.starts_with("https://router.acme.example/choices/email/"),
            "{url}"
        );
        let token = url.rsplit('/').next().unwrap();
        assert_eq!(
            u.verify_choice(token),
            Some(("acme".into(), id.into(), "slot-am".into()))
        );
        assert!(
            u.verify(token).is_none_or(|(_, m)| m != id),
            "a choice link does not unsubscribe"
        );
        let unsubscribe = u.url("acme", id);
        assert_eq!(
            u.verify_choice(unsubscribe.rsplit('/').next().unwrap()),
            None
        );
    }
}
