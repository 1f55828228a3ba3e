//! The event log's records: event types and payloads, cursors, filters,
//! and the events the pipeline writes (built here, as pure functions both
//! stores call inside their transactions).

use std::collections::BTreeMap;
use std::time::SystemTime;

use omniroute_channel::Channel;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::messages::*;

/// What happened, in the event log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// An outbound message was accepted.
    MessageAccepted,
    /// A message's status changed (or a provider reported one).
    MessageStatusChanged,
    /// A message failed for good.
    MessageFailed,
    /// A customer's message came in.
    MessageReceived,
    /// A contact was created.
    ContactCreated,
    /// Contacts were merged.
    ContactMerged,
    /// A contact was erased.
    ContactErased,
    /// A callback's state changed: every change is one event.
    CallbackChanged,
    /// A message's step was deferred (quiet hours): [`Event::route`] says
    /// until when.
    MessageDeferred,
    /// A message moved to its plan's next step: [`Event::route`] says from
    /// which channel to which, why, and when it is due.
    MessageFallback,
    /// A customer service window closes soon: [`EventPayload::Window`].
    WindowClosing,
    /// The router disabled a webhook endpoint (it answered 410 Gone, or
    /// every delivery failed for too long): [`EventPayload::Endpoint`].
    EndpointDisabled,
    /// A test delivery to an endpoint (never in the log):
    /// [`EventPayload::Endpoint`].
    EndpointTest,
}

impl EventType {
    /// Stable storage code.
    pub fn code(self) -> i16 {
        match self {
            EventType::MessageAccepted => 1,
            EventType::MessageStatusChanged => 2,
            EventType::MessageFailed => 3,
            EventType::MessageReceived => 4,
            EventType::ContactCreated => 5,
            EventType::ContactMerged => 6,
            EventType::ContactErased => 7,
            EventType::CallbackChanged => 8,
            EventType::MessageDeferred => 9,
            EventType::MessageFallback => 10,
            EventType::WindowClosing => 11,
            EventType::EndpointDisabled => 12,
            EventType::EndpointTest => 13,
        }
    }

    /// Parses [`EventType::code`] back.
    pub fn from_code(code: i16) -> Option<EventType> {
        Some(match code {
            1 => EventType::MessageAccepted,
            2 => EventType::MessageStatusChanged,
            3 => EventType::MessageFailed,
            4 => EventType::MessageReceived,
            5 => EventType::ContactCreated,
            6 => EventType::ContactMerged,
            7 => EventType::ContactErased,
            8 => EventType::CallbackChanged,
            9 => EventType::MessageDeferred,
            10 => EventType::MessageFallback,
            11 => EventType::WindowClosing,
            12 => EventType::EndpointDisabled,
            13 => EventType::EndpointTest,
            _ => return None,
        })
    }
}

/// A position in the event log. Opaque to callers; ordered.
///
/// PostgreSQL orders events by (transaction id, sequence) and only hands out
/// events of transactions older than every transaction still running, so a
/// reader never skips an event that commits late. SQLite commits one
/// transaction at a time: there the transaction part is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    /// Transaction id (PostgreSQL xid8), 0 on SQLite.
    pub xid: u64,
    /// Sequence number of the event.
    pub seq: i64,
}

impl Cursor {
    /// The opaque text form.
    pub fn encode(self) -> String {
        format!("{:016x}{:016x}", self.xid, self.seq)
    }

    /// Parses [`Cursor::encode`] back.
    pub fn decode(text: &str) -> Option<Cursor> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let xid = u64::from_str_radix(&text[..16], 16).ok()?;
        let seq = i64::from_str_radix(&text[16..], 16).ok()?;
        Some(Cursor { xid, seq })
    }
}

/// A sink's position in a tenant's log, as a replica holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkLease {
    /// Every event up to here was published.
    pub cursor: Cursor,
    /// The lease's token: only its holder moves the position.
    pub token: Uuid,
}

/// A position among sent messages awaiting their first report: when a
/// message was sent, then its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SentMark {
    /// When it was sent.
    pub time: SystemTime,
    /// The message.
    pub id: Uuid,
}

impl SentMark {
    /// The position before every message sent after `time`.
    pub fn before(time: SystemTime) -> SentMark {
        SentMark {
            time,
            id: Uuid::nil(),
        }
    }
}

impl Default for SentMark {
    fn default() -> SentMark {
        SentMark::before(SystemTime::UNIX_EPOCH)
    }
}

/// Whether a cursor a subscriber resumes from is one this log issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorCheck {
    /// An event of this tenant's log sits at the cursor.
    Issued,
    /// The cursor lies past the newest event (the database was restored from
    /// an older backup, or reset): resuming there would skip every event up
    /// to it.
    PastHead {
        /// The newest event a reader can see now.
        head: Cursor,
    },
    /// No event of this tenant sits at the cursor: it was pruned by
    /// retention, or the cursor comes from another log or tenant.
    Unknown,
}

/// What a cursor no event sits at is, against the log's head.
pub fn unissued(cursor: Cursor, head: Cursor) -> CursorCheck {
    if cursor > head {
        CursorCheck::PastHead { head }
    } else {
        CursorCheck::Unknown
    }
}

/// An entry of the event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its position.
    pub cursor: Cursor,
    /// What happened.
    pub kind: EventType,
    pub time: SystemTime,
    /// The contact concerned.
    pub contact_id: Option<Uuid>,
    /// The message concerned.
    pub message_id: Option<Uuid>,
    /// The caller's reference of the message.
    pub correlation_ref: String,
    /// The caller's metadata of the message.
    pub metadata: BTreeMap<String, String>,
    /// The payload: for message events the message after the change; for
    /// contact events the contact's id and merged ids.
    pub payload: EventPayload,
    /// For deferrals and fallbacks: what routing did.
    pub route: Option<RouteChange>,
}

/// What routing did to a message after accepting it: a step deferred, or
/// the plan's next step taking over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteChange {
    /// The channel left (fallbacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Channel>,
    /// The channel of the step now due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Channel>,
    /// Why.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// When the step is due, if later than the change.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::messages::optional_micros"
    )]
    pub until: Option<SystemTime>,
}

/// What an event carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventPayload {
    /// A message after the change.
    Message(Box<Message>),
    /// A contact event: the contact and, for merges, the retired ids.
    Contact {
        contact_id: Uuid,
        /// Ids merged into it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        merged: Vec<Uuid>,
    },
    /// A customer service window closing soon.
    Window(crate::ServiceWindow),
    /// A callback after the change.
    Callback(Box<crate::callbacks::Callback>),
    /// A webhook endpoint the router disabled, and why.
    Endpoint { endpoint_id: Uuid, reason: String },
    /// Nothing (erased).
    Empty,
}

/// A filter on the event log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these types; empty means all.
    pub types: Vec<EventType>,
    /// Only events about this contact.
    pub contact_id: Option<Uuid>,
}

/// What the log stores of a message event: the message's state after the
/// change, not the whole message.
///
/// Everything else about a message is fixed once it is stored (its content,
/// route, category, references; only erasure redacts them, and then also
/// empties the events), its history and attempts only grow, and a merge only
/// changes its contact (which the event row keeps as it was). So the message
/// as it was after the change is exactly the stored message with this state
/// put back and its history and attempts cut to the lengths they had
/// ([`MessageState::restore`]), and an event costs a few dozen bytes instead
/// of a copy of the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageState {
    status: MessageStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    channel: Option<Channel>,
    /// Entries in the status history.
    history: usize,
    /// Attempts made.
    attempts: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider_message_id: Option<String>,
    /// Microseconds since the epoch.
    update_time: i64,
    /// What routing did, for deferral and fallback events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    route: Option<RouteChange>,
}

impl MessageState {
    pub fn of(message: &Message) -> MessageState {
        MessageState {
            status: message.status,
            channel: message.channel,
            history: message.history.len(),
            attempts: message.attempts.len(),
            provider_message_id: message.provider_message_id.clone(),
            update_time: crate::model::to_micros(message.update_time),
            route: None,
        }
    }

    /// The message as it was in this state, from the message as stored now;
    /// `contact_id` is the contact the event was written for.
    pub fn restore(&self, mut message: Message, contact_id: Option<Uuid>) -> Message {
        message.status = self.status;
        message.channel = self.channel;
        message.history.truncate(self.history);
        message.attempts.truncate(self.attempts);
        message.provider_message_id = self.provider_message_id.clone();
        message.update_time = crate::model::from_micros(self.update_time);
        if let Some(contact_id) = contact_id {
            message.contact_id = contact_id;
        }
        message
    }
}

/// An event payload as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StoredPayload {
    /// A message event: the message's state after the change.
    MessageState(MessageState),
    /// A whole message (events written before states were stored).
    Message(Box<Message>),
    /// A contact event.
    Contact {
        contact_id: Uuid,
        /// Ids merged into it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        merged: Vec<Uuid>,
    },
    /// A customer service window closing soon.
    Window(crate::ServiceWindow),
    /// A callback event: its message's state, its call's progress and its
    /// next call as they were.
    Callback(crate::callbacks::StoredCallback),
    /// A webhook endpoint the router disabled, and why.
    Endpoint { endpoint_id: Uuid, reason: String },
    /// Nothing (erased).
    Empty,
}

impl StoredPayload {
    /// The payload a reader gets; `message` is the event's message as
    /// stored now (needed for a [`StoredPayload::MessageState`).
    pub fn into_payload(self, message: Option<Message>, contact_id: Option<Uuid>) -> EventPayload {
        match self {
            StoredPayload::MessageState(state) => match message {
                Some(message) => {
                    EventPayload::Message(Box::new(state.restore(message, contact_id)))
                }
                None => EventPayload::Empty,
            },
            StoredPayload::Message(message) => EventPayload::Message(message),
            StoredPayload::Contact { contact_id, merged } => {
                EventPayload::Contact { contact_id, merged }
            }
            StoredPayload::Window(window) => EventPayload::Window(window),
            StoredPayload::Callback(callback) => match message {
                Some(message) => {
                    EventPayload::Callback(Box::new(callback.restore(message, contact_id)))
                }
                None => EventPayload::Empty,
            },
            StoredPayload::Endpoint {
                endpoint_id,
                reason,
            } => EventPayload::Endpoint {
                endpoint_id,
                reason,
            },
            StoredPayload::Empty => EventPayload::Empty,
        }
    }

    /// What routing did, for deferral and fallback events.
    pub fn route_change(&self) -> Option<RouteChange> {
        match self {
            StoredPayload::MessageState(state) => state.route.clone(),
            _ => None,
        }
    }

    /// Whether reading it needs the message.
    pub fn needs_message(&self) -> bool {
        matches!(
            self,
            StoredPayload::MessageState(_) | StoredPayload::Callback(_)
        )
    }
}

/// The stored payload of a message event about `message`, as JSON.
pub fn message_state_json(message: &Message) -> serde_json::Result<String> {
    serde_json::to_string(&StoredPayload::MessageState(MessageState::of(message)))
}

/// A new event to append in the same transaction as the change it records.
pub fn message_event(kind: EventType, message: &Message) -> NewEvent {
    NewEvent {
        kind,
        contact_id: Some(message.contact_id),
        message_id: Some(message.id),
        correlation_ref: message.correlation_ref.clone(),
        metadata: message.metadata.clone(),
        payload: StoredPayload::MessageState(MessageState::of(message)),
    }
}

/// A deferral or fallback event about `message`.
pub fn route_event(kind: EventType, message: &Message, change: RouteChange) -> NewEvent {
    let mut state = MessageState::of(message);
    state.route = Some(change);
    NewEvent {
        payload: StoredPayload::MessageState(state),
        ..message_event(kind, message)
    }
}

/// The `MessageDeferred` event of a message accepted with its first step
/// held for quiet hours, due at `due`.
pub fn deferred_event(message: &Message, due: SystemTime) -> Option<NewEvent> {
    let held = message.history.first()?.reason == HELD_FOR_QUIET_HOURS;
    held.then(|| held_event(message, due))
}

/// The `MessageDeferred` event of a message whose step waits for the end of
/// the customer's quiet hours at `due`.
pub fn held_event(message: &Message, due: SystemTime) -> NewEvent {
    let change = RouteChange {
        from: None,
        to: message.channel,
        reason: "quiet hours".to_owned(),
        until: Some(due),
    };
    route_event(EventType::MessageDeferred, message, change)
}

/// The history reason of a message held for the customer's quiet hours.
pub const HELD_FOR_QUIET_HOURS: &str = "held for quiet hours";

/// The event for a status change of `message`: `MessageFailed` when this
/// change failed it, else `MessageStatusChanged`.
pub fn status_event(before: MessageStatus, message: &Message) -> NewEvent {
    let kind = if before != MessageStatus::Failed && message.status == MessageStatus::Failed {
        EventType::MessageFailed
    } else {
        EventType::MessageStatusChanged
    };
    message_event(kind, message)
}

/// The event of a contact created, merged (with the ids it retired) or
/// erased.
pub fn contact_event(kind: EventType, contact_id: Uuid, merged: Vec<Uuid>) -> NewEvent {
    NewEvent {
        kind,
        contact_id: Some(contact_id),
        message_id: None,
        correlation_ref: String::new(),
        metadata: BTreeMap::new(),
        payload: StoredPayload::Contact { contact_id, merged },
    }
}

/// The `WindowClosing` event of a contact's window.
pub fn window_event(contact_id: Uuid, window: crate::ServiceWindow) -> NewEvent {
    NewEvent {
        kind: EventType::WindowClosing,
        contact_id: Some(contact_id),
        message_id: None,
        correlation_ref: String::new(),
        metadata: BTreeMap::new(),
        payload: StoredPayload::Window(window),
    }
}

/// The `EndpointDisabled` event of an endpoint the router disabled.
pub fn endpoint_disabled_event(endpoint_id: Uuid, reason: &str) -> NewEvent {
    NewEvent {
        kind: EventType::EndpointDisabled,
        contact_id: None,
        message_id: None,
        correlation_ref: String::new(),
        metadata: BTreeMap::new(),
        payload: StoredPayload::Endpoint {
            endpoint_id,
            reason: reason.to_owned(),
        },
    }
}

/// Which tenants a background task works for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Only this one.
    Only(String),
    /// Every tenant but these.
    AllBut(Vec<String>),
}

impl TenantScope {
    /// The one tenant, or the excluded ones.
    pub fn parts(&self) -> (Option<&str>, Vec<&str>) {
        match self {
            TenantScope::Only(t) => (Some(t.as_str()), Vec::new()),
            TenantScope::AllBut(ts) => (None, ts.iter().map(String::as_str).collect()),
        }
    }
}

/// The event of an erasure: it names the contact id and carries nothing else.
pub fn erased_event(contact_id: Uuid) -> NewEvent {
    NewEvent {
        payload: StoredPayload::Empty,
        ..contact_event(EventType::ContactErased, contact_id, Vec::new())
    }
}

/// An event before it has a position.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventType,
    pub contact_id: Option<Uuid>,
    pub message_id: Option<Uuid>,
    pub correlation_ref: String,
    pub metadata: BTreeMap<String, String>,
    pub payload: StoredPayload,
}
