//! SMTP outcomes as error classes: a 4xx reply, a network, TLS or timeout
//! failure is transient (the relay may take it later); a 5xx reply is
//! permanent. The reply code and text are kept on the attempt.

use lettre::transport::smtp::Error as SmtpError;
use omniroute_channel::{AdapterError, ErrorClass};

/// Classifies a failed SMTP transaction.
pub fn classify(error: &SmtpError) -> AdapterError {
    let text = error.to_string();
    match error.status() {
        Some(code) => {
            let code = code.to_string();
            let class = if error.is_permanent() {
                ErrorClass::Permanent
            } else {
                ErrorClass::Transient
            };
            AdapterError::new(class, format!("smtp-{code}"), text)
        }
        None if error.is_timeout() => {
            AdapterError::new(ErrorClass::Transient, "smtp-timeout", text)
        }
        None if error.is_tls() => AdapterError::new(ErrorClass::Transient, "smtp-tls", text),
        // Connection refused or reset, a reply we could not read.
        None => AdapterError::new(ErrorClass::Transient, "smtp-connection", text),
    }
}
