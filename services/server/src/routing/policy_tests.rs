//! The policy's rules, one test each, and its invariants as properties.

use std::time::{Duration, SystemTime};

use omniroute_channel::content::{Choice, Choices, Interactive, Template, Text};
use omniroute_channel::{Address, Capabilities, Category, Channel, Content, PhoneRegion};
use omniroute_domain::{
    CategoryPreference, ChannelOverride, ChannelPreferences, ConsentState, Contact, ContactState,
    ContentVariant, Identity, OptStatus, Profile, QuietHours, SkipReason,
};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::routing::RouteRequest;

const T0: u64 = 1_764_590_400; // 2025-12-01T12:00:00Z, a Monday noon in UTC

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn contact(channels: &[Channel]) -> Contact {
    let identities = channels
        .iter()
        .map(|c| {
            let raw = match c {
                Channel::Email => "anna@example.com",
                _ => "+4915123456789",
            };
            Identity {
                address: Address::parse(*c, raw, PhoneRegion::default()).unwrap(),
                create_time: at(T0),
                provider_user_id: None,
            }
        })
        .collect();
    Contact {
        id: Uuid::now_v7(),
        state: ContactState::Active,
        profile: Profile::default(),
        identities,
        merged_from: Vec::new(),
        create_time: at(T0),
        update_time: at(T0),
        erasure: None,
        windows: Vec::new(),
        version: 1,
    }
}

fn caps(channel: Channel) -> Capabilities {
    omniroute_sandbox::capabilities(channel)
}

fn states(health: Health) -> Vec<ChannelState> {
    Channel::ALL
        .iter()
        .map(|c| ChannelState {
            channel: *c,
            capabilities: caps(*c),
            health,
        })
        .collect()
}

fn grant(channel: Channel, category: Category, granted: bool) -> ConsentState {
    ConsentState {
        channel,
        category,
        granted,
        record_id: Uuid::now_v7(),
        record_time: at(T0 - 60),
    }
}

fn text(body: &str) -> Content {
    Content::Text(Text {
        body: body.into(),
        ..Text::default()
    })
}

fn template() -> Content {
    Content::Template(Template {
        name: "order_shipped".into(),
        language: "en".into(),
        components: Vec::new(),
    })
}

/// The inputs of one decision, owned, with defaults a test changes.
struct Case {
    category: Category,
    urgent: bool,
    content: Content,
    overrides: Vec<ChannelOverride>,
    explicit: Option<Channel>,
    excluded: Vec<Channel>,
    deliver_within: Option<Duration>,
    contact: Contact,
    preferences: ChannelPreferences,
    consents: Vec<ConsentState>,
    time_zone: String,
    windows: Vec<(Channel, SystemTime)>,
    channels: Vec<ChannelState>,
    tenant: TenantPolicy,
    now: SystemTime,
    send_time: Option<SystemTime>,
}

impl Case {
    fn new(channels: &[Channel]) -> Case {
        Case {
            category: Category::Transactional,
            urgent: false,
            content: text("Your order 4711 has shipped"),
            overrides: Vec::new(),
            explicit: None,
            excluded: Vec::new(),
            deliver_within: None,
            contact: contact(channels),
            preferences: ChannelPreferences::default(),
            consents: Vec::new(),
            time_zone: String::new(),
            windows: Vec::new(),
            channels: states(Health::Closed),
            tenant: TenantPolicy::default(),
            now: at(T0),
            send_time: None,
        }
    }

    fn decide(&self) -> Result<RouteDecision, RouteError> {
        let check = |channel: Channel, content: &Content| match channel {
            Channel::Whatsapp => omniroute_whatsapp::check_limits(content),
            _ => Vec::new(),
        };
        decide(&Input {
            request: RouteRequest {
                category: self.category,
                urgent: self.urgent,
                content: &self.content,
                overrides: &self.overrides,
                explicit: self.explicit,
                excluded: &self.excluded,
                deliver_within: self.deliver_within,
                send_time: self.send_time,
                expire_time: None,
            },
            contact: &self.contact,
            preferences: &self.preferences,
            consents: &self.consents,
            time_zone: &self.time_zone,
            windows: &self.windows,
            channels: &self.channels,
            tenant: &self.tenant,
            check: &check,
            now: self.now,
        })
    }

    fn open_window(&mut self) {
        self.windows = vec![(Channel::Whatsapp, self.now + Duration::from_secs(3600))];
    }
}

fn channels(d: &RouteDecision) -> Vec<Channel> {
    d.plan.iter().map(|p| p.channel).collect()
}

fn skip(d: &RouteDecision, channel: Channel) -> SkipReason {
    d.skipped
        .iter()
        .find(|s| s.channel == channel)
        .map(|s| s.reason)
        .unwrap_or_else(|| panic!("{channel} not skipped: {d:?}"))
}

#[test]
fn the_default_order_with_fallbacks() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email, Channel::Voice]);
    case.open_window();
    let d = case.decide().unwrap();
    assert_eq!(
        channels(&d),
        [Channel::Whatsapp, Channel::Email, Channel::Voice]
    );
    assert!(d.skipped.is_empty());
    assert_eq!(d.plan[1].address, "anna@example.com");
}

#[test]
fn every_step_but_the_last_has_the_deadline_that_hands_over() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email, Channel::Voice]);
    case.open_window();
    let d = case.decide().unwrap();
    assert!(
        d.plan.iter().all(|p| p.deliver_within.is_none()),
        "no deadline configured: fallback on failures only"
    );
    case.tenant.deliver_within = vec![(Category::Transactional, Duration::from_secs(900))];
    let d = case.decide().unwrap();
    let deadlines: Vec<_> = d.plan.iter().map(|p| p.deliver_within).collect();
    let tenant = Some(Duration::from_secs(900));
    assert_eq!(deadlines, [tenant, tenant, None]);
    case.deliver_within = Some(Duration::from_secs(60));
    let d = case.decide().unwrap();
    let own = Some(Duration::from_secs(60));
    assert_eq!(
        d.plan.iter().map(|p| p.deliver_within).collect::<Vec<_>>(),
        [own, own, None],
        "the caller's deadline wins"
    );
    case.category = Category::Service;
    case.deliver_within = None;
    let d = case.decide().unwrap();
    assert!(
        d.plan.iter().all(|p| p.deliver_within.is_none()),
        "the tenant's deadline is per category"
    );
}

#[test]
fn no_identity_and_not_configured() {
    let mut case = Case::new(&[Channel::Email]);
    case.channels.retain(|c| c.channel != Channel::Voice);
    let d = case.decide().unwrap();
    assert_eq!(channels(&d), [Channel::Email]);
    assert_eq!(skip(&d, Channel::Whatsapp), SkipReason::NoIdentity);
    assert_eq!(skip(&d, Channel::Voice), SkipReason::NoIdentity);
    let mut case = Case::new(&[Channel::Email, Channel::Voice]);
    case.channels.retain(|c| c.channel != Channel::Voice);
    let d = case.decide().unwrap();
    assert_eq!(skip(&d, Channel::Voice), SkipReason::ChannelDisabled);
}

#[test]
fn marketing_needs_an_opt_in_per_channel() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email]);
    case.category = Category::Marketing;
    case.open_window();
    let err = case.decide().unwrap_err();
    let RouteError::Unreachable(skipped) = err else {
        panic!("{err:?}")
    };
    let reasons: Vec<_> = skipped.iter().map(|s| (s.channel, s.reason)).collect();
    assert_eq!(
        reasons,
        [
            (Channel::Whatsapp, SkipReason::NoConsent),
            (Channel::Email, SkipReason::NoConsent),
            (Channel::Voice, SkipReason::NoIdentity)
        ]
    );
    case.consents = vec![grant(Channel::Email, Category::Marketing, true)];
    let d = case.decide().unwrap();
    assert_eq!(channels(&d), [Channel::Email]);
    assert_eq!(skip(&d, Channel::Whatsapp), SkipReason::NoConsent);
    assert_eq!(d.inputs.consents.len(), 1);
    // A transactional opt-in is not a marketing one.
    case.consents = vec![grant(Channel::Whatsapp, Category::Transactional, true)];
    assert!(case.decide().is_err());
}

#[test]
fn an_explicit_channel_never_bypasses_consent() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email]);
    case.category = Category::Marketing;
    case.explicit = Some(Channel::Whatsapp);
    case.open_window();
    case.consents = vec![grant(Channel::Email, Category::Marketing, true)];
    let err = case.decide().unwrap_err();
    let RouteError::Refused(skip) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(skip.channel, Channel::Whatsapp);
    assert_eq!(skip.reason, SkipReason::NoConsent);
    case.consents
        .push(grant(Channel::Whatsapp, Category::Marketing, true));
    let d = case.decide().unwrap();
    assert_eq!(channels(&d), [Channel::Whatsapp]);
    assert_eq!(
        skip_of(&d, Channel::Email),
        Some(SkipReason::ExcludedByCaller)
    );
}

fn skip_of(d: &RouteDecision, channel: Channel) -> Option<SkipReason> {
    d.skipped
        .iter()
        .find(|s| s.channel == channel)
        .map(|s| s.reason)
}

#[test]
fn a_revocation_wins() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email]);
    case.open_window();
    // The ledger's latest record decides (derive_consents): a revocation.
    case.consents = vec![grant(Channel::Whatsapp, Category::Transactional, false)];
    let d = case.decide().unwrap();
    assert_eq!(channels(&d), [Channel::Email]);
    assert_eq!(skip(&d, Channel::Whatsapp), SkipReason::OptedOut);
    // Also where the tenant relaxed the opt-in rule.
    case.tenant.whatsapp_opt_in_required = false;
    assert_eq!(
        skip(&case.decide().unwrap(), Channel::Whatsapp),
        SkipReason::OptedOut
    );
}

#[test]
fn a_category_opt_out_refuses_everything() {
    let mut case = Case::new(&[Channel::Email]);
    case.preferences.categories = vec![CategoryPreference {
        category: Category::Transactional,
        status: Some(OptStatus::OptedOut),
        channels: Vec::new(),
    }];
    assert_eq!(
        case.decide().unwrap_err(),
        RouteError::OptedOut(Category::Transactional)
    );
}

#[test]
fn erased_contacts_get_nothing() {
    let mut case = Case::new(&[Channel::Email]);
    case.contact.state = ContactState::Erased;
    assert!(matches!(case.decide(), Err(RouteError::Erased(_))));
}

#[test]
fn business_initiated_whatsapp_needs_an_opt_in_unless_relaxed() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email]);
    case.content = template();
    let d = case.decide().unwrap();
    assert_eq!(skip(&d, Channel::Whatsapp), SkipReason::NoConsent);
    case.consents = vec![grant(Channel::Whatsapp, Category::Transactional, true)];
    assert_eq!(channels(&case.decide().unwrap())[0], Channel::Whatsapp);
    case.consents.clear();
    case.tenant.whatsapp_opt_in_required = false;
    assert_eq!(channels(&case.decide().unwrap())[0], Channel::Whatsapp);
    // Inside the window the customer started the conversation.
    case.tenant.whatsapp_opt_in_required = true;
    case.content = text("Thanks for writing");
    case.open_window();
    assert_eq!(channels(&case.decide().unwrap())[0], Channel::Whatsapp);
}

#[test]
fn the_window_decides_free_form_or_template() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email]);
    case.consents = vec![grant(Channel::Whatsapp, Category::Transactional, true)];
    // Outside the window, free form cannot go.
    case.windows = vec![(Channel::Whatsapp, case.now - Duration::from_secs(1))];
    let d = case.decide().unwrap();
    assert_eq!(channels(&d), [Channel::Email]);
    assert_eq!(skip(&d, Channel::Whatsapp), SkipReason::WindowClosed);
    // With a template alternative it goes as that template.
    case.overrides = vec![ChannelOverride {
        channel: Channel::Whatsapp,
        content: template(),
        outside_window: true,
    }];
    let d = case.decide().unwrap();
    assert_eq!(channels(&d), [Channel::Whatsapp, Channel::Email]);
    assert_eq!(d.plan[0].variant, ContentVariant::WindowAlternative);
    assert_eq!(
        step_content(
            &case.content,
            &case.overrides,
            Channel::Whatsapp,
            d.plan[0].variant
        ),
        template()
    );
    // Inside the window the free-form content goes.
    case.open_window();
    let d = case.decide().unwrap();
    assert_eq!(d.plan[0].variant, ContentVariant::Main);
    assert_eq!(d.inputs.windows.len(), 1);
}

#[test]
fn a_window_that_closes_before_quiet_hours_end_counts_as_closed() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email]);
    case.consents = vec![grant(Channel::Whatsapp, Category::Transactional, true)];
    case.tenant.quiet_hours = Some((11 * 60, 13 * 60));
    // Open for another 30 minutes, but quiet hours hold the message 1 h.
    case.windows = vec![(Channel::Whatsapp, case.now + Duration::from_secs(1800))];
    let d = case.decide().unwrap();
    assert_eq!(skip(&d, Channel::Whatsapp), SkipReason::WindowClosed);
    assert_eq!(d.plan[0].not_before, Some(at(T0 + 3600)));
}

#[test]
fn quiet_hours_defer_in_the_contacts_zone() {
    let mut case = Case::new(&[Channel::Email]);
    // 12:00 UTC is 07:00 in New York: inside 22:00–08:00 there.
    case.preferences.quiet_hours = Some(QuietHours {
        start_minute: 22 * 60,
        end_minute: 8 * 60,
    });
    case.time_zone = "America/New_York".into();
    let d = case.decide().unwrap();
    assert_eq!(d.plan[0].not_before, Some(at(T0 + 3600)));
    assert_eq!(d.hold_until, Some(at(T0 + 3600)));
    assert_eq!(d.inputs.quiet_hours_end, Some(at(T0 + 3600)));
    // In Berlin (13:00) the same hours are not quiet.
    case.time_zone = "Europe/Berlin".into();
    assert_eq!(case.decide().unwrap().plan[0].not_before, None);
}

#[test]
fn urgent_messages_and_codes_go_now_but_calls_never_ring_in_quiet_hours() {
    let mut case = Case::new(&[Channel::Email, Channel::Voice]);
    case.tenant.quiet_hours = Some((11 * 60, 13 * 60));
    case.urgent = true;
    let d = case.decide().unwrap();
    assert_eq!(channels(&d), [Channel::Email, Channel::Voice]);
    assert_eq!(d.plan[0].not_before, None);
    assert_eq!(
        d.plan[1].not_before,
        Some(at(T0 + 3600)),
        "a call waits for the end"
    );
    assert!(d.inputs.urgent);
    // Even when the customer prefers calls: what may go now goes first.
    case.preferences.channel_order = vec![Channel::Voice, Channel::Email];
    let d = case.decide().unwrap();
    assert_eq!(channels(&d), [Channel::Email, Channel::Voice]);
    // An urgent call alone waits too (it is not refused).
    case.explicit = Some(Channel::Voice);
    let d = case.decide().unwrap();
    assert_eq!(d.plan[0].not_before, Some(at(T0 + 3600)));
    assert_eq!(d.hold_until, Some(at(T0 + 3600)));
    case.explicit = None;
    case.preferences.channel_order = Vec::new();
    case.urgent = false;
    case.category = Category::Authentication;
    assert_eq!(case.decide().unwrap().plan[0].not_before, None);
    // A call that is not urgent waits for the end.
    case.category = Category::Transactional;
    case.explicit = Some(Channel::Voice);
    let d = case.decide().unwrap();
    assert_eq!(d.plan[0].not_before, Some(at(T0 + 3600)));
}

#[test]
fn quiet_hours_are_decided_for_the_send_time() {
    // Quiet 22:00-07:00 UTC; now is noon.
    let mut case = Case::new(&[Channel::Email]);
    case.tenant.quiet_hours = Some((22 * 60, 7 * 60));
    assert_eq!(case.decide().unwrap().plan[0].not_before, None);
    // Sent at 23:00 tonight: held until 07:00 tomorrow.
    case.send_time = Some(at(T0 + 11 * 3600));
    let d = case.decide().unwrap();
    assert_eq!(d.plan[0].not_before, Some(at(T0 + 19 * 3600)));
    assert_eq!(d.hold_until, Some(at(T0 + 19 * 3600)));
    assert_eq!(d.inputs.quiet_hours_end, Some(at(T0 + 19 * 3600)));
    // Sent at 08:00 tomorrow, after tonight's quiet hours: no hold at all
    // (the send time alone decides).
    case.send_time = Some(at(T0 + 20 * 3600));
    let d = case.decide().unwrap();
    assert_eq!(d.plan[0].not_before, None);
    assert_eq!(d.inputs.quiet_hours_end, None);
    // A send time in the past is now.
    case.send_time = Some(at(T0 - 3600));
    assert_eq!(case.decide().unwrap().plan[0].not_before, None);
}

#[test]
fn the_window_is_judged_at_the_send_time() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email]);
    case.consents = vec![grant(Channel::Whatsapp, Category::Transactional, true)];
    // Open for another hour; sent in two: closed by then.
    case.windows = vec![(Channel::Whatsapp, case.now + Duration::from_secs(3600))];
    assert_eq!(channels(&case.decide().unwrap())[0], Channel::Whatsapp);
    case.send_time = Some(case.now + Duration::from_secs(7200));
    let d = case.decide().unwrap();
    assert_eq!(skip(&d, Channel::Whatsapp), SkipReason::WindowClosed);
}

#[test]
fn content_must_fit_the_channel() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email, Channel::Voice]);
    case.open_window();
    // Too long for WhatsApp and voice: email carries it.
    case.content = text(&"a".repeat(5_000));
    let d = case.decide().unwrap();
    assert_eq!(channels(&d), [Channel::Email]);
    assert_eq!(skip(&d, Channel::Whatsapp), SkipReason::UnsupportedContent);
    assert_eq!(skip(&d, Channel::Voice), SkipReason::UnsupportedContent);
    // Choices are native on WhatsApp and on email (links that pick them, as
    // the email adapter declares), numbered text on voice.
    case.content = Content::Interactive(Interactive {
        header: String::new(),
        body: "Pick a slot".into(),
        footer: String::new(),
        choices: Choices::Buttons {
            buttons: vec![Choice {
                id: "am".into(),
                title: "Morning".into(),
                description: String::new(),
            }],
        },
    });
    let d = case.decide().unwrap();
    let variants: Vec<_> = d.plan.iter().map(|p| p.variant).collect();
    assert_eq!(
        variants,
        [
            ContentVariant::Main,
            ContentVariant::Main,
            ContentVariant::Degraded
        ]
    );
    assert_eq!(
        step_content(&case.content, &[], Channel::Voice, ContentVariant::Degraded),
        text("Pick a slot\n\n1. Morning")
    );
    // Media does not go by voice.
    case.content = Content::Media(omniroute_channel::content::Media {
        kind: omniroute_channel::content::MediaKind::Document,
        url: "https://example.com/invoice.pdf".into(),
        media_id: String::new(),
        caption: String::new(),
        filename: "invoice.pdf".into(),
        mime_type: String::new(),
        sha256: String::new(),
    });
    let d = case.decide().unwrap();
    assert_eq!(skip(&d, Channel::Voice), SkipReason::UnsupportedContent);
}

#[test]
fn a_callers_own_override_that_breaks_the_rules_is_invalid() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email]);
    case.open_window();
    case.overrides = vec![ChannelOverride {
        channel: Channel::Whatsapp,
        content: text(&"a".repeat(5_000)),
        outside_window: false,
    }];
    let err = case.decide().unwrap_err();
    let RouteError::Invalid(violations) = err else {
        panic!("{err:?}")
    };
    assert_eq!(violations[0].0, "message.overrides[0].content");
}

#[test]
fn open_breakers_skip_half_open_ones_probe() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email]);
    case.open_window();
    case.channels[0].health = Health::Open;
    let d = case.decide().unwrap();
    assert_eq!(channels(&d), [Channel::Email]);
    assert_eq!(skip(&d, Channel::Whatsapp), SkipReason::Unhealthy);
    assert_eq!(d.inputs.breakers, [(Channel::Whatsapp, "open".to_owned())]);
    case.channels[0].health = Health::HalfOpen;
    assert_eq!(channels(&case.decide().unwrap())[0], Channel::Whatsapp);
}

#[test]
fn caller_exclusions_and_customer_orders() {
    let mut case = Case::new(&[Channel::Whatsapp, Channel::Email, Channel::Voice]);
    case.open_window();
    case.excluded = vec![Channel::Whatsapp];
    let d = case.decide().unwrap();
    assert_eq!(channels(&d), [Channel::Email, Channel::Voice]);
    assert_eq!(skip(&d, Channel::Whatsapp), SkipReason::ExcludedByCaller);
    // The customer's per-category order replaces the contact-wide one and
    // the tenant's; unlisted channels are not preferred.
    case.excluded.clear();
    case.preferences.channel_order = vec![Channel::Voice, Channel::Email];
    case.preferences.categories = vec![CategoryPreference {
        category: Category::Transactional,
        status: None,
        channels: vec![Channel::Email],
    }];
    let d = case.decide().unwrap();
    assert_eq!(channels(&d), [Channel::Email]);
    assert_eq!(skip(&d, Channel::Voice), SkipReason::NotPreferred);
    case.preferences.categories.clear();
    assert_eq!(
        channels(&case.decide().unwrap()),
        [Channel::Voice, Channel::Email]
    );
    case.preferences.channel_order.clear();
    case.tenant.channel_order = vec![Channel::Email, Channel::Whatsapp];
    assert_eq!(
        channels(&case.decide().unwrap()),
        [Channel::Email, Channel::Whatsapp]
    );
}

fn arb_channels() -> impl Strategy<Value = Vec<Channel>> {
    proptest::sample::subsequence(Channel::ALL.to_vec(), 0..=3)
}

fn arb_category() -> impl Strategy<Value = Category> {
    proptest::sample::select(Category::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Whatever the inputs: every step has an identity and any consent it
    /// needs, marketing only reaches channels with a marketing opt-in, no
    /// step is due inside quiet hours at the time it goes (its send time;
    /// unless urgent, and never a call), no free form goes on WhatsApp
    /// outside the window at that time,
    /// and every channel is planned or skipped with a reason.
    #[test]
    fn plans_keep_the_rules(
        identities in arb_channels(),
        configured in arb_channels(),
        category in arb_category(),
        urgent in any::<bool>(),
        granted in proptest::collection::vec((proptest::sample::select(Channel::ALL.to_vec()), arb_category(), any::<bool>()), 0..6),
        window in proptest::option::of(-7200i64..7200),
        quiet in proptest::option::of((0u16..1440, 0u16..1440)),
        explicit in proptest::option::of(proptest::sample::select(Channel::ALL.to_vec())),
        use_template in any::<bool>(),
        now_offset in 0u64..(7 * 86_400),
        send_offset in proptest::option::of(-3600i64..(2 * 86_400)),
        zone in proptest::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]),
    ) {
        let mut case = Case::new(&identities);
        case.category = category;
        case.urgent = urgent;
        case.now = at(T0 + now_offset);
        case.send_time = send_offset.map(|o| SystemTime::from(
            jiff::Timestamp::try_from(case.now).unwrap() + jiff::SignedDuration::from_secs(o)));
        case.channels.retain(|c| configured.contains(&c.channel));
        let mut consents: Vec<ConsentState> = Vec::new();
        for (channel, category, granted) in granted {
            if !consents.iter().any(|c| c.channel == channel && c.category == category) {
                consents.push(grant(channel, category, granted));
            }
        }
        case.consents = consents;
        if let Some(w) = window {
            case.windows = vec![(Channel::Whatsapp, SystemTime::from(
                jiff::Timestamp::try_from(case.now).unwrap() + jiff::SignedDuration::from_secs(w)))];
        }
        case.preferences.quiet_hours = quiet.map(|(s, e)| QuietHours { start_minute: s, end_minute: e });
        case.time_zone = zone.to_owned();
        case.explicit = explicit;
        if use_template {
            case.content = template();
        }
        let Ok(d) = case.decide() else {
            return Ok(());
        };
        prop_assert!(!d.plan.is_empty());
        let rule = d.inputs.quiet_hours.clone();
        for step in &d.plan {
            prop_assert!(identities.contains(&step.channel), "no identity: {:?}", step.channel);
            prop_assert!(configured.contains(&step.channel));
            let consent = case.consents.iter().find(|c| c.channel == step.channel && c.category == category);
            prop_assert!(consent.is_none_or(|c| c.granted), "a revocation was ignored");
            if category == Category::Marketing {
                prop_assert!(consent.is_some_and(|c| c.granted), "marketing without opt-in on {:?}", step.channel);
            }
            let send_at = case.send_time.map_or(case.now, |t| t.max(case.now));
            let due = step.not_before.unwrap_or(send_at);
            let rings = caps(step.channel).rings;
            if let Some(rule) = &rule && (rings || !d.inputs.urgent) {
                prop_assert_eq!(quiet::quiet_end(rule, due), None, "due inside quiet hours");
            }
            if step.channel == Channel::Whatsapp {
                let open = case.windows.iter().any(|(_, until)| *until > due);
                let content = step_content(&case.content, &case.overrides, step.channel, step.variant);
                prop_assert!(open || matches!(content, Content::Template(_)), "free form outside the window");
            }
        }
        for channel in Channel::ALL {
            let planned = d.plan.iter().any(|p| p.channel == channel);
            let skipped = d.skipped.iter().filter(|s| s.channel == channel).count();
            prop_assert!(planned != (skipped == 1), "{channel} is neither or both: {d:?}");
        }
    }
}
