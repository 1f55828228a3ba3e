//! Fuzzes the routing policy, `omniroute::routing::policy::decide`: the pure
//! function from a message, a contact (identities, preferences, consents,
//! service windows, time zone) and the channels' states to a plan.
//!
//! The fuzz bytes drive an `arbitrary::Unstructured` that builds every input
//! field by hand: category, urgency, content (every kind, with lengths
//! around the channels' limits), per-channel overrides, the caller's
//! explicit and excluded channels, identities, channel orders, category
//! wishes, quiet hours in zones with odd daylight-saving rules, consents,
//! windows, breakers, tenant defaults and the time. Inputs stay within what
//! the API validates before routing (message_validate.rs: at most one
//! override per channel and one more for a closed window, which is a
//! template) and what a store returns (no merged contacts, one consent state
//! per channel and category, one window per channel). Capabilities and
//! content checks are the real ones (the sandbox's, which are the real
//! channels').
//!
//! Asserts the guarantees policy.rs documents (and policy_tests.rs checks by
//! property):
//! - it never panics, and is a pure function (deciding twice agrees);
//! - an erased contact, or a category the customer opted out of, is refused;
//! - a plan is not empty, names no channel twice, and every channel is
//!   either planned or skipped with a reason, exactly once;
//! - an explicit channel is the whole plan; an excluded one is never in it;
//! - every step has the contact's oldest identity on its channel (a
//!   callback without a voice identity: the WhatsApp one's number), a
//!   configured channel whose breaker is not open, no revoked consent, an
//!   opt-in for marketing, and on a windowed channel (WhatsApp) free form
//!   only inside the window at the step's send time, else a template, and
//!   an opt-in on record where the tenant requires one;
//! - no step is due inside quiet hours (at the time it goes: its send
//!   time, or now) unless the message is urgent, and a channel that rings
//!   never is;
//! - a step's content fits its channel as it is and passes its checks;
//! - every step but the last carries the delivery deadline, and the hold
//!   is the first step's.

#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use omniroute::routing::policy::{
    ChannelState, Health, Input, TenantPolicy, decide, quiet_rule, step_content,
};
use omniroute::routing::{RouteError, RouteRequest, quiet};
use omniroute_channel::content::{
    CallbackRequest, Choice, ChoiceSection, Choices, ComponentType, Interactive, Location, Media,
    MediaKind, ParameterValue, Reaction, Template, TemplateComponent, TemplateParameter, Text,
};
use omniroute_channel::{Address, Category, Channel, Content, ContentViolation, Fit, PhoneRegion};
use omniroute_domain::{CategoryPreference, ChannelOverride, ChannelPreferences, ConsentState, Contact, ContactState, ContentVariant, Identity, OptStatus, Profile, QuietHours, SkipReason};
use uuid::Uuid;

/// Zones with half-hour offsets and shifts, skipped days and southern
/// daylight saving; "" is the tenant's zone and the last one is unknown.
const ZONES: [&str; 12] = [
    "",
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/Sao_Paulo",
    "Asia/Kathmandu",
    "Pacific/Apia",
    "America/St_Johns",
    "Not/A_Zone",
];

/// Text lengths at and around the channels' limits.
const LENGTHS: [usize; 12] = [0, 1, 20, 21, 24, 72, 1024, 1025, 4000, 4001, 4096, 4097];

/// Valid identities per channel; two WhatsApp forms of one Brazilian number.
static ADDRESSES: LazyLock<Vec<Address>> = LazyLock::new(|| {
    [
        (Channel::Whatsapp, "4915123456789"),
        (Channel::Whatsapp, "5511987654321"),
        (Channel::Whatsapp, "551187654321"),
        (Channel::Voice, "+4915123456789"),
        (Channel::Voice, "+1 650 253 0000"),
        (Channel::Email, "anna@example.com"),
        (Channel::Email, "Bob.Jones@Example.org"),
    ]
    .into_iter()
    .map(|(channel, raw)| {
        Address::parse(channel, raw, PhoneRegion::default()).expect("a valid address")
    })
    .collect()
});

fn channel(u: &mut Unstructured<'_>) -> Result<Channel> {
    u.choose(&Channel::ALL).copied()
}

fn category(u: &mut Unstructured<'_>) -> Result<Category> {
    u.choose(&Category::ALL).copied()
}

fn channels(u: &mut Unstructured<'_>, most: usize) -> Result<Vec<Channel>> {
    (0..u.int_in_range(0..=most)?).map(|_| channel(u)).collect()
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// Some text, sometimes padded to a length around a limit.
fn text(u: &mut Unstructured<'_>) -> Result<String> {
    let mut s: String = u.arbitrary::<&str>()?.to_owned();
    if u.ratio(1, 4)? {
        let pad = *u.choose(&['a', ' ', 'é', '😀'])?;
        let n = *u.choose(&LENGTHS)?;
        s.extend(std::iter::repeat_n(pad, n));
    }
    Ok(s)
}

fn choice(u: &mut Unstructured<'_>) -> Result<Choice> {
    Ok(Choice {
        id: text(u)?,
        title: text(u)?,
        description: text(u)?,
    })
}

fn media(u: &mut Unstructured<'_>) -> Result<Media> {
    Ok(Media {
        kind: *u.choose(&[
            MediaKind::Image,
            MediaKind::Document,
            MediaKind::Audio,
            MediaKind::Video,
            MediaKind::Sticker,
        ])?,
        url: u.choose(&["", "https://example.com/a.pdf"])?.to_string(),
        media_id: u.choose(&["", "1479537139650973"])?.to_string(),
        caption: text(u)?,
        filename: text(u)?,
        mime_type: String::new(),
        sha256: String::new(),
    })
}

fn template(u: &mut Unstructured<'_>) -> Result<Template> {
    let mut components = Vec::new();
    for _ in 0..u.int_in_range(0..=2)? {
        let mut parameters = Vec::new();
        for _ in 0..u.int_in_range(0..=2)? {
            let value = match u.int_in_range(0..=2)? {
                0 => ParameterValue::Text { text: text(u)? },
                1 => ParameterValue::Media(media(u)?),
                _ => ParameterValue::DateTime {
                    fallback_value: text(u)?,
                },
            };
            parameters.push(TemplateParameter {
                name: String::new(),
                value,
            });
        }
        components.push(TemplateComponent {
            kind: *u.choose(&[
                ComponentType::Header,
                ComponentType::Body,
                ComponentType::Button,
            ])?,
            button_sub_type: String::new(),
            index: 0,
            parameters,
        });
    }
    Ok(Template {
        name: u.choose(&["order_shipped", "", " "])?.to_string(),
        language: u.choose(&["en", "de", ""])?.to_string(),
        components,
    })
}

fn content(u: &mut Unstructured<'_>) -> Result<Content> {
    Ok(match u.int_in_range(0..=8)? {
        0 => Content::Text(Text {
            body: text(u)?,
            subject: text(u)?,
            html_body: String::new(),
            preview_url: u.arbitrary()?,
            overflow: None,
        }),
        1 => Content::Template(template(u)?),
        2 | 3 => Content::Interactive(Interactive {
            header: text(u)?,
            body: text(u)?,
            footer: text(u)?,
            choices: if u.arbitrary()? {
                Choices::Buttons {
                    buttons: (0..u.int_in_range(0..=4)?)
                        .map(|_| choice(u))
                        .collect::<Result<_>>()?,
                }
            } else {
                let mut sections = Vec::new();
                for _ in 0..u.int_in_range(0..=3)? {
                    sections.push(ChoiceSection {
                        title: text(u)?,
                        rows: (0..u.int_in_range(0..=4)?)
                            .map(|_| choice(u))
                            .collect::<Result<_>>()?,
                    });
                }
                Choices::List {
                    button: text(u)?,
                    sections,
                }
            },
        }),
        4 => Content::Media(media(u)?),
        5 => Content::CallbackRequest(CallbackRequest {
            agent_address: "+4930555000111".into(),
            greeting: text(u)?,
            language: String::new(),
            reason: String::new(),
        }),
        // Inbound-only kinds: the API refuses them first, routing must
        // not fall over them either.
        6 => Content::ChoiceReply(choice(u)?),
        7 => Content::Reaction(Reaction {
            message: String::new(),
            emoji: text(u)?,
        }),
        _ => Content::Location(Location::default()),
    })
}

fn quiet_hours(u: &mut Unstructured<'_>) -> Result<Option<(u16, u16)>> {
    if u.arbitrary()? {
        Ok(Some((u.int_in_range(0..=1439)?, u.int_in_range(0..=1439)?)))
    } else {
        Ok(None)
    }
}

/// Everything one decision needs, owned.
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

fn case(u: &mut Unstructured<'_>) -> Result<Case> {
    // From 2000 to about 2136.
    let now_secs = 946_684_800 + u64::from(u.arbitrary::<u32>()?);
    let now = at(now_secs);

    let mut identities = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        identities.push(Identity {
            address: u.choose(&ADDRESSES)?.clone(),
            create_time: at(now_secs.saturating_sub(u64::from(u.int_in_range(0..=3u8)?))),
            provider_user_id: None,
        });
    }
    let contact = Contact {
        id: Uuid::from_u128(u.arbitrary()?),
        state: if u.ratio(1, 16)? {
            ContactState::Erased
        } else {
            ContactState::Active
        },
        profile: Profile::default(),
        identities,
        merged_from: Vec::new(),
        create_time: at(now_secs),
        update_time: at(now_secs),
        erasure: None,
        windows: Vec::new(),
        version: 1,
    };

    let mut categories = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        categories.push(CategoryPreference {
            category: category(u)?,
            status: *u.choose(&[None, Some(OptStatus::OptedIn), Some(OptStatus::OptedOut)])?,
            channels: channels(u, 3)?,
        });
    }
    let preferences = ChannelPreferences {
        channel_order: channels(u, 4)?,
        categories,
        quiet_hours: quiet_hours(u)?.map(|(start_minute, end_minute)| QuietHours {
            start_minute,
            end_minute,
        }),
    };

    // At most one consent state per channel and category, as derived from
    // the ledger.
    let mut consents = Vec::new();
    for (i, (c, k)) in Channel::ALL
        .into_iter()
        .flat_map(|c| Category::ALL.map(|k| (c, k)))
        .enumerate()
    {
        if let Some(granted) = *u.choose(&[None, Some(true), Some(false)])? {
            consents.push(ConsentState {
                channel: c,
                category: k,
                granted,
                record_id: Uuid::from_u128(i as u128 + 1),
                record_time: at(now_secs.saturating_sub(60)),
            });
        }
    }

    // At most one window per channel, as the router passes them.
    let mut windows = Vec::new();
    for c in Channel::ALL {
        if u.ratio(1, 3)? {
            let offset: i32 = u.int_in_range(-172_800..=172_800)?;
            let until = if offset >= 0 {
                now + Duration::from_secs(offset.unsigned_abs().into())
            } else {
                now - Duration::from_secs(offset.unsigned_abs().into())
            };
            windows.push((c, until));
        }
    }

    let mut states = Vec::new();
    for c in Channel::ALL {
        if u.ratio(7, 8)? {
            states.push(ChannelState {
                channel: c,
                capabilities: omniroute_sandbox::capabilities(c),
                health: *u.choose(&[
                    Health::Closed,
                    Health::Closed,
                    Health::Open,
                    Health::HalfOpen,
                ])?,
            });
        }
    }

    let mut deliver_within = Vec::new();
    for _ in 0..u.int_in_range(0..=2)? {
        deliver_within.push((
            category(u)?,
            Duration::from_secs(u.int_in_range(0..=86_400)?),
        ));
    }
    let tenant = TenantPolicy {
        channel_order: channels(u, 4)?,
        time_zone: u.choose(&ZONES[1..])?.to_string(),
        quiet_hours: quiet_hours(u)?,
        whatsapp_opt_in_required: u.arbitrary()?,
        deliver_within,
        window_closing_lead: Some(Duration::from_secs(3600)),
        ..TenantPolicy::default()
    };

    // As the API validates them (message_validate.rs): at most one override
    // per channel, and one more for a closed window, which is a template.
    let mut overrides = Vec::new();
    for c in Channel::ALL {
        for outside_window in [false, true] {
            if u.ratio(1, 4)? {
                overrides.push(ChannelOverride {
                    channel: c,
                    content: if outside_window {
                        Content::Template(template(u)?)
                    } else {
                        content(u)?
                    },
                    outside_window,
                });
            }
        }
    }

    Ok(Case {
        category: category(u)?,
        urgent: u.arbitrary()?,
        content: content(u)?,
        overrides,
        explicit: if u.arbitrary()? {
            Some(channel(u)?)
        } else {
            None
        },
        excluded: channels(u, 2)?,
        deliver_within: if u.arbitrary()? {
            Some(Duration::from_secs(u.int_in_range(0..=86_400)?))
        } else {
            None
        },
        contact,
        preferences,
        consents,
        time_zone: u.choose(&ZONES)?.to_string(),
        windows,
        channels: states,
        tenant,
        now,
        // From an hour ago to two days ahead (drawn last: older corpus
        // entries keep their meaning).
        send_time: if u.arbitrary()? {
            Some(at(
                (now_secs + u64::from(u.int_in_range(0..=2 * 86_400u32)?)).saturating_sub(3600)
            ))
        } else {
            None
        },
    })
}

/// The adapters' content checks, as the sandbox (and WhatsApp) make them.
fn check(channel: Channel, content: &Content) -> Vec<ContentViolation> {
    match channel {
        Channel::Whatsapp => omniroute_whatsapp::check_limits(content),
        Channel::Email | Channel::Voice => Vec::new(),
    }
}

fn run(case: &Case) {
    let input = Input {
        request: RouteRequest {
            category: case.category,
            urgent: case.urgent,
            content: &case.content,
            overrides: &case.overrides,
            explicit: case.explicit,
            excluded: &case.excluded,
            deliver_within: case.deliver_within,
            send_time: case.send_time,
            expire_time: None,
        },
        contact: &case.contact,
        preferences: &case.preferences,
        consents: &case.consents,
        time_zone: &case.time_zone,
        windows: &case.windows,
        channels: &case.channels,
        tenant: &case.tenant,
        check: &check,
        now: case.now,
    };
    let result = decide(&input);
    assert_eq!(result, decide(&input), "deciding twice disagrees");

    if case.contact.state == ContactState::Erased {
        assert_eq!(result, Err(RouteError::Erased(case.contact.id)));
        return;
    }
    let wish = case
        .preferences
        .categories
        .iter()
        .find(|c| c.category == case.category);
    if wish.is_some_and(|c| c.status == Some(OptStatus::OptedOut)) {
        assert_eq!(result, Err(RouteError::OptedOut(case.category)));
        return;
    }

    let d = match result {
        Ok(d) => d,
        Err(RouteError::Refused(skip)) => {
            assert_eq!(case.explicit, Some(skip.channel), "{skip:?}");
            return;
        }
        Err(RouteError::Unreachable(skipped)) => {
            assert_eq!(case.explicit, None, "{skipped:?}");
            assert!(
                skipped.iter().all(|s| s.reason != SkipReason::NotPreferred),
                "{skipped:?}"
            );
            return;
        }
        Err(RouteError::Invalid(violations)) => {
            assert!(!violations.is_empty());
            return;
        }
        Err(e) => panic!("unexpected refusal {e:?}"),
    };

    assert!(!d.plan.is_empty());
    for channel in Channel::ALL {
        let planned = d.plan.iter().filter(|p| p.channel == channel).count();
        let skipped = d.skipped.iter().filter(|s| s.channel == channel).count();
        assert_eq!(
            planned + skipped,
            1,
            "{channel} planned {planned} and skipped {skipped} times: {d:?}"
        );
    }
    if let Some(explicit) = case.explicit {
        assert_eq!(d.plan.len(), 1);
        assert_eq!(d.plan[0].channel, explicit);
    }
    assert_eq!(d.hold_until, d.plan[0].not_before);
    assert_eq!(d.decide_time, case.now);
    let deadline = case
        .deliver_within
        .or_else(|| case.tenant.deadline(case.category));
    let (last, others) = d.plan.split_last().expect("not empty");
    assert_eq!(last.deliver_within, None);
    assert!(others.iter().all(|p| p.deliver_within == deadline), "{d:?}");
    let urgent = case.urgent || case.category == Category::Authentication;
    assert_eq!(d.inputs.urgent, urgent);
    let rule = quiet_rule(&input);

    for step in &d.plan {
        let channel = step.channel;
        assert!(!case.excluded.contains(&channel), "{channel} was excluded");

        // A callback without a voice identity calls the customer's WhatsApp
        // number.
        let callback = matches!(case.content, Content::CallbackRequest(_));
        let own = case
            .contact
            .identities
            .iter()
            .any(|i| i.address.channel() == channel);
        let on = if !own && callback && channel == Channel::Voice {
            Channel::Whatsapp
        } else {
            channel
        };
        let oldest = case
            .contact
            .identities
            .iter()
            .filter(|i| i.address.channel() == on)
            .map(|i| i.create_time)
            .min()
            .unwrap_or_else(|| panic!("{channel} planned without an identity"));
        assert!(
            case.contact
                .identities
                .iter()
                .any(|i| i.address.channel() == on
                    && i.create_time == oldest
                    && i.address.key() == step.key
                    && (on != channel || i.address.value() == step.address)),
            "{channel} planned to {:?}, not the oldest identity",
            step.address
        );
        if on != channel {
            assert_eq!(step.address, format!("+{}", step.key), "an E.164 number");
        }

        let state = case
            .channels
            .iter()
            .find(|c| c.channel == channel)
            .unwrap_or_else(|| panic!("{channel} planned but not configured"));
        assert_ne!(
            state.health,
            Health::Open,
            "{channel} planned with an open breaker"
        );
        let caps = state.capabilities;

        let consent = case
            .consents
            .iter()
            .find(|c| c.channel == channel && c.category == case.category);
        assert!(
            consent.is_none_or(|c| c.granted),
            "a revocation on {channel} was ignored"
        );
        if case.category == Category::Marketing {
            assert!(
                consent.is_some_and(|c| c.granted),
                "marketing without an opt-in on {channel}"
            );
        }

        let send_at = case.send_time.map_or(case.now, |t| t.max(case.now));
        let due = step.not_before.unwrap_or(send_at);
        let content = step_content(&case.content, &case.overrides, channel, step.variant);
        if caps.service_window.is_some() {
            let open = case
                .windows
                .iter()
                .find(|(c, _)| *c == channel)
                .is_some_and(|(_, until)| *until > due);
            assert!(
                open || matches!(content, Content::Template(_)),
                "free form on {channel} outside the window: {step:?}"
            );
            if !open && case.tenant.whatsapp_opt_in_required {
                assert!(
                    consent.is_some_and(|c| c.granted),
                    "business-initiated on {channel} without an opt-in"
                );
            }
        }
        if let Some(rule) = &rule
            && (caps.rings || !urgent)
        {
            assert_eq!(
                quiet::quiet_end(rule, due),
                None,
                "{channel} due inside quiet hours: {rule:?} at {due:?}"
            );
        }

        assert_eq!(caps.fit(&content), Fit::AsIs, "{channel}: {content:?}");
        assert_eq!(
            check(channel, &content),
            Vec::new(),
            "{channel}: {content:?}"
        );
        let has = |outside: bool| {
            case.overrides
                .iter()
                .any(|o| o.channel == channel && o.outside_window == outside)
        };
        match step.variant {
            ContentVariant::Override => assert!(has(false)),
            ContentVariant::WindowAlternative => assert!(has(true)),
            ContentVariant::Main | ContentVariant::Degraded => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(case) = case(&mut u) {
        run(&case);
    }
});
