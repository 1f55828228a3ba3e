//! HTTP plumbing to the Graph API: URLs, the bearer token, timeouts, TLS,
//! and turning every answer into a value or a classified [`AdapterError`].
//!
//! Guarantees: the access token is sent only to the configured base URL
//! (marked sensitive, never printed: this type's `Debug` omits it); every
//! failure leaves here classified (error.rs decides the class); TLS uses
//! rustls with the *ring* provider chosen here, per client, so the process
//! needs no global crypto provider and never builds aws-lc. Plain `http://`
//! base URLs work too (the fake Graph API in tests).

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use omniroute_channel::{AdapterError, ErrorClass};
use reqwest::header::RETRY_AFTER;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::WhatsAppConfig;
use crate::error;

/// A Graph API client with one set of credentials.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    /// `{base_url}/{version}`, without a trailing slash.
    root: String,
    /// `{base_url}/`, to recognise our own host in paging links.
    host: String,
    token: Arc<str>,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// rustls with ring, the platform's roots, and HTTP/2 or 1.1 by ALPN.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

impl GraphClient {
    /// A client for `config`'s base URL, version, token and timeout.
    pub fn new(config: &WhatsAppConfig) -> Result<Self, AdapterError> {
        let tls = tls_config().map_err(|e| {
            AdapterError::new(ErrorClass::Configuration, "tls", format!("tls setup: {e}"))
        })?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(config.request_timeout)
            .user_agent(concat!("omniroute-whatsapp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                AdapterError::new(
                    ErrorClass::Configuration,
                    "http_client",
                    format!("http client: {e}"),
                )
            })?;
        let base = config.base_url.trim_end_matches('/');
        Ok(GraphClient {
            http,
            root: format!("{base}/{}", config.api_version.trim_matches('/')),
            host: format!("{base}/"),
            token: config.access_token.as_str().into(),
        })
    }

    /// `{base}/{version}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.root, path.trim_start_matches('/'))
    }

    /// Whether `url` points at the configured Graph host (where the token
    /// may go).
    pub fn is_own_url(&self, url: &str) -> bool {
        url.starts_with(&self.host)
    }

    /// POSTs `body` as JSON, in the trace `traceparent` names (W3C; none
    /// when empty), and decodes the answer.
    pub async fn post<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        url: &str,
        body: &B,
        traceparent: &str,
    ) -> Result<R, AdapterError> {
        let mut request = self.http.post(url).bearer_auth(&self.token).json(body);
        if !traceparent.is_empty() {
            request = request.header("traceparent", traceparent);
        }
        self.execute(request).await
    }

    /// GETs `url` and decodes the answer.
    pub async fn get<R: DeserializeOwned>(&self, url: &str) -> Result<R, AdapterError> {
        let request = self.http.get(url).bearer_auth(&self.token);
        self.execute(request).await
    }

    /// GETs `url` with the token (media downloads: Meta's media host wants
    /// the same bearer token) and returns the body, at most `max_bytes`, with
    /// its content type.
    pub async fn get_bytes(
        &self,
        url: &str,
        max_bytes: usize,
    ) -> Result<(String, Vec<u8>), AdapterError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| error::from_transport(&e))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response
            .bytes()
            .await
            .map_err(|e| error::from_transport(&e))?;
        if !status.is_success() {
            return Err(error::from_response(status.as_u16(), &body, None));
        }
        if body.len() > max_bytes {
            return Err(AdapterError::new(
                ErrorClass::Permanent,
                "media_too_large",
                format!("the media is larger than {max_bytes} bytes"),
            ));
        }
        Ok((content_type, body.to_vec()))
    }

    async fn execute<R: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<R, AdapterError> {
        let response = request
            .send()
            .await
            .map_err(|e| error::from_transport(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| error::parse_retry_after(v, SystemTime::now()));
        let body = response
            .bytes()
            .await
            .map_err(|e| error::from_transport(&e))?;
        if !status.is_success() {
            let error = error::from_response(status.as_u16(), &body, retry_after);
            tracing::debug!(
                status = status.as_u16(),
                code = error.code(),
                class = error.class().as_str(),
                "graph api error"
            );
            return Err(error);
        }
        serde_json::from_slice(&body).map_err(|e| {
            // Accepted but unreadable: retrying may duplicate, but dropping
            // would lose the message; a bounded retry is the lesser harm.
            AdapterError::new(
                ErrorClass::Transient,
                "malformed_response",
                format!("unexpected graph api answer: {e}"),
            )
        })
    }
}
