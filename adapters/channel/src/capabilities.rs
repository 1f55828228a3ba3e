//! What a channel carries, as its adapter declares it.
//!
//! Routing reads these declarations to decide whether a message's content
//! fits a channel (its kind, its length, whether choices are native), whether
//! the channel only takes free-form content inside a customer service window,
//! and whether it rings (a call reaches the customer at once, so it never goes
//! in quiet hours). Nobody outside an adapter knows a provider's rules: an
//! adapter's detailed checks stay behind [`crate::Adapter::check_content`],
//! and everything routing (or the API, for the limits of native choices)
//! needs beyond them is declared here. The conformance suite holds each
//! adapter's checks to what it declares.

use std::time::Duration;

use crate::content::{Choice, Content, Interactive, Text};

/// The kinds of outbound content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentKind {
    /// Plain text.
    Text,
    /// A named template.
    Template,
    /// Media.
    Media,
    /// Choices.
    Interactive,
    /// A callback request.
    CallbackRequest,
}

impl ContentKind {
    /// The kind of an outbound content; `None` for inbound-only kinds.
    pub fn of(content: &Content) -> Option<ContentKind> {
        Some(match content {
            Content::Text(_) => ContentKind::Text,
            Content::Template(_) => ContentKind::Template,
            Content::Media(_) => ContentKind::Media,
            Content::Interactive(_) => ContentKind::Interactive,
            Content::CallbackRequest(_) => ContentKind::CallbackRequest,
            Content::ChoiceReply(_)
            | Content::Reaction(_)
            | Content::Location(_)
            | Content::Unsupported(_)
            | Content::InboundCall(_) => return None,
        })
    }

    /// A stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ContentKind::Text => "text",
            ContentKind::Template => "template",
            ContentKind::Media => "media",
            ContentKind::Interactive => "interactive",
            ContentKind::CallbackRequest => "callback_request",
        }
    }
}

/// What one channel carries and how it must be used. Static data: cheap
/// to ask for on every routing decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The content kinds it sends. Interactive content on a channel without
    /// [`Capabilities::interactive`] is sent as numbered text, so it needs
    /// `Text` here instead.
    pub kinds: &'static [ContentKind],
    /// The longest text body, in characters; `None` for no limit.
    pub max_text_chars: Option<usize>,
    /// Whether choices are native (buttons, lists).
    pub interactive: bool,
    /// Free-form content only inside a window of this length opened by the
    /// customer's last message; outside it only templates (WhatsApp's
    /// customer service window).
    pub service_window: Option<Duration>,
    /// Whether a send rings the customer (a call): never in quiet hours.
    pub rings: bool,
    /// How much native choices hold, where the channel limits them beyond
    /// the neutral model (WhatsApp's buttons and lists); `None` where
    /// choices are not native, or hold whatever the model allows (email's
    /// links). The adapter's `check_content` refuses choices beyond them.
    pub choice_limits: Option<ChoiceLimits>,
}

/// The limits of a channel's native choices (reply buttons and lists),
/// lengths in characters. Routing needs none of them (the adapter's
/// `check_content` enforces them per step); the API reads the ones the
/// neutral model leaves open (a section's title), so that choices no such
/// channel could show are refused before anything is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChoiceLimits {
    /// The text above the choices.
    pub body: usize,
    /// Reply buttons in one message.
    pub buttons: usize,
    /// A reply button's title.
    pub button_title: usize,
    /// A reply button's id.
    pub button_id: usize,
    /// The text of the button that opens a list.
    pub list_button: usize,
    /// Sections in one list.
    pub sections: usize,
    /// A section's title.
    pub section_title: usize,
    /// Rows in one list, all sections together.
    pub rows: usize,
    /// A row's title.
    pub row_title: usize,
    /// A row's description.
    pub row_description: usize,
}

/// How a content fits a channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Fit {
    /// As it is.
    AsIs,
    /// As this degraded form (choices as numbered text).
    Degraded(Content),
    /// Not at all, and why.
    No(String),
}

impl Capabilities {
    /// Whether the channel sends this kind as it is.
    pub fn carries(&self, kind: ContentKind) -> bool {
        self.kinds.contains(&kind)
    }

    /// How `content` fits the channel: its kind, length and choices.
    pub fn fit(&self, content: &Content) -> Fit {
        let Some(kind) = ContentKind::of(content) else {
            return Fit::No(format!("{} is inbound only", content.kind()));
        };
        if let Content::Interactive(interactive) = content
            && !self.interactive
        {
            let text = Content::Text(numbered_text(interactive));
            return match self.fit(&text) {
                Fit::AsIs => Fit::Degraded(text),
                other => other,
            };
        }
        if !self.carries(kind) {
            return Fit::No(format!("the channel cannot send {}", kind.as_str()));
        }
        if let (Content::Text(text), Some(max)) = (content, self.max_text_chars) {
            let len = text.body.chars().count();
            if len > max {
                return Fit::No(format!("the text has {len} characters, at most {max}"));
            }
        }
        Fit::AsIs
    }
}

/// Choices as numbered text, for channels without buttons or lists: the
/// header, the body, one numbered line per choice (with its description),
/// and the footer, each separated by a blank line.
pub fn numbered_text(interactive: &Interactive) -> Text {
    numbered_text_with(interactive, |_| None)
}

/// [`numbered_text`] with `suffix` of a choice after its line (`1. Morning:
/// <suffix>`), for example a link that picks it.
pub fn numbered_text_with(
    interactive: &Interactive,
    suffix: impl Fn(&Choice) -> Option<String>,
) -> Text {
    let lines = interactive
        .choices
        .all()
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let line = match c.description.as_str() {
                "" => format!("{}. {}", i + 1, c.title),
                d => format!("{}. {} ({d})", i + 1, c.title),
            };
            match suffix(c) {
                Some(suffix) => format!("{line}: {suffix}"),
                None => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let body = [
        interactive.header.as_str(),
        interactive.body.as_str(),
        &lines,
        interactive.footer.as_str(),
    ]
    .into_iter()
    .filter(|part| !part.is_empty())
    .collect::<Vec<_>>()
    .join("\n\n");
    Text {
        body,
        ..Text::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::{ChoiceSection, Choices, Media, MediaKind};

    fn text_only() -> Capabilities {
        Capabilities {
            kinds: &[ContentKind::Text],
            max_text_chars: Some(10),
            interactive: false,
            service_window: None,
            rings: true,
            choice_limits: None,
        }
    }

    fn choice(id: &str, title: &str, description: &str) -> Choice {
        Choice {
            id: id.into(),
            title: title.into(),
            description: description.into(),
        }
    }

    #[test]
    fn choices_degrade_to_numbered_text() {
        let interactive = Interactive {
            header: "Delivery".into(),
            body: "When shall we come?".into(),
            footer: "Reply with a number".into(),
            choices: Choices::List {
                button: "Pick".into(),
                sections: vec![ChoiceSection {
                    title: "Slots".into(),
                    rows: vec![
                        choice("am", "Morning", "8-12"),
                        choice("pm", "Afternoon", ""),
                    ],
                }],
            },
        };
        assert_eq!(
            numbered_text(&interactive).body,
            "Delivery\n\nWhen shall we come?\n\n1. Morning (8-12)\n2. Afternoon\n\nReply with a number"
        );
        let wide = Capabilities {
            max_text_chars: None,
            ..text_only()
        };
        let content = Content::Interactive(interactive);
        assert!(matches!(
            wide.fit(&content),
            Fit::Degraded(Content::Text(_))
        ));
        // The degraded text must fit too.
        assert!(matches!(text_only().fit(&content), Fit::No(_)));
    }

    #[test]
    fn kinds_and_lengths_decide() {
        let caps = text_only();
        let short = Content::Text(Text {
            body: "0123456789".into(),
            ..Text::default()
        });
        assert_eq!(caps.fit(&short), Fit::AsIs);
        let long = Content::Text(Text {
            body: "ä".repeat(11),
            ..Text::default()
        });
        assert_eq!(
            caps.fit(&long),
            Fit::No("the text has 11 characters, at most 10".into())
        );
        let media = Content::Media(Media {
            kind: MediaKind::Image,
            url: "https://example.com/a.png".into(),
            media_id: String::new(),
            caption: String::new(),
            filename: String::new(),
            mime_type: String::new(),
            sha256: String::new(),
        });
        assert_eq!(
            caps.fit(&media),
            Fit::No("the channel cannot send media".into())
        );
    }
}
