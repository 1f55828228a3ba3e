//! Logging through tracing: text or JSON lines on stderr, filtered by
//! `log.filter` (or `RUST_LOG`, which wins when set, for quick debugging).
//!
//! Nothing secret is ever a log field: settings print secrets as `***`, and
//! addresses are logged masked (`+49*******6789`, `a***@example.com`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::settings::{LogFormat, LogSettings};

/// Whether this build exports traces (the `otel` feature).
pub const OTEL: bool = cfg!(feature = "otel");

type BoxedLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// Installs the global subscriber; a second call is a no-op. With
/// `log.otlp_endpoint` (and the `otel` feature) spans are also exported
/// over OTLP; [`shutdown`] flushes them.
pub fn init(settings: &LogSettings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| f.parse::<EnvFilter>().ok())
        .unwrap_or_else(|| EnvFilter::new(&settings.filter));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt: BoxedLayer = match settings.format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let layers: Vec<BoxedLayer> = vec![fmt];
    #[cfg(feature = "otel")]
    let layers = {
        let mut layers = layers;
        if let Some(layer) = otel::layer(settings) {
            layers.push(layer);
        }
        layers
    };
    let _ = tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init();
}

/// Flushes exported spans (at exit).
pub fn shutdown() {
    #[cfg(feature = "otel")]
    otel::shutdown();
}

/// W3C trace context: where a call's trace comes from and where it goes
/// on. Without the `otel` feature these do nothing.
pub mod context {
    /// The trace context of `span` as a `traceparent` value (empty without
    /// one).
    pub fn traceparent(span: &tracing::Span) -> String {
        #[cfg(feature = "otel")]
        {
            super::otel::traceparent(span)
        }
        #[cfg(not(feature = "otel"))]
        {
            let _ = span;
            String::new()
        }
    }

    /// Makes `span` a child of the trace `traceparent` names (from a
    /// caller's metadata, or kept with a message).
    pub fn follow(span: &tracing::Span, traceparent: &str) {
        #[cfg(feature = "otel")]
        super::otel::follow(span, traceparent);
        #[cfg(not(feature = "otel"))]
        let _ = (span, traceparent);
    }
}

#[cfg(feature = "otel")]
mod otel {
    use std::collections::HashMap;
    use std::sync::OnceLock;

    use opentelemetry::propagation::TextMapPropagator as _;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    use super::BoxedLayer;
    use crate::settings::LogSettings;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    pub(super) fn layer(settings: &LogSettings) -> Option<BoxedLayer> {
        if settings.otlp_endpoint.is_empty() {
            return None;
        }
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(settings.otlp_endpoint.clone())
            .build()
        {
            Ok(exporter) => exporter,
            Err(e) => {
                eprintln!("omniroute: traces are not exported: {e}");
                return None;
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(settings.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("omniroute");
        let _ = PROVIDER.set(provider);
        Some(Box::new(tracing_opentelemetry::layer().with_tracer(tracer)))
    }

    pub(super) fn shutdown() {
        if let Some(provider) = PROVIDER.get() {
            if let Err(e) = provider.force_flush() {
                eprintln!("omniroute: exporting the last spans failed: {e}");
            }
            let _ = provider.shutdown();
        }
    }

    pub(super) fn traceparent(span: &tracing::Span) -> String {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
        carrier.remove("traceparent").unwrap_or_default()
    }

    pub(super) fn follow(span: &tracing::Span, traceparent: &str) {
        if traceparent.is_empty() {
            return;
        }
        let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        let _ = span.set_parent(parent);
    }
}

/// Lets one log line through per interval and counts the ones it holds back.
#[derive(Debug)]
pub struct Throttle {
    interval_ms: u64,
    next_ms: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl Throttle {
    /// One line per `interval_ms`.
    pub const fn new(interval_ms: u64) -> Throttle {
        Throttle {
            interval_ms,
            next_ms: std::sync::atomic::AtomicU64::new(0),
            suppressed: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` when a line may be
    /// written now.
    pub fn allow(&self) -> Option<u64> {
        use std::sync::atomic::Ordering;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let next = self.next_ms.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now + self.interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_lets_one_line_through_per_interval_and_counts_the_rest() {
        let throttle = Throttle::new(60_000);
        assert_eq!(throttle.allow(), Some(0));
        assert_eq!(throttle.allow(), None);
        assert_eq!(throttle.allow(), None);
        throttle
            .next_ms
            .store(0, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(throttle.allow(), Some(2), "the held-back lines are counted");
    }
}
