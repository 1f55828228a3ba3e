//! Routes and plans: the decision routing stores with a message (the
//! channels planned, in order, each with its content variant and its
//! not-before time; the channels left out and why; the inputs that
//! mattered), read again by the dispatcher and by fallback for every later
//! step. Re-exported by [`crate::messages`].

use std::time::{Duration, SystemTime};

use omniroute_channel::{Category, Channel};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why routing left a channel out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No identity on the channel.
    NoIdentity,
    /// No opt-in on record where one is needed: marketing, or a
    /// business-initiated message on a windowed channel that requires one.
    NoConsent,
    /// Opted out of the category.
    OptedOut,
    /// WhatsApp window closed.
    WindowClosed,
    /// The content cannot go on the channel.
    UnsupportedContent,
    /// The channel is not configured.
    ChannelDisabled,
    /// Not among the customer's channels for the category.
    NotPreferred,
    /// The channel rings (a call) and the customer was in quiet hours: no
    /// longer decided (a call waits for their end), kept for decisions
    /// stored before.
    QuietHours,
    /// The channel's circuit breaker is open after repeated failures.
    Unhealthy,
    /// The caller asked for another channel or excluded this one.
    ExcludedByCaller,
}

/// A channel left out of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedChannel {
    pub channel: Channel,
    /// Why.
    pub reason: SkipReason,
    /// The reason in words (which consent, which rule), for whoever asks
    /// why the channel was left out.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A channel of the plan with the address to use on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedChannel {
    pub channel: Channel,
    /// The normalized address.
    pub address: String,
    /// The identity key of the address.
    pub key: String,
    /// For WhatsApp: the wa_id to send to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
    /// Which of the message's contents this step sends.
    #[serde(default, skip_serializing_if = "ContentVariant::is_main")]
    pub variant: ContentVariant,
    /// The next step takes over when this one is not delivered within
    /// this time of being sent (only on steps with a next step).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_secs"
    )]
    pub deliver_within: Option<Duration>,
    /// Not sent before this time (the end of the customer's quiet hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<SystemTime>,
    /// The step is watched after it is sent even when it is the last one,
    /// so that a failure the provider reports later (a call nobody
    /// answered) comes back to routing, which may try the channel again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub watch_reports: bool,
    /// What its delivery deadline can see: routing's reading of whether
    /// the channel reports delivery, and the tenant's rule where it does not.
    #[serde(default, skip_serializing_if = "DeliveryEvidence::is_report")]
    pub evidence: DeliveryEvidence,
}

/// What a step's delivery deadline can see of its delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryEvidence {
    /// The channel reports delivery: a delivery report ends the deadline
    /// (and so does word that none will follow: an email relayed past DSN).
    #[default]
    Report,
    /// The channel reports no delivery (an email relay without DSN), and
    /// its acceptance ends the deadline (the tenant's rule, by default):
    /// failures reported later still hand over to the next step.
    Acceptance,
    /// The channel reports no delivery, and the tenant keeps the deadline:
    /// the next step follows unless the customer replies, even after a
    /// delivery nobody reported.
    Nothing,
}

impl DeliveryEvidence {
    fn is_report(&self) -> bool {
        *self == DeliveryEvidence::Report
    }
}

impl PlannedChannel {
    /// A step to `address`, sending the main content now.
    pub fn to(address: &omniroute_channel::Address) -> PlannedChannel {
        PlannedChannel {
            channel: address.channel(),
            address: address.value().to_owned(),
            key: address.key().to_owned(),
            wa_id: address.wa_id().map(str::to_owned),
            variant: ContentVariant::Main,
            deliver_within: None,
            not_before: None,
            watch_reports: false,
            evidence: DeliveryEvidence::Report,
        }
    }
}

/// Which content a plan step sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentVariant {
    /// The message's content.
    #[default]
    Main,
    /// The channel's override.
    Override,
    /// The override for a closed service window (a template).
    WindowAlternative,
    /// The content degraded to what the channel carries (choices as
    /// numbered text).
    Degraded,
}

impl ContentVariant {
    fn is_main(&self) -> bool {
        *self == ContentVariant::Main
    }
}

/// What a routing decision was made on, kept with it so that anyone can see
/// why a message went the way it did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteInputs {
    /// The consent records that decided, per channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consents: Vec<ConsentUsed>,
    /// Until when the customer service windows were open, per channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<(Channel, SystemTime)>,
    /// The end of the quiet hours the message met, if it met any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours_end: Option<SystemTime>,
    /// The customer's quiet hours and time zone, for steps decided later
    /// (fallbacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietRule>,
    /// The circuit breakers that were not closed, per channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub breakers: Vec<(Channel, String)>,
    /// Whether the message may ignore quiet hours (urgent or a code).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub urgent: bool,
    /// The customer's locale (BCP 47), for channels that speak or write in
    /// it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub locale: String,
    /// The channels the caller excluded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<Channel>,
    /// A callback's rules (the business's opening hours, its retry plan),
    /// for its attempts decided later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackRule>,
    /// The trace the message was accepted in (W3C `traceparent`), so that
    /// its dispatch continues it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_parent: String,
}

/// What a callback's attempts keep to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRule {
    /// When the business takes calls; `None` for always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<OpeningHours>,
    /// Seconds to wait before each next attempt after one that did not
    /// reach the customer (busy, no answer, a machine, a busy agent); one
    /// attempt more than there are entries.
    #[serde(default)]
    pub retry_secs: Vec<u64>,
}

/// A business's weekly opening hours in its time zone, with holidays.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpeningHours {
    /// IANA time zone of the hours.
    pub time_zone: String,
    /// The open spans of the week.
    pub spans: Vec<OpenSpan>,
    /// Closed days, `YYYY-MM-DD` in the time zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
}

/// One open span of a weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSpan {
    /// 0 Monday … 6 Sunday.
    pub weekday: u8,
    /// Opens, minutes after local midnight.
    pub start_minute: u16,
    /// Closes, minutes after local midnight (up to 1440), after the start.
    pub end_minute: u16,
}

/// A consent record routing relied on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentUsed {
    pub channel: Channel,
    /// The category of the record.
    pub category: Category,
    /// The record's id.
    pub record: Uuid,
    /// Whether it was a grant.
    pub granted: bool,
}

/// Quiet hours in a time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietRule {
    /// The IANA time zone.
    pub time_zone: String,
    /// Start, minutes after local midnight.
    pub start_minute: u16,
    /// End, minutes after local midnight.
    pub end_minute: u16,
}

/// The routing decision stored with a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDecision {
    /// Channels to try, in order.
    pub plan: Vec<PlannedChannel>,
    /// Channels left out, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedChannel>,
    /// The earliest send time routing allowed (quiet hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_until: Option<SystemTime>,
    /// When the decision was made.
    pub decide_time: SystemTime,
    /// What it was made on.
    #[serde(default)]
    pub inputs: RouteInputs,
}

/// `Option<Duration>` as whole seconds.
mod optional_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_secs))
    }
}
