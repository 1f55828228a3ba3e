//! Erasing a contact: what goes, what stays as a tombstone, and what the log
//! keeps.
//!
//! A backend resolves (and locks) the contact, reads its messages that
//! still have a dispatch job, and asks [`plan`]. Then, in one transaction,
//! it deletes the contact's identities, consent records and windows, the
//! jobs and the media and call progress kept with its messages, cancels
//! [`ErasurePlan::canceled`], redacts every message of the contact to
//! [`ErasurePlan::redaction`], appends [`ErasurePlan::cancel_events`],
//! empties the events about the contact (also those written under ids
//! merged into it), writes the tombstone with [`ErasurePlan::summary`] of
//! what it removed, and appends [`ErasurePlan::erased_event`] last, so that
//! the log keeps that the erasure happened.

use std::collections::BTreeMap;
use std::time::SystemTime;

use omniroute_channel::Content;
use omniroute_channel::content::Text;
use uuid::Uuid;

use crate::events::{EventPayload, NewEvent, erased_event, status_event};
use crate::messages::{
    Attempt, ChannelOverride, Message, MessageStatus, RouteDecision, apply_status,
};
use crate::model::{ContactState, ErasureSummary};

/// The history reason of a message canceled by its contact's erasure.
pub const CANCELED_BY_ERASURE: &str = "contact erased";

/// What every message of an erased contact keeps of what was written: the
/// status history (it holds no personal data) and nothing else.
#[derive(Debug, Clone, PartialEq)]
pub struct Redaction {
    /// The content: an empty text.
    pub content: Content,
    /// Overrides: none.
    pub overrides: Vec<ChannelOverride>,
    /// Metadata: none.
    pub metadata: BTreeMap<String, String>,
    /// The provider's answers to attempts: none.
    pub attempts: Vec<Attempt>,
    /// The correlation reference: empty.
    pub correlation_ref: String,
    /// The route (it names addresses): none.
    pub route: Option<RouteDecision>,
}

impl Redaction {
    /// Applies the redaction to a message in memory.
    pub fn apply(&self, m: &mut Message, now: SystemTime) {
        m.content = self.content.clone();
        m.overrides.clone_from(&self.overrides);
        m.metadata.clone_from(&self.metadata);
        m.attempts.clone_from(&self.attempts);
        m.correlation_ref.clone_from(&self.correlation_ref);
        m.route.clone_from(&self.route);
        m.update_time = now;
    }
}

/// What an erasure writes.
#[derive(Debug, Clone, PartialEq)]
pub struct ErasurePlan {
    /// The contact erased (resolved).
    pub contact_id: Uuid,
    /// The time of every change.
    pub now: SystemTime,
    /// The dispatch jobs to delete (a watch too): every job of the
    /// contact's messages.
    pub jobs: Vec<Uuid>,
    /// The messages still waiting for a send, canceled (status and history
    /// as they are to be written): nothing goes out to an erased contact.
    pub canceled: Vec<Message>,
    /// Their status events, appended before the log's redaction (which
    /// empties them as it does every event about the contact).
    pub cancel_events: Vec<NewEvent>,
    /// What every message of the contact becomes.
    pub redaction: Redaction,
    /// The payload events about the contact keep: none.
    pub event_payload: EventPayload,
    /// The state of the tombstone.
    pub state: ContactState,
    /// The event appended last: it names the contact and nothing else.
    pub erased_event: NewEvent,
}

impl ErasurePlan {
    /// The counts the tombstone keeps, from what the statements removed.
    pub fn summary(
        &self,
        identities_removed: u64,
        consent_records_removed: u64,
        messages_redacted: u64,
    ) -> ErasureSummary {
        let count = |n: u64| i32::try_from(n).unwrap_or(i32::MAX);
        ErasureSummary {
            identities_removed: count(identities_removed),
            consent_records_removed: count(consent_records_removed),
            messages_redacted: count(messages_redacted),
        }
    }
}

/// Plans the erasure of contact `id` (resolved), in `state`, whose messages
/// with a dispatch job are `pending`. `None` when it was erased before:
/// erasing twice writes nothing.
pub fn plan(
    id: Uuid,
    state: ContactState,
    pending: Vec<Message>,
    now: SystemTime,
) -> Option<ErasurePlan> {
    if state == ContactState::Erased {
        return None;
    }
    let jobs: Vec<Uuid> = pending.iter().map(|m| m.id).collect();
    let mut canceled = Vec::new();
    let mut cancel_events = Vec::new();
    for mut message in pending {
        let before = message.status;
        let channel = message.channel;
        if message.status.may_become(MessageStatus::Canceled)
            && apply_status(
                &mut message,
                MessageStatus::Canceled,
                channel,
                CANCELED_BY_ERASURE,
                now,
            )
        {
            cancel_events.push(status_event(before, &message));
            canceled.push(message);
        }
    }
    Some(ErasurePlan {
        contact_id: id,
        now,
        jobs,
        canceled,
        cancel_events,
        redaction: Redaction {
            content: Content::Text(Text::default()),
            overrides: Vec::new(),
            metadata: BTreeMap::new(),
            attempts: Vec::new(),
            correlation_ref: String::new(),
            route: None,
        },
        event_payload: EventPayload::Empty,
        state: ContactState::Erased,
        erased_event: erased_event(id),
    })
}
