//! Neutral content → an email (RFC 5322, MIME): From the tenant's sender,
//! To the one recipient, a Subject, our Message-ID, a Reply-To address that
//! names the message (so that replies thread even when a client drops the
//! threading headers), In-Reply-To and References when it answers a
//! customer's mail, an envelope sender that names the message for bounces
//! (VERP), and the text with an HTML alternative (the caller's
//! HTML, or the text escaped).

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use omniroute_channel::content::Text;
use omniroute_channel::{AdapterError, ErrorClass, OutboundMessage};

use crate::attachments::Attachment;
use crate::config::Sender;

/// The Message-ID of our message `message_id`, without angle brackets (as it
/// is stored as the provider message id).
pub fn message_id(message_id: &str, sender: &Sender) -> String {
    format!("{message_id}@{}", sender.reply_domain)
}

/// The address replies to our message go to: `reply+<id>@<reply domain>`.
pub fn reply_address(message_id: &str, sender: &Sender) -> String {
    let token = message_id.replace('-', "");
    format!("reply+{token}@{}", sender.reply_domain)
}

/// The envelope sender (return path) of our message, where bounces go:
/// `bounces+<id>@<reply domain>` (VERP), so that a bounce names the
/// message by the address it comes back to.
pub fn bounce_address(message_id: &str, sender: &Sender) -> String {
    let token = message_id.replace('-', "");
    format!("bounces+{token}@{}", sender.reply_domain)
}

/// The subject when the caller gave none: the first line of the text,
/// shortened.
fn default_subject(body: &str) -> String {
    let first = body.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut subject: String = first.trim().chars().take(78).collect();
    if first.trim().chars().count() > 78 {
        subject.push('…');
    }
    subject
}

/// Text escaped for HTML (text and attribute values).
pub fn escape(text: &str) -> String {
    let mut html = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            c => html.push(c),
        }
    }
    html
}

/// Plain text as HTML: escaped, line breaks kept.
pub fn text_to_html(body: &str) -> String {
    format!(
        "<!doctype html><html><body><div style=\"white-space:pre-wrap\">{}</div></body></html>",
        escape(body).replace('\n', "<br>\n")
    )
}

fn invalid(what: String) -> AdapterError {
    AdapterError::new(ErrorClass::Permanent, "invalid-address", what)
}

/// Builds the email for `message` from `sender`: `text` (the message's
/// text, a rendered template, a media message's caption or link) and the
/// `attachment`, if any; marketing carries the one-click unsubscribe
/// headers when `unsubscribe` is configured.
pub fn build(
    message: &OutboundMessage,
    text: &Text,
    attachment: Option<&Attachment>,
    sender: &Sender,
    unsubscribe: Option<&crate::unsubscribe::Unsubscribe>,
) -> Result<Message, AdapterError> {
    let from = Mailbox::new(
        Some(sender.from_name.clone()).filter(|n| !n.is_empty()),
        sender.from_address.parse().map_err(|e| {
            AdapterError::new(ErrorClass::Configuration, "from-address", format!("{e}"))
        })?,
    );
    let to: Mailbox = message
        .to
        .value()
        .parse()
        .map_err(|e| invalid(format!("the recipient is not a mailbox: {e}")))?;
    let return_path: lettre::Address = bounce_address(&message.message_id, sender)
        .parse()
        .map_err(|e| {
            AdapterError::new(ErrorClass::Configuration, "reply-domain", format!("{e}"))
        })?;
    let envelope = lettre::address::Envelope::new(Some(return_path), vec![to.email.clone()])
        .map_err(|e| invalid(format!("{e}")))?;
    let reply_to: Mailbox = reply_address(&message.message_id, sender)
        .parse()
        .map_err(|e| {
            AdapterError::new(ErrorClass::Configuration, "reply-domain", format!("{e}"))
        })?;
    let subject = if text.subject.is_empty() {
        default_subject(&text.body)
    } else {
        text.subject.clone()
    };
    let mut builder = Message::builder()
        .envelope(envelope)
        .from(from)
        .to(to)
        .reply_to(reply_to)
        .subject(subject)
        .date_now()
        .message_id(Some(format!(
            "<{}>",
            message_id(&message.message_id, sender)
        )));
    if let Some(original) = message.reply_to.as_deref().filter(|r| !r.is_empty()) {
        let original = format!("<{}>", original.trim_matches(|c| c == '<' || c == '>'));
        builder = builder.in_reply_to(original.clone()).references(original);
    }
    if let (Some(unsubscribe), omniroute_channel::Category::Marketing) =
        (unsubscribe, message.category)
    {
        let url = unsubscribe.url(&message.tenant, &message.message_id);
        let mailbox = unsubscribe.mailbox(&message.message_id, &sender.reply_domain);
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>, <mailto:{mailbox}?subject=unsubscribe>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".to_owned(),
            ));
    }
    let body = match attachment {
        None => alternative(text),
        Some(file) => {
            let content_type = ContentType::parse(&file.mime_type)
                .unwrap_or_else(|_| ContentType::parse("application/octet-stream").expect("valid"));
            MultiPart::mixed().multipart(alternative(text)).singlepart(
                lettre::message::Attachment::new(file.filename.clone())
                    .body(file.bytes.clone(), content_type),
            )
        }
    };
    builder
        .multipart(body)
        .map_err(|e| AdapterError::new(ErrorClass::Permanent, "build", e.to_string()))
}

fn alternative(text: &Text) -> MultiPart {
    let html = if text.html_body.is_empty() {
        text_to_html(&text.body)
    } else {
        text.html_body.clone()
    };
    MultiPart::alternative()
        .singlepart(
            lettre::message::SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(text.body.clone()),
        )
        .singlepart(
            lettre::message::SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(html),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_becomes_escaped_html() {
        assert_eq!(
            text_to_html("a < b & \"c\"\nnext"),
            "<!doctype html><html><body><div style=\"white-space:pre-wrap\">a &lt; b &amp; &quot;c&quot;<br>\nnext</div></body></html>"
        );
    }

    #[test]
    fn the_subject_defaults_to_the_first_line() {
        assert_eq!(
            default_subject("\n  Your order shipped  \nDetails"),
            "Your order shipped"
        );
        let long = "x".repeat(100);
        assert_eq!(default_subject(&long).chars().count(), 79);
    }
}
