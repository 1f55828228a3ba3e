//! The plans' decisions, without a database.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use omniroute_channel::content::Text;
use omniroute_channel::{Address, Channel, Content, PhoneRegion};
use uuid::Uuid;

use super::{erasure, inbound, merge};
use crate::events::EventType;
use crate::messages::{Message, MessageStatus, NewInbound, inbound_message};
use crate::model::*;
use crate::{ServiceWindow, StoreError};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn contact(n: u128, name: &str) -> Contact {
    Contact {
        id: id(n),
        state: ContactState::Active,
        profile: Profile {
            display_name: name.to_owned(),
            ..Profile::default()
        },
        identities: Vec::new(),
        merged_from: Vec::new(),
        create_time: at(1),
        update_time: at(1),
        erasure: None,
        windows: Vec::new(),
        version: 1,
    }
}

fn window(channel: Channel, line: &str, secs: u64) -> ServiceWindow {
    ServiceWindow {
        channel,
        line: line.to_owned(),
        open_until: at(secs),
    }
}

fn whatsapp(number: &str) -> Address {
    let de: PhoneRegion = "DE".parse().expect("a region");
    Address::parse(Channel::Whatsapp, number, de).expect("a number")
}

fn new_inbound(automatic: bool) -> NewInbound {
    NewInbound {
        channel: Channel::Whatsapp,
        from: whatsapp("+49 151 23456789"),
        profile_name: Some("Ada".to_owned()),
        provider_user_id: Some("bsuid-1".to_owned()),
        provider_message_id: "wamid.1".to_owned(),
        time: at(1_000),
        content: Content::Text(Text {
            body: "hello".to_owned(),
            ..Text::default()
        }),
        reply_to: None,
        line: "line-1".to_owned(),
        opens_window: Some(Duration::from_secs(86_400)),
        also_opens: Some((Channel::Voice, "line-2".to_owned(), Duration::from_secs(60))),
        automatic,
        media_bytes: Some(vec![1, 2, 3]),
    }
}

fn resolved(entries: &[(u128, u128, ContactState)]) -> HashMap<Uuid, (Uuid, ContactState)> {
    entries
        .iter()
        .map(|&(asked, to, state)| (id(asked), (id(to), state)))
        .collect()
}

#[test]
fn merge_locks_every_contact_once_in_id_order() {
    assert_eq!(
        merge::lock_order(id(5), &[id(9), id(2), id(9), id(5)]),
        vec![id(2), id(5), id(9)]
    );
}

#[test]
fn merge_retires_each_active_source_once_and_skips_earlier_merges() {
    let resolved = resolved(&[
        (1, 1, ContactState::Active),
        (2, 2, ContactState::Active),
        (3, 1, ContactState::Active), // merged into the survivor before
    ]);
    let retirement = merge::retire(id(1), &[id(2), id(3), id(2)], &resolved).expect("valid");
    assert_eq!(retirement.survivor, id(1));
    assert_eq!(retirement.retired, vec![id(2)]);
}

#[test]
fn merge_refuses_itself_erased_contacts_and_an_erased_survivor() {
    let active = resolved(&[(1, 1, ContactState::Active)]);
    assert!(matches!(
        merge::retire(id(1), &[id(1)], &active),
        Err(StoreError::InvalidMerge(_))
    ));
    let erased_source = resolved(&[(1, 1, ContactState::Active), (2, 2, ContactState::Erased)]);
    assert!(matches!(
        merge::retire(id(1), &[id(2)], &erased_source),
        Err(StoreError::InvalidMerge(_))
    ));
    let erased_survivor = resolved(&[(1, 1, ContactState::Erased), (2, 2, ContactState::Active)]);
    assert!(matches!(
        merge::retire(id(1), &[id(2)], &erased_survivor),
        Err(StoreError::Erased(e)) if e == id(1)
    ));
}

#[test]
fn merge_combines_profiles_preferences_and_windows() {
    let mut survivor = contact(1, "");
    survivor.profile.labels = vec!["vip".to_owned()];
    survivor.windows = vec![
        window(Channel::Whatsapp, "a", 50),
        window(Channel::Whatsapp, "b", 10),
    ];
    let mut first = contact(2, "Ada");
    first.profile.labels = vec!["new".to_owned(), "vip".to_owned()];
    first.profile.external_ref = Some("crm-2".to_owned());
    first.windows = vec![window(Channel::Whatsapp, "a", 40)];
    let mut second = contact(3, "Grace");
    second.windows = vec![
        window(Channel::Whatsapp, "a", 60),
        window(Channel::Voice, "", 30),
    ];
    let wanted = ChannelPreferences {
        channel_order: vec![Channel::Email],
        ..ChannelPreferences::default()
    };
    let plan = merge::plan(
        &survivor,
        ChannelPreferences::default(),
        &[
            (first, ChannelPreferences::default()),
            (second, wanted.clone()),
        ],
        at(99),
    );
    assert_eq!(plan.survivor, id(1));
    assert_eq!(plan.retired, vec![id(2), id(3)]);
    assert_eq!(plan.profile.display_name, "Ada");
    assert_eq!(plan.profile.external_ref.as_deref(), Some("crm-2"));
    assert_eq!(
        plan.profile.labels,
        vec!["vip".to_owned(), "new".to_owned()]
    );
    assert_eq!(plan.preferences, wanted);
    // The latest per channel and line, for the lines the retired had; the
    // survivor's own line "b" is left alone.
    assert_eq!(
        plan.windows,
        vec![
            window(Channel::Whatsapp, "a", 60),
            window(Channel::Voice, "", 30)
        ]
    );
    assert_eq!(plan.retired_state.code(), 3);
    assert_eq!(plan.events.len(), 1);
    assert_eq!(plan.events[0].kind, EventType::ContactMerged);
    assert_eq!(plan.events[0].contact_id, Some(id(1)));
}

#[test]
fn merge_keeps_the_survivors_preferences_and_logs_nothing_without_retirees() {
    let own = ChannelPreferences {
        channel_order: vec![Channel::Voice],
        ..ChannelPreferences::default()
    };
    let plan = merge::plan(&contact(1, "Ada"), own.clone(), &[], at(5));
    assert_eq!(plan.preferences, own);
    assert!(plan.retired.is_empty());
    assert!(plan.events.is_empty());
    assert!(plan.windows.is_empty());
}

fn pending(n: u128, status: MessageStatus) -> Message {
    let mut m = inbound_message(id(n), id(1), &new_inbound(false), None, at(10));
    m.status = status;
    m.history[0].status = status;
    m.metadata.insert("k".to_owned(), "v".to_owned());
    m.correlation_ref = "order-1".to_owned();
    m
}

#[test]
fn erasure_cancels_what_waits_and_deletes_every_job() {
    let plan = erasure::plan(
        id(1),
        ContactState::Active,
        vec![
            pending(10, MessageStatus::Accepted),
            pending(11, MessageStatus::Sent), // a watch: its job goes, it stays sent
        ],
        at(20),
    )
    .expect("an active contact is erased");
    assert_eq!(plan.jobs, vec![id(10), id(11)]);
    assert_eq!(plan.canceled.len(), 1);
    let canceled = &plan.canceled[0];
    assert_eq!(canceled.status, MessageStatus::Canceled);
    let last = canceled.history.last().expect("a history");
    assert_eq!(last.reason, erasure::CANCELED_BY_ERASURE);
    assert_eq!(last.time, at(20));
    assert_eq!(plan.cancel_events.len(), 1);
    assert_eq!(plan.cancel_events[0].kind, EventType::MessageStatusChanged);
    assert_eq!(plan.state, ContactState::Erased);
    assert_eq!(plan.erased_event.kind, EventType::ContactErased);
    assert_eq!(plan.erased_event.contact_id, Some(id(1)));
    let summary = plan.summary(2, 3, u64::MAX);
    assert_eq!(summary.identities_removed, 2);
    assert_eq!(summary.consent_records_removed, 3);
    assert_eq!(summary.messages_redacted, i32::MAX);
}

#[test]
fn erasure_redacts_everything_but_the_history() {
    let plan = erasure::plan(id(1), ContactState::Active, Vec::new(), at(20)).expect("a plan");
    let mut m = pending(10, MessageStatus::Delivered);
    let history = m.history.clone();
    plan.redaction.apply(&mut m, at(20));
    assert_eq!(m.content, Content::Text(Text::default()));
    assert!(m.metadata.is_empty() && m.correlation_ref.is_empty());
    assert!(m.route.is_none() && m.attempts.is_empty() && m.overrides.is_empty());
    assert_eq!(m.history, history);
    assert_eq!(m.update_time, at(20));
}

#[test]
fn erasing_twice_writes_nothing() {
    assert!(erasure::plan(id(1), ContactState::Erased, Vec::new(), at(20)).is_none());
}

#[test]
fn inbound_from_a_stranger_creates_a_contact_named_after_the_profile() {
    let new = new_inbound(false);
    let plan = inbound::plan(&new, None, None, at(2_000));
    let inbound::Sender::New {
        id: contact_id,
        state,
        display_name,
    } = plan.sender.clone()
    else {
        panic!("a new contact: {:?}", plan.sender);
    };
    assert_eq!(state, ContactState::Active);
    assert_eq!(display_name, "Ada");
    assert_eq!(plan.message.contact_id, contact_id);
    assert_eq!(plan.message.status, MessageStatus::Received);
    let kinds: Vec<EventType> = plan.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![EventType::ContactCreated, EventType::MessageReceived]
    );
    assert_eq!(plan.link, &new.from);
    let user = plan.user_id.expect("a user id");
    assert_eq!(
        (user.channel, user.key, user.user_id),
        (Channel::Whatsapp, new.from.key(), "bsuid-1")
    );
    assert_eq!(
        plan.windows,
        vec![
            inbound::WindowOpening {
                channel: Channel::Whatsapp,
                line: "line-1".to_owned(),
                open_until: at(1_000 + 86_400),
            },
            inbound::WindowOpening {
                channel: Channel::Voice,
                line: "line-2".to_owned(),
                open_until: at(1_060),
            },
        ]
    );
    assert!(plan.wake_watches);
    assert_eq!(plan.media, Some(&[1u8, 2, 3][..]));
}

#[test]
fn inbound_from_a_known_sender_replies_and_an_automatic_one_wakes_nothing() {
    let new = new_inbound(true);
    let plan = inbound::plan(&new, Some(id(7)), Some(id(70)), at(2_000));
    assert_eq!(
        plan.sender,
        inbound::Sender::Known {
            id: id(7),
            fill_name: "Ada".to_owned()
        }
    );
    assert_eq!(plan.message.contact_id, id(7));
    assert_eq!(plan.message.reply_to, Some(id(70)));
    assert_eq!(plan.events.len(), 1);
    assert_eq!(plan.events[0].kind, EventType::MessageReceived);
    assert!(!plan.wake_watches);
    assert!(plan.message.automatic);
}

#[test]
fn inbound_looks_senders_up_by_their_channel_first() {
    let new = new_inbound(false);
    let keys = inbound::sender_keys(&new);
    assert_eq!(keys.first().map(|(c, _)| *c), Some(Channel::Whatsapp));
}
