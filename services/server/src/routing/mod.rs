//! Routing: which channel, when, and what next — the one place that decides
//! how a company reaches each customer, lawfully.
//!
//! - [`policy`] is a pure function: (category, urgency, content and its
//!   alternatives, caller restrictions, the contact's identities,
//!   preferences, consent state, service windows, channel health, tenant
//!   defaults, now) → an ordered plan of steps with a reason for every
//!   channel left out, or a typed [`RouteError`].
//! - [`Router`] is the thin orchestration around it: it gathers the inputs
//!   (adapters' declared capabilities and checks, breakers, the tenant's
//!   defaults), lets an approved template's category decide, and hands the
//!   decision back to be stored with the message. SendMessage and
//!   PreviewRoute both call [`Router::route`], so a preview is the decision.
//! - [`deadline`] says what a delivery deadline can see on each step (a
//!   delivery report, or where the channel gives none, the tenant's rule).
//! - [`fallback`] decides what happens after a failed attempt; [`quiet`] the
//!   quiet-hours arithmetic; [`breaker`] the per-channel circuit breakers.
//!
//! Routing is called by the send path (`api/messaging.rs`, which resolves
//! the recipient, calls [`Router::route`], takes the quotas and accepts the
//! message; its refusals become statuses in `api/error.rs`), by
//! PreviewRoute, and by the dispatcher, which carries out the plan and asks
//! [`fallback`] what follows each attempt and whether a step that came due
//! may go now (quiet hours).

pub mod breaker;
pub mod deadline;
pub mod fallback;
pub mod hours;
pub mod policy;
pub mod quiet;
pub mod windows;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use omniroute_channel::{Category, Channel, Content, DeliveryReports};
use omniroute_domain::{
    CallbackRule, ChannelOverride, RouteDecision, RoutingContact, SkipReason, SkippedChannel,
};
use uuid::Uuid;

use crate::channels::Adapters;
use breaker::Breakers;
use policy::{ChannelState, Input, TenantPolicy};

/// Why a message cannot be routed. Mapped to a gRPC status in `api/error.rs`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The contact is erased.
    #[error("contacts/{0} is erased")]
    Erased(Uuid),
    /// The customer opted out of the category.
    #[error("the contact opted out of {0} messages")]
    OptedOut(Category),
    /// The caller's explicit channel cannot carry the message.
    #[error("{} cannot carry this message: {}", .0.channel, .0.detail)]
    Refused(SkippedChannel),
    /// No channel can carry it.
    #[error("no channel can reach the contact: {}", describe(.0))]
    Unreachable(Vec<SkippedChannel>),
    /// The caller's own content for a channel breaks that channel's rules
    /// (field path, description).
    #[error("invalid content")]
    Invalid(Vec<(String, String)>),
    /// A callback has no time it may ring before its latest time: the
    /// business is closed or the customer's quiet hours last until then.
    #[error(
        "no time inside the business hours and outside the customer's quiet hours comes before the latest time"
    )]
    NoOpening,
}

fn describe(skipped: &[SkippedChannel]) -> String {
    skipped
        .iter()
        .map(|s| format!("{}: {}", s.channel, s.detail))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A stable upper-case code for a skip reason (error details, logs).
pub fn reason_code(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::NoIdentity => "NO_IDENTITY",
        SkipReason::NoConsent => "NO_CONSENT",
        SkipReason::OptedOut => "OPTED_OUT",
        SkipReason::WindowClosed => "WINDOW_CLOSED",
        SkipReason::UnsupportedContent => "CONTENT_NOT_SUPPORTED",
        SkipReason::ChannelDisabled => "NOT_CONFIGURED",
        SkipReason::NotPreferred => "NOT_PREFERRED",
        SkipReason::QuietHours => "QUIET_HOURS",
        SkipReason::Unhealthy => "CHANNEL_UNHEALTHY",
        SkipReason::ExcludedByCaller => "EXCLUDED_BY_CALLER",
    }
}

/// What the caller asked for, as routing sees it.
#[derive(Debug, Clone, Copy)]
pub struct RouteRequest<'a> {
    /// The category the caller gave.
    pub category: Category,
    /// Deliver now even in quiet hours.
    pub urgent: bool,
    pub content: &'a Content,
    /// Per-channel contents.
    pub overrides: &'a [ChannelOverride],
    /// The caller's channel.
    pub explicit: Option<Channel>,
    /// Channels the caller excluded.
    pub excluded: &'a [Channel],
    /// The caller's delivery deadline per step.
    pub deliver_within: Option<Duration>,
    /// Not before this (the caller's send time).
    pub send_time: Option<SystemTime>,
    /// Not after this (the caller's expiry).
    pub expire_time: Option<SystemTime>,
}

/// A routing decision with the category it was made for.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    /// The category (an approved template's wins over the caller's).
    pub category: Category,
    /// The decision.
    pub route: RouteDecision,
}

/// The routing service.
#[derive(Debug, Clone)]
pub struct Router {
    adapters: Adapters,
    default_policy: Arc<TenantPolicy>,
    tenants: Arc<HashMap<String, TenantPolicy>>,
    breakers: Arc<Breakers>,
}

impl Router {
    /// A router over the adapters, with tenants' defaults and the breakers.
    pub fn new(
        adapters: Adapters,
        default_policy: TenantPolicy,
        tenants: HashMap<String, TenantPolicy>,
        breakers: Arc<Breakers>,
    ) -> Router {
        Router {
            adapters,
            default_policy: Arc::new(default_policy),
            tenants: Arc::new(tenants),
            breakers,
        }
    }

    /// The breakers, which the dispatcher feeds.
    pub fn breakers(&self) -> &Arc<Breakers> {
        &self.breakers
    }

    /// A tenant's defaults.
    pub fn policy(&self, tenant: &str) -> &TenantPolicy {
        self.tenants.get(tenant).unwrap_or(&self.default_policy)
    }

    /// The usable channels for a tenant now.
    fn channels(&self, tenant: &str, now: SystemTime) -> Vec<ChannelState> {
        let mut channels: Vec<ChannelState> = self
            .adapters
            .iter()
            .map(|(channel, adapter)| ChannelState {
                channel: *channel,
                capabilities: adapter.capabilities(),
                health: self.breakers.health(*channel, tenant, now),
            })
            .collect();
        channels.sort_by_key(|c| c.channel);
        channels
    }

    /// Decides how a message reaches `recipient`: the plan, the skips with
    /// reasons, and the category (a template's approved category is what the
    /// provider enforces: a marketing template is marketing whatever the
    /// caller said, so it meets marketing's consent rules).
    pub fn route(
        &self,
        tenant: &str,
        request: &RouteRequest<'_>,
        recipient: &RoutingContact,
        now: SystemTime,
    ) -> Result<Routed, RouteError> {
        let channels = self.channels(tenant, now);
        // The windows on the lines the adapters send from.
        let windows: Vec<(Channel, SystemTime)> = channels
            .iter()
            .filter(|c| c.capabilities.service_window.is_some())
            .filter_map(|c| {
                let line = self.adapters.get(&c.channel)?.sending_line(tenant);
                Some((c.channel, recipient.contact.window_until(c.channel, line)?))
            })
            .collect();
        let check = |channel: Channel, content: &Content| {
            self.adapters
                .get(&channel)
                .map(|a| a.check_content(tenant, content))
                .unwrap_or_default()
        };
        let policy = self.policy(tenant);
        let decide = |category| {
            policy::decide(&Input {
                request: RouteRequest {
                    category,
                    ..*request
                },
                contact: &recipient.contact,
                preferences: &recipient.preferences.channels,
                consents: &recipient.preferences.consents,
                time_zone: &recipient.preferences.time_zone,
                windows: &windows,
                channels: &channels,
                tenant: policy,
                check: &check,
                now,
            })
        };
        let mut category = request.category;
        let mut route = decide(category)?;
        if let Some(approved) = self.template_category(tenant, request, &route)
            && approved != category
        {
            tracing::debug!(from = %category, to = %approved, "category taken from the approved template");
            category = approved;
            route = decide(category)?;
        }
        if matches!(request.content, Content::CallbackRequest(_)) {
            schedule_callback(policy, request, &mut route, now)?;
        }
        deadline::mark(&mut route.plan, policy.unreported_deadline, |channel| {
            self.adapters
                .get(&channel)
                .map_or(DeliveryReports::Reported, |a| a.delivery_reports())
        });
        Ok(Routed { category, route })
    }

    /// The approved category of the template the first step would send,
    /// when its provider keeps a catalogue.
    fn template_category(
        &self,
        tenant: &str,
        request: &RouteRequest<'_>,
        route: &RouteDecision,
    ) -> Option<Category> {
        let step = route.plan.first()?;
        let content = policy::step_content(
            request.content,
            request.overrides,
            step.channel,
            step.variant,
        );
        let Content::Template(template) = content else {
            return None;
        };
        self.adapters.get(&step.channel)?.template_category(
            tenant,
            &template.name,
            &template.language,
        )
    }
}

/// A callback rings inside the business's opening hours, outside the
/// customer's quiet hours, from its send time and before its expiry: its
/// steps wait for the first such instant, and its decision keeps the rules
/// for its later attempts ([`fallback::on_watch`]).
fn schedule_callback(
    policy: &TenantPolicy,
    request: &RouteRequest<'_>,
    route: &mut RouteDecision,
    now: SystemTime,
) -> Result<(), RouteError> {
    let from = request.send_time.map_or(now, |t| t.max(now));
    let slot = hours::callback_slot(
        policy.business_hours.as_ref(),
        route.inputs.quiet_hours.as_ref(),
        from,
        request.expire_time,
    )
    .ok_or(RouteError::NoOpening)?;
    for step in &mut route.plan {
        step.not_before = (slot > now).then_some(slot);
    }
    route.hold_until = route.plan.first().and_then(|p| p.not_before);
    route.inputs.callback = Some(CallbackRule {
        hours: policy.business_hours.clone(),
        retry_secs: policy.callback_retry_secs.clone(),
    });
    Ok(())
}
