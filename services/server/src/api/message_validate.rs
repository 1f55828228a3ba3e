//! Validation of what a caller sends about messages: outbound content,
//! per-channel overrides, priorities and event type filters, from the wire of
//! omniroute.v1 to the domain records.
//!
//! Every problem is reported, each on the field path as the caller wrote it
//! (for example `message.content.interactive.buttons.buttons[1].title`).
//! The rules here are the neutral model's (required fields, the shapes the
//! proto documents, sanity bounds); what one channel can carry is its
//! adapter's to say, and routing checks it per step (a text too long for
//! WhatsApp goes by email). The conversion back to the wire lives in
//! [`super::message_convert`].

use std::collections::HashMap;

use omniroute_channel::content::{
    CallbackRequest, Choice, ChoiceSection, Choices, ComponentType, Content, Interactive, Media,
    MediaKind, ParameterValue, Template, TemplateComponent, TemplateParameter, Text,
};
use omniroute_proto::v1 as pb;
use omniroute_store::{ChannelOverride, EventType, Priority};

use super::convert;
use super::error::Violations;

/// A sanity bound on a text body (a long email), not any channel's limit.
const MAX_TEXT_BODY: usize = 100_000;
const MAX_SUBJECT: usize = 998;
const MAX_TEMPLATE_NAME: usize = 512;
const MAX_INTERACTIVE_BODY: usize = 1024;
const MAX_BUTTONS: usize = 3;
const MAX_BUTTON_TITLE: usize = 20;
const MAX_CHOICE_ID: usize = 256;
const MAX_LIST_BUTTON: usize = 20;
const MAX_SECTIONS: usize = 10;
const MAX_ROWS: usize = 10;
const MAX_ROW_TITLE: usize = 24;
const MAX_ROW_DESCRIPTION: usize = 72;
const MAX_SECTION_TITLE: usize = 24;
const BUTTON_SUB_TYPES: [&str; 3] = ["quick_reply", "url", "copy_code"];
const INBOUND_ONLY: &str = "inbound only: a customer sends this kind, the router never does";

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
        MAX_INTERACTIVE_BODY,
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
    let mut ok = bounded(v, format!("{f}.id"), &c.id, MAX_CHOICE_ID, Some("an id"));
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
        MAX_ROW_DESCRIPTION,
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
    if buttons.is_empty() || buttons.len() > MAX_BUTTONS {
        v.add(
            f,
            format!(
                "one to {MAX_BUTTONS} buttons are required ({})",
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
        match choice(v, &path, b, MAX_BUTTON_TITLE) {
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
        MAX_LIST_BUTTON,
        Some("the text of the button that opens the list"),
    );
    if l.sections.len() > MAX_SECTIONS {
        v.add(
            format!("{f}.sections"),
            format!("at most {MAX_SECTIONS} sections ({})", l.sections.len()),
        );
        ok = false;
    }
    let rows: usize = l.sections.iter().map(|s| s.rows.len()).sum();
    if rows == 0 || rows > MAX_ROWS {
        v.add(
            format!("{f}.sections"),
            format!("one to {MAX_ROWS} rows are required in all sections together ({rows})"),
        );
        ok = false;
    }
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
        } else {
            ok &= bounded(
                v,
                format!("{sf}.title"),
                &section.title,
                MAX_SECTION_TITLE,
                None,
            );
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
            match choice(v, &path, row, MAX_ROW_TITLE) {
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
mod tests {
    use omniroute_channel::Channel;
    use pb::content::Kind;
    use pb::interactive_content::Choices as PbChoices;

    use super::super::error::ApiError;
    use super::*;

    /// Runs a check and returns the violated fields with their descriptions.
    fn violations(check: impl FnOnce(&mut Violations)) -> Vec<(String, String)> {
        let mut v = Violations::default();
        check(&mut v);
        match v.finish() {
            Ok(()) => Vec::new(),
            Err(ApiError::Invalid(list)) => {
                list.into_iter().map(|f| (f.field, f.description)).collect()
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }

    /// The fields at fault when `kind` is sent as `message.content`.
    fn faults(kind: Kind) -> Vec<String> {
        let pb = pb::Content { kind: Some(kind) };
        let mut out = None;
        let found = violations(|v| out = content(v, "message.content", Some(&pb)));
        assert!(
            out.is_none() || found.is_empty(),
            "content despite {found:?}"
        );
        found.into_iter().map(|(field, _)| field).collect()
    }

    fn choice(id: &str, title: &str) -> pb::Choice {
        pb::Choice {
            id: id.into(),
            title: title.into(),
            description: String::new(),
        }
    }

    #[test]
    fn content_needs_a_kind() {
        let found = violations(|v| assert!(content(v, "message.content", None).is_none()));
        assert_eq!(found[0].0, "message.content");
        let empty = pb::Content { kind: None };
        let found = violations(|v| assert!(content(v, "x", Some(&empty)).is_none()));
        assert_eq!(found[0].0, "x");
    }

    #[test]
    fn text_rules() {
        let text = |body: &str, subject: &str| {
            Kind::Text(pb::TextContent {
                body: body.into(),
                subject: subject.into(),
                ..Default::default()
            })
        };
        assert_eq!(faults(text("  ", "")), ["message.content.text.body"]);
        assert_eq!(
            faults(text(&"x".repeat(100_001), "")),
            ["message.content.text.body"]
        );
        assert!(
            faults(text(&"ä".repeat(100_000), "")).is_empty(),
            "characters, not bytes"
        );
        // WhatsApp's 4096 is WhatsApp's: routing checks it per channel.
        assert!(faults(text(&"x".repeat(5_000), "")).is_empty());
        assert_eq!(
            faults(text("hi", "Hi\r\nBcc: x@example.com")),
            ["message.content.text.subject"]
        );
    }

    #[test]
    fn template_rules_report_every_problem() {
        let parameter = |value| pb::TemplateParameter {
            parameter_name: String::new(),
            value,
        };
        let kind = Kind::Template(pb::TemplateContent {
            name: "Order-Shipped".into(),
            language: String::new(),
            components: vec![
                pb::TemplateComponent {
                    r#type: 0,
                    index: -1,
                    ..Default::default()
                },
                pb::TemplateComponent {
                    r#type: pb::TemplateComponentType::Body as i32,
                    parameters: vec![
                        parameter(None),
                        parameter(Some(pb::template_parameter::Value::Text(String::new()))),
                        parameter(Some(pb::template_parameter::Value::Currency(
                            pb::CurrencyValue {
                                code: "eur".into(),
                                amount_1000: 1,
                                fallback_value: String::new(),
                            },
                        ))),
                        parameter(Some(pb::template_parameter::Value::Media(
                            pb::MediaContent::default(),
                        ))),
                    ],
                    ..Default::default()
                },
                pb::TemplateComponent {
                    r#type: pb::TemplateComponentType::Button as i32,
                    button_sub_type: "call".into(),
                    ..Default::default()
                },
            ],
        });
        let t = "message.content.template";
        let expected: Vec<String> = [
            "name",
            "language",
            "components[0].type",
            "components[0].index",
            "components[1].parameters[0]",
            "components[1].parameters[1].text",
            "components[1].parameters[2].currency.code",
            "components[1].parameters[2].currency.fallback_value",
            "components[1].parameters[3].media.kind",
            "components[1].parameters[3].media.url",
            "components[2].button_sub_type",
        ]
        .iter()
        .map(|f| format!("{t}.{f}"))
        .collect();
        assert_eq!(faults(kind), expected);
        let long = Kind::Template(pb::TemplateContent {
            name: "a".repeat(513),
            language: "de".into(),
            components: vec![],
        });
        assert_eq!(faults(long), [format!("{t}.name")]);
    }

    #[test]
    fn media_rules() {
        let m = |kind: i32, url: &str, media_id: &str| {
            Kind::Media(pb::MediaContent {
                kind,
                url: url.into(),
                media_id: media_id.into(),
                ..Default::default()
            })
        };
        let image = pb::MediaKind::Image as i32;
        assert_eq!(
            faults(m(0, "https://example.com/a.png", "")),
            ["message.content.media.kind"]
        );
        assert_eq!(faults(m(99, "", "id")), ["message.content.media.kind"]);
        assert_eq!(faults(m(image, "", "")), ["message.content.media.url"]);
        assert_eq!(
            faults(m(image, "https://example.com/a.png", "id")),
            ["message.content.media.media_id"]
        );
        for bad in [
            "ftp://example.com/a.png",
            "https://",
            "example.com/a.png",
            "https://a b",
            "https://a\u{7}b",
            "https:///a",
        ] {
            assert_eq!(
                faults(m(image, bad, "")),
                ["message.content.media.url"],
                "{bad}"
            );
        }
        assert!(faults(m(image, "HTTPS://example.com/a.png", "")).is_empty());
        let with_hash = pb::MediaContent {
            sha256: "abc".into(),
            ..pb::MediaContent {
                kind: image,
                media_id: "id".into(),
                ..Default::default()
            }
        };
        let mut out = None;
        violations(|v| out = media(v, "m", &with_hash));
        assert_eq!(out.unwrap().sha256, "", "sha256 is output only");
    }

    fn buttons(body: &str, buttons: Vec<pb::Choice>) -> Kind {
        Kind::Interactive(pb::InteractiveContent {
            body: body.into(),
            choices: Some(PbChoices::Buttons(pb::ReplyButtons { buttons })),
            ..Default::default()
        })
    }

    #[test]
    fn button_rules() {
        let b = "message.content.interactive.buttons.buttons";
        assert_eq!(faults(buttons("Pick", vec![])), [b]);
        let four = (0..4)
            .map(|i| choice(&i.to_string(), &format!("B{i}")))
            .collect();
        assert_eq!(faults(buttons("Pick", four)), [b]);
        assert_eq!(
            faults(buttons(
                &"x".repeat(1025),
                vec![
                    choice("a", "Yes"),
                    choice("b", "Yes"),
                    choice("", &"t".repeat(21)),
                    choice("a", "No"),
                ]
            )),
            [
                "message.content.interactive.body".to_owned(),
                b.to_owned(),
                format!("{b}[1].title"),
                format!("{b}[2].id"),
                format!("{b}[2].title"),
                format!("{b}[3].id"),
            ]
        );
        let long_id = vec![choice(&"i".repeat(257), "Yes")];
        assert_eq!(faults(buttons("Pick", long_id)), [format!("{b}[0].id")]);
        let none = Kind::Interactive(pb::InteractiveContent {
            body: "Pick".into(),
            ..Default::default()
        });
        assert_eq!(faults(none), ["message.content.interactive"]);
    }

    fn list(button: &str, sections: Vec<pb::ChoiceSection>) -> Kind {
        Kind::Interactive(pb::InteractiveContent {
            body: "Pick a slot".into(),
            choices: Some(PbChoices::List(pb::ChoiceList {
                button: button.into(),
                sections,
            })),
            ..Default::default()
        })
    }

    fn section(title: &str, rows: Vec<pb::Choice>) -> pb::ChoiceSection {
        pb::ChoiceSection {
            title: title.into(),
            rows,
        }
    }

    #[test]
    fn list_rules() {
        let l = "message.content.interactive.list";
        let rows = |prefix: &str, n: usize| -> Vec<pb::Choice> {
            (0..n)
                .map(|i| choice(&format!("{prefix}{i}"), "Row"))
                .collect()
        };
        assert_eq!(
            faults(list(&"b".repeat(21), vec![section("", rows("a", 1))])),
            [format!("{l}.button")]
        );
        assert_eq!(faults(list("Open", vec![])), [format!("{l}.sections")]);
        assert_eq!(
            faults(list("Open", vec![section("", rows("a", 11))])),
            [format!("{l}.sections")]
        );
        let eleven = (0..11).map(|i| section(&format!("S{i}"), rows(&format!("{i}-"), 1)));
        assert_eq!(
            faults(list("Open", eleven.collect())),
            [format!("{l}.sections"), format!("{l}.sections")]
        );
        let mut long = choice("x", &"t".repeat(25));
        long.description = "d".repeat(73);
        assert_eq!(
            faults(list(
                "Open",
                vec![
                    section("Monday", vec![choice("a", "Morning"), long]),
                    section("", vec![choice("a", "Morning")]),
                    section("Wednesday", vec![]),
                ]
            )),
            [
                format!("{l}.sections[0].rows[1].title"),
                format!("{l}.sections[0].rows[1].description"),
                format!("{l}.sections[1].title"),
                format!("{l}.sections[1].rows[0].id"),
                format!("{l}.sections[2].rows"),
            ]
        );
    }

    #[test]
    fn callback_request_rules() {
        let cb = |agent: &str, language: &str| {
            Kind::CallbackRequest(pb::CallbackRequestContent {
                agent_address: agent.into(),
                greeting: String::new(),
                language: language.into(),
                reason: String::new(),
            })
        };
        let f = "message.content.callback_request";
        assert_eq!(faults(cb(" ", "")), [format!("{f}.agent_address")]);
        assert_eq!(
            faults(cb("+4930123456", "german!")),
            [format!("{f}.language")]
        );
        let pb = pb::Content {
            kind: Some(cb("030 123456", "de_de")),
        };
        let mut out = None;
        violations(|v| out = content(v, "c", Some(&pb)));
        let Some(Content::CallbackRequest(c)) = out else {
            panic!("{out:?}")
        };
        assert_eq!(c.agent_address, "030 123456", "kept as given");
        assert_eq!(c.language, "de-DE");
        let long = Kind::CallbackRequest(pb::CallbackRequestContent {
            agent_address: "+4930123456".into(),
            reason: "x".repeat(MAX_CALLBACK_REASON + 1),
            ..Default::default()
        });
        assert_eq!(faults(long), [format!("{f}.reason")]);
    }

    #[test]
    fn override_rules() {
        let text = |body: &str| {
            Some(pb::Content {
                kind: Some(Kind::Text(pb::TextContent {
                    body: body.into(),
                    ..Default::default()
                })),
            })
        };
        let o = |channel: Channel, content| pb::ChannelOverride {
            channel: super::super::convert::channel_to_pb(channel) as i32,
            content,
            outside_window: false,
        };
        let list = [
            o(Channel::Email, text("")),
            o(Channel::Email, None),
            pb::ChannelOverride {
                channel: 0,
                content: text("hi"),
                outside_window: false,
            },
            o(Channel::Voice, text("Hello")),
        ];
        let mut out = Vec::new();
        let found = violations(|v| out = overrides(v, "message.overrides", &list));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "message.overrides[0].content.text.body",
                "message.overrides[1].channel",
                "message.overrides[1].content",
                "message.overrides[2].channel",
            ]
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].channel, Channel::Voice);

        // A closed-window alternative beside the override: a template only.
        let template = Some(pb::Content {
            kind: Some(Kind::Template(pb::TemplateContent {
                name: "order_shipped".into(),
                language: "en".into(),
                components: vec![],
            })),
        });
        let window = |content| pb::ChannelOverride {
            outside_window: true,
            ..o(Channel::Whatsapp, content)
        };
        let list = [
            o(Channel::Whatsapp, text("Hi")),
            window(template.clone()),
            window(template),
            window(text("Hi")),
        ];
        let found = violations(|v| out = overrides(v, "message.overrides", &list));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "message.overrides[2].channel",
                "message.overrides[3].channel",
                "message.overrides[3].content",
            ]
        );
        assert_eq!(out.len(), 2);
        assert!(out[1].outside_window);
    }

    #[test]
    fn priorities_and_event_types() {
        assert_eq!(priority(0), Ok(None));
        assert_eq!(
            priority(pb::Priority::High as i32),
            Ok(Some(Priority::High))
        );
        assert_eq!(priority(pb::Priority::Low as i32), Ok(Some(Priority::Low)));
        assert!(priority(42).is_err());
        let mut out = Vec::new();
        let found = violations(|v| out = event_types(v, "types", &[0, 99, 1, 1, 6]));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["types[0]", "types[1]"]);
        assert_eq!(out, [EventType::MessageAccepted, EventType::ContactMerged]);
    }
}
