//! What a message says, independent of any channel: the domain twin of the
//! `Content` oneof in omniroute.v1. Adapters translate it to their provider's
//! format; the store keeps it as JSON (so every type here is serde-stable:
//! renaming a field or variant is a storage migration).

use serde::{Deserialize, Serialize};

/// The content of a message. Stored as JSON tagged by `type` (never by a
/// name one of the variants uses as a field, such as `Media::kind`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    /// Plain text (with an email subject and HTML alternative).
    Text(Text),
    /// A pre-approved template.
    Template(Template),
    /// An image, document, audio, video or sticker.
    Media(Media),
    /// Reply buttons or a list.
    Interactive(Interactive),
    /// A request that an agent calls the customer back.
    CallbackRequest(CallbackRequest),
    /// Inbound: the choice a customer picked.
    ChoiceReply(Choice),
    /// Inbound: a reaction to a message.
    Reaction(Reaction),
    /// Inbound: a location.
    Location(Location),
    /// Inbound: a message the provider could not show us (a message type
    /// its API does not carry). Recorded so that an agent sees the customer
    /// wrote and can answer.
    Unsupported(Unsupported),
    /// Inbound: the customer called the business.
    InboundCall(InboundCall),
}

impl Content {
    /// A short name for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Content::Text(_) => "text",
            Content::Template(_) => "template",
            Content::Media(_) => "media",
            Content::Interactive(_) => "interactive",
            Content::CallbackRequest(_) => "callback_request",
            Content::ChoiceReply(_) => "choice_reply",
            Content::Reaction(_) => "reaction",
            Content::Location(_) => "location",
            Content::Unsupported(_) => "unsupported",
            Content::InboundCall(_) => "inbound_call",
        }
    }
}

/// A call the customer made to the business.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundCall {
    /// The business number they called, E.164.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub line: String,
}

/// Plain text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    /// The text.
    pub body: String,
    /// Email subject.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// Email HTML alternative.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub html_body: String,
    /// WhatsApp link preview.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preview_url: bool,
    /// Inbound: the customer's text was longer than the router keeps in a
    /// message (see [`crate::bounds`]); the whole of it is the message's
    /// media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow: Option<Overflow>,
}

/// The whole of a customer's text that was cut to the router's bounds,
/// kept as the message's media.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overflow {
    /// `text/plain; charset=utf-8` (the body) or `text/html; charset=utf-8`
    /// (the HTML alternative).
    pub mime_type: String,
    /// Its whole size in bytes.
    pub size_bytes: u64,
}

/// A template and its parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// The approved template's name.
    pub name: String,
    /// Its language code.
    pub language: String,
    /// Parameters per component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<TemplateComponent>,
}

/// Which part of a template a component fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentType {
    /// The header.
    Header,
    /// The body.
    Body,
    /// A button.
    Button,
}

/// The parameters of one template component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateComponent {
    /// Header, body or button.
    #[serde(rename = "type")]
    pub kind: ComponentType,
    /// For buttons: "quick_reply", "url" or "copy_code".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub button_sub_type: String,
    /// For buttons: the position.
    #[serde(default)]
    pub index: u32,
    /// Parameters in template order.
    #[serde(default)]
    pub parameters: Vec<TemplateParameter>,
}

/// One template parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateParameter {
    /// For named templates.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The value.
    pub value: ParameterValue,
}

/// A typed template value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ParameterValue {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// Money.
    Currency {
        /// ISO 4217 code.
        code: String,
        /// Amount in thousandths.
        amount_1000: i64,
        /// Fallback text.
        fallback_value: String,
    },
    /// A preformatted date and time.
    DateTime {
        /// The text shown.
        fallback_value: String,
    },
    /// A media header.
    Media(Media),
    /// A quick-reply payload.
    Payload {
        /// The payload.
        payload: String,
    },
}

/// The kind of a media attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// An image.
    Image,
    /// A document.
    Document,
    /// Audio.
    Audio,
    /// Video.
    Video,
    /// A sticker.
    Sticker,
}

/// A media attachment, by URL or provider media id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// The kind.
    pub kind: MediaKind,
    /// A public URL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// A provider media id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub media_id: String,
    /// Caption.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub caption: String,
    /// File name for documents.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filename: String,
    /// MIME type.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mime_type: String,
    /// Inbound: SHA-256 reported by the provider.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
}

/// A choice a customer can pick.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// Returned when picked.
    pub id: String,
    /// The label.
    pub title: String,
    /// List rows: a description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A titled group of list rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceSection {
    /// The title.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// The rows.
    pub rows: Vec<Choice>,
}

/// The choices of an interactive message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Choices {
    /// One to three reply buttons.
    Buttons {
        /// The buttons.
        buttons: Vec<Choice>,
    },
    /// A list behind a button.
    List {
        /// The button text.
        button: String,
        /// The sections.
        sections: Vec<ChoiceSection>,
    },
}

impl Choices {
    /// Every choice, in order (a list's rows across its sections).
    pub fn all(&self) -> Vec<&Choice> {
        match self {
            Choices::Buttons { buttons } => buttons.iter().collect(),
            Choices::List { sections, .. } => sections.iter().flat_map(|s| &s.rows).collect(),
        }
    }
}

/// A message with choices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interactive {
    /// Header text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub header: String,
    /// Body text.
    pub body: String,
    /// Footer text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub footer: String,
    /// The choices.
    pub choices: Choices,
}

/// A callback request for the voice channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRequest {
    /// The agent line, E.164.
    pub agent_address: String,
    /// Spoken before the bridge.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub greeting: String,
    /// Language of the greeting.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub language: String,
    /// Why the customer is called (for the agent and the record).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// An inbound reaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// Our id of the message reacted to, when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The emoji; empty when removed.
    #[serde(default)]
    pub emoji: String,
}

/// An inbound message the provider could not show us.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsupported {
    /// The provider's type of the message, when it names one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provider_type: String,
    /// The provider's error code (WhatsApp: 131051).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_code: String,
    /// The provider's description of why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_message: String,
}

/// An inbound location.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Latitude.
    pub latitude: f64,
    /// Longitude.
    pub longitude: f64,
    /// Place name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Street address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_json_is_tagged_and_round_trips() {
        let content = Content::Template(Template {
            name: "order_shipped".into(),
            language: "de".into(),
            components: vec![TemplateComponent {
                kind: ComponentType::Body,
                button_sub_type: String::new(),
                index: 0,
                parameters: vec![TemplateParameter {
                    name: String::new(),
                    value: ParameterValue::Text {
                        text: "A-17".into(),
                    },
                }],
            }],
        });
        let json = serde_json::to_string(&content).unwrap();
        assert!(json.starts_with(r#"{"type":"template""#), "{json}");
        assert_eq!(serde_json::from_str::<Content>(&json).unwrap(), content);
    }

    #[test]
    fn every_kind_round_trips_through_json() {
        let media = Media {
            kind: MediaKind::Document,
            url: String::new(),
            media_id: "1200345678".into(),
            caption: "invoice".into(),
            filename: "invoice.pdf".into(),
            mime_type: "application/pdf".into(),
            sha256: "abc".into(),
        };
        let all = [
            Content::Text(Text {
                body: "hi".into(),
                ..Text::default()
            }),
            Content::Media(media.clone()),
            Content::Interactive(Interactive {
                header: String::new(),
                body: "Pick".into(),
                footer: String::new(),
                choices: Choices::Buttons {
                    buttons: vec![Choice {
                        id: "yes".into(),
                        title: "Yes".into(),
                        description: String::new(),
                    }],
                },
            }),
            Content::CallbackRequest(CallbackRequest {
                agent_address: "+4930123456".into(),
                ..CallbackRequest::default()
            }),
            Content::ChoiceReply(Choice::default()),
            Content::Reaction(Reaction::default()),
            Content::Location(Location::default()),
            Content::Unsupported(Unsupported::default()),
            Content::Template(Template {
                name: "t".into(),
                language: "de".into(),
                components: vec![TemplateComponent {
                    kind: ComponentType::Header,
                    button_sub_type: String::new(),
                    index: 0,
                    parameters: vec![TemplateParameter {
                        name: String::new(),
                        value: ParameterValue::Media(media),
                    }],
                }],
            }),
        ];
        for content in all {
            let json = serde_json::to_string(&content).unwrap();
            assert_eq!(
                serde_json::from_str::<Content>(&json).unwrap(),
                content,
                "{json}"
            );
        }
    }
}
