//! Twilio Programmable Voice (PROTOCOLS §2): calls created with a form POST
//! to `/2010-04-01/Accounts/{AccountSid}/Calls.json` (HTTP Basic auth with
//! the account id and auth token) carrying their TwiML inline; progress and
//! pressed digits come back as form POSTs signed with `X-Twilio-Signature`.

pub mod callbacks;
pub mod error;
pub mod languages;
pub mod signature;
pub mod twiml;

use std::sync::Arc;

use async_trait::async_trait;
use omniroute_channel::{AdapterError, ErrorClass, WebhookRequest};

use crate::config::VoiceConfig;
use crate::provider::{Answer, CallState, Callback, End, Next, PlaceCall, VoiceProvider};

/// The most characters of TwiML a call takes inline (`Twiml`; PROTOCOLS
/// §2, error 32018): longer is fetched from a `Url`.
pub const MAX_INLINE_TWIML: usize = 4000;

/// The Twilio REST API.
#[derive(Debug)]
pub struct Twilio {
    http: reqwest::Client,
    api_base: String,
    account_sid: String,
    auth_token: String,
}

fn configuration(what: &str, e: impl std::fmt::Display) -> AdapterError {
    AdapterError::new(
        ErrorClass::Configuration,
        "http_client",
        format!("{what}: {e}"),
    )
}

/// An HTTP client on rustls with *ring* and the platform's roots.
pub fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, AdapterError> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| configuration("tls setup", e))?
        .with_platform_verifier()
        .map_err(|e| configuration("tls setup", e))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .user_agent(concat!("omniroute-voice/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| configuration("http client", e))
}

impl Twilio {
    /// A client for `config`'s account.
    pub fn new(config: &VoiceConfig) -> Result<Twilio, AdapterError> {
        let http = http_client(config.request_timeout)?;
        Ok(Twilio {
            http,
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            account_sid: config.account_sid.clone(),
            auth_token: config.auth_token.clone(),
        })
    }

    fn url(&self, tail: &str) -> String {
        format!(
            "{}/2010-04-01/Accounts/{}{tail}",
            self.api_base, self.account_sid
        )
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, AdapterError> {
        let response = request
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .send()
            .await
            .map_err(|e| error::transport(&e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| error::transport(&e))?;
        if !(200..300).contains(&status) {
            return Err(error::from_response(status, &body, retry_after.as_deref()));
        }
        serde_json::from_slice(&body).map_err(|e| {
            AdapterError::new(
                ErrorClass::Transient,
                "bad_response",
                format!("not a call: {e}"),
            )
        })
    }
}

#[async_trait]
impl VoiceProvider for Twilio {
    async fn place_call(&self, call: &PlaceCall) -> Result<String, AdapterError> {
        let mut form = vec![("To", call.to.clone()), ("From", call.from.clone())];
        match &call.answer {
            Answer::Script(script) => {
                // Twiml longer than Twilio takes with a call (error 32018)
                // is asked of the router when the call is answered.
                let twiml = twiml::render(script);
                if twiml.chars().count() <= MAX_INLINE_TWIML || script.url.is_empty() {
                    form.push(("Twiml", twiml));
                } else {
                    form.push(("Url", script.url.clone()));
                    form.push(("Method", "POST".to_owned()));
                }
            }
            Answer::Fetch {
                url,
                detect_machine,
            } => {
                form.push(("Url", url.clone()));
                form.push(("Method", "POST".to_owned()));
                if *detect_machine {
                    form.push(("MachineDetection", "Enable".to_owned()));
                }
            }
        }
        form.extend([
            ("StatusCallback", call.status_url.clone()),
            ("StatusCallbackMethod", "POST".to_owned()),
            ("StatusCallbackEvent", "ringing".to_owned()),
            ("StatusCallbackEvent", "answered".to_owned()),
            ("StatusCallbackEvent", "completed".to_owned()),
            ("Timeout", call.ring_seconds.clamp(5, 600).to_string()),
        ]);
        let body = form_body(&form);
        let mut request = self
            .http
            .post(self.url("/Calls.json"))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        if !call.trace_parent.is_empty() {
            request = request.header("traceparent", &call.trace_parent);
        }
        let answer = self.call(request).await?;
        answer["sid"]
            .as_str()
            .filter(|sid| sid.starts_with("CA"))
            .map(str::to_owned)
            .ok_or_else(|| {
                AdapterError::new(
                    ErrorClass::Transient,
                    "bad_response",
                    "a call without a sid",
                )
            })
    }

    async fn end_call(&self, call_id: &str, how: End) -> Result<(), AdapterError> {
        // PROTOCOLS §2: POST …/Calls/{Sid}.json with Status=canceled
        // (queued or ringing) or completed (in progress).
        let status = match how {
            End::Cancel => "canceled",
            End::HangUp => "completed",
        };
        self.call(
            self.http
                .post(self.url(&format!("/Calls/{call_id}.json")))
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form_body(&[("Status", status.to_owned())])),
        )
        .await
        .map(|_| ())
    }

    async fn call_state(&self, call_id: &str) -> Result<(CallState, String), AdapterError> {
        let answer = self
            .call(self.http.get(self.url(&format!("/Calls/{call_id}.json"))))
            .await?;
        let raw = answer["status"].as_str().unwrap_or_default().to_owned();
        let state = callbacks::state(&raw).ok_or_else(|| {
            AdapterError::new(
                ErrorClass::Transient,
                "bad_response",
                format!("call status {raw:?}"),
            )
        })?;
        Ok((state, raw))
    }

    fn verify(&self, url: &str, request: &WebhookRequest<'_>) -> Result<(), AdapterError> {
        let refused =
            |why: &str| AdapterError::new(ErrorClass::Configuration, "bad_signature", why);
        let Some(given) = request.header(signature::HEADER) else {
            return Err(refused("no X-Twilio-Signature"));
        };
        let params = callbacks::form(request.body);
        if !signature::verify(&self.auth_token, url, &params, given) {
            return Err(refused("X-Twilio-Signature does not match"));
        }
        // Twilio signs with the token of the account it names: a request
        // naming another account (or none) is not one of ours, however it
        // was signed.
        let account = params
            .iter()
            .find(|(k, _)| k == "AccountSid")
            .map(|(_, v)| v.as_str());
        if account != Some(self.account_sid.as_str()) {
            return Err(refused("a request for another Twilio account"));
        }
        Ok(())
    }

    fn parse(&self, body: &[u8]) -> Result<Callback, AdapterError> {
        callbacks::parse(body)
    }

    fn render(&self, next: &Next) -> (&'static str, String) {
        let xml = match next {
            Next::Bridge(bridge) => twiml::bridge(bridge),
            Next::Script(script) => twiml::render(script),
            Next::HangUp => twiml::HANG_UP.to_owned(),
            Next::SayAndHangUp { say, language } => twiml::render(&crate::provider::Script {
                say: say.clone(),
                language: language.clone(),
                gather_url: None,
                url: String::new(),
            }),
        };
        ("text/xml", xml)
    }

    fn language(&self, locale: &str) -> Option<String> {
        languages::say_language(locale)
    }

    async fn health(&self) -> Result<(), AdapterError> {
        self.call(self.http.get(self.url(".json")))
            .await
            .map(|_| ())
    }
}

/// Percent-encodes a form value (`application/x-www-form-urlencoded`).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3 / 2);
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A form body of `pairs`, in order (repeated keys repeated).
pub fn form_body(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}
