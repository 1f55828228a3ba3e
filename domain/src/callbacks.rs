//! Callbacks: outbound messages that ask an agent to call the customer
//! back ([`Content::CallbackRequest`]), with what the telephony provider
//! reported of the call currently placed for each.
//!
//! Both stores keep a callback's progress in `call_progress`, one row per
//! message, and list callbacks in the order they are due ([`callback_due`],
//! then the id) from partial indexes that hold callbacks only
//! (`migrations/*/…_callbacks.sql`). What the two stores share lives here:
//! what a callback is, its list order, how a progress row reads back, and
//! what a lookup that finds no callback answers; where a callback is
//! ([`CallbackState`], derived from its message and its call's progress,
//! never stored), what canceling it does, and the `CallbackChanged` event
//! each store writes, in the transaction of the change, whenever that
//! state moves.
//!
//! Between two calls a callback is *scheduled* again: its message stays
//! `Sent` (statuses only move forward) with a retry decided after the call
//! ended (a `Queued` entry last in its history), and its next call is the
//! due time of its send job ([`Callback::next_call`). It can be canceled
//! then, and while its call rings (the store cancels the message; the
//! caller ends the call), never once the customer answered.

use std::time::SystemTime;

use omniroute_channel::Content;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{EventType, MessageState, NewEvent, StoredPayload};
use crate::messages::{Direction, Message, MessageStatus, StatusChange};

/// What a telephony provider reported of the current call of a callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallProgress {
    /// The provider's id of the call (the message's provider id for the
    /// attempt that placed it).
    pub call_id: String,
    /// Who answered, as the provider detected it (`human`,
    /// `machine_start`, …); empty while no report said.
    pub answered_by: String,
    /// How long the customer and the agent were connected, once a report
    /// said.
    pub bridged_seconds: Option<u32>,
    /// When the last report about the call was recorded.
    pub update_time: SystemTime,
}

/// Where a callback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackState {
    /// Waiting for its time: its first call, or the next one after a call
    /// that did not reach the customer (or the agent).
    Scheduled,
    /// A call is placed and rings.
    Dialing,
    /// The customer answered (and is greeted, then bridged).
    InProgress,
    /// The customer talked to the agent.
    Completed,
    /// Nobody answered (or a machine did), to the end of the retry plan.
    NoAnswer,
    /// The line (or the agent's) was busy, to the end of the retry plan.
    Busy,
    /// The call could not be made.
    Failed,
    /// Canceled before the customer answered.
    Canceled,
    /// No call could be made before its latest time.
    Expired,
}

/// A callback as the stores read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    /// Its message (a voice message with a callback request).
    pub message: Message,
    /// What the provider reported of the callback's latest call.
    pub progress: Option<CallProgress>,
    /// When its next call is due, while one waits (its send job's due
    /// time).
    pub next_call: Option<SystemTime>,
}

impl Callback {
    /// Where it is.
    pub fn state(&self) -> CallbackState {
        callback_state(&self.message, self.progress.as_ref())
    }

    /// The progress of the call placed now (not an earlier call's).
    pub fn current_progress(&self) -> Option<&CallProgress> {
        self.progress
            .as_ref()
            .filter(|p| Some(p.call_id.as_str()) == self.message.provider_message_id.as_deref())
    }

    /// When it calls: while it waits for a call, when that call is due;
    /// otherwise when its first call was planned (quiet hours or business
    /// hours may have held it past its send time).
    pub fn schedule_time(&self) -> SystemTime {
        let planned = self
            .message
            .route
            .as_ref()
            .and_then(|r| r.hold_until)
            .or(self.message.send_time)
            .unwrap_or(self.message.create_time);
        match (self.state(), self.next_call) {
            (CallbackState::Scheduled, Some(next)) => next,
            _ => planned,
        }
    }

    /// Why it waits for another call or ended: the failure of the call
    /// before (as the provider said it), the decision that ended it;
    /// empty once it is under way or completed.
    pub fn status_reason(&self) -> String {
        let history = &self.message.history;
        match self.state() {
            CallbackState::Completed | CallbackState::InProgress | CallbackState::Dialing => {
                String::new()
            }
            CallbackState::Scheduled if waits_for_next_call(&self.message) => history
                .iter()
                .rev()
                .find(|h| h.status == MessageStatus::Failed)
                .map(|h| {
                    let reason = h.reason.as_str();
                    reason
                        .strip_suffix("; routing decides what follows")
                        .unwrap_or(reason)
                        .to_owned()
                })
                .unwrap_or_default(),
            _ => history.last().map(|h| h.reason.clone()).unwrap_or_default(),
        }
    }
}

/// Whether a sent callback waits for its next call: its latest call ended
/// without reaching the customer and routing decided to call again (a
/// `Queued` entry after the call's `Sent` one).
fn waits_for_next_call(message: &Message) -> bool {
    message.status == MessageStatus::Sent
        && message
            .history
            .last()
            .is_some_and(|h| h.status == MessageStatus::Queued)
}

/// The failure codes a reason names (`… failure call-busy: …`,
/// `last error agent-no-answer: …`).
fn names(reason: &str, codes: &[&str]) -> bool {
    codes
        .iter()
        .any(|c| reason.contains(&format!(" {c}: ")) || reason.contains(&format!("failure {c}:")))
}

/// Where a callback is, from its message and its call's progress.
pub fn callback_state(message: &Message, progress: Option<&CallProgress>) -> CallbackState {
    use CallbackState as S;
    let last_reason = message
        .history
        .last()
        .map(|h| h.reason.as_str())
        .unwrap_or_default();
    match message.status {
        MessageStatus::Canceled => S::Canceled,
        MessageStatus::Accepted | MessageStatus::Queued | MessageStatus::Received => S::Scheduled,
        MessageStatus::Sent if waits_for_next_call(message) => S::Scheduled,
        MessageStatus::Sent => {
            let answered = progress.is_some_and(|p| {
                Some(p.call_id.as_str()) == message.provider_message_id.as_deref()
                    && !p.answered_by.is_empty()
                    && !p.answered_by.starts_with("machine")
            });
            if answered { S::InProgress } else { S::Dialing }
        }
        MessageStatus::Delivered | MessageStatus::Read => S::Completed,
        MessageStatus::Failed => {
            if last_reason.starts_with("expired") {
                S::Expired
            } else if names(last_reason, &["call-busy", "agent-busy"]) {
                S::Busy
            } else if names(
                last_reason,
                &["call-no-answer", "call-machine", "agent-no-answer"],
            ) {
                S::NoAnswer
            } else {
                S::Failed
            }
        }
    }
}

/// The message statuses a callback in `state` can have (a listing reads
/// these, then checks the state of each).
pub fn statuses_in(state: CallbackState) -> Vec<MessageStatus> {
    use CallbackState as S;
    match state {
        // Between two calls, a sent one.
        S::Scheduled => vec![
            MessageStatus::Accepted,
            MessageStatus::Queued,
            MessageStatus::Sent,
        ],
        S::Dialing | S::InProgress => vec![MessageStatus::Sent],
        S::Completed => vec![MessageStatus::Delivered, MessageStatus::Read],
        S::NoAnswer | S::Busy | S::Failed | S::Expired => vec![MessageStatus::Failed],
        S::Canceled => vec![MessageStatus::Canceled],
    }
}

/// The history reason of a callback canceled by its caller.
pub const CANCELED_BY_CALLER: &str = "canceled by caller";

/// A callback that can no longer be canceled: the customer answered, or
/// it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotCancelable {
    /// The callback's message.
    pub id: Uuid,
    /// Why not: the status it reached.
    pub status: MessageStatus,
}

/// What canceling a callback must do, decided on the callback as read
/// under its message's lock: `Ok(Some(call))` while call `call` rings (the
/// caller ends it), `Ok(None)` while it waits for a call; [`NotCancelable`]
/// once the customer answered or it ended.
pub fn cancel_check(callback: &Callback) -> Result<Option<String>, NotCancelable> {
    match callback.state() {
        CallbackState::Scheduled => Ok(None),
        CallbackState::Dialing => Ok(callback.message.provider_message_id.clone()),
        _ => Err(NotCancelable {
            id: callback.message.id,
            status: callback.message.status,
        }),
    }
}

/// Cancels a callback's message in memory (its job is the store's to
/// delete): `Canceled`, with the caller's cancellation in the history. A
/// callback is canceled from `Sent` too: between two calls, or while one
/// rings; its message says so rather than keeping a send that no longer
/// stands.
pub fn cancel(message: &mut Message, now: SystemTime) {
    message.history.push(StatusChange {
        status: MessageStatus::Canceled,
        time: now,
        channel: message.channel,
        reason: CANCELED_BY_CALLER.to_owned(),
    });
    message.status = MessageStatus::Canceled;
    message.update_time = now;
}

/// The `CallbackChanged` event of `callback`, when its state is not
/// `before` (`None`: it is new). Both stores write it in the transaction
/// that made the change.
pub fn callback_event(before: Option<CallbackState>, callback: &Callback) -> Option<NewEvent> {
    if !is_callback(&callback.message) || before == Some(callback.state()) {
        return None;
    }
    let message = &callback.message;
    Some(NewEvent {
        kind: EventType::CallbackChanged,
        contact_id: Some(message.contact_id),
        message_id: Some(message.id),
        correlation_ref: message.correlation_ref.clone(),
        metadata: message.metadata.clone(),
        payload: StoredPayload::Callback(StoredCallback::of(callback)),
    })
}

/// What a callback event stores: the message's state (the rest of the
/// message is read back from the message, as for message events), the
/// call's progress and the next call's time as they were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCallback {
    message: MessageState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    progress: Option<StoredProgress>,
    /// Microseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_call: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredProgress {
    call_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    answered_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bridged_seconds: Option<u32>,
    /// Microseconds since the epoch.
    update_time: i64,
}

impl StoredCallback {
    fn of(callback: &Callback) -> StoredCallback {
        StoredCallback {
            message: MessageState::of(&callback.message),
            progress: callback.progress.as_ref().map(|p| StoredProgress {
                call_id: p.call_id.clone(),
                answered_by: p.answered_by.clone(),
                bridged_seconds: p.bridged_seconds,
                update_time: crate::model::to_micros(p.update_time),
            }),
            next_call: callback.next_call.map(crate::model::to_micros),
        }
    }

    /// The callback as it was, from its message as stored now.
    pub fn restore(&self, message: Message, contact_id: Option<Uuid>) -> Callback {
        Callback {
            message: self.message.restore(message, contact_id),
            progress: self.progress.as_ref().map(|p| CallProgress {
                call_id: p.call_id.clone(),
                answered_by: p.answered_by.clone(),
                bridged_seconds: p.bridged_seconds,
                update_time: crate::model::from_micros(p.update_time),
            }),
            next_call: self.next_call.map(crate::model::from_micros),
        }
    }
}

/// Which callbacks the store's `list_callbacks` lists.
#[derive(Debug, Clone, Default)]
pub struct CallbackFilter {
    /// Only this contact's (a merged id stands for its survivor; an
    /// unknown contact has none).
    pub contact_id: Option<Uuid>,
    /// Only those in one of these statuses; empty means any.
    pub statuses: Vec<MessageStatus>,
}

/// A position in the list order of callbacks: when due, then the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CallbackMark {
    /// When the callback is due ([`callback_due`).
    pub due: SystemTime,
    /// The message.
    pub id: Uuid,
}

impl CallbackMark {
    /// The position of a callback: a listing after it continues with the
    /// callbacks that follow it.
    pub fn of(message: &Message) -> CallbackMark {
        CallbackMark {
            due: callback_due(message),
            id: message.id,
        }
    }
}

/// When a callback is due, its list order key: its send time, else when it
/// was accepted.
pub fn callback_due(message: &Message) -> SystemTime {
    message.send_time.unwrap_or(message.create_time)
}

/// Whether a message is a callback: outbound, with callback-request
/// content.
pub fn is_callback(message: &Message) -> bool {
    message.direction == Direction::Outbound
        && matches!(message.content, Content::CallbackRequest(_))
}

/// What the store's `cancel_callback` did: the callback as canceled,
/// and the call to end when one was ringing.
#[derive(Debug, Clone, PartialEq)]
pub struct CanceledCallback {
    /// The callback, canceled.
    pub callback: Callback,
    /// The provider's id of the call that rang when it was canceled: the
    /// caller ends it.
    pub ringing: Option<String>,
}

/// A progress row as a LEFT JOIN reads it: `None` when the callback has
/// none (no call id).
pub fn progress_from_columns(
    call_id: Option<String>,
    answered_by: Option<String>,
    bridged_seconds: Option<i64>,
    update_time: Option<SystemTime>,
) -> Option<CallProgress> {
    Some(CallProgress {
        call_id: call_id?,
        answered_by: answered_by.unwrap_or_default(),
        bridged_seconds: bridged_seconds.map(|s| u32::try_from(s).unwrap_or(u32::MAX)),
        update_time: update_time?,
    })
}

/// The storage codes of the statuses a filter asks for (empty: any).
pub fn status_codes(filter: &CallbackFilter) -> Vec<i16> {
    filter.statuses.iter().map(|s| s.code()).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use omniroute_channel::Category;
    use omniroute_channel::content::{CallbackRequest, Text};

    use super::*;
    use crate::messages::Priority;

    fn message(direction: Direction, content: Content) -> Message {
        Message {
            id: Uuid::now_v7(),
            contact_id: Uuid::now_v7(),
            direction,
            category: Category::Service,
            content,
            overrides: Vec::new(),
            channel: None,
            priority: Priority::Normal,
            correlation_ref: String::new(),
            metadata: BTreeMap::new(),
            send_time: None,
            expire_time: None,
            reply_to: None,
            status: MessageStatus::Accepted,
            history: Vec::new(),
            attempts: Vec::new(),
            route: None,
            provider_message_id: None,
            create_time: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
            update_time: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
            automatic: false,
        }
    }

    fn callback() -> Content {
        Content::CallbackRequest(CallbackRequest {
            agent_address: "+4930123456".into(),
            ..CallbackRequest::default()
        })
    }

    #[test]
    fn only_outbound_callback_requests_are_callbacks() {
        assert!(is_callback(&message(Direction::Outbound, callback())));
        assert!(!is_callback(&message(Direction::Inbound, callback())));
        let text = Content::Text(Text::default());
        assert!(!is_callback(&message(Direction::Outbound, text)));
    }

    #[test]
    fn the_indexes_name_the_stored_type_of_callbacks() {
        // The partial indexes and the list statements select callbacks by
        // this JSON tag: renaming it would hide every callback.
        let stored = serde_json::to_value(callback()).expect("serializes");
        assert_eq!(stored["type"], "callback_request");
    }

    #[test]
    fn a_callback_is_due_at_its_send_time_else_when_accepted() {
        let mut m = message(Direction::Outbound, callback());
        assert_eq!(callback_due(&m), m.create_time);
        let later = m.create_time + Duration::from_secs(60);
        m.send_time = Some(later);
        assert_eq!(
            CallbackMark::of(&m),
            CallbackMark {
                due: later,
                id: m.id
            }
        );
    }

    #[test]
    fn a_missing_progress_row_reads_as_none() {
        assert_eq!(progress_from_columns(None, None, None, None), None);
        let time = SystemTime::UNIX_EPOCH;
        assert_eq!(
            progress_from_columns(Some("c1".into()), Some(String::new()), Some(42), Some(time)),
            Some(CallProgress {
                call_id: "c1".into(),
                answered_by: String::new(),
                bridged_seconds: Some(42),
                update_time: time,
            })
        );
    }

    fn view(message: Message) -> Callback {
        Callback {
            message,
            progress: None,
            next_call: None,
        }
    }

    fn change(status: MessageStatus, reason: &str) -> StatusChange {
        StatusChange {
            status,
            time: SystemTime::UNIX_EPOCH,
            channel: Some(omniroute_channel::Channel::Voice),
            reason: reason.into(),
        }
    }

    #[test]
    fn between_two_calls_a_callback_is_scheduled_at_its_next_call() {
        let mut call = view(message(Direction::Outbound, callback()));
        let planned = call.message.create_time;
        assert_eq!(call.state(), CallbackState::Scheduled);
        call.message.status = MessageStatus::Sent;
        call.message.provider_message_id = Some("CA1".into());
        call.message.history.push(change(MessageStatus::Sent, ""));
        assert_eq!(call.state(), CallbackState::Dialing);
        call.progress = Some(CallProgress {
            call_id: "CA1".into(),
            answered_by: "human".into(),
            bridged_seconds: None,
            update_time: planned,
        });
        assert_eq!(call.state(), CallbackState::InProgress);
        assert!(cancel_check(&call).is_err(), "answered: under way");
        // The agent line was busy: routing calls again in ten minutes.
        call.message.history.push(change(
            MessageStatus::Failed,
            "transient failure agent-busy: the agent line was busy; routing decides what follows",
        ));
        assert_eq!(call.state(), CallbackState::InProgress, "deciding");
        call.message
            .history
            .push(change(MessageStatus::Queued, "retry"));
        let next = planned + Duration::from_secs(600);
        call.next_call = Some(next);
        assert_eq!(call.state(), CallbackState::Scheduled);
        assert_eq!(call.schedule_time(), next);
        assert_eq!(
            call.status_reason(),
            "transient failure agent-busy: the agent line was busy"
        );
        assert_eq!(cancel_check(&call).unwrap(), None);
        // Its next call rings: cancelable, and the call is to be ended.
        call.message.provider_message_id = Some("CA2".into());
        call.message.history.push(change(MessageStatus::Sent, ""));
        assert_eq!(
            call.state(),
            CallbackState::Dialing,
            "the progress was CA1's"
        );
        assert_eq!(call.schedule_time(), planned);
        assert_eq!(cancel_check(&call).unwrap().as_deref(), Some("CA2"));
        cancel(&mut call.message, planned);
        assert_eq!(call.state(), CallbackState::Canceled);
        assert!(cancel_check(&call).is_err());
        assert_eq!(call.status_reason(), CANCELED_BY_CALLER);
    }

    #[test]
    fn names_read_the_codes_of_failure_reasons() {
        assert!(names(
            "retries exhausted after 3 attempts; last error call-busy: the line was busy",
            &["call-busy"]
        ));
        assert!(names(
            "transient failure agent-no-answer: nobody took the agent line; routing decides",
            &["agent-no-answer"]
        ));
        assert!(!names("permanent failure 21211: invalid", &["call-busy"]));
    }

    #[test]
    fn a_callback_event_is_written_when_the_state_moves() {
        let mut call = view(message(Direction::Outbound, callback()));
        call.message.correlation_ref = "ticket-77".into();
        let event = callback_event(None, &call).expect("a new callback");
        assert_eq!(event.kind, EventType::CallbackChanged);
        assert_eq!(event.correlation_ref, "ticket-77");
        assert_eq!(callback_event(Some(CallbackState::Scheduled), &call), None);
        assert!(callback_event(Some(CallbackState::Dialing), &call).is_some());
        let text = view(message(Direction::Outbound, Content::Text(Text::default())));
        assert_eq!(callback_event(None, &text), None, "not a callback");
        // What it stores reads back as the callback was.
        call.next_call = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(7));
        call.progress = Some(CallProgress {
            call_id: "CA1".into(),
            answered_by: "machine_start".into(),
            bridged_seconds: Some(3),
            update_time: SystemTime::UNIX_EPOCH + Duration::from_secs(5),
        });
        let StoredPayload::Callback(stored) = callback_event(None, &call).unwrap().payload else {
            panic!("a callback payload");
        };
        let json = serde_json::to_string(&stored).unwrap();
        let stored: StoredCallback = serde_json::from_str(&json).unwrap();
        let mut later = call.message.clone();
        later.history.push(change(MessageStatus::Queued, "later"));
        assert_eq!(stored.restore(later, None), call);
    }
}
