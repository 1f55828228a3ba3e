//! Graph API errors → [`ErrorClass`]: the one place where a WhatsApp error
//! code decides what the dispatcher does.
//!
//! Guarantees: the class comes from `error.code` alone (a number, or a string
//! of digits as some intermediaries send it), never from the message text or
//! the HTTP status; the exceptions are failures that carry no Graph error at
//! all (HTTP 5xx, 429, timeouts, connection errors), which are transient or
//! rate limited. Codes missing from the PROTOCOLS table are transient (the
//! dispatcher's retries are bounded) and logged at warn with the code, which
//! [`AdapterError::code`] keeps.

use std::time::{Duration, SystemTime};

use omniroute_channel::{AdapterError, ErrorClass};
use serde::Deserialize;
use serde_json::Value;

/// How long to wait after a spam rate limit (131048) when the provider names
/// no delay: PROTOCOLS says "long back-off" without a figure; a minute keeps
/// the retry from adding to the quality problem.
pub const SPAM_LIMIT_BACKOFF: Duration = Duration::from_secs(60);

/// The class of a Graph API error code (PROTOCOLS §1, "Error codes"), or
/// `None` for a code the table does not list.
pub fn class_of(code: i64) -> Option<ErrorClass> {
    let class = match code {
        131047 => ErrorClass::WindowClosed,
        131050 => ErrorClass::OptedOut,
        130429 | 131056 | 4 | 80007 | 131048 => ErrorClass::RateLimited,
        131000 | 131016 | 133004 | 133005 | 131057 => ErrorClass::Transient,
        0 | 190 | 3 | 10 | 200..=299 | 131031 | 368 | 130497 => ErrorClass::Configuration,
        131026 | 131049 | 100 | 131008 | 131009 | 131051 | 132000 | 132001 | 132005 | 132007
        | 132012 | 132015 | 132016 | 131030 => ErrorClass::Permanent,
        _ => return None,
    };
    Some(class)
}

/// An error for a Graph error `code` (as text, as received) with its
/// `message`; `retry_after` is the provider's Retry-After, if it sent one.
pub fn from_code(code: &str, message: &str, retry_after: Option<Duration>) -> AdapterError {
    let parsed = code.trim().parse::<i64>().ok();
    match parsed.and_then(class_of) {
        Some(ErrorClass::RateLimited) => {
            let retry_after = match (retry_after, parsed) {
                (None, Some(131048)) => Some(SPAM_LIMIT_BACKOFF),
                (given, _) => given,
            };
            AdapterError::rate_limited(code.trim(), message, retry_after)
        }
        Some(class) => AdapterError::new(class, code.trim(), message),
        None => {
            tracing::warn!(
                code = code.trim(),
                "unknown whatsapp error code, retrying as transient"
            );
            AdapterError::new(ErrorClass::Transient, code.trim(), message)
        }
    }
}

/// The error body of a failed Graph API call:
/// `{"error":{"message","type","code","error_subcode","error_data":{"details"},"fbtrace_id"}}`.
#[derive(Debug, Deserialize)]
pub struct GraphErrorBody {
    /// The error.
    pub error: GraphError,
}

/// The `error` object of a Graph API error body.
#[derive(Debug, Deserialize)]
pub struct GraphError {
    /// A number, or a string of digits.
    #[serde(default)]
    pub code: Option<Value>,
    /// Human text; logged and kept, never matched on.
    #[serde(default)]
    pub message: Option<String>,
    /// Details WhatsApp adds.
    #[serde(default)]
    pub error_data: Option<GraphErrorData>,
    /// The trace id Meta support asks for.
    #[serde(default)]
    pub fbtrace_id: Option<String>,
}

/// `error.error_data`.
#[derive(Debug, Deserialize)]
pub struct GraphErrorData {
    /// A longer explanation.
    #[serde(default)]
    pub details: Option<String>,
}

/// `code` as text, whether it came as a number or a string.
pub fn code_text(code: &Value) -> Option<String> {
    match code {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// Classifies a non-2xx answer from its HTTP status, body and Retry-After.
pub fn from_response(status: u16, body: &[u8], retry_after: Option<Duration>) -> AdapterError {
    let graph = serde_json::from_slice::<GraphErrorBody>(body).ok();
    if let Some(error) = graph.as_ref().map(|b| &b.error)
        && let Some(code) = error.code.as_ref().and_then(code_text)
    {
        let mut message = error.message.clone().unwrap_or_default();
        if let Some(details) = error.error_data.as_ref().and_then(|d| d.details.as_deref()) {
            message = format!("{message} ({details})");
        }
        if let Some(trace) = &error.fbtrace_id {
            message = format!("{message} [fbtrace_id {trace}]");
        }
        return from_code(&code, &message, retry_after);
    }
    // No Graph error to decide on: the failure came from something in front
    // of the Graph API (a proxy, a load balancer) or the API is down.
    let code = format!("http_{status}");
    let message = format!("HTTP {status} without a Graph API error body");
    match status {
        429 => AdapterError::rate_limited(code, message, retry_after),
        _ => {
            if status < 500 {
                tracing::warn!(
                    status,
                    "whatsapp answered an error without a graph error body"
                );
            }
            AdapterError::new(ErrorClass::Transient, code, message)
        }
    }
}

/// Classifies a request that got no answer (timeout, connection refused,
/// TLS failure).
pub fn from_transport(error: &reqwest::Error) -> AdapterError {
    let code = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connection"
    } else {
        "transport"
    };
    // reqwest's Display names the URL but never the headers (the token).
    AdapterError::new(ErrorClass::Transient, code, error.to_string())
}

/// Parses a Retry-After header: delay-seconds or an HTTP date (RFC 9110
/// §10.2.3); a date in the past means now.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_table_is_mapped_exactly() {
        let table: &[(&[i64], ErrorClass)] = &[
            (&[131047], ErrorClass::WindowClosed),
            (&[131050], ErrorClass::OptedOut),
            (&[130429, 131056, 4, 80007, 131048], ErrorClass::RateLimited),
            (
                &[131000, 131016, 133004, 133005, 131057],
                ErrorClass::Transient,
            ),
            (
                &[0, 190, 3, 10, 200, 250, 299, 131031, 368, 130497],
                ErrorClass::Configuration,
            ),
            (
                &[
                    131026, 131049, 100, 131008, 131009, 131051, 132000, 132001, 132005, 132007,
                    132012, 132015, 132016, 131030,
                ],
                ErrorClass::Permanent,
            ),
        ];
        for (codes, class) in table {
            for code in *codes {
                assert_eq!(class_of(*code), Some(*class), "code {code}");
            }
        }
        for unknown in [1, 199, 300, 131001, 999999] {
            assert_eq!(class_of(unknown), None, "code {unknown}");
        }
    }

    #[test]
    fn unknown_codes_are_transient_and_keep_the_code() {
        let e = from_code("424242", "new", None);
        assert_eq!(e.class(), ErrorClass::Transient);
        assert_eq!(e.code(), "424242");
        let e = from_code("not-a-number", "odd", None);
        assert_eq!(e.class(), ErrorClass::Transient);
    }

    #[test]
    fn spam_limit_waits_long_unless_told_otherwise() {
        let e = from_code("131048", "spam", None);
        assert_eq!(e.retry_after(), Some(SPAM_LIMIT_BACKOFF));
        let e = from_code("131048", "spam", Some(Duration::from_secs(5)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
        let e = from_code("130429", "throughput", None);
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn the_code_decides_not_the_status_or_text() {
        let body = br#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"error_data":{"messaging_product":"whatsapp","details":"more than 24 hours"},"fbtrace_id":"Az8or"}}"#;
        let e = from_response(500, body, None);
        assert_eq!(e.class(), ErrorClass::WindowClosed);
        assert!(e.message().contains("more than 24 hours"));
        assert!(e.message().contains("Az8or"));

        let body = br#"{"error":{"message":"rate limit hit","code":"131056"}}"#;
        let e = from_response(400, body, Some(Duration::from_secs(3)));
        assert_eq!(e.class(), ErrorClass::RateLimited);
        assert_eq!(e.code(), "131056");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    }

    #[test]
    fn answers_without_a_graph_error_fall_back_to_the_status() {
        assert_eq!(
            from_response(503, b"<html>", None).class(),
            ErrorClass::Transient
        );
        assert_eq!(from_response(502, b"", None).code(), "http_502");
        let e = from_response(429, b"", Some(Duration::from_secs(7)));
        assert_eq!(e.class(), ErrorClass::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(
            from_response(404, b"{}", None).class(),
            ErrorClass::Transient
        );
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        // 1445412480 is Wed, 21 Oct 2015 07:28:00 GMT.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
