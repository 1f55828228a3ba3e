//! Authentication and authorization of gRPC callers: API keys bound to a
//! tenant and a set of scopes, sent as `authorization: Bearer <key>`.
//!
//! - A key is `omr_<prefix>_<secret>`: the prefix (16 hex digits) names it
//!   in the store, the secret (64 hex digits, 256 random bits) proves it.
//!   The store keeps only the secret's SHA-256 (a random secret needs no
//!   slow hash); the whole key is shown once, when it is made.
//! - [`Auth`] checks every call in one place, before any service sees
//!   it: no or a malformed key, an unknown key, a wrong secret (compared in
//!   constant time), a revoked or expired key are UNAUTHENTICATED; a key
//!   without the scope the method needs is PERMISSION_DENIED. The caller's
//!   tenant rides on the request as a [`Caller`], which the API layer reads;
//!   the tenant never comes from the request body.
//! - Health checks and reflection are public (`auth.public_health`).
//! - A key read from the store is trusted for `auth.cache_secs`; a
//!   revocation takes effect within that time on every replica.
//!
//! With `auth.enabled = false` every call belongs to `api.default_tenant`;
//! the settings refuse that mode on an address other hosts can reach.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use omniroute_domain::{ApiKey, NewApiKey};
use omniroute_store::StoreError;
use omniroute_store::prelude::*;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;
use uuid::Uuid;

use crate::api::layer::{Around, Next, Reply, Request, Sendable};

/// Every scope a key may hold.
pub const SCOPES: [&str; 12] = [
    "messages.send",
    "messages.read",
    "contacts.read",
    "contacts.write",
    "preferences.write",
    "callbacks.read",
    "callbacks.write",
    "events.subscribe",
    "endpoints.read",
    "endpoints.write",
    "admin",
    "*",
];

/// What a gRPC method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing (health, reflection).
    Public,
    /// A key with this scope.
    Scope(&'static str),
}

/// The scope each method of the v1 API needs; a method not named here
/// (a future one) needs `admin` until it is.
pub fn need(path: &str) -> Need {
    if path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.") {
        return Need::Public;
    }
    let Some((service, method)) = path
        .strip_prefix("/omniroute.v1.")
        .and_then(|p| p.split_once('/'))
    else {
        return Need::Scope("admin");
    };
    Need::Scope(match (service, method) {
        ("ContactService", "GetContact" | "ListContacts" | "LookupContact" | "ExportContact") => {
            "contacts.read"
        }
        ("ContactService", _) => "contacts.write",
        ("PreferenceService", "GetPreferences" | "ListConsentRecords") => "contacts.read",
        ("PreferenceService", _) => "preferences.write",
        (
            "MessagingService",
            "GetMessage" | "ListMessages" | "GetMessageMedia" | "PreviewRoute",
        ) => "messages.read",
        ("MessagingService", _) => "messages.send",
        ("CallbackService", "GetCallback" | "ListCallbacks") => "callbacks.read",
        ("CallbackService", _) => "callbacks.write",
        ("EventService", _) => "events.subscribe",
        ("EndpointService", "GetEndpoint" | "ListEndpoints" | "ListEndpointDeliveries") => {
            "endpoints.read"
        }
        ("EndpointService", _) => "endpoints.write",
        _ => "admin",
    })
}

/// Whether `scopes` grant `scope`: by name, or `*` (every scope of the
/// key's tenant). `admin` is granted only by name.
pub fn grants(scopes: &[String], scope: &str) -> bool {
    scopes
        .iter()
        .any(|s| s == scope || (s == "*" && scope != "admin"))
}

/// The scopes of `scopes` no method knows, with their positions.
pub fn unknown_scopes(scopes: &[String]) -> impl Iterator<Item = (usize, &String)> {
    scopes
        .iter()
        .enumerate()
        .filter(|(_, s)| !SCOPES.contains(&s.as_str()))
}

/// Who is calling, for the API layer: put on the request by [`Auth`].
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's tenant.
    pub tenant: Arc<str>,
    pub key_id: Uuid,
    pub scopes: Arc<[String]>,
}

/// A key just made: the record, and the key itself (shown once).
#[derive(Debug)]
pub struct IssuedKey {
    /// What the store keeps.
    pub record: ApiKey,
    /// `omr_<prefix>_<secret>`: give it to the caller; it is never shown
    /// again.
    pub token: String,
}

fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// A scope no method knows.
    #[error("unknown scope {0:?}; one of {SCOPES:?}")]
    UnknownScope(String),
    /// No scope at all.
    #[error("a key needs at least one scope")]
    NoScope,
    /// The system's random source failed.
    #[error("no randomness: {0}")]
    Random(String),
    /// The store refused or failed (an unknown tenant is NotFound).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Makes a key for `tenant` with `scopes`, valid until `expire_time`.
pub async fn issue(
    store: &dyn Store,
    tenant: &str,
    name: &str,
    scopes: &[String],
    expire_time: Option<SystemTime>,
) -> Result<IssuedKey, IssueError> {
    if scopes.is_empty() {
        return Err(IssueError::NoScope);
    }
    if let Some((_, unknown)) = unknown_scopes(scopes).next() {
        return Err(IssueError::UnknownScope(unknown.clone()));
    }
    let random = |n| random_hex(n).map_err(|e| IssueError::Random(e.to_string()));
    let prefix = random(8)?;
    let secret = random(32)?;
    let record = store
        .create_api_key(NewApiKey {
            id: Uuid::now_v7(),
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            prefix: prefix.clone(),
            secret_hash: digest(&secret),
            scopes: scopes.to_vec(),
            expire_time,
        })
        .await?;
    Ok(IssuedKey {
        record,
        token: format!("omr_{prefix}_{secret}"),
    })
}

/// The prefix and secret of a presented key, if it has the key's form.
fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("omr_")?;
    let (prefix, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(prefix, 16) && hex(secret, 64)).then_some((prefix, secret))
}

/// Checks presented keys against the store, with a short cache.
#[derive(Debug)]
pub struct Authenticator {
    store: Arc<dyn Store>,
    public_health: bool,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Option<ApiKey>, Instant)>>,
}

/// The cache's size beyond which it is emptied (keys are few; presented
/// garbage must not grow it without bound).
const CACHE_LIMIT: usize = 10_000;

impl Authenticator {
    /// An authenticator reading keys from `store`.
    pub fn new(store: Arc<dyn Store>, public_health: bool, ttl: Duration) -> Authenticator {
        Authenticator {
            store,
            public_health,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn key(&self, prefix: &str) -> Result<Option<ApiKey>, StoreError> {
        let now = Instant::now();
        if let Some((key, at)) = self.cache.lock().ok().and_then(|c| c.get(prefix).cloned())
            && now.duration_since(at) < self.ttl
        {
            return Ok(key);
        }
        let key = self.store.find_api_key(prefix).await?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(prefix.to_owned(), (key.clone(), now));
        }
        Ok(key)
    }

    /// Who a call to `path` with `authorization` comes from, or why it is
    /// refused. `None`: a public method.
    pub async fn check(
        &self,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Option<Caller>, AuthError> {
        let scope = match need(path) {
            Need::Public if self.public_health => return Ok(None),
            Need::Public => "admin",
            Need::Scope(scope) => scope,
        };
        let unauthenticated = |why: &str| AuthError::Unauthenticated(why.to_owned());
        let Some(header) = authorization else {
            return Err(unauthenticated(
                "no API key: send the metadata \"authorization: Bearer omr_…\"",
            ));
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .unwrap_or_default();
        let Some((prefix, secret)) = parse(token) else {
            return Err(unauthenticated(
                "the authorization is not \"Bearer\" and an API key (omr_…)",
            ));
        };
        let key = match self.key(prefix).await {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(error = %omniroute_store::error_chain(&e), "reading an API key failed");
                return Err(AuthError::Unavailable);
            }
        };
        // The same answer for an unknown key and a wrong secret.
        let Some(key) = key.filter(|k| bool::from(k.secret_hash.ct_eq(&digest(secret)))) else {
            return Err(unauthenticated("the API key is not valid"));
        };
        let now = SystemTime::now();
        if key.revoke_time.is_some_and(|t| t <= now) {
            return Err(unauthenticated("the API key was revoked"));
        }
        if key.expire_time.is_some_and(|t| t <= now) {
            return Err(unauthenticated("the API key has expired"));
        }
        if !grants(&key.scopes, scope) {
            return Err(AuthError::PermissionDenied(format!(
                "the API key lacks the scope {scope} that {path} needs"
            )));
        }
        Ok(Some(Caller {
            tenant: Arc::from(key.tenant.as_str()),
            key_id: key.id,
            scopes: key.scopes.into(),
        }))
    }
}

/// Why a call is refused before it reaches a service; `api/error.rs` makes
/// it a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No key, a malformed one, or one that is unknown, revoked or expired
    /// (UNAUTHENTICATED), with what the caller should know.
    #[error("{0}")]
    Unauthenticated(String),
    /// The key cannot be checked now: the store is unreachable
    /// (UNAVAILABLE).
    #[error("the key cannot be checked now; try again shortly")]
    Unavailable,
    /// The key lacks the method's scope (PERMISSION_DENIED).
    #[error("{0}")]
    PermissionDenied(String),
}

/// Checks every call's API key before any service sees it; `None` lets
/// every call through (authentication off).
#[derive(Debug, Clone)]
pub struct Auth {
    auth: Option<Arc<Authenticator>>,
}

impl Auth {
    /// Checks calls with `auth`, or none.
    pub fn new(auth: Option<Arc<Authenticator>>) -> Auth {
        Auth { auth }
    }
}

impl Around for Auth {
    fn around<S: Next<B>, B: Sendable>(&self, request: Request<B>, next: S) -> Reply<S::Error> {
        let auth = self.auth.clone();
        Box::pin(async move {
            let mut request = request;
            if let Some(auth) = auth {
                let header = request
                    .headers()
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match auth.check(request.uri().path(), header.as_deref()).await {
                    Ok(Some(caller)) => {
                        request.extensions_mut().insert(caller);
                    }
                    Ok(None) => {}
                    Err(refused) => return Ok(Status::from(refused).into_http()),
                }
            }
            next.pass(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_needs_its_scope() {
        assert_eq!(need("/grpc.health.v1.Health/Check"), Need::Public);
        assert_eq!(
            need("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Need::Public
        );
        for (path, scope) in [
            ("/omniroute.v1.ContactService/GetContact", "contacts.read"),
            (
                "/omniroute.v1.ContactService/MergeContacts",
                "contacts.write",
            ),
            (
                "/omniroute.v1.PreferenceService/GetPreferences",
                "contacts.read",
            ),
            (
                "/omniroute.v1.PreferenceService/CreateConsentRecord",
                "preferences.write",
            ),
            (
                "/omniroute.v1.MessagingService/SendMessage",
                "messages.send",
            ),
            (
                "/omniroute.v1.MessagingService/GetMessageMedia",
                "messages.read",
            ),
            (
                "/omniroute.v1.CallbackService/CreateCallback",
                "callbacks.write",
            ),
            (
                "/omniroute.v1.CallbackService/ListCallbacks",
                "callbacks.read",
            ),
            ("/omniroute.v1.EventService/Subscribe", "events.subscribe"),
            ("/omniroute.v1.AdminService/CreateApiKey", "admin"),
            ("/omniroute.v1.FutureService/Anything", "admin"),
            ("/elsewhere/Thing", "admin"),
        ] {
            assert_eq!(need(path), Need::Scope(scope), "{path}");
        }
    }

    #[test]
    fn star_grants_all_but_admin() {
        let star = vec!["*".to_owned()];
        assert!(grants(&star, "messages.send"));
        assert!(!grants(&star, "admin"));
        assert!(grants(&["admin".to_owned()], "admin"));
        assert!(!grants(&["messages.read".to_owned()], "messages.send"));
    }

    #[test]
    fn keys_have_one_form() {
        let token = format!("omr_{}_{}", "a".repeat(16), "0f".repeat(32));
        assert_eq!(parse(&token).map(|(p, _)| p.len()), Some(16));
        for bad in [
            "",
            "omr_",
            "omr_abc_def",
            "xyz_aaaaaaaaaaaaaaaa_0f0f",
            &format!("omr_{}_{}", "g".repeat(16), "0f".repeat(32)),
            &format!("omr_{}_{}", "a".repeat(16), "0f".repeat(31)),
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
