//! Bounces: delivery status notifications (RFC 3464) for mail we sent,
//! turned into statuses of the original message. A DSN is a
//! `multipart/report; report-type=delivery-status` whose
//! `message/delivery-status` part has a block per recipient (`Action`,
//! `Status`, `Diagnostic-Code`); the original message (or its headers) is
//! the third part, and its Message-ID names our message (`<id>@<reply
//! domain>`, our provider message id); so does the address it came back
//! to, the envelope sender of our mail (`bounces+<message id>@<reply
//! domain>`, VERP), which works even when the report leaves the original
//! out. Action `failed` with a 5.x.x status
//! is a permanent failure (routing falls back to the next channel); `delayed`
//! (4.x.x) keeps the message pending; `delivered` (a success report, RFC
//! 3461, asked for where the relay offers DSN) confirms it; `relayed` (and
//! `expanded`) says that no report of its delivery will follow.

use mail_parser::{Message, MimeHeaders};
use omniroute_channel::{
    AdapterError, Channel, DeliveryStatus, ErrorClass, StatusUpdate, WebhookEvent,
};

/// The `report-type` of a `multipart/report` (a delivery status, a read
/// receipt, ...), lower-cased; `None` for any other mail.
pub fn report_type(mail: &Message<'_>) -> Option<String> {
    let ct = mail.content_type()?;
    (ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report")))
    .then(|| {
        ct.attribute("report-type")
            .unwrap_or("")
            .to_ascii_lowercase()
    })
}

/// The per-recipient fields of a DSN that decide what it says.
#[derive(Debug, Default, PartialEq, Eq)]
struct Recipient {
    action: String,
    status: String,
    diagnostic: String,
    final_recipient: String,
}

/// Parses the fields of a `message/delivery-status` body: blocks separated
/// by blank lines, the first per message, the rest per recipient; folded
/// lines unfolded.
fn recipients(text: &str) -> Vec<Recipient> {
    let mut blocks: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        if line.trim().is_empty() {
            if !blocks.last().is_some_and(Vec::is_empty) {
                blocks.push(Vec::new());
            }
            continue;
        }
        let block = blocks.last_mut().expect("one block");
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = block.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            block.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    blocks
        .into_iter()
        .filter_map(|fields| {
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let action = get("action").to_ascii_lowercase();
            (!action.is_empty()).then(|| Recipient {
                action,
                status: get("status"),
                diagnostic: get("diagnostic-code"),
                final_recipient: get("final-recipient"),
            })
        })
        .collect()
}

/// The Message-ID of the original message: from the attached message or its
/// headers (`text/rfc822-headers`).
fn original_message_id(mail: &Message<'_>) -> Option<String> {
    for part in &mail.parts {
        if let Some(inner) = part.message()
            && let Some(id) = inner.message_id().filter(|id| !id.trim().is_empty())
        {
            return Some(id.to_owned());
        }
        let headers = part.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("text")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
        });
        if headers
            && let Some(text) = part.text_contents()
            && let Some(id) = text.lines().find_map(|l| {
                let (name, value) = l.split_once(':')?;
                let id = value.trim().trim_matches(|c| c == '<' || c == '>').trim();
                // An empty Message-ID names nothing.
                (name.trim().eq_ignore_ascii_case("message-id") && !id.is_empty())
                    .then(|| id.to_owned())
            })
        {
            return Some(id);
        }
    }
    None
}

/// What a DSN says about the message it reports on. `returned` is the
/// provider message id the bounce address it came back to names (VERP),
/// which wins over the original Message-ID the report quotes.
pub fn parse(mail: &Message<'_>, returned: Option<String>) -> WebhookEvent {
    let Some(report) = mail.parts.iter().find(|p| {
        p.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct
                    .subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("delivery-status"))
        })
    }) else {
        return WebhookEvent::Ignored("a report without a delivery-status part".into());
    };
    let text = String::from_utf8_lossy(report.contents()).into_owned();
    let Some(recipient) = recipients(&text).into_iter().next() else {
        return WebhookEvent::Ignored("a delivery status without a recipient block".into());
    };
    let Some(original) = returned
        .filter(|r| !r.is_empty())
        .or_else(|| original_message_id(mail))
    else {
        return WebhookEvent::Ignored("a bounce that does not name the original message".into());
    };
    let time = crate::inbound::sent_time(mail);
    // Our Message-IDs are `<message id>@<reply domain>`.
    let message_id = original
        .split_once('@')
        .and_then(|(local, _)| uuid::Uuid::try_parse(local).ok())
        .map(|id| id.to_string());
    let permanent = recipient.status.starts_with('5');
    let (status, error) = match recipient.action.as_str() {
        "failed" => {
            let class = if permanent {
                ErrorClass::Permanent
            } else {
                ErrorClass::Transient
            };
            let text = if recipient.diagnostic.is_empty() {
                format!("bounced for {}", recipient.final_recipient)
            } else {
                recipient.diagnostic.clone()
            };
            (
                DeliveryStatus::Failed,
                Some(AdapterError::new(
                    class,
                    format!("dsn-{}", recipient.status),
                    text,
                )),
            )
        }
        // In the recipient's mailbox (a success report we asked for with
        // NOTIFY=SUCCESS where the relay offers DSN).
        "delivered" => (DeliveryStatus::Delivered, None),
        // Handed to a server without DSN (or expanded into a list): no
        // report of its delivery will follow.
        "relayed" | "expanded" => (DeliveryStatus::Relayed, None),
        "delayed" => {
            return WebhookEvent::Ignored(format!(
                "delivery of {original} delayed ({}): still pending",
                recipient.status
            ));
        }
        other => return WebhookEvent::Ignored(format!("a delivery status action {other:?}")),
    };
    WebhookEvent::Status(StatusUpdate {
        channel: Channel::Email,
        message_id,
        provider_message_id: original,
        status,
        time,
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_blocks_are_read_with_folded_lines() {
        let text = "Reporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; anna@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 <anna@example.com>:\r\n  user unknown\r\n";
        assert_eq!(
            recipients(text),
            vec![Recipient {
                action: "failed".into(),
                status: "5.1.1".into(),
                diagnostic: "smtp; 550 5.1.1 <anna@example.com>: user unknown".into(),
                final_recipient: "rfc822; anna@example.com".into(),
            }]
        );
    }

    #[test]
    fn a_report_quoting_an_empty_message_id_names_nothing() {
        let raw = b"From: MAILER-DAEMON@mx.example.com\r\nTo: support@acme.example\r\nMessage-ID: <d1@mx.example.com>\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; anna@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <>\r\n\r\n--b1--\r\n";
        let mail = mail_parser::MessageParser::default()
            .parse(&raw[..])
            .expect("a mail");
        assert!(
            matches!(parse(&mail, None), WebhookEvent::Ignored(_)),
            "{:?}",
            parse(&mail, None)
        );
        assert!(matches!(
            parse(&mail, Some(String::new())),
            WebhookEvent::Ignored(_)
        ));
    }
}
