//! Inbound mail: a customer's email (raw MIME, RFC 5322) → an inbound
//! message on the contact of its sender, threaded to the message it
//! answers.
//!
//! Threading, in order: the reply address our mail carried
//! (`reply+<message id>@<reply domain>` names the message even when a mail
//! client drops the threading headers), then `In-Reply-To`, then the last
//! of `References`; each is a Message-ID, which for our messages is their
//! provider message id. The business account is the sender (mailbox) the
//! customer wrote to: a sender's from address, or any address at its reply
//! domain. The quoted history under a reply is left out of the stored text
//! when it can be told apart safely (an "On … wrote:" line followed only by
//! quoted lines, or a block of quoted lines at the end). An automatic reply
//! (an out-of-office) is recorded but marked so, and cancels nothing.

use mail_parser::{Message, MessageParser, MimeHeaders};
use omniroute_channel::content::{Media, MediaKind, Text};
use omniroute_channel::{
    AdapterError, Address, Channel, Content, ErrorClass, InboundMessage, PhoneRegion, WebhookEvent,
};

use crate::config::{EmailConfig, Sender};

fn malformed(what: &str) -> AdapterError {
    AdapterError::new(ErrorClass::Permanent, "malformed_email", what)
}

/// Parses one raw email.
pub fn parse(config: &EmailConfig, raw: &[u8]) -> Result<Vec<WebhookEvent>, AdapterError> {
    if raw.is_empty() {
        return Err(malformed("the body is empty, not an email"));
    }
    // Something with none of an email's header fields is not one.
    let Some(mail) = MessageParser::default().parse(raw).filter(|m| {
        m.from().is_some()
            || m.to().is_some()
            || m.subject().is_some()
            || m.message_id().is_some()
            || m.date().is_some()
    }) else {
        return Err(malformed("not an email (RFC 5322): no header fields"));
    };
    // Reports are the mail system's, not the customer's: delivery statuses
    // say what became of our messages; read receipts and others are not
    // acted on.
    let recipients = recipients(&mail);
    match crate::bounces::report_type(&mail).as_deref() {
        Some("delivery-status") => {
            // The bounce address (VERP) it came back to names our message
            // even when the report leaves the original headers out.
            let returned = recipients.iter().find_map(|r| bounced(config, r));
            return Ok(vec![crate::bounces::parse(&mail, returned)]);
        }
        Some(other) => {
            return Ok(vec![WebhookEvent::Ignored(format!(
                "a report of type {other:?} is not acted on"
            ))]);
        }
        None => {}
    }
    let Some(from) = mail
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
    else {
        return Ok(vec![WebhookEvent::Ignored(
            "an email without a sender".into(),
        )]);
    };
    let from_address = match Address::parse(Channel::Email, from, PhoneRegion::default()) {
        Ok(address) => address,
        Err(e) => {
            return Ok(vec![WebhookEvent::Ignored(format!(
                "the sender is not a mailbox: {e}"
            ))]);
        }
    };
    // A mail to the unsubscribe address a marketing mail carried.
    if let Some(unsubscribe) = &config.unsubscribe {
        for recipient in &recipients {
            let Some((local, domain)) = recipient.rsplit_once('@') else {
                continue;
            };
            let sender = config
                .senders
                .iter()
                .find(|s| s.reply_domain.eq_ignore_ascii_case(domain));
            if let (Some(sender), Some(message_id)) = (sender, unsubscribe.verify_mailbox(local)) {
                return Ok(vec![WebhookEvent::OptOut(omniroute_channel::OptOut {
                    channel: Channel::Email,
                    account: sender.line.clone(),
                    message_id,
                    category: omniroute_channel::Category::Marketing,
                    evidence: format!(
                        "unsubscribe mail {} (List-Unsubscribe mailto)",
                        mail.message_id().unwrap_or("without a Message-ID")
                    ),
                })]);
            }
        }
    }
    let (account, token) = match recipients.iter().find_map(|r| addressed(config, r)) {
        Some((sender, token)) => (sender.line.clone(), token),
        None => (recipients.first().cloned().unwrap_or_default(), None),
    };
    let provider_message_id = match mail.message_id() {
        Some(id) if !id.trim().is_empty() => id.trim().to_owned(),
        _ => {
            return Ok(vec![WebhookEvent::Ignored(
                "an email without a Message-ID".into(),
            )]);
        }
    };
    let reply_to = token
        .or_else(|| {
            mail.in_reply_to()
                .as_text_list()
                .and_then(|l| l.first().map(|s| s.to_string()))
        })
        .or_else(|| {
            mail.references()
                .as_text_list()
                .and_then(|l| l.last().map(|s| s.to_string()))
        })
        .map(|id| id.trim_matches(|c| c == '<' || c == '>').to_owned())
        .filter(|id| !id.is_empty());
    let text = mail
        .body_text(0)
        .map(|t| t.into_owned())
        .unwrap_or_default();
    let html = mail
        .body_html(0)
        .map(|t| t.into_owned())
        .unwrap_or_default();
    let has_text =
        mail.text_body_count() > 0 && mail.text_bodies().any(|p| p.is_text() && !p.is_text_html());
    let body = if has_text { strip_quoted(&text) } else { text };
    let time = sent_time(&mail);
    let profile_name = mail
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.name())
        .map(str::to_owned)
        .filter(|n| !n.trim().is_empty());
    let message = InboundMessage {
        channel: Channel::Email,
        account,
        provider_message_id,
        from: from_address,
        profile_name,
        provider_user_id: None,
        time,
        content: Content::Text(Text {
            body,
            subject: mail.subject().unwrap_or_default().to_owned(),
            html_body: if has_text { String::new() } else { html },
            preview_url: false,
            overflow: None,
        }),
        reply_to,
        automatic: is_automatic(&mail),
        media_bytes: None,
    };
    // The text, then each attachment as a media message of its own (as a
    // customer's media arrives on WhatsApp), in the same thread, recorded
    // once each by `<Message-ID>#<n>`, its bytes kept by the router.
    let attachments = attachments(&mail, &message.provider_message_id);
    let has_body = matches!(&message.content, Content::Text(t) if !t.body.trim().is_empty() || !t.html_body.trim().is_empty());
    let mut events = Vec::with_capacity(1 + attachments.len());
    for (media, bytes) in attachments.iter().cloned() {
        events.push(WebhookEvent::Inbound(InboundMessage {
            provider_message_id: media.media_id.clone(),
            content: Content::Media(media),
            media_bytes: Some(bytes),
            ..message.clone()
        }));
    }
    if has_body || attachments.is_empty() {
        events.insert(0, WebhookEvent::Inbound(message));
    }
    Ok(events)
}

/// The attachments of a mail as media (kind by MIME type, file name, the
/// SHA-256 of the bytes), each with its bytes; the media id is
/// `<Message-ID>#<n>`, counting from 1.
fn attachments(mail: &Message<'_>, message_id: &str) -> Vec<(Media, Vec<u8>)> {
    mail.attachments()
        .enumerate()
        .map(|(i, part)| {
            let mime_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{sub}", ct.ctype()),
                    None => ct.ctype().to_owned(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_owned())
                .to_ascii_lowercase();
            let kind = match mime_type.split('/').next() {
                Some("image") => MediaKind::Image,
                Some("audio") => MediaKind::Audio,
                Some("video") => MediaKind::Video,
                _ => MediaKind::Document,
            };
            let bytes = part.contents().to_vec();
            let sha256 = omniroute_channel::signature::sha256_hex(&bytes);
            let media = Media {
                kind,
                url: String::new(),
                media_id: format!("{message_id}#{}", i + 1),
                caption: String::new(),
                filename: part.attachment_name().unwrap_or_default().to_owned(),
                mime_type,
                sha256,
            };
            (media, bytes)
        })
        .collect()
}

/// Whether a mail was sent by a machine on the customer's behalf: RFC 3834
/// `Auto-Submitted` other than `no`, or the headers vacation responders
/// use (`X-Autoreply`, `X-Autorespond`, `Precedence: auto_reply`).
fn is_automatic(mail: &Message<'_>) -> bool {
    let header = |name: &str| {
        mail.headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_ascii_lowercase())
    };
    header("Auto-Submitted").is_some_and(|v| !v.starts_with("no"))
        || header("X-Autoreply").is_some()
        || header("X-Autorespond").is_some()
        || header("Precedence").is_some_and(|v| v == "auto_reply")
}

/// When a mail says it was sent (its Date), if believable; else now.
pub(crate) fn sent_time(mail: &Message<'_>) -> std::time::SystemTime {
    mail.date()
        .and_then(|d| u64::try_from(d.to_timestamp()).ok())
        .and_then(omniroute_channel::provider_time)
        .unwrap_or_else(std::time::SystemTime::now)
}

/// The recipients of a mail, lower-cased: the mailboxes it was delivered
/// to (`Delivered-To`, which the SMTP listener and final delivery agents
/// add from the envelope), then To, then Cc.
fn recipients(mail: &Message<'_>) -> Vec<String> {
    let delivered = mail
        .headers_raw()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Delivered-To"))
        .map(|(_, value)| {
            value
                .trim()
                .trim_matches(|c| c == '<' || c == '>')
                .to_ascii_lowercase()
        });
    let headers = mail
        .all_to()
        .chain(mail.all_cc())
        .flat_map(|a| a.iter())
        .filter_map(|a| a.address())
        .map(str::to_ascii_lowercase);
    delivered.chain(headers).collect()
}

/// Whether mail to `recipient` is ours to take: a sender's from address or
/// any address at a reply domain (replies, bounces, unsubscribes).
pub fn is_ours(config: &EmailConfig, recipient: &str) -> bool {
    let recipient = recipient.trim().trim_matches(|c| c == '<' || c == '>');
    addressed(config, recipient).is_some()
}

/// The provider message id a bounce address names
/// (`bounces+<message id>@<reply domain>`, the envelope sender of our mail).
fn bounced(config: &EmailConfig, recipient: &str) -> Option<String> {
    let (local, domain) = recipient.rsplit_once('@')?;
    let sender = config
        .senders
        .iter()
        .find(|s| s.reply_domain.eq_ignore_ascii_case(domain))?;
    let id = uuid::Uuid::try_parse(local.strip_prefix("bounces+")?).ok()?;
    Some(crate::transformers::message_id(
        &id.hyphenated().to_string(),
        sender,
    ))
}

/// The sender a recipient address belongs to, with the message id its
/// reply token names (as our provider message id: `<id>@<reply domain>`).
fn addressed<'c>(config: &'c EmailConfig, recipient: &str) -> Option<(&'c Sender, Option<String>)> {
    let (local, domain) = recipient.rsplit_once('@')?;
    for sender in &config.senders {
        if sender.from_address.eq_ignore_ascii_case(recipient) {
            return Some((sender, None));
        }
        if sender.reply_domain.eq_ignore_ascii_case(domain) {
            // Replies go to the Reply-To address; automatic replies
            // (RFC 3834) to the return path: both name the message.
            let token = local
                .strip_prefix("reply+")
                .or_else(|| local.strip_prefix("bounces+"))
                .and_then(|t| uuid::Uuid::try_parse(t).ok())
                .map(|id| format!("{}@{}", id.hyphenated(), sender.reply_domain));
            return Some((sender, token));
        }
    }
    None
}

/// The reply without the quoted history under it, when it can be told
/// apart: an attribution line ("On … wrote:") followed only by quoted or
/// blank lines, or a run of quoted lines at the end. Anything else is kept
/// whole (the raw mail is the provider's to keep).
pub fn strip_quoted(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let quoted_or_blank = |l: &&str| l.trim().is_empty() || l.trim_start().starts_with('>');
    let mut cut = lines.len();
    // A trailing block of quoted lines.
    while cut > 0 && quoted_or_blank(&lines[cut - 1]) {
        cut -= 1;
    }
    if cut == lines.len() || !lines[cut..].iter().any(|l| l.trim_start().starts_with('>')) {
        return text.trim_end().to_owned();
    }
    // Its attribution line, if there is one just above.
    if cut > 0 {
        let above = lines[cut - 1].trim();
        if above.ends_with("wrote:") || above.ends_with("schrieb:") || above.ends_with("a écrit :")
        {
            cut -= 1;
        }
    }
    let kept = lines[..cut].join("\n");
    if kept.trim().is_empty() {
        // Nothing but a quote: keep it, the customer sent it.
        return text.trim_end().to_owned();
    }
    kept.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_history_under_a_reply_is_left_out() {
        let reply = "Thanks, that works.\n\nOn Tue, 1 Dec 2026 at 10:00, ACME <support@acme.example> wrote:\n> Your appointment is tomorrow.\n>\n> ACME";
        assert_eq!(strip_quoted(reply), "Thanks, that works.");
        // Interleaved answers are kept whole.
        let inline = "> Which day?\nMonday\n> Which time?\n10:00";
        assert_eq!(strip_quoted(inline), inline);
        // Only a quote: kept.
        assert_eq!(strip_quoted("> hello"), "> hello");
        assert_eq!(strip_quoted("plain\n"), "plain");
    }
}
