//! The HTTP client deliveries use, and what it refuses.
//!
//! - An address is checked when the client connects, not only when the
//!   endpoint was registered: every name is resolved by [`Guard`], which
//!   drops addresses that are not public (loopback, private, link-local,
//!   unique-local, CGNAT, multicast, unspecified; see
//!   `app::endpoints::non_public`) unless `endpoints.allow_private_targets`
//!   is set. Loopback addresses are allowed for loopback names
//!   (`localhost`) when `endpoints.allow_http_loopback` is set. A name
//!   that resolves only to refused addresses fails the attempt. A URL whose
//!   host is a literal address skips resolution, so each attempt checks
//!   its URL against the registration rules first ([`Sender::send`]).
//! - Redirects are not followed (a 3xx answer is a failure), no proxy from
//!   the environment is used, an answer's body is read up to
//!   [`MAX_ANSWER`] bytes and dropped, and each request has a deadline.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::app::endpoints::{UrlRules, check_url, non_public};

/// The most of an answer's body read (then dropped).
pub const MAX_ANSWER: usize = 64 * 1024;

/// Resolves names and keeps only the addresses deliveries may reach.
#[derive(Debug, Clone)]
struct Guard {
    rules: UrlRules,
    pinned: Arc<BTreeMap<String, IpAddr>>,
}

/// Why `ip` may not be reached for `host`, if it may not.
fn refused(ip: IpAddr, host: &str, rules: UrlRules) -> Option<&'static str> {
    if rules.allow_private_targets {
        return None;
    }
    let loopback_name = host == "localhost" || host.ends_with(".localhost");
    if loopback_name && rules.allow_http_loopback && ip.is_loopback() {
        return None;
    }
    non_public(ip)
}

impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        let pinned = self.pinned.get(&host).copied();
        let rules = self.rules;
        Box::pin(async move {
            let found: Vec<SocketAddr> = match pinned {
                Some(ip) => vec![SocketAddr::new(ip, 0)],
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let mut why = "no address";
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match refused(a.ip(), &host, rules) {
                    None => true,
                    Some(reason) => {
                        why = reason;
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(format!(
                    "{host} resolves to {why}; private targets are not accepted \
                     (endpoints.allow_private_targets)"
                )
                .into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// What an endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After`, in seconds or as an HTTP date, as a wait from now.
    pub retry_after: Option<Duration>,
}

/// Sends signed deliveries.
#[derive(Debug, Clone)]
pub struct Sender {
    http: reqwest::Client,
    rules: UrlRules,
}

impl Sender {
    /// A sender under `rules`, with names in `pinned` resolved to their
    /// address, each request taking at most `timeout`.
    pub fn new(
        rules: UrlRules,
        pinned: BTreeMap<String, IpAddr>,
        timeout: Duration,
    ) -> anyhow::Result<Sender> {
        use rustls_platform_verifier::BuilderVerifierExt as _;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_platform_verifier()?
            .with_no_client_auth();
        let pinned = pinned
            .into_iter()
            .map(|(name, ip)| (name.to_ascii_lowercase(), ip))
            .collect();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .dns_resolver(Guard {
                rules,
                pinned: Arc::new(pinned),
            })
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("omniroute-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender { http, rules })
    }

    /// Posts `body` to `url` with `headers`; the endpoint's answer, or why
    /// there was none (never naming the URL: it may carry a token).
    pub async fn send(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        check_url(url, self.rules).map_err(|why| format!("refused: {why}"))?;
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request
            .body(body)
            .send()
            .await
            .map_err(|e| describe(&e.without_url()))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let mut read = 0usize;
        while read < MAX_ANSWER {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) => break,
                Err(e) => return Err(describe(&e.without_url())),
            }
        }
        Ok(Answer {
            status,
            retry_after,
        })
    }
}

/// An error and its causes, for the attempt's log.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Retry-After` as a wait: delay-seconds, or an HTTP date from now.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_both_forms() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let later = std::time::SystemTime::now() + Duration::from_secs(3600);
        let wait = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(wait > Duration::from_secs(3500) && wait <= Duration::from_secs(3600));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn loopback_only_for_loopback_names_when_allowed() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let tests = UrlRules {
            allow_http_loopback: true,
            allow_private_targets: false,
        };
        assert_eq!(refused(loopback, "localhost", tests), None);
        assert!(refused(loopback, "hooks.example.com", tests).is_some());
        assert!(refused(metadata, "hooks.example.com", tests).is_some());
        assert_eq!(refused(public, "hooks.example.com", tests), None);
        assert!(refused(loopback, "localhost", UrlRules::default()).is_some());
        let open = UrlRules {
            allow_http_loopback: false,
            allow_private_targets: true,
        };
        assert_eq!(refused(metadata, "hooks.example.com", open), None);
    }
}
