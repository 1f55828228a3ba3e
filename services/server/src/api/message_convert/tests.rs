//! Conversions both ways, checked on every kind of content and event.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use prost_types::Timestamp;

use omniroute_channel::Category;
use omniroute_channel::content::{
    CallbackRequest, ChoiceSection, Interactive, Location, Reaction, Template, TemplateParameter,
    Text,
};
use omniroute_domain::{Cursor, PlannedChannel, SkippedChannel};
use pb::content::Kind;

use super::super::message_validate::content;
use super::*;
use crate::app::{AppError, Violations};

/// Validates wire content as `message.content`: the result and the
/// violated fields with their descriptions.
fn validate(pb: &pb::Content) -> (Option<Content>, Vec<(String, String)>) {
    let mut v = Violations::default();
    let out = content(&mut v, "message.content", Some(pb));
    let found = match v.finish() {
        Ok(()) => Vec::new(),
        Err(AppError::Invalid(list)) => {
            list.into_iter().map(|f| (f.field, f.description)).collect()
        }
        Err(e) => panic!("unexpected error {e:?}"),
    };
    (out, found)
}

fn media(url: &str) -> Media {
    Media {
        kind: MediaKind::Document,
        url: url.into(),
        media_id: String::new(),
        caption: "Your invoice".into(),
        filename: "invoice.pdf".into(),
        mime_type: "application/pdf".into(),
        sha256: String::new(),
    }
}

fn row(id: &str, title: &str) -> Choice {
    Choice {
        id: id.into(),
        title: title.into(),
        description: "A row".into(),
    }
}

fn outbound_samples() -> Vec<Content> {
    let parameter = |value| TemplateParameter {
        name: String::new(),
        value,
    };
    vec![
        Content::Text(Text {
            body: "Your order shipped.".into(),
            subject: "Order A-17".into(),
            html_body: "<p>Your order shipped.</p>".into(),
            preview_url: true,
            overflow: None,
        }),
        Content::Template(Template {
            name: "order_shipped_2".into(),
            language: "en_US".into(),
            components: vec![
                TemplateComponent {
                    kind: ComponentType::Header,
                    button_sub_type: String::new(),
                    index: 0,
                    parameters: vec![parameter(ParameterValue::Media(media(
                        "https://example.com/a.pdf",
                    )))],
                },
                TemplateComponent {
                    kind: ComponentType::Body,
                    button_sub_type: String::new(),
                    index: 0,
                    parameters: vec![
                        TemplateParameter {
                            name: "order".into(),
                            value: ParameterValue::Text {
                                text: "A-17".into(),
                            },
                        },
                        parameter(ParameterValue::Currency {
                            code: "EUR".into(),
                            amount_1000: 12_500,
                            fallback_value: "12.50 EUR".into(),
                        }),
                        parameter(ParameterValue::DateTime {
                            fallback_value: "1 June 2025".into(),
                        }),
                    ],
                },
                TemplateComponent {
                    kind: ComponentType::Button,
                    button_sub_type: "quick_reply".into(),
                    index: 1,
                    parameters: vec![parameter(ParameterValue::Payload {
                        payload: "stop".into(),
                    })],
                },
            ],
        }),
        Content::Media(media("http://example.com/a.pdf")),
        Content::Media(Media {
            kind: MediaKind::Sticker,
            media_id: "1234567890".into(),
            ..media("")
        }),
        Content::Interactive(Interactive {
            header: "Delivery".into(),
            body: "When should we come?".into(),
            footer: "Reply any time".into(),
            choices: Choices::Buttons {
                buttons: vec![
                    Choice {
                        id: "am".into(),
                        title: "Morning".into(),
                        description: String::new(),
                    },
                    Choice {
                        id: "pm".into(),
                        title: "Afternoon".into(),
                        description: String::new(),
                    },
                ],
            },
        }),
        Content::Interactive(Interactive {
            header: String::new(),
            body: "Pick a slot".into(),
            footer: String::new(),
            choices: Choices::List {
                button: "Slots".into(),
                sections: vec![
                    ChoiceSection {
                        title: "Monday".into(),
                        rows: vec![row("mon-am", "Morning"), row("mon-pm", "Afternoon")],
                    },
                    ChoiceSection {
                        title: "Tuesday".into(),
                        rows: vec![row("tue-am", "Morning")],
                    },
                ],
            },
        }),
        Content::CallbackRequest(CallbackRequest {
            agent_address: "+4930123456".into(),
            greeting: "Hello, connecting you now.".into(),
            language: "de-DE".into(),
            reason: "order 1234 arrived damaged".into(),
        }),
    ]
}

#[test]
fn outbound_content_round_trips() {
    for sample in outbound_samples() {
        let pb = content_to_pb(&sample);
        let (back, found) = validate(&pb);
        assert_eq!(found, vec![], "{sample:?}");
        assert_eq!(back.as_ref(), Some(&sample));
    }
}

#[test]
fn inbound_content_converts_out_but_is_refused_in() {
    let id = uuid::Uuid::now_v7();
    let samples = [
        (
            Content::ChoiceReply(row("mon-am", "Morning")),
            "choice_reply",
        ),
        (
            Content::Reaction(Reaction {
                message: id.to_string(),
                emoji: "👍".into(),
            }),
            "reaction",
        ),
        (
            Content::Location(Location {
                latitude: 52.52,
                longitude: 13.405,
                label: "Office".into(),
                address: "Alexanderplatz 1".into(),
            }),
            "location",
        ),
    ];
    for (sample, kind) in samples {
        let pb = content_to_pb(&sample);
        match (&sample, pb.kind.clone()) {
            (Content::ChoiceReply(c), Some(Kind::ChoiceReply(p))) => {
                assert_eq!((&p.id, &p.title), (&c.id, &c.title))
            }
            (Content::Reaction(_), Some(Kind::Reaction(p))) => {
                assert_eq!(p.message, format!("messages/{id}"));
                assert_eq!(p.emoji, "👍");
            }
            (Content::Location(l), Some(Kind::Location(p))) => {
                assert_eq!((p.latitude, p.longitude), (l.latitude, l.longitude));
                assert_eq!(
                    (p.label.as_str(), p.address.as_str()),
                    ("Office", "Alexanderplatz 1")
                );
            }
            other => panic!("wrong kind: {other:?}"),
        }
        let (back, found) = validate(&pb);
        assert!(back.is_none());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, format!("message.content.{kind}"));
        assert!(found[0].1.starts_with("inbound only"), "{found:?}");
    }
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000 + secs)
}

fn message() -> Message {
    let id = Uuid::now_v7();
    Message {
        id,
        contact_id: Uuid::now_v7(),
        direction: Direction::Outbound,
        category: Category::Transactional,
        content: Content::Text(Text {
            body: "Your order shipped.".into(),
            ..Text::default()
        }),
        overrides: vec![ChannelOverride {
            channel: Channel::Voice,
            content: Content::Text(Text {
                body: "Your order has shipped.".into(),
                ..Text::default()
            }),
            outside_window: false,
        }],
        channel: Some(Channel::Email),
        priority: Priority::Normal,
        correlation_ref: "A-17".into(),
        metadata: BTreeMap::from([("shop".into(), "berlin".into())]),
        send_time: Some(at(0)),
        expire_time: None,
        reply_to: Some(id),
        status: MessageStatus::Sent,
        history: vec![
            StatusChange {
                status: MessageStatus::Accepted,
                time: at(0),
                channel: None,
                reason: String::new(),
            },
            StatusChange {
                status: MessageStatus::Sent,
                time: at(5),
                channel: Some(Channel::Email),
                reason: "after whatsapp failed".into(),
            },
        ],
        attempts: vec![
            Attempt {
                number: 1,
                channel: Channel::Whatsapp,
                address: "attempted-wa".into(),
                start_time: at(1),
                end_time: at(2),
                outcome: AttemptOutcome::Failed(ErrorClass::Unsupported),
                error_code: "131026".into(),
                error_message: "undeliverable".into(),
                provider_message_id: String::new(),
            },
            Attempt {
                number: 2,
                channel: Channel::Email,
                address: "attempted@example.com".into(),
                start_time: at(3),
                end_time: at(4),
                outcome: AttemptOutcome::Accepted,
                error_code: String::new(),
                error_message: String::new(),
                provider_message_id: "<m1@example.com>".into(),
            },
        ],
        route: Some(RouteDecision {
            plan: vec![
                PlannedChannel {
                    channel: Channel::Whatsapp,
                    address: "plan-address-wa".into(),
                    key: "plan-key-wa".into(),
                    wa_id: Some("plan-wa-id".into()),
                    variant: Default::default(),
                    deliver_within: None,
                    not_before: None,
                    watch_reports: false,
                    evidence: Default::default(),
                },
                PlannedChannel {
                    channel: Channel::Email,
                    address: "plan-address@example.com".into(),
                    key: "plan-key@example.com".into(),
                    wa_id: None,
                    variant: Default::default(),
                    deliver_within: None,
                    not_before: None,
                    watch_reports: false,
                    evidence: Default::default(),
                },
            ],
            skipped: vec![SkippedChannel {
                channel: Channel::Voice,
                reason: SkipReason::NoConsent,
                detail: "no transactional consent".into(),
            }],
            hold_until: Some(at(60)),
            decide_time: at(0),
            inputs: Default::default(),
        }),
        provider_message_id: Some("<m1@example.com>".into()),
        create_time: at(0),
        update_time: at(5),
        automatic: false,
    }
}

#[test]
fn messages_map_history_attempts_and_route_without_addresses() {
    let m = message();
    let p = message_to_pb(&m);
    assert_eq!(p.name, format!("messages/{}", m.id));
    assert_eq!(p.contact, format!("contacts/{}", m.contact_id));
    assert_eq!(p.reply_to, format!("messages/{}", m.id));
    assert_eq!(p.direction, pb::Direction::Outbound as i32);
    assert_eq!(p.category, pb::Category::Transactional as i32);
    assert_eq!(p.channel, pb::Channel::Email as i32);
    assert_eq!(p.priority, pb::Priority::Normal as i32);
    assert_eq!(p.status, pb::MessageStatus::Sent as i32);
    assert_eq!(p.metadata.get("shop").map(String::as_str), Some("berlin"));
    assert_eq!(p.send_time, Some(Timestamp::from(at(0))));
    assert_eq!(p.expire_time, None);
    assert_eq!(p.provider_message_id, "<m1@example.com>");
    assert_eq!(p.overrides.len(), 1);
    assert_eq!(p.overrides[0].channel, pb::Channel::Voice as i32);

    let history: Vec<(i32, i32, &str)> = p
        .status_history
        .iter()
        .map(|s| (s.status, s.channel, s.reason.as_str()))
        .collect();
    assert_eq!(
        history,
        [
            (pb::MessageStatus::Accepted as i32, 0, ""),
            (
                pb::MessageStatus::Sent as i32,
                pb::Channel::Email as i32,
                "after whatsapp failed"
            ),
        ]
    );
    assert_eq!(p.status_history[1].time, Some(Timestamp::from(at(5))));

    let [first, second] = p.attempts.as_slice() else {
        panic!("{:?}", p.attempts)
    };
    assert_eq!(first.number, 1);
    assert_eq!(first.outcome, pb::AttemptOutcome::Permanent as i32);
    assert_eq!(first.error_code, "131026");
    assert_eq!(first.start_time, Some(Timestamp::from(at(1))));
    assert_eq!(second.outcome, pb::AttemptOutcome::Accepted as i32);
    assert_eq!(second.address, "attempted@example.com");
    assert_eq!(second.provider_message_id, "<m1@example.com>");

    let route = p.route.as_ref().unwrap();
    assert_eq!(
        route.plan,
        [pb::Channel::Whatsapp as i32, pb::Channel::Email as i32]
    );
    assert_eq!(route.skipped[0].channel, pb::Channel::Voice as i32);
    assert_eq!(route.skipped[0].reason, pb::SkipReason::NoConsent as i32);
    assert_eq!(route.skipped[0].detail, "no transactional consent");
    assert_eq!(route.hold_until, Some(Timestamp::from(at(60))));
    assert_eq!(route.decide_time, Some(Timestamp::from(at(0))));
    let wire = format!("{p:?}");
    assert!(!wire.contains("plan-"), "planned addresses leaked: {wire}");

    let bare = Message {
        channel: None,
        reply_to: None,
        route: None,
        provider_message_id: None,
        ..m
    };
    let p = message_to_pb(&bare);
    assert_eq!((p.channel, p.reply_to.as_str()), (0, ""));
    assert_eq!((p.route, p.provider_message_id.as_str()), (None, ""));
}

#[test]
fn attempt_outcomes() {
    use pb::AttemptOutcome as O;
    let cases = [
        (AttemptOutcome::Accepted, O::Accepted),
        (AttemptOutcome::Failed(ErrorClass::Transient), O::Transient),
        (
            AttemptOutcome::Failed(ErrorClass::RateLimited),
            O::RateLimited,
        ),
        (AttemptOutcome::Failed(ErrorClass::Permanent), O::Permanent),
        (
            AttemptOutcome::Failed(ErrorClass::WindowClosed),
            O::WindowClosed,
        ),
        (AttemptOutcome::Failed(ErrorClass::OptedOut), O::OptedOut),
        (
            AttemptOutcome::Failed(ErrorClass::Configuration),
            O::Configuration,
        ),
        (
            AttemptOutcome::Failed(ErrorClass::Unsupported),
            O::Permanent,
        ),
    ];
    for (outcome, expected) in cases {
        assert_eq!(attempt_outcome_to_pb(outcome), expected, "{outcome:?}");
    }
}

#[test]
fn events_carry_their_payload() {
    let m = message();
    let event = Event {
        cursor: Cursor { xid: 7, seq: 42 },
        kind: EventType::MessageStatusChanged,
        time: at(5),
        contact_id: Some(m.contact_id),
        message_id: Some(m.id),
        correlation_ref: "A-17".into(),
        metadata: m.metadata.clone(),
        payload: EventPayload::Message(Box::new(m.clone())),
        route: None,
    };
    let p = event_to_pb(&event);
    assert_eq!(p.cursor, Cursor { xid: 7, seq: 42 }.encode());
    assert_eq!(p.r#type, pb::EventType::MessageStatusChanged as i32);
    assert_eq!(p.time, Some(Timestamp::from(at(5))));
    assert_eq!(p.contact, format!("contacts/{}", m.contact_id));
    assert_eq!(p.correlation_ref, "A-17");
    assert_eq!(p.metadata.len(), 1);
    assert_eq!(
        p.payload,
        Some(pb::event::Payload::Message(message_to_pb(&m)))
    );

    let (survivor, retired) = (Uuid::now_v7(), Uuid::now_v7());
    let merged = Event {
        kind: EventType::ContactMerged,
        contact_id: Some(survivor),
        message_id: None,
        correlation_ref: String::new(),
        metadata: BTreeMap::new(),
        payload: EventPayload::Contact {
            contact_id: survivor,
            merged: vec![retired],
        },
        ..event.clone()
    };
    let Some(pb::event::Payload::ContactSnapshot(c)) = event_to_pb(&merged).payload else {
        panic!("no contact snapshot")
    };
    assert_eq!(c.name, format!("contacts/{survivor}"));
    assert_eq!(c.merged_contacts, [format!("contacts/{retired}")]);
    assert_eq!(
        pb::Contact {
            name: String::new(),
            merged_contacts: vec![],
            ..c
        },
        pb::Contact::default()
    );

    let erased = Event {
        kind: EventType::ContactErased,
        contact_id: None,
        payload: EventPayload::Empty,
        ..merged
    };
    let p = event_to_pb(&erased);
    assert_eq!((p.payload, p.contact.as_str()), (None, ""));
    assert_eq!(p.r#type, pb::EventType::ContactErased as i32);
}

#[test]
fn message_names() {
    let id = Uuid::now_v7();
    assert_eq!(parse_message_name(&message_name(id)), Ok(id));
    assert!(parse_message_name(&format!("contacts/{id}")).is_err());
    assert!(parse_message_name("messages/nope").is_err());
    assert!(parse_message_name(&format!("messages/{}", Uuid::nil())).is_err());
}
