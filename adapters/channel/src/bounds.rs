//! How much of what a customer sends the router keeps in a message, so that
//! no answer and no event grows with what a customer chose to send.
//!
//! Guarantee: a message recorded from a customer, on any channel, fits in
//! [`MAX_ANSWER_BYTES`] with room to spare (its text at most
//! [`TEXT_BODY_BYTES`], an HTML alternative at most [`HTML_BODY_BYTES`],
//! a subject at most [`SUBJECT_BYTES`], every other field a customer fills
//! at most [`FIELD_BYTES`], a provider id at most [`ID_BYTES`]). Nothing is
//! lost silently: a text or HTML body that was cut is kept whole as the
//! message's media (the router's `inbound_media`, served by
//! GetMessageMedia in chunks) and the stored text says so
//! ([`crate::content::Overflow`]). Fields that are names and labels are
//! cut with an ellipsis; an over-long provider id is replaced by its digest,
//! which keeps deduplication exact.
//!
//! [`InboundMessage::bound`] is applied on the one path every delivery takes
//! into the store, so the rule is the same for WhatsApp, email and voice.

use sha2::{Digest, Sha256};

use crate::InboundMessage;
use crate::content::{Content, Overflow, Text};

/// No gRPC answer and no event is larger than this (encoded), whatever a
/// customer sent: a message fits with room to spare, and lists stop a page
/// before it.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// The most of a message's text the router keeps in the message.
pub const TEXT_BODY_BYTES: usize = 64 * 1024;

/// The most of an HTML alternative the router keeps in the message.
pub const HTML_BODY_BYTES: usize = 256 * 1024;

/// The most of a subject the router keeps (RFC 5322's line length).
pub const SUBJECT_BYTES: usize = 998;

/// The most of any other field a customer fills (a caption, a file name,
/// a label, a choice's title, a profile name, an error text).
pub const FIELD_BYTES: usize = 1024;

/// The longest provider id kept as it is; a longer one is replaced by
/// `sha256:<hex>` of it.
pub const ID_BYTES: usize = 256;

/// What is appended to a field that was cut.
const ELLIPSIS: char = '…';

/// Cuts `text` to at most `max` bytes at a character boundary; returns
/// whether it was cut.
pub fn cut(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

/// Cuts a name or label to at most `max` bytes, ending it with an
/// ellipsis when cut.
pub fn shorten(text: &mut String, max: usize) {
    if cut(text, max.saturating_sub(ELLIPSIS.len_utf8())) {
        text.push(ELLIPSIS);
    }
}

/// A provider id of at most [`ID_BYTES`]: itself, or its digest.
pub fn bounded_id(id: &str) -> String {
    if id.len() <= ID_BYTES {
        return id.to_owned();
    }
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Whether a text is within the bounds.
pub fn fits(text: &Text) -> bool {
    text.body.len() <= TEXT_BODY_BYTES
        && text.html_body.len() <= HTML_BODY_BYTES
        && text.subject.len() <= SUBJECT_BYTES
}

/// Bounds a text: the subject is cut, and a body or HTML alternative over
/// its bound is cut too, the whole of it returned (MIME type, bytes) to be
/// kept as the message's media. The body wins when both are over (the HTML
/// is then dropped: a cut HTML document is broken markup).
pub fn bound_text(text: &mut Text) -> Option<(String, Vec<u8>)> {
    shorten(&mut text.subject, SUBJECT_BYTES);
    let (mime_type, whole) = if text.body.len() > TEXT_BODY_BYTES {
        let whole = text.body.clone();
        cut(&mut text.body, TEXT_BODY_BYTES);
        if text.html_body.len() > HTML_BODY_BYTES {
            text.html_body.clear();
        }
        ("text/plain; charset=utf-8", whole)
    } else if text.html_body.len() > HTML_BODY_BYTES {
        (
            "text/html; charset=utf-8",
            std::mem::take(&mut text.html_body),
        )
    } else {
        return None;
    };
    text.overflow = Some(Overflow {
        mime_type: mime_type.to_owned(),
        size_bytes: u64::try_from(whole.len()).unwrap_or(u64::MAX),
    });
    Some((mime_type.to_owned(), whole.into_bytes()))
}

/// Bounds the fields of a content a customer fills; a text's cut body comes
/// back whole (see [`bound_text`]).
pub fn bound_content(content: &mut Content) -> Option<Vec<u8>> {
    let field = |s: &mut String| shorten(s, FIELD_BYTES);
    match content {
        Content::Text(text) => return bound_text(text).map(|(_, bytes)| bytes),
        Content::Media(media) => {
            field(&mut media.caption);
            field(&mut media.filename);
            field(&mut media.mime_type);
            field(&mut media.sha256);
            if media.media_id.len() > ID_BYTES {
                media.media_id = bounded_id(&media.media_id);
            }
        }
        Content::ChoiceReply(choice) => {
            field(&mut choice.id);
            field(&mut choice.title);
            field(&mut choice.description);
        }
        Content::Reaction(reaction) => {
            field(&mut reaction.message);
            field(&mut reaction.emoji);
        }
        Content::Location(location) => {
            field(&mut location.label);
            field(&mut location.address);
        }
        Content::Unsupported(unsupported) => {
            field(&mut unsupported.provider_type);
            field(&mut unsupported.error_code);
            field(&mut unsupported.error_message);
        }
        Content::InboundCall(call) => field(&mut call.line),
        // Only the business sends these; a customer's message never
        // carries them, but a bound costs nothing.
        Content::Template(_) | Content::Interactive(_) | Content::CallbackRequest(_) => {}
    }
    None
}

impl InboundMessage {
    /// Bounds what the customer sent (see the module documentation): the
    /// fields are cut, an over-long provider id digested, and a text's cut
    /// body kept whole in [`InboundMessage::media_bytes`].
    pub fn bound(&mut self) {
        self.provider_message_id = bounded_id(&self.provider_message_id);
        if let Some(reply_to) = &mut self.reply_to
            && reply_to.len() > ID_BYTES
        {
            *reply_to = bounded_id(reply_to);
        }
        if let Some(name) = &mut self.profile_name {
            shorten(name, FIELD_BYTES);
        }
        if let Some(user) = &mut self.provider_user_id {
            shorten(user, FIELD_BYTES);
        }
        shorten(&mut self.account, FIELD_BYTES);
        if let Some(whole) = bound_content(&mut self.content) {
            self.media_bytes = Some(whole);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_character_boundaries() {
        let mut s = "ääää".to_owned(); // 8 bytes
        assert!(cut(&mut s, 3));
        assert_eq!(s, "ä");
        let mut s = "abc".to_owned();
        assert!(!cut(&mut s, 3));
        let mut name = "x".repeat(2000);
        shorten(&mut name, 10);
        assert_eq!(name, "xxxxxxx…");
        assert_eq!(name.len(), 10);
    }

    #[test]
    fn a_long_body_is_cut_and_kept_whole() {
        let body = "é".repeat(TEXT_BODY_BYTES); // twice the bound in bytes
        let mut text = Text {
            body: body.clone(),
            subject: "s".repeat(100_000),
            html_body: "<p>".repeat(HTML_BODY_BYTES),
            ..Text::default()
        };
        let (mime, whole) = bound_text(&mut text).expect("cut");
        assert_eq!(mime, "text/plain; charset=utf-8");
        assert_eq!(whole, body.as_bytes());
        assert_eq!(text.body.len(), TEXT_BODY_BYTES);
        assert!(text.html_body.is_empty(), "a cut HTML is dropped");
        assert!(text.subject.len() <= SUBJECT_BYTES);
        assert_eq!(
            text.overflow,
            Some(Overflow {
                mime_type: mime,
                size_bytes: body.len() as u64
            })
        );
    }

    #[test]
    fn a_long_html_alone_is_kept_whole() {
        let html = "<p>".repeat(HTML_BODY_BYTES);
        let mut text = Text {
            body: "Hello".into(),
            html_body: html.clone(),
            ..Text::default()
        };
        let (mime, whole) = bound_text(&mut text).expect("cut");
        assert_eq!(mime, "text/html; charset=utf-8");
        assert_eq!(whole, html.as_bytes());
        assert_eq!(text.body, "Hello");
        assert!(text.html_body.is_empty());
        let mut small = Text {
            body: "Hello".into(),
            ..Text::default()
        };
        assert_eq!(bound_text(&mut small), None);
        assert_eq!(small.overflow, None);
    }

    #[test]
    fn long_ids_become_their_digest() {
        assert_eq!(bounded_id("wamid.1"), "wamid.1");
        let long = "a".repeat(5000);
        let id = bounded_id(&long);
        assert!(id.starts_with("sha256:") && id.len() == 7 + 64, "{id}");
        assert_eq!(id, bounded_id(&long), "the same id the same digest");
        assert_ne!(id, bounded_id(&"a".repeat(5001)));
    }
}
