//! SMTP outcomes as error classes: a 4xx reply, a network, TLS or timeout
//! failure is transient (the relay may take it later), and a 4xx that says
//! we send too fast (enhanced status 4.7.28 or 4.2.1, "rate", "too many")
//! is rate limited; a 5xx reply is permanent. The reply code and text are
//! kept on the attempt.

use lettre::transport::smtp::Error as SmtpError;
use omniroute_channel::{AdapterError, ErrorClass};

/// Classifies a failed SMTP transaction.
pub fn classify(error: &SmtpError) -> AdapterError {
    let text = error.to_string();
    match error.status() {
        Some(code) => {
            let code = code.to_string();
            let lower = text.to_ascii_lowercase();
            let too_fast = ["4.7.28", "4.2.1", " rate", "too many"]
                .iter()
                .any(|s| lower.contains(s));
            if error.is_permanent() {
                AdapterError::new(ErrorClass::Permanent, format!("smtp-{code}"), text)
            } else if too_fast {
                AdapterError::rate_limited(format!("smtp-{code}"), text, None)
            } else {
                AdapterError::new(ErrorClass::Transient, format!("smtp-{code}"), text)
            }
        }
        None if error.is_timeout() => {
            AdapterError::new(ErrorClass::Transient, "smtp-timeout", text)
        }
        None if error.is_tls() => AdapterError::new(ErrorClass::Transient, "smtp-tls", text),
        // Connection refused or reset, a reply we could not read.
        None => AdapterError::new(ErrorClass::Transient, "smtp-connection", text),
    }
}
