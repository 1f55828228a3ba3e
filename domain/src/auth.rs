//! Tenants and their API keys, which authentication reads.
//!
//! A key is handed to a caller as a public *prefix* and a secret. The
//! store keeps the prefix (unique across all tenants, so that a presented
//! key is found by one lookup of the `api_keys_prefix` index, whatever its
//! tenant) and the SHA-256 of the secret; it never sees the secret itself.
//!
//! Both stores keep them in `tenants` and `api_keys`
//! (`migrations/*/…_auth.sql`); the migration creates the tenant
//! [`DEFAULT_TENANT`], which holds the data of installs from before
//! tenants were stored. What the two stores share lives here: the
//! records, when a key is usable, the tenant id rule, how a new key
//! becomes a stored one, and the errors of lookups that find nothing.

use std::time::SystemTime;

use uuid::Uuid;

use crate::model::{from_micros, to_micros};

/// The tenant the migration creates (display name "Default"): single-tenant
/// installs keep their data under it.
pub const DEFAULT_TENANT: &str = "default";

/// The longest tenant id [`valid_tenant_id`] accepts.
pub const MAX_TENANT_ID_LEN: usize = 63;

/// Whether `id` may name a tenant: 1 to [`MAX_TENANT_ID_LEN`] (63)
/// characters, each a lowercase ASCII letter, a digit or `-`, the first a
/// letter or a digit (so an id is also a DNS label's worth of characters,
/// and never looks like an option). The store does not check it: callers
/// refuse invalid ids before they reach a store.
pub fn valid_tenant_id(id: &str) -> bool {
    let allowed = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-';
    match id.as_bytes() {
        [] => false,
        [first, ..] if *first == b'-' => false,
        bytes => bytes.len() <= MAX_TENANT_ID_LEN && bytes.iter().all(|&c| allowed(c)),
    }
}

/// A tenant: a customer of omniroute whose data is kept apart from every
/// other's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Its id (see [`valid_tenant_id`]), the `tenant` of every record it
    /// owns.
    pub id: String,
    /// A name for people; may be empty.
    pub display_name: String,
    /// When it was created (to the microsecond).
    pub create_time: SystemTime,
}

/// An API key to store (the store's `create_api_key`).
#[derive(Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// Its id, chosen by the caller.
    pub id: Uuid,
    /// The tenant it authenticates as; must exist.
    pub tenant: String,
    /// A name for people; may be empty.
    pub name: String,
    /// The public lookup part of the key, unique across all tenants.
    pub prefix: String,
    /// The SHA-256 of the key's secret part.
    pub secret_hash: Vec<u8>,
    /// What the key may do, in the order given.
    pub scopes: Vec<String>,
    /// When it stops working, if ever (kept to the microsecond).
    pub expire_time: Option<SystemTime>,
}

impl NewApiKey {
    /// The key as stored when created at `now`: times to the microsecond,
    /// so it equals the key read back, never revoked.
    pub fn into_key(self, now: SystemTime) -> ApiKey {
        let micros = |time: SystemTime| from_micros(to_micros(time));
        ApiKey {
            id: self.id,
            tenant: self.tenant,
            name: self.name,
            prefix: self.prefix,
            secret_hash: self.secret_hash,
            scopes: self.scopes,
            create_time: micros(now),
            expire_time: self.expire_time.map(micros),
            revoke_time: None,
        }
    }
}

/// The `Debug` of a key, new or stored: what both have, the hash hidden
/// (it is as good as the secret to whoever can test guesses: never print
/// it), then the `times` it has.
macro_rules! debug_key {
    ($f:expr, $kind:literal, $key:expr, [$($time:ident),*]) => {
        $f.debug_struct($kind)
            .field("id", &$key.id)
            .field("tenant", &$key.tenant)
            .field("name", &$key.name)
            .field("prefix", &$key.prefix)
            .field("secret_hash", &"***")
            .field("scopes", &$key.scopes)
            $(.field(stringify!($time), &$key.$time))*
            .finish()
    };
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_key!(f, "NewApiKey", self, [expire_time])
    }
}

/// A stored API key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    /// The tenant it authenticates as.
    pub tenant: String,
    /// A name for people; may be empty.
    pub name: String,
    /// The public lookup part of the key, unique across all tenants.
    pub prefix: String,
    /// The SHA-256 of the key's secret part.
    pub secret_hash: Vec<u8>,
    /// What the key may do.
    pub scopes: Vec<String>,
    /// When it was created.
    pub create_time: SystemTime,
    /// When it stops working, if ever.
    pub expire_time: Option<SystemTime>,
    /// When it was revoked (the first time, if revoked more than once).
    pub revoke_time: Option<SystemTime>,
}

impl ApiKey {
    /// Whether the key authenticates at `now`: not revoked, and not
    /// expired (it expires at its expire time).
    pub fn is_usable(&self, now: SystemTime) -> bool {
        self.revoke_time.is_none() && self.expire_time.is_none_or(|expire| now < expire)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        debug_key!(f, "ApiKey", self, [create_time, expire_time, revoke_time])
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key() -> ApiKey {
        NewApiKey {
            // Fixed, so that its text holds none of the bytes looked for.
            id: Uuid::from_u128(1),
            tenant: DEFAULT_TENANT.to_owned(),
            name: "ci".to_owned(),
            prefix: "or_abc".to_owned(),
            secret_hash: vec![0xde, 0xad, 0xbe, 0xef],
            scopes: vec!["messages.send".to_owned()],
            expire_time: None,
        }
        .into_key(SystemTime::UNIX_EPOCH + Duration::from_secs(100))
    }

    #[test]
    fn tenant_ids_are_short_lowercase_labels() {
        for id in [
            "default",
            "a",
            "0",
            "tenant-a",
            "9-lives",
            "x-",
            &"a".repeat(63),
        ] {
            assert!(valid_tenant_id(id), "{id:?} is valid");
        }
        for id in [
            "",
            "-a",
            "Tenant",
            "tenant_a",
            "tenant a",
            "ü",
            "a.b",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(!valid_tenant_id(id), "{id:?} is invalid");
        }
    }

    #[test]
    fn a_new_key_keeps_microseconds_and_is_not_revoked() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_000_001_999);
        let expire = now + Duration::from_nanos(3_500);
        let new = NewApiKey {
            expire_time: Some(expire),
            ..NewApiKey {
                id: Uuid::now_v7(),
                tenant: "t".to_owned(),
                name: String::new(),
                prefix: "p".to_owned(),
                secret_hash: Vec::new(),
                scopes: Vec::new(),
                expire_time: None,
            }
        };
        let key = new.into_key(now);
        assert_eq!(
            key.create_time,
            SystemTime::UNIX_EPOCH + Duration::from_micros(1_000_001)
        );
        assert_eq!(
            key.expire_time,
            Some(SystemTime::UNIX_EPOCH + Duration::from_micros(1_000_005))
        );
        assert_eq!(key.revoke_time, None);
    }

    #[test]
    fn a_key_is_usable_until_revoked_or_expired() {
        let mut key = key();
        let now = key.create_time;
        assert!(key.is_usable(now));
        key.expire_time = Some(now + Duration::from_secs(1));
        assert!(key.is_usable(now));
        assert!(!key.is_usable(now + Duration::from_secs(1)), "expires at");
        assert!(!key.is_usable(now + Duration::from_secs(2)));
        key.expire_time = None;
        key.revoke_time = Some(now);
        assert!(!key.is_usable(now));
    }

    #[test]
    fn debug_never_shows_the_hash() {
        let key = key();
        let shown = format!("{key:?} {key:#?}");
        assert!(shown.contains("secret_hash: \"***\""), "{shown}");
        for byte in ["222", "173", "0xde", "de, ad", "deadbeef"] {
            assert!(!shown.contains(byte), "{byte} in {shown}");
        }
        let new = NewApiKey {
            id: key.id,
            tenant: key.tenant.clone(),
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            secret_hash: key.secret_hash.clone(),
            scopes: key.scopes.clone(),
            expire_time: None,
        };
        let shown = format!("{new:?}");
        assert!(shown.contains("secret_hash: \"***\""), "{shown}");
        assert!(!shown.contains("222"), "{shown}");
    }
}
