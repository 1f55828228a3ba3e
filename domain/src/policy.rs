//! A tenant's routing rules: the defaults routing applies where a contact
//! stated nothing (channel order, time zone, quiet hours), its consent
//! strictness, delivery deadlines, business hours and callback retries, as
//! the settings give them.

use std::time::Duration;

use omniroute_channel::{Category, Channel};

use crate::messages::{OpenSpan, OpeningHours};

/// A tenant's routing defaults (contacts' preferences override them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPolicy {
    /// The channel order when the customer stated none.
    pub channel_order: Vec<Channel>,
    /// The time zone of contacts without one.
    pub time_zone: String,
    /// Quiet hours of contacts without their own (minutes after midnight).
    pub quiet_hours: Option<(u16, u16)>,
    /// Whether business-initiated transactional, authentication and
    /// service messages on WhatsApp need an opt-in on record (strict).
    pub whatsapp_opt_in_required: bool,
    /// Per category: how long a sent step may go undelivered before the
    /// next step takes over.
    pub deliver_within: Vec<(Category, Duration)>,
    /// How long before a customer service window closes a `window closing`
    /// event is logged; `None` for none.
    pub window_closing_lead: Option<Duration>,
    /// When the business takes callbacks; `None` for always.
    pub business_hours: Option<OpeningHours>,
    /// A callback's retry plan (seconds before each next attempt).
    pub callback_retry_secs: Vec<u64>,
    /// What a delivery deadline does where the channel reports no delivery.
    pub unreported_deadline: UnreportedDeadline,
}

impl TenantPolicy {
    /// The delivery deadline of a category.
    pub fn deadline(&self, category: Category) -> Option<Duration> {
        self.deliver_within
            .iter()
            .find(|(c, _)| *c == category)
            .map(|(_, d)| *d)
    }
}

impl Default for TenantPolicy {
    fn default() -> Self {
        TenantPolicy {
            channel_order: Channel::ALL.to_vec(),
            time_zone: "UTC".to_owned(),
            quiet_hours: None,
            whatsapp_opt_in_required: true,
            deliver_within: Vec::new(),
            window_closing_lead: Some(Duration::from_secs(3600)),
            business_hours: None,
            callback_retry_secs: vec![300, 900, 3600],
            unreported_deadline: Default::default(),
        }
    }
}

/// What a deadline does on a channel that reports no delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnreportedDeadline {
    /// The provider's acceptance ends it: no fallback for a message that
    /// may well be in the mailbox (failures reported later, bounces, still
    /// hand over). The default: a customer never gets a message twice
    /// because a relay cannot say it arrived.
    #[default]
    Acceptance,
    /// The deadline stays: the next step follows unless the customer
    /// replies, even when the first step did arrive.
    Keep,
}

impl UnreportedDeadline {
    /// Parses the settings' spelling: `acceptance` or `keep`.
    pub fn parse(text: &str) -> Option<UnreportedDeadline> {
        match text {
            "acceptance" => Some(UnreportedDeadline::Acceptance),
            "keep" => Some(UnreportedDeadline::Keep),
            _ => None,
        }
    }
}

/// Weekday numbers (0 Monday … 6 Sunday) of a settings name.
pub fn weekday(name: &str) -> Option<u8> {
    Some(match name {
        "mon" => 0,
        "tue" => 1,
        "wed" => 2,
        "thu" => 3,
        "fri" => 4,
        "sat" => 5,
        "sun" => 6,
        _ => return None,
    })
}

/// Parses `"mon-fri 09:00-17:00"` or `"sat 10:00-14:00"` (the end may be
/// `24:00`) into spans; `None` when malformed or empty.
pub fn parse_spans(text: &str) -> Option<Vec<OpenSpan>> {
    let (days, times) = text.trim().split_once(' ')?;
    let (first, last) = days.split_once('-').unwrap_or((days, days));
    let (first, last) = (weekday(first)?, weekday(last)?);
    let (start, end) = times.trim().split_once('-')?;
    let minute = |t: &str| -> Option<u16> {
        let (h, m) = t.split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        let ok = t.len() == 5 && m < 60 && (h < 24 || (h == 24 && m == 0));
        ok.then_some(h * 60 + m)
    };
    let (start, end) = (minute(start)?, minute(end)?);
    if start >= end || first > last {
        return None;
    }
    Some(
        (first..=last)
            .map(|weekday| OpenSpan {
                weekday,
                start_minute: start,
                end_minute: end,
            })
            .collect(),
    )
}
