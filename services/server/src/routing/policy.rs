//! The routing policy: a pure function from everything a decision depends on
//! to an ordered plan of steps, with a reason for every channel left out.
//!
//! Guarantees, each tested here (and by property tests below):
//! - a step has an identity and, for marketing, an explicit marketing opt-in
//!   on its channel; a revocation on a channel and category always wins;
//! - a channel with a customer service window (WhatsApp) gets free-form
//!   content only while the window is open at the step's send time, else a
//!   template (the content, or its window alternative), else it is skipped;
//!   business-initiated sends on it need an opt-in on record (relaxable per
//!   tenant for non-marketing);
//! - no step is due inside quiet hours unless the message is urgent, and a
//!   channel that rings never is;
//! - the content of a step fits its channel (kinds, lengths, the adapter's
//!   checks), degraded where the channel lacks choices;
//! - every channel is either planned or skipped with a reason;
//! - an explicit channel never bypasses any of this.

use std::time::SystemTime;

use omniroute_channel::{Capabilities, Category, Channel, Content, ContentViolation, Fit};
use omniroute_domain::{
    ChannelOverride, ChannelPreferences, ConsentState, ConsentUsed, Contact, ContactState,
    ContentVariant, OptStatus, PlannedChannel, QuietRule, RouteDecision, RouteInputs, SkipReason,
    SkippedChannel,
};

use super::quiet;
use super::{RouteError, RouteRequest};

/// How a channel's circuit breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Working.
    Closed,
    /// Failing: skipped until the cool-down ends.
    Open,
    /// Cooled down: a probe may go.
    HalfOpen,
}

impl Health {
    /// A stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Closed => "closed",
            Health::Open => "open",
            Health::HalfOpen => "half_open",
        }
    }
}

/// A channel that can be used: it has a provider (or the sandbox).
#[derive(Debug, Clone)]
pub struct ChannelState {
    pub channel: Channel,
    /// What it carries.
    pub capabilities: Capabilities,
    /// Its breaker for this tenant.
    pub health: Health,
}

pub use omniroute_domain::TenantPolicy;

/// Everything a decision depends on.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    /// What the caller asked for (category, urgency, contents, channel
    /// restrictions).
    pub request: RouteRequest<'a>,
    pub contact: &'a Contact,
    /// Its stated preferences.
    pub preferences: &'a ChannelPreferences,
    /// Its consent state, derived from the ledger.
    pub consents: &'a [ConsentState],
    /// Its time zone ("" for the tenant's).
    pub time_zone: &'a str,
    /// Until when its service windows are open, per channel.
    pub windows: &'a [(Channel, SystemTime)],
    /// The usable channels.
    pub channels: &'a [ChannelState],
    /// The tenant's defaults.
    pub tenant: &'a TenantPolicy,
    /// The adapters' own content checks.
    pub check: &'a dyn Fn(Channel, &Content) -> Vec<ContentViolation>,
    /// The decision's time: a send time already past counts as this.
    pub now: SystemTime,
}

impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("category", &self.request.category)
            .field("explicit", &self.request.explicit)
            .field("contact", &self.contact.id)
            .finish_non_exhaustive()
    }
}

/// The quiet hours that apply to a contact, if any.
pub fn quiet_rule(input: &Input<'_>) -> Option<QuietRule> {
    let (start, end) = input
        .preferences
        .quiet_hours
        .map(|q| (q.start_minute, q.end_minute))
        .or(input.tenant.quiet_hours)?;
    let time_zone = match input.time_zone {
        "" => input.tenant.time_zone.clone(),
        zone => zone.to_owned(),
    };
    Some(QuietRule {
        time_zone,
        start_minute: start,
        end_minute: end,
    })
}

/// When the message would go: its send time, or now when that has passed.
fn send_at(input: &Input<'_>) -> SystemTime {
    input
        .request
        .send_time
        .map_or(input.now, |t| t.max(input.now))
}

/// The content a plan step sends.
pub fn step_content(
    content: &Content,
    overrides: &[ChannelOverride],
    channel: Channel,
    variant: ContentVariant,
) -> Content {
    let find = |outside: bool| {
        overrides
            .iter()
            .find(|o| o.channel == channel && o.outside_window == outside)
            .map(|o| o.content.clone())
    };
    match variant {
        ContentVariant::Main => content.clone(),
        ContentVariant::Override => find(false).unwrap_or_else(|| content.clone()),
        ContentVariant::WindowAlternative => find(true).unwrap_or_else(|| content.clone()),
        ContentVariant::Degraded => match content {
            Content::Interactive(i) => {
                Content::Text(omniroute_channel::capabilities::numbered_text(i))
            }
            other => other.clone(),
        },
    }
}

/// One channel's verdict.
enum Verdict {
    Planned(PlannedChannel),
    Skipped(SkipReason, String),
    /// The caller's own content for this channel breaks its rules.
    Invalid(Vec<(String, String)>),
}

/// Decides the plan for a message.
pub fn decide(input: &Input<'_>) -> Result<RouteDecision, RouteError> {
    let contact = input.contact;
    if contact.state == ContactState::Erased {
        return Err(RouteError::Erased(contact.id));
    }
    let category_preference = input
        .preferences
        .categories
        .iter()
        .find(|c| c.category == input.request.category);
    if category_preference.is_some_and(|c| c.status == Some(OptStatus::OptedOut)) {
        return Err(RouteError::OptedOut(input.request.category));
    }
    let stated: &[Channel] = category_preference
        .map(|c| c.channels.as_slice())
        .filter(|c| !c.is_empty())
        .unwrap_or(input.preferences.channel_order.as_slice());
    let order: Vec<Channel> = match (input.request.explicit, stated.is_empty()) {
        (Some(channel), _) => vec![channel],
        (None, false) => stated.to_vec(),
        (None, true) => input.tenant.channel_order.clone(),
    };
    let urgent = input.request.urgent || input.request.category == Category::Authentication;
    // Decided for when the message would go: its send time, or now.
    let send_at = send_at(input);
    let quiet = quiet_rule(input);
    let quiet_end = quiet.as_ref().and_then(|q| quiet::quiet_end(q, send_at));
    let mut inputs = RouteInputs {
        urgent,
        quiet_hours: quiet.clone(),
        quiet_hours_end: quiet_end,
        windows: input.windows.to_vec(),
        excluded: input.request.excluded.to_vec(),
        locale: input.contact.profile.locale.clone(),
        ..RouteInputs::default()
    };
    let mut plan = Vec::new();
    let mut skipped = Vec::new();
    let mut invalid = Vec::new();
    let mut seen = Vec::new();
    for channel in order {
        if seen.contains(&channel) {
            continue;
        }
        seen.push(channel);
        let verdict = if input.request.excluded.contains(&channel) {
            Verdict::Skipped(
                SkipReason::ExcludedByCaller,
                "excluded by the caller".into(),
            )
        } else {
            judge(input, channel, urgent, quiet_end, &mut inputs)
        };
        match verdict {
            Verdict::Planned(step) => plan.push(step),
            Verdict::Skipped(reason, detail) => skipped.push(SkippedChannel {
                channel,
                reason,
                detail,
            }),
            Verdict::Invalid(violations) => invalid.extend(violations),
        }
    }
    // Every other channel is accounted for too.
    for channel in Channel::ALL {
        if seen.contains(&channel) {
            continue;
        }
        let (reason, detail) = if input.request.explicit.is_some() {
            (
                SkipReason::ExcludedByCaller,
                "the caller chose another channel",
            )
        } else {
            (
                SkipReason::NotPreferred,
                "not among the channels for this category",
            )
        };
        skipped.push(SkippedChannel {
            channel,
            reason,
            detail: detail.to_owned(),
        });
    }
    if !invalid.is_empty() {
        return Err(RouteError::Invalid(invalid));
    }
    if plan.is_empty() {
        return Err(match input.request.explicit {
            Some(channel) => {
                let skip = skipped
                    .iter()
                    .find(|s| s.channel == channel)
                    .cloned()
                    .unwrap_or(SkippedChannel {
                        channel,
                        reason: SkipReason::ChannelDisabled,
                        detail: String::new(),
                    });
                RouteError::Refused(skip)
            }
            None => RouteError::Unreachable(
                skipped
                    .into_iter()
                    .filter(|s| s.reason != SkipReason::NotPreferred)
                    .collect(),
            ),
        });
    }
    // Every step with a next one behind it has the delivery deadline that
    // hands over to it: the caller's, else the tenant's for the category.
    let deadline = input
        .request
        .deliver_within
        .or_else(|| input.tenant.deadline(input.request.category));
    // An urgent message goes first on the channels that may deliver at
    // once; a call it would make waits for the quiet hours' end behind
    // them (a stable order otherwise: the customer's).
    if urgent {
        plan.sort_by_key(|step| step.not_before.is_some());
    }
    let last = plan.len().saturating_sub(1);
    for step in &mut plan[..last] {
        step.deliver_within = deadline;
    }
    inputs.breakers = input
        .channels
        .iter()
        .filter(|c| c.health != Health::Closed)
        .map(|c| (c.channel, c.health.as_str().to_owned()))
        .collect();
    Ok(RouteDecision {
        hold_until: plan[0].not_before,
        plan,
        skipped,
        decide_time: input.now,
        inputs,
    })
}

/// Whether a channel can carry the message, and how.
fn judge(
    input: &Input<'_>,
    channel: Channel,
    urgent: bool,
    quiet_end: Option<SystemTime>,
    inputs: &mut RouteInputs,
) -> Verdict {
    let Some(address) = identity(input, channel) else {
        return Verdict::Skipped(
            SkipReason::NoIdentity,
            format!("the contact has no {channel} identity"),
        );
    };
    let Some(state) = input.channels.iter().find(|c| c.channel == channel) else {
        return Verdict::Skipped(
            SkipReason::ChannelDisabled,
            "no provider is configured for it".into(),
        );
    };
    if state.health == Health::Open {
        return Verdict::Skipped(
            SkipReason::Unhealthy,
            "its circuit breaker is open after repeated failures".into(),
        );
    }
    let caps = &state.capabilities;
    // When the step may go: calls never ring in quiet hours (urgent or
    // not, they wait for the end); others wait for it unless urgent.
    let not_before = quiet_end.filter(|_| caps.rings || !urgent);
    let at = not_before.unwrap_or_else(|| send_at(input));
    let window_until = input
        .windows
        .iter()
        .find(|(c, _)| *c == channel)
        .map(|(_, until)| *until);
    let window_open = window_until.is_some_and(|until| until > at);
    if let Some(verdict) = consent(input, channel, caps, window_open, inputs) {
        return verdict;
    }
    // The content: the channel's override, else the main content; outside
    // a closed window a template only.
    let has_override = input
        .request
        .overrides
        .iter()
        .any(|o| o.channel == channel && !o.outside_window);
    let mut variant = if has_override {
        ContentVariant::Override
    } else {
        ContentVariant::Main
    };
    if caps.service_window.is_some() && !window_open {
        let content = step_content(
            input.request.content,
            input.request.overrides,
            channel,
            variant,
        );
        if !matches!(content, Content::Template(_)) {
            let alternative = input
                .request
                .overrides
                .iter()
                .any(|o| o.channel == channel && o.outside_window);
            if !alternative {
                let detail = match window_until {
                    Some(_) => {
                        "the customer service window is closed and the message has no template alternative"
                    }
                    None => {
                        "the customer never wrote, so only a template may go, and the message has no template alternative"
                    }
                };
                return Verdict::Skipped(SkipReason::WindowClosed, detail.into());
            }
            variant = ContentVariant::WindowAlternative;
        }
    }
    let content = step_content(
        input.request.content,
        input.request.overrides,
        channel,
        variant,
    );
    let own = variant != ContentVariant::Main;
    match caps.fit(&content) {
        Fit::AsIs => {}
        Fit::Degraded(_) if !own => variant = ContentVariant::Degraded,
        Fit::Degraded(_) => {
            return Verdict::Skipped(
                SkipReason::UnsupportedContent,
                format!("{channel} has no native choices"),
            );
        }
        Fit::No(why) if own => {
            return Verdict::Invalid(vec![(override_field(input, channel, variant), why)]);
        }
        Fit::No(why) => return Verdict::Skipped(SkipReason::UnsupportedContent, why),
    }
    let content = step_content(
        input.request.content,
        input.request.overrides,
        channel,
        variant,
    );
    let violations = (input.check)(channel, &content);
    if !violations.is_empty() {
        // The caller's own choice (its channel, its override, a template it
        // named) is the caller's mistake; the main content merely not
        // fitting one channel of several is a reason to use another.
        let named =
            input.request.explicit == Some(channel) || matches!(content, Content::Template(_));
        if own || named {
            let prefix = override_field(input, channel, variant);
            return Verdict::Invalid(
                violations
                    .into_iter()
                    .map(|v| (format!("{prefix}.{}", v.field), v.description))
                    .collect(),
            );
        }
        let detail = violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; ");
        return Verdict::Skipped(SkipReason::UnsupportedContent, detail);
    }
    let mut step = PlannedChannel::to(&address);
    step.variant = variant;
    step.not_before = not_before;
    // A call's outcome comes later (busy, no answer): routing hears of it
    // and may call again.
    step.watch_reports = caps.rings;
    Verdict::Planned(step)
}

/// The address a channel reaches the contact at: its oldest identity on
/// the channel; for a callback without a voice identity, the number the
/// customer writes from on WhatsApp (the customer asked to be called, often
/// from there: WhatsApp and voice share one number space).
fn identity(input: &Input<'_>, channel: Channel) -> Option<omniroute_channel::Address> {
    let oldest = |channel: Channel| {
        input
            .contact
            .identities
            .iter()
            .filter(|i| i.address.channel() == channel)
            .min_by_key(|i| i.create_time)
            .map(|i| i.address.clone())
    };
    oldest(channel).or_else(|| {
        let callback = matches!(input.request.content, Content::CallbackRequest(_));
        if channel != Channel::Voice || !callback {
            return None;
        }
        let whatsapp = oldest(Channel::Whatsapp)?;
        let key = whatsapp.key().to_owned();
        Some(omniroute_channel::Address::from_stored(
            Channel::Voice,
            format!("+{key}"),
            key,
            None,
        ))
    })
}

/// The field path of a channel's override, for errors.
fn override_field(input: &Input<'_>, channel: Channel, variant: ContentVariant) -> String {
    let outside = variant == ContentVariant::WindowAlternative;
    input
        .request
        .overrides
        .iter()
        .position(|o| o.channel == channel && o.outside_window == outside)
        .map_or_else(
            || "message.content".to_owned(),
            |i| format!("message.overrides[{i}].content"),
        )
}

/// The consent rules; `Some` when they leave the channel out.
fn consent(
    input: &Input<'_>,
    channel: Channel,
    caps: &Capabilities,
    window_open: bool,
    inputs: &mut RouteInputs,
) -> Option<Verdict> {
    let category = input.request.category;
    let state = input
        .consents
        .iter()
        .find(|c| c.channel == channel && c.category == category);
    if let Some(state) = state {
        inputs.consents.push(ConsentUsed {
            channel,
            category,
            record: state.record_id,
            granted: state.granted,
        });
        if !state.granted {
            return Some(Verdict::Skipped(
                SkipReason::OptedOut,
                format!(
                    "the customer revoked {category} consent for {channel} (consentRecords/{})",
                    state.record_id
                ),
            ));
        }
        return None;
    }
    if category == Category::Marketing {
        return Some(Verdict::Skipped(
            SkipReason::NoConsent,
            format!("no marketing opt-in for {channel} on record"),
        ));
    }
    // Business-initiated (outside the window) on a windowed channel needs
    // an opt-in, unless the tenant relaxed it for non-marketing messages.
    if caps.service_window.is_some() && !window_open && input.tenant.whatsapp_opt_in_required {
        return Some(Verdict::Skipped(
            SkipReason::NoConsent,
            format!(
                "no {category} opt-in for {channel} on record for a business-initiated message"
            ),
        ));
    }
    None
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
