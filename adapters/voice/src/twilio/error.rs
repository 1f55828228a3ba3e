//! Twilio's answers → error classes. Errors are JSON:
//! `{"code":21211,"message":"…","more_info":"…","status":400}`.

use std::time::Duration;

use omniroute_channel::{AdapterError, ErrorClass};

/// A failure to reach the API (connection, TLS, timeout): transient.
pub fn transport(e: &reqwest::Error) -> AdapterError {
    AdapterError::new(ErrorClass::Transient, "transport", e.to_string())
}

/// A non-2xx answer, by Twilio's error code and the HTTP status.
pub fn from_response(status: u16, body: &[u8], retry_after: Option<&str>) -> AdapterError {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let code = json["code"].as_u64();
    let message = json["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("HTTP {status}"));
    let name = code.map_or_else(|| format!("http-{status}"), |c| c.to_string());
    match (code, status) {
        (Some(20429), _) | (_, 429) => AdapterError::rate_limited(
            name,
            message,
            retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .filter(|d| *d <= Duration::from_secs(3600)),
        ),
        // Our credentials, or a caller id the account may not use.
        (Some(20003 | 21210 | 21212 | 21606), _) | (_, 401 | 403) => {
            AdapterError::new(ErrorClass::Configuration, name, message)
        }
        (_, 500..=599) => AdapterError::new(ErrorClass::Transient, name, message),
        // An invalid or unreachable number (21211, 21214, 21217), and any
        // other refusal of the request.
        _ => AdapterError::new(ErrorClass::Permanent, name, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_decide_the_class() {
        let body = |code: u64| format!("{{\"code\":{code},\"message\":\"m\",\"status\":400}}");
        assert_eq!(
            from_response(400, body(21211).as_bytes(), None).class(),
            ErrorClass::Permanent
        );
        assert_eq!(
            from_response(401, body(20003).as_bytes(), None).class(),
            ErrorClass::Configuration
        );
        assert_eq!(
            from_response(400, body(21210).as_bytes(), None).class(),
            ErrorClass::Configuration
        );
        let limited = from_response(429, body(20429).as_bytes(), Some("3"));
        assert_eq!(limited.class(), ErrorClass::RateLimited);
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(
            from_response(503, b"oops", None).class(),
            ErrorClass::Transient
        );
        assert_eq!(
            from_response(400, body(21211).as_bytes(), None).code(),
            "21211"
        );
    }
}
