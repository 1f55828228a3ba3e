//! Typed settings, layered: built-in defaults, then an optional TOML file, then
//! `OMNIROUTE__SECTION__KEY` environment variables (for example
//! `OMNIROUTE__GRPC__LISTEN=0.0.0.0:50051`).
//!
//! Loading validates everything once, at start-up; every error names the key
//! at fault and where its value came from. Unknown keys are errors too, so a
//! typo never silently falls back to a default. `deploy/omniroute.toml`
//! documents every key; a test keeps it in step with this file.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::Serialized;
use omniroute_channel::PhoneRegion;
use serde::{Deserialize, Serialize};

mod auth;
mod email;
mod endpoints;
mod metrics;
mod nats;
mod quotas;
mod routing;
mod secrets;
mod tls;
mod voice;
mod whatsapp;
pub use auth::AuthSettings;
pub use email::{EmailSender, EmailSettings};
pub use endpoints::EndpointSettings;
pub use metrics::MetricsSettings;
pub use nats::NatsSettings;
pub use quotas::{QuotaSettings, TenantQuota};
pub use routing::{CallMeButton, MissedCallCallback, RoutingSettings, TenantRouting};
#[cfg(test)]
pub(crate) use tls::testing as tls_testing;
pub use tls::{Material, TlsSettings, provider as tls_provider};
pub use voice::{VoiceNumberSettings, VoiceSettings};
pub use whatsapp::{WhatsAppNumber, WhatsAppSettings};

/// Whether `url` is a public `https://` address, or a plain one on this
/// host (for local runs and tests): what providers may be sent to call back.
pub(crate) fn is_callback_url(url: &str) -> bool {
    url.starts_with("https://")
        || ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|l| url.starts_with(l))
}

/// The key a validation refused (tests of the sections).
#[cfg(test)]
pub(crate) fn refused_key(result: Result<(), SettingsError>) -> &'static str {
    match result {
        Err(SettingsError::Invalid { key, .. }) => key,
        other => panic!("{other:?}"),
    }
}

/// A change that breaks a section (tests of the sections).
#[cfg(test)]
type Break<S> = fn(&mut S);

/// Checks a section's validation (tests of the sections): off (the
/// default) it needs nothing, `enabled` passes, and each change in
/// `broken`, made to `enabled`, is refused at its key.
#[cfg(test)]
pub(crate) fn check_refusals<S: Default>(
    validate: fn(&S) -> Result<(), SettingsError>,
    enabled: fn() -> S,
    broken: &[(&str, Break<S>)],
) {
    assert!(validate(&S::default()).is_ok(), "off needs nothing");
    assert!(validate(&enabled()).is_ok());
    for (key, change) in broken {
        let mut section = enabled();
        change(&mut section);
        assert_eq!(refused_key(validate(&section)), *key);
    }
}

/// A value that must never reach a log: Debug and Display print `***`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no value is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

/// All settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The gRPC listener.
    pub grpc: GrpcSettings,
    /// Where data lives.
    pub store: StoreSettings,
    /// How contact data is read.
    pub contacts: ContactSettings,
    /// API behaviour.
    pub api: ApiSettings,
    /// Logging.
    pub log: LogSettings,
    /// The dispatcher.
    pub dispatch: DispatchSettings,
    /// The event log.
    pub events: EventSettings,
    /// Sandbox channels.
    pub sandbox: SandboxSettings,
    /// The HTTP listener for provider webhooks.
    pub http: HttpSettings,
    /// WhatsApp Business (Cloud API).
    pub whatsapp: WhatsAppSettings,
    /// Email through an SMTP relay.
    pub email: EmailSettings,
    /// Voice through Twilio Programmable Voice.
    pub voice: VoiceSettings,
    /// Routing defaults per tenant.
    pub routing: RoutingSettings,
    /// Authentication of gRPC callers.
    pub auth: AuthSettings,
    /// The Prometheus endpoint.
    pub metrics: MetricsSettings,
    /// Per-tenant send quotas.
    pub quotas: QuotaSettings,
    /// TLS on the gRPC and webhook listeners.
    pub tls: TlsSettings,
    /// Outbound webhook endpoints.
    pub endpoints: EndpointSettings,
    /// The event log published to NATS JetStream.
    pub nats: NatsSettings,
}

/// The HTTP listener for provider webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest webhook body accepted, in bytes (larger ones get 413).
    pub max_body_bytes: usize,
    /// Seconds a request may take, its body's upload included (a slower
    /// one gets 408 and is not recorded: the provider delivers it again).
    pub request_timeout_secs: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
        }
    }
}

/// The dispatcher: how jobs are claimed, sent and retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchSettings {
    /// Run the dispatcher in this process.
    pub enabled: bool,
    /// Messages handed to providers at the same time.
    pub concurrency: usize,
    /// Jobs claimed per query.
    pub batch_size: usize,
    /// Seconds a claimed job stays leased; a worker that dies releases its
    /// jobs when the lease ends. Keep it well above `send_timeout_secs`.
    pub lease_secs: u64,
    /// Seconds a provider call may take before it counts as a transient failure.
    pub send_timeout_secs: u64,
    /// Attempts per channel before the message fails (dead letter).
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt (full jitter).
    pub backoff_base_ms: u64,
    /// Longest retry delay in milliseconds.
    pub backoff_cap_ms: u64,
    /// Milliseconds between looks for due jobs when nothing signals new work.
    pub poll_interval_ms: u64,
    /// Seconds after which a sent message that heard nothing has its status
    /// fetched from the provider (where the provider can be asked).
    pub reconcile_after_secs: u64,
    /// Seconds between reconciliation rounds.
    pub reconcile_interval_secs: u64,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        DispatchSettings {
            enabled: true,
            concurrency: 256,
            batch_size: 256,
            lease_secs: 60,
            send_timeout_secs: 15,
            max_attempts: 5,
            backoff_base_ms: 1_000,
            backoff_cap_ms: 300_000,
            poll_interval_ms: 250,
            reconcile_after_secs: 600,
            reconcile_interval_secs: 60,
        }
    }
}

/// The event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventSettings {
    /// Hours events are kept; older ones are pruned.
    pub retention_hours: u64,
    /// Milliseconds between looks for new events when nothing signals them.
    pub poll_interval_ms: u64,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            retention_hours: 7 * 24,
            poll_interval_ms: 250,
        }
    }
}

/// Sandbox channels, used for every channel without a real provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SandboxSettings {
    /// Serve channels without a provider from the sandbox.
    pub enabled: bool,
    /// Milliseconds before a sandbox message is reported delivered.
    pub delivery_delay_ms: u64,
    /// Milliseconds from delivered to read (WhatsApp).
    pub read_delay_ms: u64,
    /// File that records every sandbox send, one line each; empty: none.
    pub record_path: PathBuf,
    /// Milliseconds a sandbox send takes to answer (simulated provider latency).
    pub send_delay_ms: u64,
    /// The key simulated customer messages (sandbox webhooks) are signed
    /// with, as `X-Hub-Signature-256`.
    pub webhook_secret: Secret,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        SandboxSettings {
            enabled: true,
            delivery_delay_ms: 200,
            read_delay_ms: 800,
            record_path: PathBuf::new(),
            send_delay_ms: 0,
            webhook_secret: Secret::new("sandbox-secret"),
        }
    }
}

/// The gRPC listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcSettings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Seconds calls in flight get to finish after SIGTERM or ctrl-c.
    pub shutdown_grace_secs: u64,
    /// Calls answered at once (a streaming call counts until its stream
    /// ends); one more is answered RESOURCE_EXHAUSTED with a retry delay
    /// instead of waiting. Health checks and reflection are never refused.
    /// 0: no limit.
    pub max_concurrent_requests: usize,
    /// Seconds a unary call may take to be answered (a caller's shorter
    /// `grpc-timeout` wins); a slower one is answered CANCELLED. A stream
    /// is bounded by this until it starts, then runs until the caller
    /// ends it.
    pub request_timeout_secs: u64,
    /// Largest request message accepted, in bytes (a larger one is
    /// answered OUT_OF_RANGE before it is decoded).
    pub max_message_bytes: usize,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        GrpcSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            shutdown_grace_secs: 10,
            max_concurrent_requests: 1024,
            request_timeout_secs: 30,
            max_message_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Where data lives: PostgreSQL when `url` is set, else the embedded store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// PostgreSQL URL, for example `postgres://omniroute:pw@db:5432/omniroute`.
    /// Empty: use the embedded store at `path`.
    pub url: Secret,
    /// The embedded store's file.
    pub path: PathBuf,
    /// PostgreSQL pool size.
    pub pool_size: usize,
    /// Seconds to wait for a PostgreSQL connection.
    pub connect_timeout_secs: u64,
    /// PostgreSQL: tasks that commit accepted messages in groups, each
    /// holding one pool connection while it writes.
    pub writers: usize,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            url: Secret::default(),
            path: PathBuf::from("data/omniroute.db"),
            pool_size: 16,
            connect_timeout_secs: 10,
            writers: 4,
        }
    }
}

/// How contact data is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContactSettings {
    /// ISO 3166-1 alpha-2 region for phone numbers in national format.
    pub default_region: String,
    /// Contacts kept in memory for routing sends (0: none).
    pub cache_size: usize,
    /// Seconds a cached contact is used before it is read again.
    pub cache_ttl_secs: u64,
}

impl Default for ContactSettings {
    fn default() -> Self {
        ContactSettings {
            default_region: "US".to_owned(),
            cache_size: 10_000,
            cache_ttl_secs: 60,
        }
    }
}

/// API behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Key that signs page tokens; set the same value on every replica.
    pub page_token_secret: Secret,
    /// Page size when a request asks for 0.
    pub default_page_size: u32,
    /// Largest page size accepted.
    pub max_page_size: u32,
    /// Tenant of every caller until authentication lands.
    pub default_tenant: String,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            page_token_secret: Secret::new("omniroute-page-token-v1"),
            default_page_size: 50,
            max_page_size: 1000,
            default_tenant: "default".to_owned(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A tracing filter, for example `info` or `omniroute=debug,info`.
    pub filter: String,
    /// `text` or `json`.
    pub format: LogFormat,
    /// Where traces go, over OTLP/HTTP with protobuf
    /// (`http://collector:4318/v1/traces`); empty: nowhere. Needs a build
    /// with the `otel` feature.
    pub otlp_endpoint: String,
    /// The service name traces carry.
    pub service_name: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            filter: "info".to_owned(),
            format: LogFormat::Text,
            otlp_endpoint: String::new(),
            service_name: "omniroute".to_owned(),
        }
    }
}

/// A setting that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file, an environment variable or a value failed to parse.
    #[error("invalid settings: {0}")]
    Load(String),
    /// A value parsed but is not acceptable.
    #[error("invalid setting `{key}`: {reason}")]
    Invalid {
        /// The dotted key, for example `contacts.default_region`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl Settings {
    /// Loads defaults, then `file` (which must exist when given), then the
    /// `OMNIROUTE__…` variables of `env`, and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(SettingsError::Load(format!(
                    "settings file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(secrets::FileWithSecrets::read(path)?);
        }
        // Only our own variables, passed in rather than read from the process,
        // so that tests never need to set process-wide environment.
        let vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("OMNIROUTE__"))
            .collect();
        let vars = secrets::from_files(vars)?;
        let figment = figment.merge(EnvSnapshot { vars });
        let settings: Settings = figment
            .extract()
            .map_err(|e| SettingsError::Load(describe(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.auth.validate(self.grpc.listen)?;
        self.metrics.validate(self.http.listen)?;
        self.quotas.validate()?;
        self.endpoints.validate()?;
        self.nats.validate()?;
        self.tls.validate()?;
        if !self.log.otlp_endpoint.is_empty() && !self.log.otlp_endpoint.starts_with("http://") {
            return Err(SettingsError::Invalid {
                key: "log.otlp_endpoint",
                reason: "an http:// address (traces go in plain HTTP to a collector beside the \
                         router, such as an OpenTelemetry Collector sidecar, which forwards them \
                         over TLS)"
                    .to_owned(),
            });
        }
        if !self.log.otlp_endpoint.is_empty() && !cfg!(feature = "otel") {
            return Err(SettingsError::Invalid {
                key: "log.otlp_endpoint",
                reason: "this build exports no traces: build with `--features otel`".to_owned(),
            });
        }
        if let Err(e) = self.contacts.default_region.parse::<PhoneRegion>() {
            return Err(SettingsError::Invalid {
                key: "contacts.default_region",
                reason: e.to_string(),
            });
        }
        if self.store.pool_size == 0 {
            return Err(SettingsError::Invalid {
                key: "store.pool_size",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.store.writers == 0 {
            return Err(SettingsError::Invalid {
                key: "store.writers",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.store.url.is_empty() && self.store.path.as_os_str().is_empty() {
            return Err(SettingsError::Invalid {
                key: "store.path",
                reason: "must be set when store.url is empty".to_owned(),
            });
        }
        if !self.store.url.is_empty()
            && let Err(e) = self.store.url.expose().parse::<tokio_postgres::Config>()
        {
            return Err(SettingsError::Invalid {
                key: "store.url",
                reason: format!("not a PostgreSQL URL: {e}"),
            });
        }
        if self.api.default_page_size == 0 || self.api.default_page_size > self.api.max_page_size {
            return Err(SettingsError::Invalid {
                key: "api.default_page_size",
                reason: "must be between 1 and api.max_page_size".to_owned(),
            });
        }
        if self.api.page_token_secret.is_empty() {
            return Err(SettingsError::Invalid {
                key: "api.page_token_secret",
                reason: "must not be empty".to_owned(),
            });
        }
        if self.api.default_tenant.trim().is_empty() {
            return Err(SettingsError::Invalid {
                key: "api.default_tenant",
                reason: "must not be empty".to_owned(),
            });
        }
        let d = &self.dispatch;
        for (key, zero) in [
            ("dispatch.concurrency", d.concurrency == 0),
            ("dispatch.batch_size", d.batch_size == 0),
            ("dispatch.max_attempts", d.max_attempts == 0),
            ("dispatch.lease_secs", d.lease_secs == 0),
            ("dispatch.send_timeout_secs", d.send_timeout_secs == 0),
            ("dispatch.poll_interval_ms", d.poll_interval_ms == 0),
            ("dispatch.reconcile_after_secs", d.reconcile_after_secs == 0),
            (
                "dispatch.reconcile_interval_secs",
                d.reconcile_interval_secs == 0,
            ),
            ("events.poll_interval_ms", self.events.poll_interval_ms == 0),
            ("events.retention_hours", self.events.retention_hours == 0),
            ("http.max_body_bytes", self.http.max_body_bytes == 0),
            (
                "http.request_timeout_secs",
                self.http.request_timeout_secs == 0,
            ),
            (
                "grpc.request_timeout_secs",
                self.grpc.request_timeout_secs == 0,
            ),
            ("grpc.max_message_bytes", self.grpc.max_message_bytes == 0),
        ] {
            if zero {
                return Err(SettingsError::Invalid {
                    key,
                    reason: "must be at least 1".to_owned(),
                });
            }
        }
        if d.lease_secs <= d.send_timeout_secs {
            return Err(SettingsError::Invalid {
                key: "dispatch.lease_secs",
                reason: "must be longer than dispatch.send_timeout_secs, or a slow send could be sent twice"
                    .to_owned(),
            });
        }
        if d.backoff_cap_ms < d.backoff_base_ms {
            return Err(SettingsError::Invalid {
                key: "dispatch.backoff_cap_ms",
                reason: "must be at least dispatch.backoff_base_ms".to_owned(),
            });
        }
        self.whatsapp.validate()?;
        self.email.validate()?;
        self.voice.validate()?;
        self.routing.policies()?;
        if let Err(e) = self.log.filter.parse::<tracing_subscriber::EnvFilter>() {
            return Err(SettingsError::Invalid {
                key: "log.filter",
                reason: e.to_string(),
            });
        }
        Ok(())
    }

    /// The region for national phone formats (validated at load).
    pub fn phone_region(&self) -> PhoneRegion {
        self.contacts.default_region.parse().unwrap_or_default()
    }
}

/// Names the key of a figment error, and the variable or file it came from,
/// without echoing values (which may be secrets).
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::from("(root)")
            } else {
                e.path.join(".")
            };
            let origin = e
                .metadata
                .as_ref()
                .and_then(|m| {
                    m.source.as_ref().map(|s| match s {
                        figment::Source::File(p) => format!(" in {}", p.display()),
                        _ => format!(" in {}", m.name),
                    })
                })
                .or_else(|| e.metadata.as_ref().map(|m| format!(" in {}", m.name)))
                .unwrap_or_default();
            let what = match &e.kind {
                // The value itself is not echoed: it may be a secret.
                figment::error::Kind::InvalidType(actual, expected) => {
                    let found = actual.to_string();
                    let kind = found.split(['"', '`']).next().unwrap_or_default().trim();
                    format!("expected {expected}, found {kind}")
                }
                figment::error::Kind::UnknownField(field, _) => {
                    format!("unknown key `{field}`")
                }
                other => other.to_string(),
            };
            format!("`{key}`{origin}: {what}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The environment provider over a snapshot of variables.
struct EnvSnapshot {
    vars: Vec<(String, String)>,
}

impl figment::Provider for EnvSnapshot {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("environment variable(s) OMNIROUTE__…")
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        let mut dict = figment::value::Dict::new();
        for (name, value) in &self.vars {
            let path = key_path(name);
            let parsed: figment::value::Value = value
                .parse()
                .unwrap_or_else(|_| figment::value::Value::from(value.clone()));
            insert(&mut dict, &path, parsed);
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// The settings key an `OMNIROUTE__SECTION__KEY` variable names, as its
/// path (`["section", "key"]`).
fn key_path(var: &str) -> Vec<String> {
    var.trim_start_matches("OMNIROUTE__")
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect()
}

fn insert(dict: &mut figment::value::Dict, path: &[String], value: figment::value::Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| figment::value::Dict::new().into());
            if let figment::value::Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_need_nothing() {
        let s = Settings::load(None, env(&[])).unwrap();
        assert_eq!(s.grpc.listen.to_string(), "127.0.0.1:50051");
        assert!(s.store.url.is_empty());
        assert_eq!(s.phone_region().code(), "US");
    }

    #[test]
    fn file_then_environment_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("omniroute.toml");
        std::fs::write(
            &path,
            "[grpc]\nlisten = \"127.0.0.1:6000\"\n[contacts]\ndefault_region = \"DE\"\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&path),
            env(&[
                ("OMNIROUTE__GRPC__LISTEN", "0.0.0.0:7000"),
                ("OMNIROUTE__AUTH__ENABLED", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(s.grpc.listen.to_string(), "0.0.0.0:7000");
        assert_eq!(s.phone_region().code(), "DE");
    }

    #[test]
    fn errors_name_the_key() {
        let e = Settings::load(None, env(&[("OMNIROUTE__GRPC__LISTEN", "nowhere")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("grpc.listen"), "{e}");
        let e = Settings::load(None, env(&[("OMNIROUTE__CONTACTS__DEFAULT_REGION", "XX")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("contacts.default_region"), "{e}");
        let e = Settings::load(None, env(&[("OMNIROUTE__GRPC__LISTN", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("listn"), "{e}");
        let e = Settings::load(None, env(&[("OMNIROUTE__STORE__POOL_SIZE", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.pool_size"), "{e}");
    }

    #[test]
    fn type_errors_do_not_echo_values() {
        let e = Settings::load(
            None,
            env(&[("OMNIROUTE__API__PAGE_TOKEN_SECRET", "[1, 2]")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("api.page_token_secret"), "{e}");
        assert!(!e.contains("1, 2"), "{e}");
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Settings::load(
            None,
            env(&[("OMNIROUTE__STORE__URL", "postgres://u:hunter2@db/omniroute")]),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = Settings::load(Some(Path::new("/nonexistent/omniroute.toml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn example_file_documents_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/omniroute.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // The example parses (with every key present) ...
        let s = Settings::load(Some(&path), env(&[])).unwrap();
        assert_eq!(s, Settings::load(Some(&path), env(&[])).unwrap());
        // ... and names every key the settings have.
        let defaults = toml_keys(&Settings::default());
        for key in defaults {
            let leaf = key.rsplit('.').next().unwrap();
            assert!(
                text.contains(&format!("{leaf} =")) || text.contains(&format!("# {leaf} =")),
                "deploy/omniroute.toml does not document `{key}`"
            );
        }
    }

    fn toml_keys(settings: &Settings) -> Vec<String> {
        let value = figment::value::Value::serialize(settings).unwrap();
        let mut keys = Vec::new();
        if let figment::value::Value::Dict(_, sections) = value {
            for (section, inner) in sections {
                if let figment::value::Value::Dict(_, fields) = inner {
                    keys.extend(fields.keys().map(|k| format!("{section}.{k}")));
                }
            }
        }
        keys
    }

    #[cfg(not(feature = "otel"))]
    #[test]
    fn a_build_without_otel_refuses_a_trace_endpoint() {
        let e = Settings::load(
            None,
            env(&[(
                "OMNIROUTE__LOG__OTLP_ENDPOINT",
                "http://collector:4318/v1/traces",
            )]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("log.otlp_endpoint"), "{e}");
    }

    #[test]
    fn traces_go_to_a_plain_http_collector() {
        let load = |endpoint: &str| {
            Settings::load(None, env(&[("OMNIROUTE__LOG__OTLP_ENDPOINT", endpoint)]))
        };
        assert_eq!(
            load("http://collector:4318/v1/traces").is_ok(),
            cfg!(feature = "otel")
        );
        let e = load("https://collector.example:4318/v1/traces")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("log.otlp_endpoint") && e.contains("http://"),
            "{e}"
        );
    }
}
