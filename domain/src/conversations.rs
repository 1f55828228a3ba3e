//! Conversations' lifecycle: the state machine a conversation follows and
//! the timers each state keeps (issue 24's foundation; the resource, its
//! store and its service come on top of it).
//!
//! States and moves:
//!
//! - **active**: traffic flows. Quiet for `quiet_after` → **inactive**.
//!   `snooze` → **snoozed**; `resolve` → **resolved**.
//! - **snoozed**: waits for its time or the customer; either wakes it
//!   (**active**).
//! - **inactive**: any message (customer or business) makes it **active**;
//!   `resolve` → **resolved**; quiet for `close_after` more → **closed**.
//! - **resolved**: the case is done. A customer message within
//!   `reopen_within` reopens it (**active**); a later one closes it and
//!   opens a new conversation linked to it ([`Effect::Superseded`]).
//!   `close_after` after resolving → **closed**.
//! - **closed** is final: nothing moves it; new traffic opens a new
//!   conversation. `close` by request (from any open state) and a merge
//!   close too.
//!
//! Every open state holds exactly one timer that leads towards closed
//! (wake-up, inactivity, auto-close), so every conversation reaches closed
//! by timers alone; a timer re-checks the state when it fires and does
//! nothing if the conversation moved on since it was set
//! ([`Input::Timer`] carries the due time it was set for).
//!
//! Who owes the next message ([`Awaiting`]) follows who wrote last.
//!
//! Which conversation a message joins is [`place`]: the contact's open
//! one (or, with [`Grouping::PerChannelLine`], the one opened on the same
//! channel and line), else a new one linked to the latest of the group.

use std::time::{Duration, SystemTime};

use omniroute_channel::Channel;
use uuid::Uuid;

/// A conversation's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConversationState {
    Active,
    Snoozed,
    Inactive,
    Resolved,
    Closed,
}

impl ConversationState {
    /// Stable storage code.
    pub fn code(self) -> i16 {
        match self {
            ConversationState::Active => 1,
            ConversationState::Snoozed => 2,
            ConversationState::Inactive => 3,
            ConversationState::Resolved => 4,
            ConversationState::Closed => 5,
        }
    }

    /// Parses [`ConversationState::code`] back.
    pub fn from_code(code: i16) -> Option<ConversationState> {
        Some(match code {
            1 => ConversationState::Active,
            2 => ConversationState::Snoozed,
            3 => ConversationState::Inactive,
            4 => ConversationState::Resolved,
            5 => ConversationState::Closed,
            _ => return None,
        })
    }

    /// Every state but closed.
    pub fn is_open(self) -> bool {
        self != ConversationState::Closed
    }
}

/// Who owes the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Awaiting {
    /// The customer wrote last: the business owes a reply.
    Business,
    /// The business wrote last (or nobody yet).
    Customer,
}

/// The timers a conversation keeps: at most one per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    /// Active and quiet for `quiet_after`: becomes inactive.
    Inactivity,
    /// Snoozed until then: wakes.
    Wake,
    /// Inactive or resolved long enough: closes.
    AutoClose,
}

/// A timer: what fires, when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timer {
    pub kind: TimerKind,
    pub due: SystemTime,
}

/// A tenant's lifecycle rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecyclePolicy {
    /// Quiet this long, an active conversation becomes inactive.
    pub quiet_after: Duration,
    /// Inactive or resolved this long, a conversation closes.
    pub close_after: Duration,
    /// A customer message this soon after resolving reopens it.
    pub reopen_within: Duration,
}

impl Default for LifecyclePolicy {
    fn default() -> LifecyclePolicy {
        let hours = |h: u64| Duration::from_secs(3600 * h);
        LifecyclePolicy {
            quiet_after: hours(24),
            close_after: hours(72),
            reopen_within: hours(72),
        }
    }
}

/// Where a conversation stands in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub state: ConversationState,
    pub awaiting: Awaiting,
    /// The last message, either way.
    pub last_activity: SystemTime,
    /// When it was resolved (while resolved).
    pub resolve_time: Option<SystemTime>,
    /// When it closed.
    pub close_time: Option<SystemTime>,
    /// The timers it keeps now.
    pub timers: Vec<Timer>,
}

/// What happens to a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The customer wrote.
    CustomerWrote,
    /// The business wrote (an agent, a bot, a notification).
    BusinessWrote,
    /// `:snooze` until then.
    Snooze(SystemTime),
    /// `:resolve`.
    Resolve,
    /// `:reopen`.
    Reopen,
    /// `:close`.
    Close,
    /// Merged into another conversation.
    Merged,
    /// A timer set for `due` fired.
    Timer(TimerKind, SystemTime),
}

/// Why a move happened, for the state-changed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    CustomerReply,
    BusinessReply,
    Timer,
    Api,
    Merge,
}

/// What a move asks of the caller beyond the new lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Nothing more.
    None,
    /// This conversation closed because the customer wrote after
    /// `reopen_within`: the message opens a new conversation, linked to
    /// this one.
    Superseded,
}

/// A move's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub lifecycle: Lifecycle,
    /// The state before (equal to the new one when only timers or
    /// `awaiting` changed).
    pub from: ConversationState,
    pub reason: Reason,
    pub effect: Effect,
}

/// Why an input does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Closed is final.
    Closed,
    /// Not from this state (for instance resolving a snoozed conversation).
    NotFrom(ConversationState),
    /// A snooze must end in the future.
    SnoozeInThePast,
}

/// How a tenant (or, overriding it, a contact) groups messages into
/// conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grouping {
    /// One open conversation per contact, across channels.
    #[default]
    PerContact,
    /// One open conversation per contact, channel and business line.
    PerChannelLine,
}

/// A channel and the business's line on it (a WhatsApp number, a mailbox,
/// a phone number): one leg of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LegKey {
    pub channel: Channel,
    pub line: String,
}

/// A conversation of the contact, as grouping sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: Uuid,
    pub state: ConversationState,
    /// The leg it was opened on (what `PerChannelLine` groups by).
    pub opened_on: LegKey,
    pub create_time: SystemTime,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Into this open conversation.
    Join(Uuid),
    /// Into a new conversation, linked to the group's latest closed one.
    Open { previous: Option<Uuid> },
}

/// Where a message on `leg` goes among the contact's conversations
/// (`candidates`, in any order): the group's open conversation, else a new
/// one linked to the group's latest. The store calls it under the lock
/// that makes assignment race-free; should two open ones exist in a group,
/// the newest takes the message. A message that then supersedes a resolved
/// conversation ([`Effect::Superseded`]) is placed again with it closed.
pub fn place(grouping: Grouping, candidates: &[Candidate], leg: &LegKey) -> Placement {
    let mut group: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| grouping == Grouping::PerContact || &c.opened_on == leg)
        .collect();
    group.sort_by_key(|c| (c.create_time, c.id));
    match group.iter().rev().find(|c| c.state.is_open()) {
        Some(open) => Placement::Join(open.id),
        None => Placement::Open {
            previous: group.last().map(|c| c.id),
        },
    }
}

impl Lifecycle {
    /// A new conversation, opened at `now` by a message from the customer
    /// (`customer`) or the business.
    pub fn open(customer: bool, now: SystemTime, policy: &LifecyclePolicy) -> Lifecycle {
        let mut lifecycle = Lifecycle {
            state: ConversationState::Active,
            awaiting: if customer {
                Awaiting::Business
            } else {
                Awaiting::Customer
            },
            last_activity: now,
            resolve_time: None,
            close_time: None,
            timers: Vec::new(),
        };
        lifecycle.timers = lifecycle.timers_for(policy, None);
        lifecycle
    }

    /// The timers the state keeps (`wake`: a snooze's end).
    fn timers_for(&self, policy: &LifecyclePolicy, wake: Option<SystemTime>) -> Vec<Timer> {
        let timer = |kind, due| vec![Timer { kind, due }];
        match self.state {
            ConversationState::Active => timer(
                TimerKind::Inactivity,
                self.last_activity + policy.quiet_after,
            ),
            ConversationState::Snoozed => {
                timer(TimerKind::Wake, wake.unwrap_or(self.last_activity))
            }
            ConversationState::Inactive => timer(
                TimerKind::AutoClose,
                self.last_activity + policy.quiet_after + policy.close_after,
            ),
            ConversationState::Resolved => timer(
                TimerKind::AutoClose,
                self.resolve_time.unwrap_or(self.last_activity) + policy.close_after,
            ),
            ConversationState::Closed => Vec::new(),
        }
    }

    /// The lifecycle after `input` at `now`.
    pub fn apply(
        &self,
        input: Input,
        now: SystemTime,
        policy: &LifecyclePolicy,
    ) -> Result<Moved, Refusal> {
        use ConversationState::*;
        let from = self.state;
        if from == Closed {
            return Err(Refusal::Closed);
        }
        let mut next = self.clone();
        let mut wake = None;
        let mut effect = Effect::None;
        let reason = match input {
            Input::CustomerWrote => {
                next.awaiting = Awaiting::Business;
                let resolved_at = self.resolve_time.unwrap_or(self.last_activity);
                if from == Resolved && now > resolved_at + policy.reopen_within {
                    next.state = Closed;
                    effect = Effect::Superseded;
                } else {
                    next.last_activity = now;
                    next.state = Active;
                    next.resolve_time = None;
                }
                Reason::CustomerReply
            }
            Input::BusinessWrote => {
                next.awaiting = Awaiting::Customer;
                next.last_activity = now;
                match from {
                    Inactive => next.state = Active,
                    Snoozed => wake = self.timer(TimerKind::Wake),
                    Active | Resolved | Closed => {}
                }
                Reason::BusinessReply
            }
            Input::Snooze(until) => {
                if until <= now {
                    return Err(Refusal::SnoozeInThePast);
                }
                if !matches!(from, Active | Inactive | Snoozed) {
                    return Err(Refusal::NotFrom(from));
                }
                next.state = Snoozed;
                wake = Some(until);
                Reason::Api
            }
            Input::Resolve => {
                if !matches!(from, Active | Inactive | Snoozed) {
                    return Err(Refusal::NotFrom(from));
                }
                next.state = Resolved;
                next.resolve_time = Some(now);
                Reason::Api
            }
            Input::Reopen => {
                if !matches!(from, Resolved | Inactive | Snoozed) {
                    return Err(Refusal::NotFrom(from));
                }
                next.state = Active;
                next.resolve_time = None;
                next.last_activity = now;
                Reason::Api
            }
            Input::Close => {
                next.state = Closed;
                Reason::Api
            }
            Input::Merged => {
                next.state = Closed;
                Reason::Merge
            }
            Input::Timer(kind, due) => {
                // A timer the conversation no longer keeps (it moved on
                // since) does nothing.
                if self.timer(kind) != Some(due) || due > now {
                    return Ok(Moved {
                        lifecycle: self.clone(),
                        from,
                        reason: Reason::Timer,
                        effect,
                    });
                }
                next.state = match kind {
                    TimerKind::Inactivity => Inactive,
                    TimerKind::Wake => Active,
                    TimerKind::AutoClose => Closed,
                };
                if kind == TimerKind::Wake {
                    next.last_activity = now;
                }
                Reason::Timer
            }
        };
        if next.state == Closed {
            next.close_time = Some(now);
        }
        next.timers = next.timers_for(policy, wake);
        Ok(Moved {
            lifecycle: next,
            from,
            reason,
            effect,
        })
    }

    /// The due time of the timer of `kind`, if the conversation keeps one.
    pub fn timer(&self, kind: TimerKind) -> Option<SystemTime> {
        self.timers.iter().find(|t| t.kind == kind).map(|t| t.due)
    }

    /// The timer that fires first.
    pub fn next_timer(&self) -> Option<Timer> {
        self.timers.iter().min_by_key(|t| t.due).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    const HOUR: u64 = 3600;

    fn policy() -> LifecyclePolicy {
        LifecyclePolicy::default()
    }

    fn fire(l: &Lifecycle) -> Moved {
        let timer = l.next_timer().expect("an open conversation keeps a timer");
        l.apply(Input::Timer(timer.kind, timer.due), timer.due, &policy())
            .unwrap()
    }

    #[test]
    fn quiet_conversations_go_inactive_then_close() {
        let l = Lifecycle::open(true, at(0), &policy());
        assert_eq!(l.awaiting, Awaiting::Business);
        let inactive = fire(&l).lifecycle;
        assert_eq!(inactive.state, ConversationState::Inactive);
        // Any message wakes it.
        let woke = inactive
            .apply(Input::BusinessWrote, at(30 * HOUR), &policy())
            .unwrap();
        assert_eq!(woke.lifecycle.state, ConversationState::Active);
        assert_eq!(woke.lifecycle.awaiting, Awaiting::Customer);
        let closed = fire(&inactive);
        assert_eq!(closed.lifecycle.state, ConversationState::Closed);
        assert_eq!(closed.reason, Reason::Timer);
    }

    #[test]
    fn a_stale_timer_does_nothing() {
        let l = Lifecycle::open(true, at(0), &policy());
        let set_for = l.timer(TimerKind::Inactivity).unwrap();
        let later = l.apply(Input::CustomerWrote, at(HOUR), &policy()).unwrap();
        let fired = later
            .lifecycle
            .apply(
                Input::Timer(TimerKind::Inactivity, set_for),
                set_for,
                &policy(),
            )
            .unwrap();
        assert_eq!(fired.lifecycle, later.lifecycle, "activity moved the timer");
    }

    #[test]
    fn a_customer_reopens_within_reopen_within_and_supersedes_after() {
        let l = Lifecycle::open(true, at(0), &policy());
        let resolved = l
            .apply(Input::Resolve, at(HOUR), &policy())
            .unwrap()
            .lifecycle;
        assert_eq!(resolved.state, ConversationState::Resolved);
        let reopened = resolved
            .apply(Input::CustomerWrote, at(2 * HOUR), &policy())
            .unwrap();
        assert_eq!(reopened.lifecycle.state, ConversationState::Active);
        assert_eq!(reopened.effect, Effect::None);
        // After reopen_within (but before close_after ends it): a new one.
        let mut long = policy();
        long.close_after = Duration::from_secs(1000 * HOUR);
        let resolved = l.apply(Input::Resolve, at(HOUR), &long).unwrap().lifecycle;
        let late = resolved
            .apply(Input::CustomerWrote, at(HOUR + 73 * HOUR), &long)
            .unwrap();
        assert_eq!(late.lifecycle.state, ConversationState::Closed);
        assert_eq!(late.effect, Effect::Superseded);
    }

    #[test]
    fn snoozed_wakes_at_its_time_or_when_the_customer_writes() {
        let l = Lifecycle::open(true, at(0), &policy());
        assert_eq!(
            l.apply(Input::Snooze(at(0)), at(10), &policy()),
            Err(Refusal::SnoozeInThePast)
        );
        let snoozed = l
            .apply(Input::Snooze(at(5 * HOUR)), at(HOUR), &policy())
            .unwrap()
            .lifecycle;
        assert_eq!(snoozed.timer(TimerKind::Wake), Some(at(5 * HOUR)));
        // The business writing keeps it snoozed, its wake-up unchanged.
        let wrote = snoozed
            .apply(Input::BusinessWrote, at(2 * HOUR), &policy())
            .unwrap()
            .lifecycle;
        assert_eq!(wrote.state, ConversationState::Snoozed);
        assert_eq!(wrote.timer(TimerKind::Wake), Some(at(5 * HOUR)));
        let woke = fire(&snoozed);
        assert_eq!(woke.lifecycle.state, ConversationState::Active);
        let by_customer = snoozed
            .apply(Input::CustomerWrote, at(2 * HOUR), &policy())
            .unwrap();
        assert_eq!(by_customer.lifecycle.state, ConversationState::Active);
        assert_eq!(by_customer.reason, Reason::CustomerReply);
    }

    #[test]
    fn closed_is_final() {
        let l = Lifecycle::open(false, at(0), &policy());
        let closed = l.apply(Input::Close, at(10), &policy()).unwrap().lifecycle;
        assert_eq!(closed.close_time, Some(at(10)));
        assert!(closed.timers.is_empty());
        for input in [Input::CustomerWrote, Input::Reopen, Input::Resolve] {
            assert_eq!(closed.apply(input, at(20), &policy()), Err(Refusal::Closed));
        }
        assert_eq!(
            l.apply(Input::Merged, at(10), &policy()).unwrap().reason,
            Reason::Merge
        );
    }

    fn leg(channel: Channel, line: &str) -> LegKey {
        LegKey {
            channel,
            line: line.to_owned(),
        }
    }

    fn candidate(n: u128, state: ConversationState, opened_on: &LegKey) -> Candidate {
        Candidate {
            id: Uuid::from_u128(n),
            state,
            opened_on: opened_on.clone(),
            create_time: at(u64::try_from(n).unwrap()),
        }
    }

    #[test]
    fn one_open_conversation_per_contact_across_channels() {
        use ConversationState::*;
        let wa = leg(Channel::Whatsapp, "+4930123456");
        let mail = leg(Channel::Email, "support@example.com");
        assert_eq!(
            place(Grouping::PerContact, &[], &wa),
            Placement::Open { previous: None }
        );
        let open = [candidate(1, Closed, &wa), candidate(2, Active, &wa)];
        assert_eq!(
            place(Grouping::PerContact, &open, &mail),
            Placement::Join(Uuid::from_u128(2))
        );
        // Per channel and line: the e-mail opens its own, after none.
        assert_eq!(
            place(Grouping::PerChannelLine, &open, &mail),
            Placement::Open { previous: None }
        );
        assert_eq!(
            place(Grouping::PerChannelLine, &open, &wa),
            Placement::Join(Uuid::from_u128(2))
        );
        // All closed: a new one, linked to the latest.
        let closed = [candidate(3, Closed, &mail), candidate(1, Closed, &wa)];
        assert_eq!(
            place(Grouping::PerContact, &closed, &wa),
            Placement::Open {
                previous: Some(Uuid::from_u128(3))
            }
        );
        // Two open in a group (never by the store's lock): the newest.
        let two = [candidate(5, Resolved, &wa), candidate(4, Active, &mail)];
        assert_eq!(
            place(Grouping::PerContact, &two, &wa),
            Placement::Join(Uuid::from_u128(5))
        );
    }

    #[test]
    fn codes_round_trip() {
        use ConversationState::*;
        for s in [Active, Snoozed, Inactive, Resolved, Closed] {
            assert_eq!(ConversationState::from_code(s.code()), Some(s));
        }
        assert_eq!(ConversationState::from_code(0), None);
    }

    fn input() -> impl Strategy<Value = (u8, u64)> {
        (0u8..9, 0u64..(200 * HOUR))
    }

    /// Applies a generated input at `now` (refusals leave it as it was).
    fn step(l: &Lifecycle, (which, offset): (u8, u64), now: SystemTime) -> Lifecycle {
        let input = match which {
            0 => Input::CustomerWrote,
            1 => Input::BusinessWrote,
            2 => Input::Snooze(now + Duration::from_secs(offset + 1)),
            3 => Input::Resolve,
            4 => Input::Reopen,
            5 => Input::Close,
            6 => Input::Merged,
            _ => match l.next_timer() {
                Some(t) => Input::Timer(t.kind, t.due),
                None => Input::CustomerWrote,
            },
        };
        let now = match input {
            Input::Timer(_, due) => due.max(now),
            _ => now,
        };
        l.apply(input, now, &policy())
            .map(|m| m.lifecycle)
            .unwrap_or_else(|_| l.clone())
    }

    proptest! {
        #[test]
        fn nothing_leaves_closed_and_timers_alone_close_everything(
            inputs in proptest::collection::vec(input(), 0..40),
            gaps in proptest::collection::vec(0u64..(100 * HOUR), 40),
        ) {
            let mut now = at(0);
            let mut l = Lifecycle::open(true, now, &policy());
            let mut was_closed = false;
            for (i, generated) in inputs.into_iter().enumerate() {
                now += Duration::from_secs(gaps[i]);
                l = step(&l, generated, now);
                if was_closed {
                    prop_assert_eq!(l.state, ConversationState::Closed);
                }
                was_closed = l.state == ConversationState::Closed;
                // Every open state keeps a timer; closed keeps none.
                prop_assert_eq!(l.state.is_open(), l.next_timer().is_some());
                now = now.max(l.last_activity);
            }
            // From wherever it stands, firing its timers closes it within a
            // few steps.
            for _ in 0..4 {
                let Some(t) = l.next_timer() else { break };
                l = l.apply(Input::Timer(t.kind, t.due), t.due.max(now), &policy())
                    .unwrap()
                    .lifecycle;
                now = now.max(t.due);
            }
            prop_assert_eq!(l.state, ConversationState::Closed);
        }
    }
}
