//! Callbacks: outbound messages that ask an agent to call the customer
//! back ([`Content::CallbackRequest`]), with what the telephony provider
//! reported of the call currently placed for each.
//!
//! Both stores keep a callback's progress in `call_progress`, one row per
//! message, and list callbacks in the order they are due ([`callback_due`],
//! then the id) from partial indexes that hold callbacks only
//! (`migrations/*/…_callbacks.sql`). What the two stores share lives here:
//! what a callback is, its list order, how a progress row reads back, and
//! what a lookup that finds no callback answers.

use std::time::SystemTime;

use omniroute_channel::Content;
use uuid::Uuid;

use crate::StoreError;
use crate::messages::{Direction, Message, MessageStatus};

/// What a telephony provider reported of the current call of a callback.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Which callbacks [`crate::Store::list_callbacks`] lists.
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
    /// When the callback is due ([`callback_due`]).
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

/// The error for a callback that is not there (no such message in the
/// tenant, or not a callback).
pub(crate) fn callback_not_found(id: Uuid) -> StoreError {
    StoreError::NotFound {
        resource: "callbacks",
        id: id.to_string(),
    }
}

/// The answer of [`crate::Store::get_callback`] from what a lookup of
/// message `id` found: the message only when it is a callback.
pub(crate) fn found_callback(
    found: Option<(Message, Option<CallProgress>)>,
    id: Uuid,
) -> crate::Result<(Message, Option<CallProgress>)> {
    found
        .filter(|(message, _)| is_callback(message))
        .ok_or_else(|| callback_not_found(id))
}

/// A progress row as a LEFT JOIN reads it: `None` when the callback has
/// none (no call id).
pub(crate) fn progress_from_columns(
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
pub(crate) fn status_codes(filter: &CallbackFilter) -> Vec<i16> {
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

    #[test]
    fn a_message_that_is_no_callback_is_not_found() {
        let text = message(Direction::Outbound, Content::Text(Text::default()));
        let id = text.id;
        assert!(matches!(
            found_callback(Some((text, None)), id),
            Err(StoreError::NotFound {
                resource: "callbacks",
                ..
            })
        ));
        assert!(found_callback(None, id).is_err());
        let call = message(Direction::Outbound, callback());
        let id = call.id;
        assert!(found_callback(Some((call, None)), id).is_ok());
    }
}
