//! Outbound webhook endpoints: registering the URLs a tenant's events go
//! to (Standard Webhooks), their signing secrets, and the rules a URL must
//! meet. Delivery is not built yet: this is the registry it will read.
//!
//! A signing secret is `whsec_` and the base64 of 24 random bytes. It is
//! shown once, in the answer of [`App::create_endpoint`] or
//! [`App::rotate_endpoint_secret`], and reaches the store only sealed:
//! AES-256-GCM under `endpoints.secret_key`, a random nonce per sealing
//! stored before the ciphertext, the tenant and the endpoint's id as
//! associated data (a sealed secret copied to another endpoint or tenant
//! does not open). Without a key every call is refused
//! ([`AppError::Precondition`]): a secret is never stored in clear.
//!
//! A URL ([`check_url`]) is `https://`, or `http://` to a loopback host
//! when `endpoints.allow_http_loopback` is set; it has no user info and no
//! fragment; a host that is a literal private, loopback, link-local,
//! unique-local, unspecified, broadcast or multicast address is refused
//! unless `endpoints.allow_private_targets` is set. Names are not resolved
//! here: the delivery checks the address it connects to (`deliveries/`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use omniroute_domain::{Endpoint, EndpointPatch, NewEndpoint, SealedSecret, SecretRotation};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

use super::{App, AppError};
use crate::settings::EndpointSettings;

/// Random bytes in a signing secret (Standard Webhooks: 24 to 64).
const SECRET_BYTES: usize = 24;

/// How long the previous secret stays valid after a rotation, by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// The longest grace a rotation may give.
pub const MAX_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The longest URL accepted.
const MAX_URL_LEN: usize = 2000;

/// A signing secret in clear (`whsec_…`), for the one answer that shows
/// it. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClearSecret(String);

impl ClearSecret {
    /// The secret, to be shown to the caller once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClearSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClearSecret(***)")
    }
}

/// Seals and opens signing secrets under the configured key.
pub struct Sealer {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

/// What a sealed secret is bound to: its tenant and endpoint.
fn associated(tenant: &str, id: Uuid) -> Vec<u8> {
    let mut aad = Vec::with_capacity(tenant.len() + 17);
    aad.extend_from_slice(tenant.as_bytes());
    aad.push(0);
    aad.extend_from_slice(id.as_bytes());
    aad
}

impl Sealer {
    /// A sealer under a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Sealer {
        let key = UnboundKey::new(&AES_256_GCM, key).unwrap_or_else(|_| unreachable!());
        Sealer {
            key: LessSafeKey::new(key),
            random: SystemRandom::new(),
        }
    }

    fn random<const N: usize>(&self) -> Result<[u8; N], AppError> {
        let mut bytes = [0u8; N];
        self.random
            .fill(&mut bytes)
            .map_err(|_| AppError::Precondition("no randomness available".to_owned()))?;
        Ok(bytes)
    }

    /// A new secret for endpoint `id` of `tenant`: in clear, and sealed.
    pub fn generate(
        &self,
        tenant: &str,
        id: Uuid,
    ) -> Result<(ClearSecret, SealedSecret), AppError> {
        let raw: [u8; SECRET_BYTES] = self.random()?;
        let sealed = self.seal(tenant, id, &raw)?;
        Ok((
            ClearSecret(format!("whsec_{}", STANDARD.encode(raw))),
            sealed,
        ))
    }

    /// `secret` sealed for endpoint `id` of `tenant`: nonce, then
    /// ciphertext and tag.
    fn seal(&self, tenant: &str, id: Uuid, secret: &[u8]) -> Result<SealedSecret, AppError> {
        let nonce: [u8; NONCE_LEN] = self.random()?;
        let mut data = secret.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated(tenant, id)),
                &mut data,
            )
            .map_err(|_| AppError::Precondition("cannot seal the secret".to_owned()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(SealedSecret(out))
    }

    /// The secret sealed for endpoint `id` of `tenant`, in clear; `None`
    /// when it does not open (another key, endpoint or tenant, or
    /// altered).
    pub fn open(&self, tenant: &str, id: Uuid, sealed: &SealedSecret) -> Option<ClearSecret> {
        if sealed.0.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = sealed.0.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut data = data.to_vec();
        let raw = self
            .key
            .open_in_place(nonce, Aad::from(associated(tenant, id)), &mut data)
            .ok()?;
        Some(ClearSecret(format!("whsec_{}", STANDARD.encode(raw))))
    }
}

/// The key of a `whsec_` secret: the base64 after the prefix, decoded.
pub fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix("whsec_")?).ok()
}

/// Which URLs may be registered.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlRules {
    /// `http://` to loopback hosts.
    pub allow_http_loopback: bool,
    /// Literal private (and loopback, link-local, …) addresses.
    pub allow_private_targets: bool,
}

/// Why an address is not a public target, if it is not.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => non_public_v4(v4),
            None => non_public_v6(v6),
        },
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_private() {
        "a private address"
    } else if ip.is_link_local() {
        "a link-local address"
    } else if ip.is_unspecified() || ip.octets()[0] == 0 {
        "an unspecified address"
    } else if ip.is_multicast() || ip.is_broadcast() {
        "a multicast or broadcast address"
    } else if ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64 {
        "a shared (carrier-grade NAT) address"
    } else {
        return None;
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(if ip.is_loopback() {
        "a loopback address"
    } else if ip.is_unspecified() {
        "an unspecified address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if first & 0xffc0 == 0xfe80 {
        "a link-local address"
    } else if first & 0xfe00 == 0xfc00 {
        "a unique-local address"
    } else {
        return None;
    })
}

/// Whether a host (as written in a URL) is a loopback name or address.
fn is_loopback_host(host: &str, ip: Option<IpAddr>) -> bool {
    match ip {
        Some(IpAddr::V4(v4)) => v4.is_loopback(),
        Some(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => host == "localhost" || host.ends_with(".localhost"),
    }
}

/// Checks a URL against the rules; the reason when it is refused.
pub fn check_url(url: &str, rules: UrlRules) -> Result<(), String> {
    if url.is_empty() {
        return Err("a URL is required, like \"https://hooks.example.com/omniroute\"".to_owned());
    }
    if url.len() > MAX_URL_LEN {
        return Err(format!("longer than {MAX_URL_LEN} characters"));
    }
    if url.contains('#') {
        return Err("a URL with a fragment (#…) is not accepted".to_owned());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains spaces or control characters".to_owned());
    }
    let uri: http::Uri = url.parse().map_err(|_| "not a valid URL".to_owned())?;
    let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
    let authority = uri
        .authority()
        .ok_or_else(|| "not an absolute URL with a host".to_owned())?;
    if authority.as_str().contains('@') {
        return Err("a URL with user info (user:password@) is not accepted".to_owned());
    }
    let host = authority.host().to_ascii_lowercase();
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ip: Option<IpAddr> = bare.parse().ok();
    if ip.is_none() && !host.starts_with('[') && looks_numeric(&host) {
        return Err("the host is neither a name nor an address in dotted form".to_owned());
    }
    let loopback = is_loopback_host(&host, ip);
    match scheme.as_str() {
        "https" => {}
        "http" if rules.allow_http_loopback && loopback => return Ok(()),
        "http" if rules.allow_http_loopback => {
            return Err("http:// is accepted only to loopback hosts; use https://".to_owned());
        }
        "http" => return Err("only https:// URLs are accepted".to_owned()),
        _ => {
            return Err(format!(
                "the scheme {scheme:?} is not accepted; use https://"
            ));
        }
    }
    if rules.allow_private_targets {
        return Ok(());
    }
    if loopback && ip.is_none() {
        return Err("the host is a loopback name".to_owned());
    }
    if let Some(why) = ip.and_then(non_public) {
        return Err(format!(
            "the host is {why}; private targets are not accepted (endpoints.allow_private_targets)"
        ));
    }
    Ok(())
}

/// Hosts resolvers might read as an address in another form (`2130706433`,
/// `0x7f.1`, `127.1`): only digits, dots and hex letters after `0x`.
fn looks_numeric(host: &str) -> bool {
    host.split('.').all(|part| {
        !part.is_empty()
            && (part.bytes().all(|b| b.is_ascii_digit())
                || part
                    .strip_prefix("0x")
                    .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit())))
    })
}

/// The endpoints' part of the application: the sealer (when a key is set)
/// and the URL rules.
#[derive(Debug)]
pub struct Endpoints {
    sealer: Option<Sealer>,
    rules: UrlRules,
}

impl Endpoints {
    /// From validated settings.
    pub fn new(settings: &EndpointSettings) -> Endpoints {
        Endpoints {
            sealer: settings.key().map(|key| Sealer::new(&key)),
            rules: UrlRules {
                allow_http_loopback: settings.allow_http_loopback,
                allow_private_targets: settings.allow_private_targets,
            },
        }
    }

    /// The URL rules in force.
    pub fn rules(&self) -> UrlRules {
        self.rules
    }

    fn sealer(&self) -> Result<&Sealer, AppError> {
        self.sealer.as_ref().ok_or_else(|| {
            AppError::Precondition(
                "endpoints need endpoints.secret_key (the key their signing secrets are \
                 sealed with); ask the operator to set it"
                    .to_owned(),
            )
        })
    }
}

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// After this cursor.
    After(omniroute_domain::Cursor),
    /// At the first event at or after this time.
    Time(SystemTime),
}

/// An endpoint to register, as a face validated it (URL rules included).
#[derive(Debug, Clone)]
pub struct EndpointDraft {
    pub url: String,
    pub description: String,
    pub event_types: Vec<omniroute_domain::EventType>,
    pub contact: Option<Uuid>,
    pub disabled: bool,
}

impl App {
    /// Whether endpoints can be served (a key is set).
    pub fn endpoints_ready(&self) -> Result<(), AppError> {
        self.endpoints.sealer().map(|_| ())
    }

    /// The URL rules in force, for faces checking requests.
    pub fn endpoint_url_rules(&self) -> UrlRules {
        self.endpoints.rules()
    }

    /// Registers an endpoint; its secret is returned once.
    pub async fn create_endpoint(
        &self,
        tenant: &str,
        draft: EndpointDraft,
    ) -> Result<(Endpoint, ClearSecret), AppError> {
        let sealer = self.endpoints.sealer()?;
        if let Some(contact) = draft.contact {
            self.store.get_contact(tenant, contact).await?;
        }
        let id = Uuid::now_v7();
        let (clear, sealed) = sealer.generate(tenant, id)?;
        // It receives the events that follow its registration.
        let start = self.store.event_head(tenant).await?;
        let endpoint = self
            .store
            .create_endpoint(
                tenant,
                NewEndpoint {
                    id,
                    url: draft.url,
                    description: draft.description,
                    event_types: draft.event_types,
                    contact: draft.contact,
                    disabled: draft.disabled,
                    secret: sealed,
                    start,
                },
            )
            .await?;
        tracing::info!(endpoint = %endpoint.id, "endpoint created");
        Ok((endpoint, clear))
    }

    /// The keys an endpoint's deliveries are signed with at `now`: its
    /// secret's, then its previous secret's while it is valid (the raw
    /// bytes after `whsec_`). [`AppError::Precondition`] when the current
    /// secret does not open under the configured key.
    pub fn endpoint_signing_keys(
        &self,
        endpoint: &Endpoint,
        now: SystemTime,
    ) -> Result<Vec<Vec<u8>>, AppError> {
        let sealer = self.endpoints.sealer()?;
        let open = |sealed: &SealedSecret| {
            sealer
                .open(&endpoint.tenant, endpoint.id, sealed)
                .and_then(|clear| secret_bytes(clear.expose()))
        };
        let current = open(&endpoint.secret).ok_or_else(|| {
            AppError::Precondition(
                "the endpoint's secret does not open under endpoints.secret_key (was the key \
                 changed?); rotate the secret"
                    .to_owned(),
            )
        })?;
        let mut keys = vec![current];
        let previous_valid = endpoint
            .previous_secret_expire_time
            .is_some_and(|expire| expire > now);
        if let (true, Some(previous)) = (previous_valid, &endpoint.previous_secret) {
            keys.extend(open(previous));
        }
        Ok(keys)
    }

    /// Reads an endpoint.
    pub async fn get_endpoint(&self, tenant: &str, id: Uuid) -> Result<Endpoint, AppError> {
        self.endpoints_ready()?;
        Ok(self.store.get_endpoint(tenant, id).await?)
    }

    /// A page of endpoints after `after`.
    pub async fn list_endpoints(
        &self,
        tenant: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Endpoint>, AppError> {
        self.endpoints_ready()?;
        Ok(self.store.list_endpoints(tenant, after, limit).await?)
    }

    /// Changes an endpoint (its new URL checked by the face).
    pub async fn update_endpoint(
        &self,
        tenant: &str,
        id: Uuid,
        patch: EndpointPatch,
    ) -> Result<Endpoint, AppError> {
        self.endpoints_ready()?;
        if let Some(Some(contact)) = patch.contact {
            self.store.get_contact(tenant, contact).await?;
        }
        let endpoint = self.store.update_endpoint(tenant, id, patch).await?;
        tracing::info!(endpoint = %endpoint.id, "endpoint updated");
        Ok(endpoint)
    }

    /// Deletes an endpoint.
    pub async fn delete_endpoint(&self, tenant: &str, id: Uuid) -> Result<(), AppError> {
        self.endpoints_ready()?;
        self.store.delete_endpoint(tenant, id).await?;
        tracing::info!(endpoint = %id, "endpoint deleted");
        Ok(())
    }

    /// An endpoint's delivery attempts, newest first, before `before`.
    pub async fn list_endpoint_deliveries(
        &self,
        tenant: &str,
        id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<omniroute_domain::DeliveryAttempt>, AppError> {
        self.endpoints_ready()?;
        Ok(self
            .store
            .list_delivery_attempts(tenant, id, before, limit)
            .await?)
    }

    /// Delivers the endpoint's events again from `from` on: after a
    /// cursor of this tenant's log, or from a time.
    pub async fn replay_endpoint(
        &self,
        tenant: &str,
        id: Uuid,
        from: ReplayFrom,
    ) -> Result<Endpoint, AppError> {
        self.endpoints_ready()?;
        let endpoint = self.store.get_endpoint(tenant, id).await?;
        let after = match from {
            ReplayFrom::After(cursor) => match self.store.check_cursor(tenant, cursor).await? {
                omniroute_domain::CursorCheck::Issued => cursor,
                refused => return Err(AppError::Cursor(refused)),
            },
            ReplayFrom::Time(time) => self.store.cursor_before(tenant, time).await?,
        };
        self.store.replay_endpoint(tenant, id, after).await?;
        tracing::info!(endpoint = %id, "endpoint replay requested");
        Ok(endpoint)
    }

    /// Gives an endpoint a new secret, returned once; the previous one
    /// stays valid for `grace` (at most [`MAX_GRACE`]).
    pub async fn rotate_endpoint_secret(
        &self,
        tenant: &str,
        id: Uuid,
        grace: Duration,
    ) -> Result<(Endpoint, ClearSecret), AppError> {
        let sealer = self.endpoints.sealer()?;
        // Whole seconds: the expiry reads back the same from both stores.
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let expire = SystemTime::UNIX_EPOCH + Duration::from_secs((now + grace).as_secs());
        let (clear, sealed) = sealer.generate(tenant, id)?;
        let endpoint = self
            .store
            .rotate_endpoint_secret(
                tenant,
                id,
                SecretRotation {
                    secret: sealed,
                    previous_expire_time: expire,
                },
            )
            .await?;
        tracing::info!(endpoint = %endpoint.id, "endpoint secret rotated");
        Ok((endpoint, clear))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlRules = UrlRules {
        allow_http_loopback: false,
        allow_private_targets: false,
    };

    #[test]
    fn public_https_urls_pass() {
        for url in [
            "https://hooks.example.com/omniroute",
            "https://hooks.example.com:8443/a?b=c",
            "https://93.184.216.34/hook",
            "https://[2606:2800:220:1::1]/hook",
        ] {
            assert_eq!(check_url(url, STRICT), Ok(()), "{url}");
        }
    }

    #[test]
    fn unsafe_urls_are_refused() {
        for url in [
            "",
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com/#frag",
            "https://10.0.0.1/",
            "https://172.16.5.4/",
            "https://192.168.1.1/",
            "https://127.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://0.0.0.0/",
            "https://224.0.0.1/",
            "https://100.64.0.1/",
            "https://[::1]/",
            "https://[::]/",
            "https://[fe80::1]/",
            "https://[fd00::1]/",
            "https://[ff02::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://localhost/",
            "https://2130706433/",
            "https://0x7f.1/",
            "/relative",
            "https://exa mple.com/",
        ] {
            assert!(check_url(url, STRICT).is_err(), "{url}");
        }
    }

    #[test]
    fn settings_open_loopback_and_private_targets() {
        let loopback = UrlRules {
            allow_http_loopback: true,
            allow_private_targets: false,
        };
        assert_eq!(check_url("http://127.0.0.1:8080/hook", loopback), Ok(()));
        assert_eq!(check_url("http://localhost/hook", loopback), Ok(()));
        assert_eq!(check_url("http://[::1]/hook", loopback), Ok(()));
        assert!(check_url("http://hooks.example.com/", loopback).is_err());
        assert!(check_url("http://10.0.0.1/", loopback).is_err());
        let private = UrlRules {
            allow_http_loopback: false,
            allow_private_targets: true,
        };
        assert_eq!(check_url("https://10.0.0.1/", private), Ok(()));
        assert!(check_url("http://10.0.0.1/", private).is_err());
    }

    #[test]
    fn secrets_seal_and_open_only_for_their_endpoint() {
        let sealer = Sealer::new(&[3u8; 32]);
        let id = Uuid::now_v7();
        let (clear, sealed) = sealer.generate("acme", id).unwrap();
        assert!(clear.expose().starts_with("whsec_"));
        let raw = STANDARD.decode(&clear.expose()[6..]).unwrap();
        assert_eq!(raw.len(), SECRET_BYTES);
        // Not in clear in what is stored, and not twice the same.
        assert!(!sealed.0.windows(raw.len()).any(|w| w == raw.as_slice()));
        assert_ne!(sealed, sealer.generate("acme", id).unwrap().1);
        assert_eq!(sealer.open("acme", id, &sealed), Some(clear.clone()));
        assert_eq!(sealer.open("globex", id, &sealed), None);
        assert_eq!(sealer.open("acme", Uuid::now_v7(), &sealed), None);
        assert_eq!(Sealer::new(&[4u8; 32]).open("acme", id, &sealed), None);
        assert!(!format!("{clear:?}").contains("whsec_"));
    }
}
