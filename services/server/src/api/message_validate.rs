//! Validation of what a caller sends about messages: outbound content,
//! per-channel overrides, priorities and event type filters, from the wire of
//! omniroute.v1 to the domain records.
//!
//! Every problem is reported, each on the field path as the caller wrote it
//! (for example `message.content.interactive.buttons.buttons[1].title`).
//! The rules here are the neutral model's (required fields, the shapes and
//! limits the proto documents for every channel, sanity bounds); what one
//! channel can carry is its adapter's to say, and routing checks it per
//! step (a text too long for WhatsApp goes by email). The one exception is
//! a list section's title, which the proto leaves open: it is held to the
//! shortest title the channels with native lists declare
//! (`Capabilities::choice_limits`), read from their declarations, never
//! written here. The conversion back to the wire lives in
//! [`super::message_convert`].

use std::collections::HashMap;

use omniroute_channel::Channel;
use omniroute_channel::content::{
    CallbackRequest, Choice, ChoiceSection, Choices, ComponentType, Content, Interactive, Media,
    MediaKind, ParameterValue, Template, TemplateComponent, TemplateParameter, Text,
};
use omniroute_domain::{ChannelOverride, EventType, Priority};
use omniroute_proto::v1 as pb;

use super::convert;
use crate::app::Violations;

/// A sanity bound on a text body (a long email), not any channel's limit.
const MAX_TEXT_BODY: usize = 100_000;
const MAX_SUBJECT: usize = 998;
const MAX_TEMPLATE_NAME: usize = 512;
const BUTTON_SUB_TYPES: [&str; 3] = ["quick_reply", "url", "copy_code"];
const INBOUND_ONLY: &str = "inbound only: a customer sends this kind, the router never does";

/// The neutral model's limits on choices, as message.proto documents them
/// for every channel (`InteractiveContent`, `Choice`, `ReplyButtons`,
/// `ChoiceList`), whichever channel a message goes by.
mod model {
    /// `InteractiveContent.body`: "at most 1024 characters".
    pub const INTERACTIVE_BODY: usize = 1024;
    /// `ReplyButtons`: "one to three".
    pub const BUTTONS: usize = 3;
    /// `Choice.title`: "at most 20 characters for buttons".
    pub const BUTTON_TITLE: usize = 20;
    /// `Choice.title`: "24 for list rows".
    pub const ROW_TITLE: usize = 24;
    /// `Choice.id`: "at most 256 characters".
    pub const CHOICE_ID: usize = 256;
    /// `Choice.description`: "for list rows: at most 72 characters" (a
    /// button's is held to it too: email shows it).
    pub const DESCRIPTION: usize = 72;
    /// `ChoiceList.button`: "at most 20 characters".
    pub const LIST_BUTTON: usize = 20;
    /// `ChoiceList`: "at most 10 sections".
    pub const SECTIONS: usize = 10;
    /// `ChoiceList`: "and 10 rows in all".
    pub const ROWS: usize = 10;
}

/// The longest list section title every channel with native lists takes,
/// as its adapter declares it (`None`: none limits it). The proto sets no
/// limit, and choices are written once for every channel a message may go
/// by, so the API holds them to each such channel, as it always has. Every
/// channel counts, whichever adapter serves it here: its sandbox declares
/// what its real adapter does (a sandbox test holds them equal).
fn max_section_title() -> Option<usize> {
    Channel::ALL
        .into_iter()
        .filter_map(|channel| omniroute_sandbox::capabilities(channel).choice_limits)
        .map(|limits| limits.section_title)
        .min()
}

/// Validates and converts the content of an outbound message (or of an
/// override). `None` when anything is wrong; every problem is in `v`.
///
/// The agent address of a callback request is kept as given: the caller
/// normalizes it as a phone number.
pub fn content(v: &mut Violations, field: &str, content: Option<&pb::Content>) -> Option<Content> {
    use pb::content::Kind;
    let Some(kind) = content.and_then(|c| c.kind.as_ref()) else {
        v.add(
            field,
            "content is required: one of text, template, media, interactive or callback_request",
        );
        return None;
    };
    match kind {
        Kind::Text(t) => text(v, &format!("{field}.text"), t).map(Content::Text),
        Kind::Template(t) => template(v, &format!("{field}.template"), t).map(Content::Template),
        Kind::Media(m) => media(v, &format!("{field}.media"), m).map(Content::Media),
        Kind::Interactive(i) => {
            interactive(v, &format!("{field}.interactive"), i).map(Content::Interactive)
        }
        Kind::CallbackRequest(c) => callback_request(v, &format!("{field}.callback_request"), c)
            .map(Content::CallbackRequest),
        Kind::ChoiceReply(_) => inbound_only(v, format!("{field}.choice_reply")),
        Kind::Reaction(_) => inbound_only(v, format!("{field}.reaction")),
        Kind::Location(_) => inbound_only(v, format!("{field}.location")),
        Kind::Unsupported(_) => inbound_only(v, format!("{field}.unsupported")),
        Kind::InboundCall(_) => inbound_only(v, format!("{field}.inbound_call")),
    }
}

/// Validates per-channel overrides: each names a channel, at most one per
/// channel (and one more for a closed service window, which must be a
/// template), and carries valid content.
pub fn overrides(
    v: &mut Violations,
    field: &str,
    overrides: &[pb::ChannelOverride],
) -> Vec<ChannelOverride> {
    let mut out: Vec<ChannelOverride> = Vec::new();
    let mut seen = Vec::new();
    for (i, o) in overrides.iter().enumerate() {
        let item = format!("{field}[{i}]");
        let channel = v.check(format!("{item}.channel"), convert::channel(o.channel));
        if let Some(c) = channel {
            if seen.contains(&(c, o.outside_window)) {
                let what = if o.outside_window {
                    "an override for a closed window"
                } else {
                    "an override"
                };
                v.add(format!("{item}.channel"), format!("{c} already has {what}"));
            }
            seen.push((c, o.outside_window));
        }
        let content = content(v, &format!("{item}.content"), o.content.as_ref());
        if o.outside_window && !matches!(content, None | Some(Content::Template(_))) {
            v.add(
                format!("{item}.content"),
                "an override for a closed window must be a template",
            );
            continue;
        }
        if let (Some(channel), Some(content)) = (channel, content)
            && !out
                .iter()
                .any(|x| x.channel == channel && x.outside_window == o.outside_window)
        {
            out.push(ChannelOverride {
                channel,
                content,
                outside_window: o.outside_window,
            });
        }
    }
    out
}

/// Validates the channels a caller excludes: each a channel, once.
pub fn excluded_channels(
    v: &mut Violations,
    field: &str,
    values: &[i32],
) -> Vec<omniroute_channel::Channel> {
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if let Some(channel) = v.check(format!("{field}[{i}]"), convert::channel(*value)) {
            if out.contains(&channel) {
                v.add(format!("{field}[{i}]"), format!("{channel} is named twice"));
            } else {
                out.push(channel);
            }
        }
    }
    out
}

/// The longest delivery deadline a caller may set.
pub const MAX_DELIVER_WITHIN: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Validates a caller's delivery deadline: positive, at most a week.
pub fn deliver_within(
    v: &mut Violations,
    field: &str,
    value: Option<&prost_types::Duration>,
) -> Option<std::time::Duration> {
    let d = value?;
    match std::time::Duration::try_from(*d) {
        Ok(d) if d.is_zero() => v.add(field, "must be positive"),
        Ok(d) if d > MAX_DELIVER_WITHIN => v.add(field, "must be at most 7 days"),
        Ok(d) => return Some(d),
        Err(_) => v.add(field, "must be positive"),
    }
    None
}

/// A wire priority; unspecified means "derive it from the category".
pub fn priority(value: i32) -> Result<Option<Priority>, &'static str> {
    match pb::Priority::try_from(value) {
        Ok(pb::Priority::Unspecified) => Ok(None),
        Ok(pb::Priority::High) => Ok(Some(Priority::High)),
        Ok(pb::Priority::Normal) => Ok(Some(Priority::Normal)),
        Ok(pb::Priority::Low) => Ok(Some(Priority::Low)),
        Err(_) => Err("unknown priority"),
    }
}

/// A filter of event types; unspecified and unknown values are violations,
/// repeats are dropped.
pub fn event_types(v: &mut Violations, field: &str, values: &[i32]) -> Vec<EventType> {
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let kind = match pb::EventType::try_from(*value) {
            Ok(pb::EventType::Unspecified) => {
                Err("an event type is required here; leave the list empty to receive every type")
            }
            Ok(pb::EventType::MessageAccepted) => Ok(EventType::MessageAccepted),
            Ok(pb::EventType::MessageStatusChanged) => Ok(EventType::MessageStatusChanged),
            Ok(pb::EventType::MessageFailed) => Ok(EventType::MessageFailed),
            Ok(pb::EventType::MessageReceived) => Ok(EventType::MessageReceived),
            Ok(pb::EventType::ContactCreated) => Ok(EventType::ContactCreated),
            Ok(pb::EventType::ContactMerged) => Ok(EventType::ContactMerged),
            Ok(pb::EventType::ContactErased) => Ok(EventType::ContactErased),
            Ok(pb::EventType::CallbackChanged) => Ok(EventType::CallbackChanged),
            Ok(pb::EventType::MessageDeferred) => Ok(EventType::MessageDeferred),
            Ok(pb::EventType::MessageFallback) => Ok(EventType::MessageFallback),
            Ok(pb::EventType::WindowClosing) => Ok(EventType::WindowClosing),
            Ok(pb::EventType::EndpointDisabled) => Ok(EventType::EndpointDisabled),
            Ok(pb::EventType::EndpointTest) => Ok(EventType::EndpointTest),
            Err(_) => Err("unknown event type"),
        };
        if let Some(kind) = v.check(format!("{field}[{i}]"), kind)
            && !out.contains(&kind)
        {
            out.push(kind);
        }
    }
    out
}

fn inbound_only<T>(v: &mut Violations, field: String) -> Option<T> {
    v.add(field, INBOUND_ONLY);
    None
}

/// Checks a text field's length in characters and, when `required` names
/// it, that it is not blank. True when fine.
fn bounded(
    v: &mut Violations,
    field: String,
    value: &str,
    max: usize,
    required: Option<&str>,
) -> bool {
    if let Some(what) = required
        && value.trim().is_empty()
    {
        v.add(field, format!("{what} is required"));
        return false;
    }
    let len = value.chars().count();
    if len > max {
        v.add(field, format!("longer than {max} characters ({len})"));
        return false;
    }
    true
}

fn text(v: &mut Violations, f: &str, t: &pb::TextContent) -> Option<Text> {
    let mut ok = bounded(
        v,
        format!("{f}.body"),
        &t.body,
        MAX_TEXT_BODY,
        Some("a body"),
    );
    // The subject becomes a mail header: no line breaks may smuggle in others.
    if t.subject.chars().any(char::is_control) {
        v.add(format!("{f}.subject"), "contains control characters");
        ok = false;
    } else {
        ok &= bounded(v, format!("{f}.subject"), &t.subject, MAX_SUBJECT, None);
    }
    ok.then(|| Text {
        body: t.body.clone(),
        subject: t.subject.clone(),
        html_body: t.html_body.clone(),
        preview_url: t.preview_url,
        // Output only: a caller's is ignored.
        overflow: None,
    })
}

fn template(v: &mut Violations, f: &str, t: &pb::TemplateContent) -> Option<Template> {
    let mut ok = true;
    let name_ok = t
        .name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if t.name.is_empty() {
        v.add(
            format!("{f}.name"),
            "a template name is required, for example \"order_shipped\"",
        );
        ok = false;
    } else if !name_ok || t.name.len() > MAX_TEMPLATE_NAME {
        v.add(
            format!("{f}.name"),
            format!(
                "a template name has 1 to {MAX_TEMPLATE_NAME} lowercase letters, digits and underscores"
            ),
        );
        ok = false;
    }
    if t.language.trim().is_empty() {
        v.add(
            format!("{f}.language"),
            "a language is required, for example \"de\" or \"en_US\"",
        );
        ok = false;
    }
    let mut components = Vec::new();
    for (i, c) in t.components.iter().enumerate() {
        match component(v, &format!("{f}.components[{i}]"), c) {
            Some(c) => components.push(c),
            None => ok = false,
        }
    }
    ok.then(|| Template {
        name: t.name.clone(),
        language: t.language.clone(),
        components,
    })
}

fn component(v: &mut Violations, f: &str, c: &pb::TemplateComponent) -> Option<TemplateComponent> {
    let kind = match pb::TemplateComponentType::try_from(c.r#type) {
        Ok(pb::TemplateComponentType::Header) => Ok(ComponentType::Header),
        Ok(pb::TemplateComponentType::Body) => Ok(ComponentType::Body),
        Ok(pb::TemplateComponentType::Button) => Ok(ComponentType::Button),
        Ok(pb::TemplateComponentType::Unspecified) => {
            Err("a component type is required: header, body or button")
        }
        Err(_) => Err("unknown component type"),
    };
    let kind = v.check(format!("{f}.type"), kind);
    let mut ok = kind.is_some();
    if kind == Some(ComponentType::Button)
        && !BUTTON_SUB_TYPES.contains(&c.button_sub_type.as_str())
    {
        v.add(
            format!("{f}.button_sub_type"),
            "a button component needs a sub type: quick_reply, url or copy_code",
        );
        ok = false;
    }
    let index = v.check(
        format!("{f}.index"),
        u32::try_from(c.index).map_err(|_| "must not be negative"),
    );
    let mut parameters = Vec::new();
    for (i, p) in c.parameters.iter().enumerate() {
        match parameter(v, &format!("{f}.parameters[{i}]"), p) {
            Some(p) => parameters.push(p),
            None => ok = false,
        }
    }
    if !ok {
        return None;
    }
    Some(TemplateComponent {
        kind: kind?,
        button_sub_type: c.button_sub_type.clone(),
        index: index?,
        parameters,
    })
}

fn parameter(v: &mut Violations, f: &str, p: &pb::TemplateParameter) -> Option<TemplateParameter> {
    use pb::template_parameter::Value;
    let filled = |v: &mut Violations, name: &str, value: &str| {
        let ok = !value.trim().is_empty();
        if !ok {
            v.add(format!("{f}.{name}"), "must not be empty");
        }
        ok
    };
    let value = match &p.value {
        None => {
            v.add(
                f,
                "a value is required: text, currency, date_time, media or payload",
            );
            None
        }
        Some(Value::Text(text)) => {
            filled(v, "text", text).then(|| ParameterValue::Text { text: text.clone() })
        }
        Some(Value::DateTime(text)) => {
            filled(v, "date_time", text).then(|| ParameterValue::DateTime {
                fallback_value: text.clone(),
            })
        }
        Some(Value::Payload(payload)) => {
            filled(v, "payload", payload).then(|| ParameterValue::Payload {
                payload: payload.clone(),
            })
        }
        Some(Value::Media(m)) => media(v, &format!("{f}.media"), m).map(ParameterValue::Media),
        Some(Value::Currency(c)) => {
            let mut ok = true;
            if c.code.len() != 3 || !c.code.bytes().all(|b| b.is_ascii_uppercase()) {
                v.add(
                    format!("{f}.currency.code"),
                    "an ISO 4217 currency code is required, for example \"EUR\"",
                );
                ok = false;
            }
            if c.fallback_value.trim().is_empty() {
                v.add(
                    format!("{f}.currency.fallback_value"),
                    "a fallback text is required, for example \"12.50 EUR\"",
                );
                ok = false;
            }
            ok.then(|| ParameterValue::Currency {
                code: c.code.clone(),
                amount_1000: c.amount_1000,
                fallback_value: c.fallback_value.clone(),
            })
        }
    };
    Some(TemplateParameter {
        name: p.parameter_name.clone(),
        value: value?,
    })
}

fn is_http_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return false;
    };
    !rest.is_empty()
        && !rest.starts_with('/')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn media(v: &mut Violations, f: &str, m: &pb::MediaContent) -> Option<Media> {
    let kind = match pb::MediaKind::try_from(m.kind) {
        Ok(pb::MediaKind::Image) => Ok(MediaKind::Image),
        Ok(pb::MediaKind::Document) => Ok(MediaKind::Document),
        Ok(pb::MediaKind::Audio) => Ok(MediaKind::Audio),
        Ok(pb::MediaKind::Video) => Ok(MediaKind::Video),
        Ok(pb::MediaKind::Sticker) => Ok(MediaKind::Sticker),
        Ok(pb::MediaKind::Unspecified) => {
            Err("a media kind is required: image, document, audio, video or sticker")
        }
        Err(_) => Err("unknown media kind"),
    };
    let kind = v.check(format!("{f}.kind"), kind);
    let source_ok = match (m.url.is_empty(), m.media_id.is_empty()) {
        (true, true) => {
            v.add(format!("{f}.url"), "one of url or media_id is required");
            false
        }
        (false, false) => {
            v.add(format!("{f}.media_id"), "set url or media_id, not both");
            false
        }
        (false, true) if !is_http_url(&m.url) => {
            v.add(
                format!("{f}.url"),
                "must be an https:// or http:// URL, for example \"https://example.com/a.pdf\"",
            );
            false
        }
        _ => true,
    };
    if !source_ok {
        return None;
    }
    Some(Media {
        kind: kind?,
        url: m.url.clone(),
        media_id: m.media_id.clone(),
        caption: m.caption.clone(),
        filename: m.filename.clone(),
        mime_type: m.mime_type.clone(),
        // Output only: what a provider reports for received media.
        sha256: String::new(),
    })
}

fn interactive(v: &mut Violations, f: &str, i: &pb::InteractiveContent) -> Option<Interactive> {
    use pb::interactive_content::Choices as PbChoices;
    let body_ok = bounded(
        v,
        format!("{f}.body"),
        &i.body,
        model::INTERACTIVE_BODY,
        Some("a body"),
    );
    let choices = match &i.choices {
        None => {
            v.add(f, "choices are required: buttons or list");
            None
        }
        Some(PbChoices::Buttons(b)) => buttons(v, &format!("{f}.buttons.buttons"), &b.buttons),
        Some(PbChoices::List(l)) => list(v, &format!("{f}.list"), l),
    };
    if !body_ok {
        return None;
    }
    Some(Interactive {
        header: i.header.clone(),
        body: i.body.clone(),
        footer: i.footer.clone(),
        choices: choices?,
    })
}

/// Checks one choice's id, title and (for list rows) description.
fn choice(v: &mut Violations, f: &str, c: &pb::Choice, max_title: usize) -> Option<Choice> {
    let mut ok = bounded(v, format!("{f}.id"), &c.id, model::CHOICE_ID, Some("an id"));
    ok &= bounded(
        v,
        format!("{f}.title"),
        &c.title,
        max_title,
        Some("a title"),
    );
    ok &= bounded(
        v,
        format!("{f}.description"),
        &c.description,
        model::DESCRIPTION,
        None,
    );
    ok.then(|| Choice {
        id: c.id.clone(),
        title: c.title.clone(),
        description: c.description.clone(),
    })
}

/// Reports at `field` a value seen before; `seen` maps each value to the
/// label of the choice that had it first, `label` names this one.
fn unique<'a>(
    v: &mut Violations,
    seen: &mut HashMap<&'a str, String>,
    value: &'a str,
    field: String,
    label: String,
    what: &str,
) -> bool {
    if value.is_empty() {
        return true;
    }
    if let Some(first) = seen.get(value) {
        v.add(
            field,
            format!("{what} must be unique; {first} has the same"),
        );
        return false;
    }
    seen.insert(value, label);
    true
}

fn buttons(v: &mut Violations, f: &str, buttons: &[pb::Choice]) -> Option<Choices> {
    let mut ok = true;
    if buttons.is_empty() || buttons.len() > model::BUTTONS {
        v.add(
            f,
            format!(
                "one to {} buttons are required ({})",
                model::BUTTONS,
                buttons.len()
            ),
        );
        ok = false;
    }
    let (mut titles, mut ids) = (HashMap::new(), HashMap::new());
    let mut out = Vec::new();
    for (i, b) in buttons.iter().enumerate() {
        let path = format!("{f}[{i}]");
        let label = format!("buttons[{i}]");
        let (id, title) = (format!("{path}.id"), format!("{path}.title"));
        ok &= unique(v, &mut ids, &b.id, id, label.clone(), "a button id");
        ok &= unique(v, &mut titles, &b.title, title, label, "a button title");
        match choice(v, &path, b, model::BUTTON_TITLE) {
            Some(c) => out.push(c),
            None => ok = false,
        }
    }
    ok.then_some(Choices::Buttons { buttons: out })
}

fn list(v: &mut Violations, f: &str, l: &pb::ChoiceList) -> Option<Choices> {
    let mut ok = bounded(
        v,
        format!("{f}.button"),
        &l.button,
        model::LIST_BUTTON,
        Some("the text of the button that opens the list"),
    );
    if l.sections.len() > model::SECTIONS {
        v.add(
            format!("{f}.sections"),
            format!(
                "at most {} sections ({})",
                model::SECTIONS,
                l.sections.len()
            ),
        );
        ok = false;
    }
    let rows: usize = l.sections.iter().map(|s| s.rows.len()).sum();
    if rows == 0 || rows > model::ROWS {
        v.add(
            format!("{f}.sections"),
            format!(
                "one to {} rows are required in all sections together ({rows})",
                model::ROWS
            ),
        );
        ok = false;
    }
    let max_title = max_section_title();
    let mut ids = HashMap::new();
    let mut sections = Vec::new();
    for (s, section) in l.sections.iter().enumerate() {
        let sf = format!("{f}.sections[{s}]");
        if l.sections.len() > 1 && section.title.trim().is_empty() {
            v.add(
                format!("{sf}.title"),
                "a section title is required when there are several sections",
            );
            ok = false;
        } else if let Some(max) = max_title {
            ok &= bounded(v, format!("{sf}.title"), &section.title, max, None);
        }
        if section.rows.is_empty() {
            v.add(format!("{sf}.rows"), "a section needs at least one row");
            ok = false;
        }
        let mut out = Vec::new();
        for (r, row) in section.rows.iter().enumerate() {
            let path = format!("{sf}.rows[{r}]");
            let label = format!("sections[{s}].rows[{r}]");
            ok &= unique(
                v,
                &mut ids,
                &row.id,
                format!("{path}.id"),
                label,
                "a row id",
            );
            match choice(v, &path, row, model::ROW_TITLE) {
                Some(c) => out.push(c),
                None => ok = false,
            }
        }
        sections.push(ChoiceSection {
            title: section.title.clone(),
            rows: out,
        });
    }
    ok.then(|| Choices::List {
        button: l.button.clone(),
        sections,
    })
}

/// The longest reason of a callback.
pub const MAX_CALLBACK_REASON: usize = 500;

fn callback_request(
    v: &mut Violations,
    f: &str,
    c: &pb::CallbackRequestContent,
) -> Option<CallbackRequest> {
    let mut ok = true;
    if c.agent_address.trim().is_empty() {
        v.add(
            format!("{f}.agent_address"),
            "an agent address is required, for example \"+4930123456\"",
        );
        ok = false;
    }
    let language = v.check(format!("{f}.language"), convert::locale(&c.language));
    if c.reason.chars().count() > MAX_CALLBACK_REASON || c.reason.chars().any(char::is_control) {
        v.add(
            format!("{f}.reason"),
            format!("at most {MAX_CALLBACK_REASON} printable characters"),
        );
        ok = false;
    }
    if !ok {
        return None;
    }
    Some(CallbackRequest {
        agent_address: c.agent_address.clone(),
        greeting: c.greeting.clone(),
        language: language?,
        reason: c.reason.clone(),
    })
}

#[cfg(test)]
mod tests;
