//! What one phase measured: a latency histogram (HDR, microseconds), counts,
//! and errors by gRPC status code (or SQLSTATE for the database ceiling).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Highest latency the histograms hold (10 minutes, in microseconds); slower
/// calls are recorded as this value.
const MAX_MICROS: u64 = 600_000_000;

/// An empty latency histogram: 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("histogram bounds are valid")
}

/// The result of one call.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Items accepted: 1 for a successful unary call, the accepted messages
    /// of a batch, the messages of a committed database transaction.
    pub items: u64,
    /// Errors by code (a failed call, or rejected items of a batch).
    pub errors: Vec<(String, u64)>,
    /// The name of the last message this call got accepted, if any.
    pub accepted: Option<String>,
}

impl Outcome {
    /// One accepted item.
    pub fn one() -> Outcome {
        Outcome {
            items: 1,
            ..Outcome::default()
        }
    }

    /// A failed call.
    pub fn error(code: impl Into<String>) -> Outcome {
        Outcome {
            items: 0,
            errors: vec![(code.into(), 1)],
            accepted: None,
        }
    }
}

/// Everything measured for one phase (or one client of it, before merging).
#[derive(Debug, Clone)]
pub struct Stats {
    /// Latency of each call, in microseconds.
    pub latency: Histogram<u64>,
    /// Calls made.
    pub calls: u64,
    /// Items accepted.
    pub items: u64,
    /// Errors by code.
    pub errors: BTreeMap<String, u64>,
    /// The most recently accepted message, and when.
    pub last_accepted: Option<(Instant, String)>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            latency: histogram(),
            calls: 0,
            items: 0,
            errors: BTreeMap::new(),
            last_accepted: None,
        }
    }
}

impl Stats {
    /// Records one call that took `latency`.
    pub fn record(&mut self, latency: Duration, outcome: Outcome) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        self.latency.saturating_record(micros);
        self.calls += 1;
        self.items += outcome.items;
        for (code, n) in outcome.errors {
            *self.errors.entry(code).or_default() += n;
        }
        if let Some(name) = outcome.accepted {
            self.last_accepted = Some((Instant::now(), name));
        }
    }

    /// Adds another client's figures.
    pub fn merge(&mut self, other: Stats) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.calls += other.calls;
        self.items += other.items;
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
        match (&self.last_accepted, other.last_accepted) {
            (Some((mine, _)), Some(theirs)) if theirs.0 > *mine => {
                self.last_accepted = Some(theirs);
            }
            (None, theirs @ Some(_)) => self.last_accepted = theirs,
            _ => {}
        }
    }

    /// Total errors.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Latency at `quantile` (0..=1) in milliseconds; 0 without calls.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Highest latency in milliseconds.
    pub fn max_ms(&self) -> f64 {
        if self.latency.is_empty() {
            return 0.0;
        }
        self.latency.max() as f64 / 1000.0
    }

    /// Errors as "Unavailable 3, Internal 1", or "0".
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "0".to_owned();
        }
        self.errors
            .iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The name of a gRPC status code, as in the gRPC specification.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_counts_errors_and_percentiles() {
        let mut a = Stats::default();
        a.record(Duration::from_millis(1), Outcome::one());
        a.record(Duration::from_millis(3), Outcome::error("UNAVAILABLE"));
        let mut b = Stats::default();
        b.record(
            Duration::from_millis(2),
            Outcome {
                items: 100,
                errors: vec![("UNAVAILABLE".into(), 2)],
                accepted: Some("messages/x".into()),
            },
        );
        a.merge(b);
        assert_eq!(a.calls, 3);
        assert_eq!(a.items, 101);
        assert_eq!(a.error_count(), 3);
        assert_eq!(a.errors_text(), "UNAVAILABLE 3");
        assert!((a.quantile_ms(0.5) - 2.0).abs() < 0.01);
        assert!((a.max_ms() - 3.0).abs() < 0.01);
        assert_eq!(
            a.last_accepted.map(|(_, n)| n).as_deref(),
            Some("messages/x")
        );
    }

    #[test]
    fn an_empty_phase_reports_zeroes() {
        let s = Stats::default();
        assert_eq!(s.quantile_ms(0.99), 0.0);
        assert_eq!(s.max_ms(), 0.0);
        assert_eq!(s.errors_text(), "0");
    }
}
