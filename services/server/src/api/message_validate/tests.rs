//! The validation rules, field by field.

use omniroute_channel::Channel;
use pb::content::Kind;
use pb::interactive_content::Choices as PbChoices;

use super::*;
use crate::app::AppError;

/// Runs a check and returns the violated fields with their descriptions.
fn violations(check: impl FnOnce(&mut Violations)) -> Vec<(String, String)> {
    let mut v = Violations::default();
    check(&mut v);
    match v.finish() {
        Ok(()) => Vec::new(),
        Err(AppError::Invalid(list)) => {
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
fn a_section_title_fits_every_channel_that_shows_lists() {
    let l = "message.content.interactive.list";
    let titled = |title: &str| list("Open", vec![section(title, vec![choice("a", "Morning")])]);
    // The proto sets no limit; WhatsApp's lists take 24 characters.
    assert_eq!(max_section_title(), Some(24));
    assert!(faults(titled(&"ä".repeat(24))).is_empty());
    assert_eq!(
        faults(titled(&"t".repeat(25))),
        [format!("{l}.sections[0].title")]
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
