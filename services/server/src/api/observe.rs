//! Every gRPC call counted, timed and traced (the outermost layer around
//! the services: a call refused by authentication or overload counts too).

use super::layer::{Around, Next, Reply, Request, Sendable};

/// The name of a gRPC status code, as Prometheus labels write it.
fn code_name(code: &str) -> &'static str {
    match code {
        "0" => "OK",
        "1" => "CANCELLED",
        "2" => "UNKNOWN",
        "3" => "INVALID_ARGUMENT",
        "4" => "DEADLINE_EXCEEDED",
        "5" => "NOT_FOUND",
        "6" => "ALREADY_EXISTS",
        "7" => "PERMISSION_DENIED",
        "8" => "RESOURCE_EXHAUSTED",
        "9" => "FAILED_PRECONDITION",
        "10" => "ABORTED",
        "11" => "OUT_OF_RANGE",
        "12" => "UNIMPLEMENTED",
        "13" => "INTERNAL",
        "14" => "UNAVAILABLE",
        "15" => "DATA_LOSS",
        "16" => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// Counts and times every gRPC call (the outermost layer: a call refused
/// by authentication or overload counts too). The code is the one in the
/// response's headers: a refusal's; `OK` for an answer whose status follows
/// its body (a successful call, a stream that started).
#[derive(Debug, Clone, Copy, Default)]
pub struct Observe;

impl Around for Observe {
    fn around<S: Next<B>, B: Sendable>(&self, request: Request<B>, next: S) -> Reply<S::Error> {
        let method = request.uri().path().to_owned();
        let start = std::time::Instant::now();
        // The call's span, in the caller's trace when its metadata names
        // one (W3C `traceparent`).
        let span = tracing::info_span!("grpc", rpc.method = %method);
        if let Some(parent) = request
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
        {
            crate::telemetry::context::follow(&span, parent);
        }
        Box::pin(tracing::Instrument::instrument(
            async move {
                let response = next.pass(request).await?;
                let code = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map_or("OK", code_name);
                // Method names are the server's own; an unknown path is one
                // label, not one per path a client made up.
                let known = method.starts_with("/omniroute.v1.")
                    || method.starts_with("/grpc.health.v1.")
                    || method.starts_with("/grpc.reflection.");
                let label = if known && code != "UNIMPLEMENTED" {
                    method.as_str()
                } else {
                    "other"
                };
                crate::metrics::METRICS.grpc(label, code, start.elapsed());
                Ok(response)
            },
            span,
        ))
    }
}
