//! Logging through tracing: text or JSON lines on stderr, filtered by
//! `log.filter` (or `RUST_LOG`, which wins when set, for quick debugging).
//!
//! Nothing secret is ever a log field: settings print secrets as `***`, and
//! addresses are logged masked (`+49*******6789`, `a***@example.com`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::settings::{LogFormat, LogSettings};

/// Installs the global subscriber; a second call is a no-op.
pub fn init(settings: &LogSettings) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| f.parse::<EnvFilter>().ok())
        .unwrap_or_else(|| EnvFilter::new(&settings.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
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
