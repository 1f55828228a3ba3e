//! Recording a customer's message: whose it is, what it opens, whom it
//! wakes, and what is logged.
//!
//! A backend, in one transaction: answers [`crate::Received::Duplicate`]
//! when the provider message id was recorded before; finds the owner of the
//! first of [`sender_keys`] that has one; when there is an owner, finds our
//! message the inbound one replies to (among that contact's only: a reply
//! token or a Message-ID someone else quotes names nothing of another
//! contact's); then writes what [`plan`] says.

use std::time::SystemTime;

use omniroute_channel::{Address, Channel};
use uuid::Uuid;

use crate::events::{EventType, NewEvent, contact_event, message_event};
use crate::messages::{Message, NewInbound, inbound_message};
use crate::model::ContactState;

/// The identities that make a sender known, in order: their identity on
/// the channel, else one with the same number on the other phone channel.
pub fn sender_keys(inbound: &NewInbound) -> Vec<(Channel, String)> {
    inbound.from.keys()
}

/// The contact an inbound message is recorded for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// A known contact; a profile name fills its display name only while
    /// that is empty.
    Known {
        /// The contact.
        id: Uuid,
        /// The name to fill an empty display name with.
        fill_name: String,
    },
    /// A new contact, named after the profile.
    New {
        /// The new contact's id.
        id: Uuid,
        /// Its state.
        state: ContactState,
        /// Its display name.
        display_name: String,
    },
}

impl Sender {
    /// The contact's id.
    pub fn id(&self) -> Uuid {
        match self {
            Sender::Known { id, .. } | Sender::New { id, .. } => *id,
        }
    }
}

/// A customer service window an inbound message opens or extends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowOpening {
    /// Its channel.
    pub channel: Channel,
    /// The business line.
    pub line: String,
    /// Open until then: a later end stays (never shortened), and an
    /// extended window's closing notice is cleared.
    pub open_until: SystemTime,
}

/// A provider-scoped user id to keep on an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserId<'a> {
    /// The identity's channel (the one the message came on).
    pub channel: Channel,
    /// The identity's key.
    pub key: &'a str,
    /// The provider's user id.
    pub user_id: &'a str,
}

/// What recording an inbound message writes.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundPlan<'a> {
    /// The contact it is recorded for (created first when new).
    pub sender: Sender,
    /// The identity linked to the contact (or, when linked, whose last-seen
    /// WhatsApp form is refreshed): the one replies go to.
    pub link: &'a Address,
    /// The provider-scoped user id to keep on that identity.
    pub user_id: Option<UserId<'a>>,
    /// The windows it opens or extends.
    pub windows: Vec<WindowOpening>,
    /// Whether the fallbacks waiting on the delivery of messages to the
    /// contact are woken (their watches become due now, and the dispatcher
    /// notes on each that the customer answered): the customer is there.
    /// An automatic reply says nothing of the customer.
    pub wake_watches: bool,
    /// The message to insert (status `Received`); it is a duplicate after
    /// all when a concurrent delivery inserted the same provider id first.
    pub message: Message,
    /// The media bytes kept with it.
    pub media: Option<&'a [u8]>,
    /// The events to append, in order: `ContactCreated` for a new contact,
    /// then `MessageReceived`.
    pub events: Vec<NewEvent>,
    /// The time of every change.
    pub now: SystemTime,
}

/// Plans recording `inbound`, whose sender is `owner` (`None`: unknown) and
/// which replies to our message `reply_to` (of that owner).
pub fn plan(
    inbound: &NewInbound,
    owner: Option<Uuid>,
    reply_to: Option<Uuid>,
    now: SystemTime,
) -> InboundPlan<'_> {
    let name = inbound.profile_name.clone().unwrap_or_default();
    let mut events = Vec::with_capacity(2);
    let sender = match owner {
        Some(id) => Sender::Known {
            id,
            fill_name: name,
        },
        None => {
            let id = Uuid::now_v7();
            events.push(contact_event(EventType::ContactCreated, id, Vec::new()));
            Sender::New {
                id,
                state: ContactState::Active,
                display_name: name,
            }
        }
    };
    let message = inbound_message(Uuid::now_v7(), sender.id(), inbound, reply_to, now);
    events.push(message_event(EventType::MessageReceived, &message));
    let windows = inbound
        .windows()
        .map(|(channel, line, open)| WindowOpening {
            channel,
            line: line.to_owned(),
            open_until: inbound.time + open,
        })
        .collect();
    InboundPlan {
        sender,
        link: &inbound.from,
        user_id: inbound.provider_user_id.as_deref().map(|user_id| UserId {
            channel: inbound.channel,
            key: inbound.from.key(),
            user_id,
        }),
        windows,
        wake_watches: !inbound.automatic,
        message,
        media: inbound.media_bytes.as_deref(),
        events,
        now,
    }
}
