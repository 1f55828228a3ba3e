//! Twilio's callbacks (form POSTs): call progress (`CallStatus`,
//! `SequenceNumber`, `AnsweredBy`, `Timestamp`) and pressed digits
//! (`Digits`, from a `<Gather>` action).

use std::time::SystemTime;

use crate::provider::{AnsweredBy, CallState, Callback, DialOutcome};

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The pairs of a form body, decoded, in order.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// Whether `sid` is a Twilio call sid: `CA` and 32 hex digits.
pub fn is_call_sid(sid: &str) -> bool {
    sid.len() == 34 && sid.starts_with("CA") && sid[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Twilio's call status as a neutral state.
pub fn state(raw: &str) -> Option<CallState> {
    Some(match raw {
        "queued" | "initiated" => CallState::Queued,
        "ringing" => CallState::Ringing,
        "in-progress" | "answered" => CallState::InProgress,
        "completed" => CallState::Completed,
        "busy" => CallState::Busy,
        "no-answer" => CallState::NoAnswer,
        "failed" => CallState::Failed,
        "canceled" => CallState::Canceled,
        _ => return None,
    })
}

/// When a callback says it happened (`Timestamp`, RFC 2822 with `+0000`);
/// now when it says nothing believable.
fn time(stamp: Option<&str>) -> SystemTime {
    stamp
        .map(|s| s.trim().replace("+0000", "GMT"))
        .and_then(|s| httpdate::parse_http_date(&s).ok())
        .and_then(|t| {
            let secs = t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
            omniroute_channel::provider_time(secs)
        })
        .unwrap_or_else(SystemTime::now)
}

/// Parses one callback.
pub fn parse(body: &[u8]) -> Result<Callback, omniroute_channel::AdapterError> {
    let pairs = form(body);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let malformed = |why: &str| {
        omniroute_channel::AdapterError::new(
            omniroute_channel::ErrorClass::Permanent,
            "malformed_callback",
            why,
        )
    };
    let Some(call_id) = get("CallSid").filter(|s| !s.is_empty()) else {
        return Err(malformed("a callback without a CallSid"));
    };
    if !is_call_sid(call_id) {
        return Err(malformed(
            "a CallSid that is not Twilio's (CA and 32 hex digits)",
        ));
    }
    let inbound = get("Direction") == Some("inbound");
    // Twilio names the caller of every call coming in (a withheld number
    // as such): a request without one is none of Twilio's.
    if inbound && get("From").is_none_or(|f| f.trim().is_empty()) {
        return Err(malformed("a call coming in without From"));
    }
    let (business, customer) = if inbound {
        (get("To"), get("From"))
    } else {
        (get("From"), get("To"))
    };
    if let Some(digits) = get("Digits") {
        return Ok(Callback::Digits {
            call_id: call_id.to_owned(),
            business: business.unwrap_or_default().to_owned(),
            customer: customer.unwrap_or_default().to_owned(),
            digits: digits.to_owned(),
        });
    }
    if let Some(raw) = get("DialCallStatus") {
        let outcome = match raw {
            "completed" | "answered" => DialOutcome::Connected,
            "busy" => DialOutcome::Busy,
            "no-answer" => DialOutcome::NoAnswer,
            _ => DialOutcome::Failed,
        };
        return Ok(Callback::Dialed {
            call_id: call_id.to_owned(),
            business: business.unwrap_or_default().to_owned(),
            customer: customer.unwrap_or_default().to_owned(),
            outcome,
            raw: raw.to_owned(),
            seconds: get("DialCallDuration").and_then(|d| d.parse().ok()),
        });
    }
    // Twilio asks a number's voice URL what to do with a call coming in.
    if inbound && get("CallStatus") == Some("ringing") {
        return Ok(Callback::Incoming {
            call_id: call_id.to_owned(),
            business: business.unwrap_or_default().to_owned(),
            customer: customer.unwrap_or_default().to_owned(),
        });
    }
    let Some(raw) = get("CallStatus") else {
        return Ok(Callback::Other(
            "a callback without a status or digits".into(),
        ));
    };
    let Some(state) = state(raw) else {
        return Ok(Callback::Other(format!("an unknown call status {raw:?}")));
    };
    let answered_by = get("AnsweredBy").filter(|a| !a.is_empty()).map(|a| {
        let who = match a {
            "human" => AnsweredBy::Human,
            a if a.starts_with("machine") => AnsweredBy::Machine,
            _ => AnsweredBy::Unknown,
        };
        (who, a.to_owned())
    });
    Ok(Callback::Status {
        call_id: call_id.to_owned(),
        state,
        raw: raw.to_owned(),
        answered_by,
        sequence: get("SequenceNumber")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        time: time(get("Timestamp")),
        error_code: get("ErrorCode")
            .or(get("SipResponseCode"))
            .unwrap_or_default()
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent() {
        assert_eq!(
            form(b"To=%2B4915112345678&Say=Hello+world%21&Bad=%zz&Empty"),
            vec![
                ("To".to_owned(), "+4915112345678".to_owned()),
                ("Say".to_owned(), "Hello world!".to_owned()),
                ("Bad".to_owned(), "%zz".to_owned()),
                ("Empty".to_owned(), String::new()),
            ]
        );
        assert_eq!(form(b"X=%4"), vec![("X".to_owned(), "%4".to_owned())]);
    }

    #[test]
    fn a_completed_call_and_a_pressed_digit() {
        let status = parse(b"CallSid=CA0123456789abcdef0123456789abcdef&CallStatus=completed&Direction=outbound-api&From=%2B4930123456&To=%2B4915112345678&SequenceNumber=3&Timestamp=Mon%2C+16+Aug+2010+03%3A45%3A01+%2B0000").unwrap();
        match status {
            Callback::Status {
                state,
                sequence,
                raw,
                ..
            } => {
                assert_eq!(
                    (state, sequence, raw.as_str()),
                    (CallState::Completed, 3, "completed")
                );
            }
            other => panic!("{other:?}"),
        }
        let digits = parse(
            b"CallSid=CA00000000000000000000000000000001&Digits=1&Direction=outbound-api&From=%2B4930123456&To=%2B4915112345678",
        )
        .unwrap();
        assert_eq!(
            digits,
            Callback::Digits {
                call_id: "CA00000000000000000000000000000001".into(),
                business: "+4930123456".into(),
                customer: "+4915112345678".into(),
                digits: "1".into(),
            }
        );
        assert!(parse(b"CallStatus=completed").is_err());
        // Not a sid Twilio gives; a call coming in from nobody.
        let long = format!("CallSid=CA{}&CallStatus=completed", "0".repeat(4998));
        assert!(parse(long.as_bytes()).is_err());
        assert!(parse(b"CallSid=CA1&CallStatus=completed").is_err());
        assert!(
            parse(b"CallSid=CA00000000000000000000000000000001&CallStatus=ringing&Direction=inbound&To=%2B4930123456")
                .is_err()
        );
        assert_eq!(
            parse(b"CallSid=CA00000000000000000000000000000001&CallStatus=in-progress&DialCallStatus=busy&DialCallSid=CA2")
                .unwrap(),
            Callback::Dialed {
                call_id: "CA00000000000000000000000000000001".into(),
                business: String::new(),
                customer: String::new(),
                outcome: DialOutcome::Busy,
                raw: "busy".into(),
                seconds: None,
            }
        );
        match parse(b"CallSid=CA00000000000000000000000000000001&CallStatus=in-progress&AnsweredBy=machine_end_beep").unwrap() {
            Callback::Status { answered_by, .. } => assert_eq!(
                answered_by,
                Some((AnsweredBy::Machine, "machine_end_beep".to_owned()))
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(b"CallSid=CA00000000000000000000000000000001&CallStatus=exploded"),
            Ok(Callback::Other(_))
        ));
    }
}
