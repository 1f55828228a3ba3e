//! The stored records of the messaging pipeline: messages with their status
//! history, attempts and routes (the event log's records are in
//! `events.rs`, dispatch jobs in `jobs.rs`).
//!
//! The status rules live here, as pure functions both stores call inside
//! their transactions:
//! - outbound statuses only move forward: accepted → queued → sent →
//!   delivered → read; `queued` may follow `sent` never; failed and canceled
//!   are final;
//! - a provider status that would move a message backwards (a late
//!   `delivered` after `read`, a `failed` after `delivered`) is kept in the
//!   history and the event log, but does not change the status.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use omniroute_channel::{Category, Channel, Content, ErrorClass};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::*;
pub use crate::routes::*;

/// Which way a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Company to customer.
    Outbound,
    /// Customer to company.
    Inbound,
}

impl Direction {
    /// Stable storage code.
    pub fn code(self) -> i16 {
        match self {
            Direction::Outbound => 1,
            Direction::Inbound => 2,
        }
    }

    /// Parses [`Direction::code`] back.
    pub fn from_code(code: i16) -> Direction {
        if code == Direction::Inbound.code() {
            Direction::Inbound
        } else {
            Direction::Outbound
        }
    }
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Committed, due now.
    Accepted,
    /// Waiting for its send time or for a retry.
    Queued,
    /// Accepted by the provider.
    Sent,
    /// Delivered to the customer.
    Delivered,
    /// Read by the customer.
    Read,
    /// Failed for good (or expired).
    Failed,
    /// Canceled before it was sent (a callback: before the customer
    /// answered, also between its calls).
    Canceled,
    /// An inbound message.
    Received,
}

impl MessageStatus {
    /// Position on the forward path; final statuses rank above everything.
    fn rank(self) -> u8 {
        match self {
            MessageStatus::Received => 0,
            MessageStatus::Accepted => 1,
            MessageStatus::Queued => 2,
            MessageStatus::Sent => 3,
            MessageStatus::Delivered => 4,
            MessageStatus::Read => 5,
            MessageStatus::Failed | MessageStatus::Canceled => 9,
        }
    }

    /// Whether the message has not reached the provider yet (it can be
    /// canceled).
    pub fn is_pending(self) -> bool {
        matches!(self, MessageStatus::Accepted | MessageStatus::Queued)
    }

    /// Whether moving from `self` to `next` is allowed.
    ///
    /// - Pending statuses go to any later one, and back to queued (retries).
    /// - After sent, only forward moves; failed only from sent (a failure
    ///   reported after delivery does not undo the delivery).
    pub fn may_become(self, next: MessageStatus) -> bool {
        use MessageStatus::*;
        match (self, next) {
            (a, b) if a == b => false,
            (Failed | Canceled | Received, _) => false,
            (Accepted | Queued, Queued) => true,
            (Accepted | Queued, _) => next != Received && next != Accepted,
            (Sent, Failed) => true,
            (_, Failed | Canceled | Accepted | Queued | Received) => false,
            (a, b) => b.rank() > a.rank(),
        }
    }

    /// Stable storage code.
    pub fn code(self) -> i16 {
        match self {
            MessageStatus::Accepted => 1,
            MessageStatus::Queued => 2,
            MessageStatus::Sent => 3,
            MessageStatus::Delivered => 4,
            MessageStatus::Read => 5,
            MessageStatus::Failed => 6,
            MessageStatus::Canceled => 7,
            MessageStatus::Received => 8,
        }
    }

    /// Parses [`MessageStatus::code`] back.
    pub fn from_code(code: i16) -> MessageStatus {
        match code {
            2 => MessageStatus::Queued,
            3 => MessageStatus::Sent,
            4 => MessageStatus::Delivered,
            5 => MessageStatus::Read,
            6 => MessageStatus::Failed,
            7 => MessageStatus::Canceled,
            8 => MessageStatus::Received,
            _ => MessageStatus::Accepted,
        }
    }
}

/// Dispatch order among due messages: lower first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Authentication codes.
    High,
    /// Transactional and service messages.
    Normal,
    /// Marketing.
    Low,
}

impl Priority {
    /// The priority a category gets when the caller names none.
    pub fn for_category(category: Category) -> Priority {
        match category {
            Category::Authentication => Priority::High,
            Category::Transactional | Category::Service => Priority::Normal,
            Category::Marketing => Priority::Low,
        }
    }

    /// Stable storage code (the dispatch sort key).
    pub fn code(self) -> i16 {
        match self {
            Priority::High => 1,
            Priority::Normal => 2,
            Priority::Low => 3,
        }
    }

    /// Parses [`Priority::code`] back.
    pub fn from_code(code: i16) -> Priority {
        match code {
            1 => Priority::High,
            3 => Priority::Low,
            _ => Priority::Normal,
        }
    }
}

/// Content to use on one channel instead of the main content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelOverride {
    pub channel: Channel,
    pub content: Content,
    /// Only while the channel's customer service window is closed (a
    /// template alternative to free-form content on WhatsApp).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outside_window: bool,
}

/// One step of the status history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// The status reported or reached.
    pub status: MessageStatus,
    /// When the router learned of it.
    pub time: SystemTime,
    /// The channel it happened on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    /// Why (failures, expiry, cancellation, a status kept from regressing).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The provider accepted the message.
    Accepted,
    /// Failed with this class.
    Failed(#[serde(with = "class_name")] ErrorClass),
}

mod class_name {
    use omniroute_channel::ErrorClass;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(class: &ErrorClass, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(class.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ErrorClass, D::Error> {
        let name = String::deserialize(d)?;
        Ok(ErrorClass::parse(&name).unwrap_or(ErrorClass::Transient))
    }
}

/// One try on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the message's first attempt, counting across channels.
    pub number: u32,
    /// The channel tried.
    pub channel: Channel,
    /// The normalized address tried.
    pub address: String,
    /// When it started.
    pub start_time: SystemTime,
    /// When the provider answered.
    pub end_time: SystemTime,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The provider's error code.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_code: String,
    /// The provider's error text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_message: String,
    /// What the provider calls the message: its status reports name it so.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub provider_message_id: String,
}

/// An outbound message to accept.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// The recipient (already resolved, not a merged alias).
    pub contact_id: Uuid,
    /// The contact's version the route was decided on: the message is
    /// committed only while the contact is still at it.
    pub contact_version: i64,
    pub category: Category,
    pub content: Content,
    /// Per-channel content.
    pub overrides: Vec<ChannelOverride>,
    /// The routing decision; its plan is never empty.
    pub route: RouteDecision,
    /// The dispatch priority.
    pub priority: Priority,
    /// The caller's reference.
    pub correlation_ref: String,
    /// The caller's metadata.
    pub metadata: BTreeMap<String, String>,
    /// Send no earlier than this.
    pub send_time: Option<SystemTime>,
    /// Fail as expired when not sent by this time.
    pub expire_time: Option<SystemTime>,
    /// The message this one replies to.
    pub reply_to: Option<Uuid>,
    /// The caller's idempotency key.
    pub idempotency_key: Option<String>,
    /// A digest of the request, to tell a retry from a different request
    /// under the same key.
    pub request_hash: String,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub contact_id: Uuid,
    /// Outbound or inbound.
    pub direction: Direction,
    pub category: Category,
    pub content: Content,
    /// Per-channel content.
    #[serde(default)]
    pub overrides: Vec<ChannelOverride>,
    /// The channel in use (the plan's current channel; inbound: where it came from).
    pub channel: Option<Channel>,
    /// The dispatch priority.
    pub priority: Priority,
    /// The caller's reference.
    #[serde(default)]
    pub correlation_ref: String,
    /// The caller's metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Scheduled send time.
    pub send_time: Option<SystemTime>,
    /// Expiry.
    pub expire_time: Option<SystemTime>,
    /// The message this one replies to.
    pub reply_to: Option<Uuid>,
    /// The current status.
    pub status: MessageStatus,
    /// Every status reported or reached, oldest first.
    #[serde(default)]
    pub history: Vec<StatusChange>,
    /// Every attempt, oldest first.
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// The routing decision.
    pub route: Option<RouteDecision>,
    /// The provider's id for the accepted message.
    pub provider_message_id: Option<String>,
    /// When it was accepted.
    pub create_time: SystemTime,
    /// When it last changed.
    pub update_time: SystemTime,
    /// Inbound: sent by a machine on the customer's behalf (an
    /// out-of-office, RFC 3834), not by the customer.
    #[serde(default)]
    pub automatic: bool,
}

/// The outcome of the store's `accept_message`.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// A new message was stored with its dispatch job.
    New(Message),
    /// The idempotency key was used before with the same request.
    Replayed(Message),
}

impl Accepted {
    /// The message, new or replayed.
    pub fn message(&self) -> &Message {
        match self {
            Accepted::New(m) | Accepted::Replayed(m) => m,
        }
    }
}

/// A customer's message to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInbound {
    /// The channel it came on.
    pub channel: Channel,
    /// The sender's normalized address (for WhatsApp with the wa_id as seen).
    pub from: omniroute_channel::Address,
    /// The sender's profile name, used for a new contact's display name.
    pub profile_name: Option<String>,
    /// The sender's provider-scoped user id, kept on their identity.
    pub provider_user_id: Option<String>,
    /// The provider's message id: a message is recorded once per id.
    pub provider_message_id: String,
    /// When the customer sent it.
    pub time: SystemTime,
    /// What it says.
    pub content: Content,
    /// The provider id of the message it replies to.
    pub reply_to: Option<String>,
    /// The business line it came to (the WhatsApp phone number id, the
    /// mailbox, the phone line).
    pub line: String,
    /// How long it keeps the channel's customer service window open, if
    /// the channel has one (WhatsApp: 24 hours).
    pub opens_window: Option<Duration>,
    /// Another channel's window it opens too (a call to the number the
    /// customer also reaches on WhatsApp opens WhatsApp's window): the
    /// channel, its line and how long.
    pub also_opens: Option<(Channel, String, Duration)>,
    /// Sent by a machine on the customer's behalf (an out-of-office
    /// reply): recorded, but it does not cancel the fallbacks waiting on
    /// the customer (callers pass no window for it either).
    pub automatic: bool,
    /// The bytes of the content's media, kept by the store when the
    /// message carried them itself (an email attachment); read back by
    /// the store's `get_inbound_media`.
    pub media_bytes: Option<Vec<u8>>,
}

impl NewInbound {
    /// The service windows it opens: its channel's on the line it came to,
    /// and the other it opens too, each with how long.
    pub fn windows(&self) -> impl Iterator<Item = (Channel, &str, Duration)> {
        let own = self
            .opens_window
            .map(|w| (self.channel, self.line.as_str(), w));
        let also = self
            .also_opens
            .as_ref()
            .map(|(c, line, w)| (*c, line.as_str(), *w));
        own.into_iter().chain(also)
    }
}

/// The outcome of the store's `record_inbound`.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// Recorded (with the contact it resolved to or created).
    New(Message),
    /// Already recorded: a provider's redelivery.
    Duplicate,
}

/// The stored form of an accepted outbound message, and when its job is
/// due: `Queued` until a future send time, else `Accepted` and due now. Times
/// keep microseconds, as both stores do, so the message answered equals the
/// one read back later.
pub fn outbound_message(new: NewMessage, now: SystemTime) -> (Message, SystemTime) {
    let micros = |t: SystemTime| crate::model::from_micros(crate::model::to_micros(t));
    let send_time = new.send_time.map(micros);
    let scheduled = send_time.filter(|t| *t > now);
    // Quiet hours may hold the first step past the send time.
    let held = new
        .route
        .plan
        .first()
        .and_then(|p| p.not_before)
        .map(micros)
        .filter(|t| *t > now && scheduled.is_none_or(|s| *t > s));
    let (status, reason) = match (held, scheduled) {
        (Some(_), _) => (MessageStatus::Queued, HELD_FOR_QUIET_HOURS),
        (None, Some(_)) => (MessageStatus::Queued, "scheduled"),
        (None, None) => (MessageStatus::Accepted, ""),
    };
    let scheduled = held.or(scheduled);
    let channel = new.route.plan.first().map(|p| p.channel);
    let message = Message {
        id: Uuid::now_v7(),
        contact_id: new.contact_id,
        direction: Direction::Outbound,
        category: new.category,
        content: new.content,
        overrides: new.overrides,
        channel,
        priority: new.priority,
        correlation_ref: new.correlation_ref,
        metadata: new.metadata,
        send_time,
        expire_time: new.expire_time.map(micros),
        reply_to: new.reply_to,
        status,
        history: vec![StatusChange {
            status,
            time: now,
            channel,
            reason: reason.to_owned(),
        }],
        attempts: Vec::new(),
        route: Some(new.route),
        provider_message_id: None,
        create_time: now,
        update_time: now,
        automatic: false,
    };
    (message, scheduled.unwrap_or(now))
}

/// The stored form of an inbound message (status `Received`).
pub fn inbound_message(
    id: Uuid,
    contact_id: Uuid,
    inbound: &NewInbound,
    reply_to: Option<Uuid>,
    now: SystemTime,
) -> Message {
    let mut content = inbound.content.clone();
    // A reaction names the message reacted to by our id, as a reply does.
    if let (Content::Reaction(reaction), Some(ours)) = (&mut content, reply_to) {
        reaction.message = ours.to_string();
    }
    Message {
        id,
        contact_id,
        direction: Direction::Inbound,
        category: Category::Service,
        content,
        overrides: Vec::new(),
        channel: Some(inbound.channel),
        priority: Priority::Normal,
        correlation_ref: String::new(),
        metadata: BTreeMap::new(),
        send_time: Some(inbound.time),
        expire_time: None,
        reply_to,
        status: MessageStatus::Received,
        history: vec![StatusChange {
            status: MessageStatus::Received,
            time: now,
            channel: Some(inbound.channel),
            reason: String::new(),
        }],
        attempts: Vec::new(),
        route: None,
        provider_message_id: Some(inbound.provider_message_id.clone()),
        create_time: now,
        update_time: now,
        automatic: inbound.automatic,
    }
}

/// Applies a status change to a message in memory: appends history and moves
/// the status when allowed. Returns whether anything changed (a duplicate
/// report changes nothing).
pub fn apply_status(
    message: &mut Message,
    status: MessageStatus,
    channel: Option<Channel>,
    reason: &str,
    now: SystemTime,
) -> bool {
    let duplicate = message
        .history
        .iter()
        .any(|h| h.status == status && h.channel == channel && status != MessageStatus::Queued);
    if duplicate {
        return false;
    }
    let moves = message.status.may_become(status);
    // Progress the message is already past (delivered after read, sent after
    // delivered) tells nothing new: recording it would make the history
    // run backwards. A failure after delivery is news and is recorded.
    let implied = matches!(
        status,
        MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read
    ) && matches!(
        message.status,
        MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read
    ) && status.rank() <= message.status.rank();
    if !moves && implied {
        return false;
    }
    let reason = if moves || !reason.is_empty() {
        reason.to_owned()
    } else {
        format!("reported after {:?}; status kept", message.status).to_lowercase()
    };
    message.history.push(StatusChange {
        status,
        time: now,
        channel,
        reason,
    });
    if moves {
        message.status = status;
    }
    message.update_time = now;
    true
}

/// Puts a failed message back in the queue on an operator's request: from the
/// first channel of its plan, status `Queued`. The one move out of `Failed`.
pub fn requeue_by_operator(message: &mut Message, now: SystemTime) {
    let first = message
        .route
        .as_ref()
        .and_then(|r| r.plan.first())
        .map(|p| p.channel);
    message.channel = first.or(message.channel);
    message.status = MessageStatus::Queued;
    message.history.push(StatusChange {
        status: MessageStatus::Queued,
        time: now,
        channel: message.channel,
        reason: "retried by operator".to_owned(),
    });
    message.update_time = now;
}

/// `Option<SystemTime>` as microseconds since the epoch.
pub mod optional_micros {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&crate::model::to_micros(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.map(crate::model::from_micros))
    }
}

/// A send under an idempotency key already used for another request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyConflict {
    /// The message the key names.
    pub existing: Uuid,
}

/// How a send under an idempotency key already used is answered, from the
/// message the key names and the hash of the request it was accepted for:
/// the same request is a replay of that message, another is a conflict.
pub fn replay(
    found: (Message, String),
    request_hash: &str,
) -> Result<Accepted, IdempotencyConflict> {
    let (message, hash) = found;
    if hash == request_hash {
        Ok(Accepted::Replayed(message))
    } else {
        Err(IdempotencyConflict {
            existing: message.id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::MessageStatus::*;
    use super::*;

    #[test]
    fn statuses_only_move_forward() {
        assert!(Accepted.may_become(Sent));
        assert!(!Queued.may_become(Queued));
        assert!(Accepted.may_become(Queued));
        assert!(Sent.may_become(Delivered));
        assert!(Sent.may_become(Read), "read implies delivered");
        assert!(
            !Read.may_become(Delivered),
            "a late delivered never overwrites read"
        );
        assert!(!Delivered.may_become(Sent));
        assert!(Sent.may_become(Failed));
        assert!(
            !Delivered.may_become(Failed),
            "a failure after delivery does not regress"
        );
        assert!(!Failed.may_become(Sent));
        assert!(!Canceled.may_become(Sent));
        assert!(Queued.may_become(Canceled));
        assert!(!Sent.may_become(Canceled));
        assert!(!Sent.may_become(Queued));
    }

    #[test]
    fn a_stored_state_restores_the_message_as_it_was() {
        let new = NewMessage {
            contact_id: Uuid::now_v7(),
            contact_version: 3,
            category: Category::Transactional,
            content: Content::Text(omniroute_channel::content::Text {
                body: "hello".into(),
                ..Default::default()
            }),
            overrides: Vec::new(),
            route: RouteDecision {
                plan: Vec::new(),
                skipped: Vec::new(),
                hold_until: None,
                decide_time: SystemTime::UNIX_EPOCH,
                inputs: Default::default(),
            },
            priority: Priority::Normal,
            correlation_ref: "order-1".into(),
            metadata: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
            send_time: None,
            expire_time: None,
            reply_to: None,
            idempotency_key: None,
            request_hash: String::new(),
        };
        let (accepted, _) = outbound_message(new, crate::model::now());
        let stored = message_event(EventType::MessageAccepted, &accepted).payload;
        // Later: sent, delivered, and the contact merged into another.
        let mut later = accepted.clone();
        later.provider_message_id = Some("wamid.1".into());
        let at = crate::model::now();
        let channel = later.channel;
        apply_status(&mut later, MessageStatus::Sent, channel, "", at);
        apply_status(&mut later, MessageStatus::Delivered, channel, "", at);
        let sent_state = StoredPayload::MessageState(MessageState::of(&later));
        later.contact_id = Uuid::now_v7();

        let json = serde_json::to_string(&stored).expect("serializes");
        let back: StoredPayload = serde_json::from_str(&json).expect("parses");
        assert!(json.len() < 200, "a state is small: {json}");
        assert_eq!(
            back.into_payload(Some(later.clone()), Some(accepted.contact_id)),
            EventPayload::Message(Box::new(accepted.clone()))
        );
        let EventPayload::Message(restored) = sent_state.into_payload(Some(later.clone()), None)
        else {
            panic!("a message payload")
        };
        assert_eq!(restored.status, MessageStatus::Delivered);
        assert_eq!(restored.history.len(), 3);
        // Events written before states were stored still read.
        let old = serde_json::to_string(&EventPayload::Message(Box::new(accepted.clone())))
            .expect("serializes");
        let old: StoredPayload = serde_json::from_str(&old).expect("parses");
        assert_eq!(
            old.into_payload(None, None),
            EventPayload::Message(Box::new(accepted))
        );
    }

    #[test]
    fn cursors_round_trip_and_order() {
        let a = Cursor { xid: 7, seq: 3 };
        let b = Cursor { xid: 7, seq: 4 };
        assert!(a < b && b < Cursor { xid: 8, seq: 1 });
        assert_eq!(Cursor::decode(&a.encode()), Some(a));
        assert_eq!(Cursor::decode("nope"), None);
    }
}
