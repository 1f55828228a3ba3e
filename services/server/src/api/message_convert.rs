//! Messages and events from the store's domain records to the wire of
//! omniroute.v1, and the resource names of messages. What a caller sends is
//! checked and converted in [`super::message_validate`].
//!
//! A route decision goes out as its channels only: the addresses routing
//! picked (with their identity keys and wa_ids) stay inside the router.

use omniroute_channel::content::{
    Choice, Choices, ComponentType, Content, Media, MediaKind, ParameterValue, TemplateComponent,
};
use omniroute_channel::{Channel, ErrorClass};
use omniroute_domain::{
    Attempt, AttemptOutcome, ChannelOverride, ContentVariant, Direction, Event, EventPayload,
    EventType, Message, MessageStatus, Priority, RouteDecision, RouteInputs, SkipReason,
    StatusChange,
};
use omniroute_proto::v1 as pb;
use uuid::Uuid;

use super::convert::{category_to_pb, channel_to_pb, contact_name, parse_resource_name, timestamp};

/// The resource name of a message.
pub fn message_name(id: Uuid) -> String {
    format!("messages/{id}")
}

/// `messages/{id}` → id.
pub fn parse_message_name(name: &str) -> Result<Uuid, &'static str> {
    parse_resource_name("messages", name)
        .ok_or("expected a message name like \"messages/0190f5c2-8a4e-7cc1-9c1e-2f8f4d1a2b3c\"")
}

/// A channel that may be absent: `CHANNEL_UNSPECIFIED` (0) when it is.
fn optional_channel(channel: Option<Channel>) -> i32 {
    channel.map_or(pb::Channel::Unspecified, channel_to_pb) as i32
}

/// A message status on the wire.
pub fn message_status_to_pb(status: MessageStatus) -> pb::MessageStatus {
    match status {
        MessageStatus::Accepted => pb::MessageStatus::Accepted,
        MessageStatus::Queued => pb::MessageStatus::Queued,
        MessageStatus::Sent => pb::MessageStatus::Sent,
        MessageStatus::Delivered => pb::MessageStatus::Delivered,
        MessageStatus::Read => pb::MessageStatus::Read,
        MessageStatus::Failed => pb::MessageStatus::Failed,
        MessageStatus::Canceled => pb::MessageStatus::Canceled,
        MessageStatus::Received => pb::MessageStatus::Received,
    }
}

/// A direction on the wire.
pub fn direction_to_pb(direction: Direction) -> pb::Direction {
    match direction {
        Direction::Outbound => pb::Direction::Outbound,
        Direction::Inbound => pb::Direction::Inbound,
    }
}

/// A priority on the wire.
pub fn priority_to_pb(priority: Priority) -> pb::Priority {
    match priority {
        Priority::High => pb::Priority::High,
        Priority::Normal => pb::Priority::Normal,
        Priority::Low => pb::Priority::Low,
    }
}

/// A duration on the wire.
fn duration_to_pb(d: std::time::Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
}

/// An event type on the wire.
pub fn event_type_to_pb(kind: EventType) -> pb::EventType {
    match kind {
        EventType::MessageAccepted => pb::EventType::MessageAccepted,
        EventType::MessageStatusChanged => pb::EventType::MessageStatusChanged,
        EventType::MessageFailed => pb::EventType::MessageFailed,
        EventType::MessageReceived => pb::EventType::MessageReceived,
        EventType::ContactCreated => pb::EventType::ContactCreated,
        EventType::ContactMerged => pb::EventType::ContactMerged,
        EventType::ContactErased => pb::EventType::ContactErased,
        EventType::CallbackChanged => pb::EventType::CallbackChanged,
        EventType::MessageDeferred => pb::EventType::MessageDeferred,
        EventType::MessageFallback => pb::EventType::MessageFallback,
        EventType::WindowClosing => pb::EventType::WindowClosing,
        EventType::EndpointDisabled => pb::EventType::EndpointDisabled,
        EventType::EndpointTest => pb::EventType::EndpointTest,
    }
}

/// How an attempt ended, on the wire. The wire has no "unsupported": content
/// a channel cannot carry at all is a permanent failure there.
pub fn attempt_outcome_to_pb(outcome: AttemptOutcome) -> pb::AttemptOutcome {
    match outcome {
        AttemptOutcome::Accepted => pb::AttemptOutcome::Accepted,
        AttemptOutcome::Failed(class) => match class {
            ErrorClass::Transient => pb::AttemptOutcome::Transient,
            ErrorClass::RateLimited => pb::AttemptOutcome::RateLimited,
            ErrorClass::Permanent | ErrorClass::Unsupported => pb::AttemptOutcome::Permanent,
            ErrorClass::WindowClosed => pb::AttemptOutcome::WindowClosed,
            ErrorClass::OptedOut => pb::AttemptOutcome::OptedOut,
            ErrorClass::Configuration => pb::AttemptOutcome::Configuration,
        },
    }
}

/// Why routing skipped a channel, on the wire.
pub fn skip_reason_to_pb(reason: SkipReason) -> pb::SkipReason {
    match reason {
        SkipReason::NoIdentity => pb::SkipReason::NoIdentity,
        SkipReason::NoConsent => pb::SkipReason::NoConsent,
        SkipReason::OptedOut => pb::SkipReason::OptedOut,
        SkipReason::WindowClosed => pb::SkipReason::WindowClosed,
        SkipReason::UnsupportedContent => pb::SkipReason::UnsupportedContent,
        SkipReason::ChannelDisabled => pb::SkipReason::ChannelDisabled,
        SkipReason::NotPreferred => pb::SkipReason::NotPreferred,
        SkipReason::QuietHours => pb::SkipReason::QuietHours,
        SkipReason::Unhealthy => pb::SkipReason::ChannelUnhealthy,
        SkipReason::ExcludedByCaller => pb::SkipReason::ExcludedByCaller,
    }
}

fn variant_to_pb(variant: ContentVariant) -> pb::ContentVariant {
    match variant {
        ContentVariant::Main => pb::ContentVariant::Main,
        ContentVariant::Override => pb::ContentVariant::Override,
        ContentVariant::WindowAlternative => pb::ContentVariant::WindowAlternative,
        ContentVariant::Degraded => pb::ContentVariant::Degraded,
    }
}

fn inputs_to_pb(contact: Option<Uuid>, i: &RouteInputs) -> pb::RouteInputs {
    pb::RouteInputs {
        consents: i
            .consents
            .iter()
            .map(|c| pb::ConsentUsed {
                channel: channel_to_pb(c.channel) as i32,
                category: category_to_pb(c.category) as i32,
                consent_record: contact
                    .map(|id| format!("{}/consentRecords/{}", contact_name(id), c.record))
                    .unwrap_or_default(),
                granted: c.granted,
            })
            .collect(),
        windows: i
            .windows
            .iter()
            .map(|(channel, until)| pb::ServiceWindow {
                channel: channel_to_pb(*channel) as i32,
                open_until: timestamp(*until),
                line: String::new(),
            })
            .collect(),
        quiet_hours_end: i.quiet_hours_end.and_then(timestamp),
        breakers: i
            .breakers
            .iter()
            .map(|(channel, state)| pb::BreakerState {
                channel: channel_to_pb(*channel) as i32,
                state: state.clone(),
            })
            .collect(),
        urgent: i.urgent,
    }
}

fn media_kind_to_pb(kind: MediaKind) -> pb::MediaKind {
    match kind {
        MediaKind::Image => pb::MediaKind::Image,
        MediaKind::Document => pb::MediaKind::Document,
        MediaKind::Audio => pb::MediaKind::Audio,
        MediaKind::Video => pb::MediaKind::Video,
        MediaKind::Sticker => pb::MediaKind::Sticker,
    }
}

fn media_to_pb(m: &Media) -> pb::MediaContent {
    pb::MediaContent {
        kind: media_kind_to_pb(m.kind) as i32,
        url: m.url.clone(),
        media_id: m.media_id.clone(),
        caption: m.caption.clone(),
        filename: m.filename.clone(),
        mime_type: m.mime_type.clone(),
        sha256: m.sha256.clone(),
    }
}

fn choice_to_pb(c: &Choice) -> pb::Choice {
    pb::Choice {
        id: c.id.clone(),
        title: c.title.clone(),
        description: c.description.clone(),
    }
}

fn component_to_pb(c: &TemplateComponent) -> pb::TemplateComponent {
    use pb::template_parameter::Value;
    pb::TemplateComponent {
        r#type: match c.kind {
            ComponentType::Header => pb::TemplateComponentType::Header,
            ComponentType::Body => pb::TemplateComponentType::Body,
            ComponentType::Button => pb::TemplateComponentType::Button,
        } as i32,
        button_sub_type: c.button_sub_type.clone(),
        index: i32::try_from(c.index).unwrap_or(i32::MAX),
        parameters: c
            .parameters
            .iter()
            .map(|p| pb::TemplateParameter {
                parameter_name: p.name.clone(),
                value: Some(match &p.value {
                    ParameterValue::Text { text } => Value::Text(text.clone()),
                    ParameterValue::Currency {
                        code,
                        amount_1000,
                        fallback_value,
                    } => Value::Currency(pb::CurrencyValue {
                        code: code.clone(),
                        amount_1000: *amount_1000,
                        fallback_value: fallback_value.clone(),
                    }),
                    ParameterValue::DateTime { fallback_value } => {
                        Value::DateTime(fallback_value.clone())
                    }
                    ParameterValue::Media(m) => Value::Media(media_to_pb(m)),
                    ParameterValue::Payload { payload } => Value::Payload(payload.clone()),
                }),
            })
            .collect(),
    }
}

/// The message a reaction refers to, as a name. The domain keeps our id when
/// it is known; anything else is not a name and is left out.
fn reacted_to(message: &str) -> String {
    if let Ok(id) = Uuid::parse_str(message) {
        message_name(id)
    } else if parse_message_name(message).is_ok() {
        message.to_owned()
    } else {
        String::new()
    }
}

/// Content on the wire, every kind (inbound ones too).
pub fn content_to_pb(content: &Content) -> pb::Content {
    use pb::content::Kind;
    use pb::interactive_content::Choices as PbChoices;
    let kind = match content {
        Content::Text(t) => Kind::Text(pb::TextContent {
            body: t.body.clone(),
            subject: t.subject.clone(),
            html_body: t.html_body.clone(),
            preview_url: t.preview_url,
            overflow: t.overflow.as_ref().map(|o| pb::TextOverflow {
                mime_type: o.mime_type.clone(),
                size_bytes: i64::try_from(o.size_bytes).unwrap_or(i64::MAX),
            }),
        }),
        Content::Template(t) => Kind::Template(pb::TemplateContent {
            name: t.name.clone(),
            language: t.language.clone(),
            components: t.components.iter().map(component_to_pb).collect(),
        }),
        Content::Media(m) => Kind::Media(media_to_pb(m)),
        Content::Interactive(i) => Kind::Interactive(pb::InteractiveContent {
            header: i.header.clone(),
            body: i.body.clone(),
            footer: i.footer.clone(),
            choices: Some(match &i.choices {
                Choices::Buttons { buttons } => PbChoices::Buttons(pb::ReplyButtons {
                    buttons: buttons.iter().map(choice_to_pb).collect(),
                }),
                Choices::List { button, sections } => PbChoices::List(pb::ChoiceList {
                    button: button.clone(),
                    sections: sections
                        .iter()
                        .map(|s| pb::ChoiceSection {
                            title: s.title.clone(),
                            rows: s.rows.iter().map(choice_to_pb).collect(),
                        })
                        .collect(),
                }),
            }),
        }),
        Content::CallbackRequest(c) => Kind::CallbackRequest(pb::CallbackRequestContent {
            agent_address: c.agent_address.clone(),
            greeting: c.greeting.clone(),
            language: c.language.clone(),
            reason: c.reason.clone(),
        }),
        Content::ChoiceReply(c) => Kind::ChoiceReply(choice_to_pb(c)),
        Content::Reaction(r) => Kind::Reaction(pb::ReactionContent {
            message: reacted_to(&r.message),
            emoji: r.emoji.clone(),
        }),
        Content::Location(l) => Kind::Location(pb::LocationContent {
            latitude: l.latitude,
            longitude: l.longitude,
            label: l.label.clone(),
            address: l.address.clone(),
        }),
        Content::Unsupported(u) => Kind::Unsupported(pb::UnsupportedContent {
            provider_type: u.provider_type.clone(),
            error_code: u.error_code.clone(),
            error_message: u.error_message.clone(),
        }),
        Content::InboundCall(c) => Kind::InboundCall(pb::InboundCallContent {
            line: c.line.clone(),
        }),
    };
    pb::Content { kind: Some(kind) }
}

/// Per-channel overrides on the wire.
pub fn overrides_to_pb(overrides: &[ChannelOverride]) -> Vec<pb::ChannelOverride> {
    overrides
        .iter()
        .map(|o| pb::ChannelOverride {
            channel: channel_to_pb(o.channel) as i32,
            content: Some(content_to_pb(&o.content)),
            outside_window: o.outside_window,
        })
        .collect()
}

fn status_change_to_pb(s: &StatusChange) -> pb::StatusChange {
    pb::StatusChange {
        status: message_status_to_pb(s.status) as i32,
        time: timestamp(s.time),
        channel: optional_channel(s.channel),
        reason: s.reason.clone(),
    }
}

fn attempt_to_pb(a: &Attempt) -> pb::DeliveryAttempt {
    pb::DeliveryAttempt {
        number: i32::try_from(a.number).unwrap_or(i32::MAX),
        channel: channel_to_pb(a.channel) as i32,
        address: a.address.clone(),
        start_time: timestamp(a.start_time),
        end_time: timestamp(a.end_time),
        outcome: attempt_outcome_to_pb(a.outcome) as i32,
        error_code: a.error_code.clone(),
        error_message: a.error_message.clone(),
        provider_message_id: a.provider_message_id.clone(),
    }
}

/// A routing decision on the wire; consent records are named under the
/// contact it was decided for (`None` for one not yet created).
pub fn route_to_pb(contact: Option<Uuid>, r: &RouteDecision) -> pb::RouteDecision {
    pb::RouteDecision {
        plan: r
            .plan
            .iter()
            .map(|p| channel_to_pb(p.channel) as i32)
            .collect(),
        skipped: r
            .skipped
            .iter()
            .map(|s| pb::SkippedChannel {
                channel: channel_to_pb(s.channel) as i32,
                reason: skip_reason_to_pb(s.reason) as i32,
                detail: s.detail.clone(),
            })
            .collect(),
        hold_until: r.hold_until.and_then(timestamp),
        decide_time: timestamp(r.decide_time),
        steps: r
            .plan
            .iter()
            .map(|p| pb::RouteStep {
                channel: channel_to_pb(p.channel) as i32,
                content_variant: variant_to_pb(p.variant) as i32,
                not_before: p.not_before.and_then(timestamp),
                deliver_within: p.deliver_within.and_then(duration_to_pb),
                deadline_evidence: evidence_to_pb(p) as i32,
            })
            .collect(),
        inputs: Some(inputs_to_pb(contact, &r.inputs)),
    }
}

/// What a step's deadline can see; unspecified for a step without one.
fn evidence_to_pb(step: &omniroute_domain::PlannedChannel) -> pb::DeliveryEvidence {
    use omniroute_domain::DeliveryEvidence as E;
    match step.evidence {
        E::Report if step.deliver_within.is_none() => pb::DeliveryEvidence::Unspecified,
        E::Report => pb::DeliveryEvidence::Report,
        E::Acceptance => pb::DeliveryEvidence::Acceptance,
        E::Nothing => pb::DeliveryEvidence::None,
    }
}

/// A message on the wire, with its history, attempts and route decision.
pub fn message_to_pb(m: &Message) -> pb::Message {
    pb::Message {
        name: message_name(m.id),
        contact: contact_name(m.contact_id),
        direction: direction_to_pb(m.direction) as i32,
        category: category_to_pb(m.category) as i32,
        content: Some(content_to_pb(&shown_content(m))),
        overrides: overrides_to_pb(&m.overrides),
        channel: optional_channel(m.channel),
        priority: priority_to_pb(m.priority) as i32,
        correlation_ref: m.correlation_ref.clone(),
        metadata: m
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        send_time: m.send_time.and_then(timestamp),
        expire_time: m.expire_time.and_then(timestamp),
        reply_to: m.reply_to.map(message_name).unwrap_or_default(),
        status: message_status_to_pb(m.status) as i32,
        status_history: m.history.iter().map(status_change_to_pb).collect(),
        attempts: m.attempts.iter().map(attempt_to_pb).collect(),
        route: m.route.as_ref().map(|r| route_to_pb(Some(m.contact_id), r)),
        urgent: m.route.as_ref().is_some_and(|r| r.inputs.urgent),
        deliver_within: m
            .route
            .as_ref()
            .and_then(|r| r.plan.first())
            .and_then(|p| p.deliver_within)
            .and_then(duration_to_pb),
        excluded_channels: m
            .route
            .as_ref()
            .map(|r| {
                r.inputs
                    .excluded
                    .iter()
                    .map(|c| channel_to_pb(*c) as i32)
                    .collect()
            })
            .unwrap_or_default(),
        provider_message_id: m.provider_message_id.clone().unwrap_or_default(),
        create_time: timestamp(m.create_time),
        update_time: timestamp(m.update_time),
        automatic: m.automatic,
    }
}

/// The content a message is shown with: a customer's text stored whole
/// before the router bounded what it keeps is cut to the bounds on the way
/// out (its whole is served by GetMessageMedia), so that no answer and no
/// event outgrows them.
fn shown_content(m: &Message) -> std::borrow::Cow<'_, Content> {
    use omniroute_channel::bounds;
    match &m.content {
        Content::Text(text) if m.direction == Direction::Inbound && !bounds::fits(text) => {
            let mut cut = text.clone();
            bounds::bound_text(&mut cut);
            std::borrow::Cow::Owned(Content::Text(cut))
        }
        content => std::borrow::Cow::Borrowed(content),
    }
}

/// An event on the wire. A contact event carries a snapshot with only the
/// contact's name and the names merged into it.
pub fn event_to_pb(e: &Event) -> pb::Event {
    use pb::event::Payload;
    let payload = match &e.payload {
        EventPayload::Message(m) => Some(Payload::Message(message_to_pb(m))),
        EventPayload::Contact { contact_id, merged } => {
            Some(Payload::ContactSnapshot(pb::Contact {
                name: contact_name(*contact_id),
                merged_contacts: merged.iter().map(|id| contact_name(*id)).collect(),
                ..pb::Contact::default()
            }))
        }
        EventPayload::Window(window) => {
            Some(Payload::Window(super::convert::service_window(window)))
        }
        EventPayload::Callback(callback) => Some(Payload::Callback(
            super::callbacks::callback_to_pb(callback),
        )),
        EventPayload::Endpoint {
            endpoint_id,
            reason,
        } => Some(Payload::EndpointNotice(pb::EndpointNotice {
            endpoint: super::endpoints::endpoint_name(*endpoint_id),
            reason: reason.clone(),
        })),
        EventPayload::Empty => None,
    };
    let route_change = e.route.as_ref().map(|r| pb::RouteChange {
        from_channel: r.from.map_or(0, |c| channel_to_pb(c) as i32),
        to_channel: r.to.map_or(0, |c| channel_to_pb(c) as i32),
        reason: r.reason.clone(),
        until: r.until.and_then(timestamp),
    });
    pb::Event {
        route_change,
        cursor: e.cursor.encode(),
        r#type: event_type_to_pb(e.kind) as i32,
        time: timestamp(e.time),
        contact: e.contact_id.map(contact_name).unwrap_or_default(),
        correlation_ref: e.correlation_ref.clone(),
        metadata: e
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        payload,
    }
}

#[cfg(test)]
#[path = "message_convert/tests.rs"]
mod tests;
