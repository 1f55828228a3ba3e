//! Channel-neutral [`Content`] ↔ Graph API message objects, both directions.
//!
//! Outbound: [`SendRequest`] is exactly the body of `POST /{phone-number-id}/messages`
//! (PROTOCOLS §1, "Sending"): `messaging_product`, `recipient_type`, `to`, `type`
//! and the object named after the type, `context` for replies and our message id
//! in `biz_opaque_callback_data`. Inbound: [`InboundMessageDto`] is one element of
//! a webhook's `messages[]`, converted to [`Content`] or to the reason it is
//! ignored.
//!
//! Guarantees: these DTOs never leave the crate; every outbound content kind
//! either maps or is refused with [`ErrorClass::Unsupported`] (never sent
//! half-translated); inbound parsing tolerates unknown fields and types.

use omniroute_channel::content::{
    Choices, ComponentType, Interactive, Media, MediaKind, ParameterValue, Template,
};
use omniroute_channel::{AdapterError, Channel, Content, ErrorClass, OutboundMessage};
use serde::{Deserialize, Serialize};

/// `biz_opaque_callback_data` is at most this many bytes (PROTOCOLS §1).
pub const MAX_CALLBACK_DATA: usize = 512;

// ---------------------------------------------------------------- outbound

/// The body of a send.
#[derive(Debug, Serialize)]
pub struct SendRequest {
    messaging_product: &'static str,
    recipient_type: &'static str,
    to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<ContextObject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_opaque_callback_data: Option<String>,
    #[serde(flatten)]
    body: MessageBody,
}

#[derive(Debug, Serialize)]
struct ContextObject {
    message_id: String,
}

/// `type` and the object named after it.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum MessageBody {
    Text { text: TextObject },
    Template { template: TemplateObject },
    Image { image: MediaObject },
    Document { document: MediaObject },
    Audio { audio: MediaObject },
    Video { video: MediaObject },
    Sticker { sticker: MediaObject },
    Interactive { interactive: InteractiveObject },
}

#[derive(Debug, Serialize)]
struct TextObject {
    body: String,
    preview_url: bool,
}

#[derive(Debug, Serialize)]
struct MediaObject {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caption: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
}

#[derive(Debug, Serialize)]
struct TemplateObject {
    name: String,
    language: LanguageObject,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<ComponentObject>,
}

#[derive(Debug, Serialize)]
struct LanguageObject {
    code: String,
}

#[derive(Debug, Serialize)]
struct ComponentObject {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_type: Option<String>,
    /// A string, as the Graph API documents it.
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<String>,
    parameters: Vec<ParameterObject>,
}

#[derive(Debug, Serialize)]
struct ParameterObject {
    #[serde(flatten)]
    value: ParameterBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter_name: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ParameterBody {
    Text { text: String },
    Currency { currency: CurrencyObject },
    DateTime { date_time: DateTimeObject },
    Image { image: MediaObject },
    Document { document: MediaObject },
    Video { video: MediaObject },
    Payload { payload: String },
}

#[derive(Debug, Serialize)]
struct CurrencyObject {
    fallback_value: String,
    code: String,
    amount_1000: i64,
}

#[derive(Debug, Serialize)]
struct DateTimeObject {
    fallback_value: String,
}

#[derive(Debug, Serialize)]
struct InteractiveObject {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<HeaderObject>,
    body: TextOnly,
    #[serde(skip_serializing_if = "Option::is_none")]
    footer: Option<TextOnly>,
    action: ActionObject,
}

#[derive(Debug, Serialize)]
struct HeaderObject {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

#[derive(Debug, Serialize)]
struct TextOnly {
    text: String,
}

#[derive(Debug, Serialize)]
struct ActionObject {
    #[serde(skip_serializing_if = "Option::is_none")]
    button: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    buttons: Vec<ReplyButton>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sections: Vec<SectionObject>,
}

#[derive(Debug, Serialize)]
struct ReplyButton {
    #[serde(rename = "type")]
    kind: &'static str,
    reply: ReplyObject,
}

#[derive(Debug, Serialize)]
struct ReplyObject {
    id: String,
    title: String,
}

#[derive(Debug, Serialize)]
struct SectionObject {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    rows: Vec<RowObject>,
}

#[derive(Debug, Serialize)]
struct RowObject {
    id: String,
    title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// The body of a mark-as-read request.
#[derive(Debug, Serialize)]
pub struct MarkReadRequest {
    messaging_product: &'static str,
    status: &'static str,
    message_id: String,
}

impl MarkReadRequest {
    /// Marks the customer's message `wamid` as read.
    pub fn new(wamid: &str) -> Self {
        MarkReadRequest {
            messaging_product: "whatsapp",
            status: "read",
            message_id: wamid.to_owned(),
        }
    }
}

/// The answer to a send: `{"messaging_product","contacts":[…],"messages":[{"id","message_status"}]}`.
#[derive(Debug, Deserialize)]
pub struct SendResponse {
    /// The accepted messages; the first one is ours.
    #[serde(default)]
    pub messages: Vec<SentMessage>,
}

/// One accepted message.
#[derive(Debug, Deserialize)]
pub struct SentMessage {
    /// The wamid.
    pub id: String,
}

fn some(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn invalid(what: impl Into<String>) -> AdapterError {
    AdapterError::new(ErrorClass::Permanent, "invalid_content", what)
}

impl TryFrom<&OutboundMessage> for SendRequest {
    type Error = AdapterError;

    fn try_from(message: &OutboundMessage) -> Result<Self, AdapterError> {
        let body = match &message.content {
            Content::Text(text) => MessageBody::Text {
                text: TextObject {
                    body: text.body.clone(),
                    preview_url: text.preview_url,
                },
            },
            Content::Template(template) => MessageBody::Template {
                template: template_object(template)?,
            },
            Content::Media(media) => media_body(media)?,
            Content::Interactive(interactive) => MessageBody::Interactive {
                interactive: interactive_object(interactive),
            },
            other @ (Content::CallbackRequest(_)
            | Content::ChoiceReply(_)
            | Content::Reaction(_)
            | Content::Location(_)
            | Content::Unsupported(_)
            | Content::InboundCall(_)) => {
                return Err(AdapterError::unsupported(Channel::Whatsapp, other.kind()));
            }
        };
        let to = message.to.wa_id().unwrap_or(message.to.value());
        let callback =
            (message.message_id.len() <= MAX_CALLBACK_DATA).then(|| message.message_id.clone());
        if callback.is_none() {
            tracing::warn!("message id too long for biz_opaque_callback_data, statuses unmatched");
        }
        Ok(SendRequest {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to: to.trim_start_matches('+').to_owned(),
            context: message.reply_to.as_ref().map(|id| ContextObject {
                message_id: id.clone(),
            }),
            biz_opaque_callback_data: callback.filter(|id| !id.is_empty()),
            body,
        })
    }
}

/// A media object by id (preferred: already uploaded) or link.
fn media_object(media: &Media, caption: bool, filename: bool) -> Result<MediaObject, AdapterError> {
    let (id, link) = match (some(&media.media_id), some(&media.url)) {
        (Some(id), _) => (Some(id), None),
        (None, Some(link)) => (None, Some(link)),
        (None, None) => return Err(invalid("media needs a url or a media id")),
    };
    Ok(MediaObject {
        id,
        link,
        caption: some(&media.caption).filter(|_| caption),
        filename: some(&media.filename).filter(|_| filename),
    })
}

fn media_body(media: &Media) -> Result<MessageBody, AdapterError> {
    // Captions exist on images, videos and documents only; file names on
    // documents only (check_content reports the others before acceptance).
    Ok(match media.kind {
        MediaKind::Image => MessageBody::Image {
            image: media_object(media, true, false)?,
        },
        MediaKind::Video => MessageBody::Video {
            video: media_object(media, true, false)?,
        },
        MediaKind::Document => MessageBody::Document {
            document: media_object(media, true, true)?,
        },
        MediaKind::Audio => MessageBody::Audio {
            audio: media_object(media, false, false)?,
        },
        MediaKind::Sticker => MessageBody::Sticker {
            sticker: media_object(media, false, false)?,
        },
    })
}

fn template_object(template: &Template) -> Result<TemplateObject, AdapterError> {
    let mut components = Vec::with_capacity(template.components.len());
    for component in &template.components {
        let parameters = component
            .parameters
            .iter()
            .map(|p| {
                Ok(ParameterObject {
                    value: parameter_body(&p.value)?,
                    parameter_name: some(&p.name),
                })
            })
            .collect::<Result<Vec<_>, AdapterError>>()?;
        let (kind, sub_type, index) = match component.kind {
            ComponentType::Header => ("header", None, None),
            ComponentType::Body => ("body", None, None),
            ComponentType::Button => {
                // Without a sub type, a payload parameter means a quick reply
                // button, anything else a dynamic URL.
                let sub_type = some(&component.button_sub_type).unwrap_or_else(|| {
                    let payload = component
                        .parameters
                        .iter()
                        .any(|p| matches!(p.value, ParameterValue::Payload { .. }));
                    if payload { "quick_reply" } else { "url" }.to_owned()
                });
                ("button", Some(sub_type), Some(component.index.to_string()))
            }
        };
        components.push(ComponentObject {
            kind,
            sub_type,
            index,
            parameters,
        });
    }
    Ok(TemplateObject {
        name: template.name.clone(),
        language: LanguageObject {
            code: template.language.clone(),
        },
        components,
    })
}

fn parameter_body(value: &ParameterValue) -> Result<ParameterBody, AdapterError> {
    Ok(match value {
        ParameterValue::Text { text } => ParameterBody::Text { text: text.clone() },
        ParameterValue::Currency {
            code,
            amount_1000,
            fallback_value,
        } => ParameterBody::Currency {
            currency: CurrencyObject {
                fallback_value: fallback_value.clone(),
                code: code.clone(),
                amount_1000: *amount_1000,
            },
        },
        ParameterValue::DateTime { fallback_value } => ParameterBody::DateTime {
            date_time: DateTimeObject {
                fallback_value: fallback_value.clone(),
            },
        },
        ParameterValue::Media(media) => match media.kind {
            MediaKind::Image => ParameterBody::Image {
                image: media_object(media, false, false)?,
            },
            MediaKind::Video => ParameterBody::Video {
                video: media_object(media, false, false)?,
            },
            MediaKind::Document => ParameterBody::Document {
                document: media_object(media, false, true)?,
            },
            MediaKind::Audio | MediaKind::Sticker => {
                return Err(AdapterError::unsupported(
                    Channel::Whatsapp,
                    "audio or sticker template parameters",
                ));
            }
        },
        ParameterValue::Payload { payload } => ParameterBody::Payload {
            payload: payload.clone(),
        },
    })
}

fn interactive_object(interactive: &Interactive) -> InteractiveObject {
    let (kind, action) = match &interactive.choices {
        Choices::Buttons { buttons } => (
            "button",
            ActionObject {
                button: None,
                buttons: buttons
                    .iter()
                    .map(|b| ReplyButton {
                        kind: "reply",
                        reply: ReplyObject {
                            id: b.id.clone(),
                            title: b.title.clone(),
                        },
                    })
                    .collect(),
                sections: Vec::new(),
            },
        ),
        Choices::List { button, sections } => (
            "list",
            ActionObject {
                button: Some(button.clone()),
                buttons: Vec::new(),
                sections: sections
                    .iter()
                    .map(|s| SectionObject {
                        title: some(&s.title),
                        rows: s
                            .rows
                            .iter()
                            .map(|r| RowObject {
                                id: r.id.clone(),
                                title: r.title.clone(),
                                description: some(&r.description),
                            })
                            .collect(),
                    })
                    .collect(),
            },
        ),
    };
    InteractiveObject {
        kind,
        header: some(&interactive.header).map(|text| HeaderObject { kind: "text", text }),
        body: TextOnly {
            text: interactive.body.clone(),
        },
        footer: some(&interactive.footer).map(|text| TextOnly { text }),
        action,
    }
}

// ----------------------------------------------------------------- inbound

/// One element of a webhook's `value.messages[]`.
#[derive(Debug, Clone, Deserialize)]
pub struct InboundMessageDto {
    /// The customer's wa_id; newer payloads may omit it.
    #[serde(default)]
    pub from: Option<String>,
    /// The business-scoped user id, when present.
    #[serde(default)]
    pub from_user_id: Option<String>,
    /// The wamid.
    pub id: String,
    /// Unix seconds, as a string (a number is accepted too).
    #[serde(default)]
    pub timestamp: Option<serde_json::Value>,
    /// The message type.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The message replied to.
    #[serde(default)]
    pub context: Option<ContextDto>,
    #[serde(default)]
    text: Option<TextDto>,
    #[serde(default)]
    image: Option<MediaDto>,
    #[serde(default)]
    audio: Option<MediaDto>,
    #[serde(default)]
    video: Option<MediaDto>,
    #[serde(default)]
    document: Option<MediaDto>,
    #[serde(default)]
    sticker: Option<MediaDto>,
    #[serde(default)]
    location: Option<LocationDto>,
    #[serde(default)]
    contacts: Option<Vec<SharedContactDto>>,
    #[serde(default)]
    interactive: Option<InteractiveDto>,
    #[serde(default)]
    button: Option<ButtonDto>,
    /// A reaction (its `message_id` is the message reacted to).
    #[serde(default)]
    pub reaction: Option<ReactionDto>,
    #[serde(default)]
    system: Option<SystemDto>,
    #[serde(default)]
    errors: Option<Vec<ErrorDto>>,
    /// `unsupported`: Meta may name what the customer sent.
    #[serde(default)]
    pub unsupported: Option<UnsupportedDto>,
}

/// `context{from,id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ContextDto {
    /// The wamid of the message replied to.
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct TextDto {
    #[serde(default)]
    body: String,
}

#[derive(Debug, Clone, Deserialize)]
struct MediaDto {
    #[serde(default)]
    id: String,
    #[serde(default)]
    mime_type: String,
    #[serde(default)]
    sha256: String,
    #[serde(default)]
    caption: String,
    #[serde(default)]
    filename: String,
}

#[derive(Debug, Clone, Deserialize)]
struct LocationDto {
    latitude: f64,
    longitude: f64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    address: String,
}

#[derive(Debug, Clone, Deserialize)]
struct SharedContactDto {
    #[serde(default)]
    name: Option<ContactNameDto>,
    #[serde(default)]
    phones: Vec<ContactPhoneDto>,
    #[serde(default)]
    emails: Vec<ContactEmailDto>,
}

#[derive(Debug, Clone, Deserialize)]
struct ContactNameDto {
    #[serde(default)]
    formatted_name: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ContactPhoneDto {
    #[serde(default)]
    phone: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ContactEmailDto {
    #[serde(default)]
    email: String,
}

#[derive(Debug, Clone, Deserialize)]
struct InteractiveDto {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    button_reply: Option<ReplyDto>,
    #[serde(default)]
    list_reply: Option<ReplyDto>,
}

#[derive(Debug, Clone, Deserialize)]
struct ReplyDto {
    #[serde(default)]
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ButtonDto {
    #[serde(default)]
    payload: String,
    #[serde(default)]
    text: String,
}

/// `reaction{message_id,emoji}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReactionDto {
    /// The wamid reacted to.
    #[serde(default)]
    pub message_id: String,
    #[serde(default)]
    emoji: String,
}

#[derive(Debug, Clone, Deserialize)]
struct SystemDto {
    #[serde(rename = "type", default)]
    kind: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ErrorDto {
    #[serde(default)]
    code: Option<serde_json::Value>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    error_data: Option<ErrorDataDto>,
}

#[derive(Debug, Clone, Deserialize)]
struct ErrorDataDto {
    #[serde(default)]
    details: String,
}

/// `unsupported{type}`: what the customer sent, when Meta names it.
#[derive(Debug, Clone, Deserialize)]
pub struct UnsupportedDto {
    #[serde(default, rename = "type")]
    kind: String,
}

/// Why an inbound message is not turned into content (it becomes
/// `WebhookEvent::Ignored` with this reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhandled(pub String);

impl TryFrom<&InboundMessageDto> for Content {
    type Error = Unhandled;

    fn try_from(m: &InboundMessageDto) -> Result<Content, Unhandled> {
        let missing = || Unhandled(format!("{} message without its {0} object", m.kind));
        let media = |kind: MediaKind, dto: &Option<MediaDto>| {
            let dto = dto.as_ref().ok_or_else(missing)?;
            Ok(Content::Media(Media {
                kind,
                url: String::new(),
                media_id: dto.id.clone(),
                caption: dto.caption.clone(),
                filename: dto.filename.clone(),
                mime_type: dto.mime_type.clone(),
                sha256: dto.sha256.clone(),
            }))
        };
        match m.kind.as_str() {
            "text" => {
                let text = m.text.as_ref().ok_or_else(missing)?;
                Ok(Content::Text(omniroute_channel::content::Text {
                    body: text.body.clone(),
                    ..Default::default()
                }))
            }
            "image" => media(MediaKind::Image, &m.image),
            "audio" => media(MediaKind::Audio, &m.audio),
            "video" => media(MediaKind::Video, &m.video),
            "document" => media(MediaKind::Document, &m.document),
            "sticker" => media(MediaKind::Sticker, &m.sticker),
            "location" => {
                let l = m.location.as_ref().ok_or_else(missing)?;
                Ok(Content::Location(omniroute_channel::content::Location {
                    latitude: l.latitude,
                    longitude: l.longitude,
                    label: l.name.clone(),
                    address: l.address.clone(),
                }))
            }
            "contacts" => {
                let contacts = m.contacts.as_ref().ok_or_else(missing)?;
                Ok(Content::Text(omniroute_channel::content::Text {
                    body: contacts_summary(contacts),
                    ..Default::default()
                }))
            }
            "interactive" => {
                let i = m.interactive.as_ref().ok_or_else(missing)?;
                let reply = match i.kind.as_str() {
                    "button_reply" => i.button_reply.as_ref(),
                    "list_reply" => i.list_reply.as_ref(),
                    other => {
                        return Err(Unhandled(format!("interactive reply of type {other:?}")));
                    }
                };
                let reply = reply.ok_or_else(missing)?;
                Ok(Content::ChoiceReply(omniroute_channel::content::Choice {
                    id: reply.id.clone(),
                    title: reply.title.clone(),
                    description: reply.description.clone(),
                }))
            }
            "button" => {
                let b = m.button.as_ref().ok_or_else(missing)?;
                Ok(Content::ChoiceReply(omniroute_channel::content::Choice {
                    id: b.payload.clone(),
                    title: b.text.clone(),
                    description: String::new(),
                }))
            }
            "reaction" => {
                let r = m.reaction.as_ref().ok_or_else(missing)?;
                Ok(Content::Reaction(omniroute_channel::content::Reaction {
                    message: r.message_id.clone(),
                    emoji: r.emoji.clone(),
                }))
            }
            "system" => {
                let kind = m.system.as_ref().map(|s| s.kind.as_str()).unwrap_or("");
                Err(Unhandled(format!("system message {kind:?}")))
            }
            // The customer wrote something the Cloud API cannot show us
            // (131051), or a type this adapter does not know yet: recorded,
            // so that an agent sees it and can answer.
            kind => {
                let error = m.errors.as_ref().and_then(|e| e.first());
                let provider_type = match (kind, &m.unsupported) {
                    ("unsupported", Some(u)) => u.kind.clone(),
                    ("unsupported", None) => String::new(),
                    (other, _) => other.to_owned(),
                };
                let error_message = error
                    .map(|e| {
                        [e.title.as_str(), e.message.as_str()]
                            .into_iter()
                            .chain(e.error_data.as_ref().map(|d| d.details.as_str()))
                            .filter(|t| !t.is_empty())
                            .fold(Vec::<&str>::new(), |mut parts, t| {
                                if !parts.contains(&t) {
                                    parts.push(t);
                                }
                                parts
                            })
                            .join(": ")
                    })
                    .unwrap_or_default();
                Ok(Content::Unsupported(
                    omniroute_channel::content::Unsupported {
                        provider_type,
                        error_code: error
                            .and_then(|e| e.code.as_ref())
                            .and_then(crate::error::code_text)
                            .unwrap_or_default(),
                        error_message,
                    },
                ))
            }
        }
    }
}

/// Shared contact cards become a text an agent can read: one line per
/// contact, its name then its phone numbers and email addresses. (The
/// neutral model has no contact-card content; dropping them would lose what
/// the customer sent.)
fn contacts_summary(contacts: &[SharedContactDto]) -> String {
    let lines: Vec<String> = contacts
        .iter()
        .map(|c| {
            let name = c
                .name
                .as_ref()
                .map(|n| n.formatted_name.as_str())
                .filter(|n| !n.is_empty())
                .unwrap_or("(no name)");
            let reachable: Vec<&str> = c
                .phones
                .iter()
                .map(|p| p.phone.as_str())
                .chain(c.emails.iter().map(|e| e.email.as_str()))
                .filter(|s| !s.is_empty())
                .collect();
            if reachable.is_empty() {
                name.to_owned()
            } else {
                format!("{name}: {}", reachable.join(", "))
            }
        })
        .collect();
    format!("Shared contact:\n{}", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use omniroute_channel::content::{Choice, Text};
    use omniroute_channel::{Address, Category, PhoneRegion};
    use serde_json::json;

    use super::*;

    fn outbound(content: Content) -> OutboundMessage {
        OutboundMessage {
            tenant: "acme".into(),
            message_id: "msg-1".into(),
            to: Address::parse(
                Channel::Whatsapp,
                "+49 151 23456789",
                PhoneRegion::default(),
            )
            .unwrap(),
            category: Category::Service,
            content,
            reply_to: None,
            attempt: 1,
            window_open_until: None,
            locale: None,
            trace_parent: String::new(),
        }
    }

    fn json_of(message: &OutboundMessage) -> serde_json::Value {
        serde_json::to_value(SendRequest::try_from(message).unwrap()).unwrap()
    }

    #[test]
    fn text_is_the_documented_object() {
        let mut m = outbound(Content::Text(Text {
            body: "Hallo".into(),
            ..Text::default()
        }));
        m.reply_to = Some("wamid.IN".into());
        assert_eq!(
            json_of(&m),
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "4915123456789",
                "context": {"message_id": "wamid.IN"},
                "biz_opaque_callback_data": "msg-1",
                "type": "text",
                "text": {"body": "Hallo", "preview_url": false}
            })
        );
    }

    #[test]
    fn media_prefers_the_id_and_drops_what_the_kind_lacks() {
        let m = outbound(Content::Media(Media {
            kind: MediaKind::Audio,
            url: "https://x/a.ogg".into(),
            media_id: "1013".into(),
            caption: "ignored".into(),
            filename: String::new(),
            mime_type: String::new(),
            sha256: String::new(),
        }));
        let v = json_of(&m);
        assert_eq!(v["type"], "audio");
        assert_eq!(v["audio"], json!({"id": "1013"}));

        let mut m = outbound(Content::Media(Media {
            kind: MediaKind::Image,
            url: String::new(),
            media_id: String::new(),
            caption: String::new(),
            filename: String::new(),
            mime_type: String::new(),
            sha256: String::new(),
        }));
        let e = SendRequest::try_from(&m).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        m.content = Content::CallbackRequest(Default::default());
        let e = SendRequest::try_from(&m).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Unsupported);
    }

    #[test]
    fn inbound_only_kinds_are_unsupported() {
        for content in [
            Content::ChoiceReply(Choice::default()),
            Content::Reaction(Default::default()),
            Content::Location(Default::default()),
        ] {
            let e = SendRequest::try_from(&outbound(content)).unwrap_err();
            assert_eq!(e.class(), ErrorClass::Unsupported);
        }
    }

    #[test]
    fn inbound_types_convert() {
        let dto: InboundMessageDto = serde_json::from_value(json!({
            "from": "4915123456789", "id": "wamid.A", "timestamp": "1749416383",
            "type": "interactive",
            "interactive": {"type": "list_reply", "list_reply": {"id": "r1", "title": "Row", "description": "D"}}
        }))
        .unwrap();
        assert_eq!(
            Content::try_from(&dto).unwrap(),
            Content::ChoiceReply(Choice {
                id: "r1".into(),
                title: "Row".into(),
                description: "D".into()
            })
        );
        let dto: InboundMessageDto = serde_json::from_value(json!({
            "from": "4915123456789", "id": "wamid.B", "timestamp": "1749416383", "type": "order",
            "order": {"catalog_id": "1"}
        }))
        .unwrap();
        match Content::try_from(&dto).unwrap() {
            Content::Unsupported(u) => assert_eq!(u.provider_type, "order"),
            other => panic!("an order is recorded as unsupported: {other:?}"),
        }
        let dto: InboundMessageDto = serde_json::from_value(json!({
            "from": "4915123456789", "id": "wamid.C", "timestamp": "1749416383", "type": "contacts",
            "contacts": [{"name": {"formatted_name": "Anna Schmidt", "first_name": "Anna"},
                          "phones": [{"phone": "+49 151 1111111", "wa_id": "491511111111", "type": "CELL"}]}]
        }))
        .unwrap();
        let Content::Text(text) = Content::try_from(&dto).unwrap() else {
            panic!("contacts become text");
        };
        assert_eq!(text.body, "Shared contact:\nAnna Schmidt: +49 151 1111111");
    }
}
