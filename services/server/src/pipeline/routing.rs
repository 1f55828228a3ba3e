//! Channel choice for an outbound message: a pure function of the request,
//! the contact and its preferences, so that it is tested without I/O and its
//! decision is stored with the message ("why did this go by email?").
//!
//! The rule, for now: the caller's explicit channel; else the first channel of
//! the customer's order for the message's category (or the contact-wide
//! order, then WhatsApp, email, voice) on which the contact has an identity
//! and a provider (or the sandbox) is configured. A customer who opted out of
//! the category gets nothing. Consent, the WhatsApp window, quiet hours and
//! multi-channel fallback plans come with the routing service.

use std::time::SystemTime;

use omniroute_channel::{Category, Channel};
use omniroute_store::{
    ChannelPreferences, Contact, OptStatus, PlannedChannel, RouteDecision, SkipReason,
    SkippedChannel,
};

/// Why no channel can carry a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoRoute {
    /// The customer opted out of the category.
    #[error("the contact opted out of {0} messages")]
    OptedOut(Category),
    /// No usable channel.
    #[error("no channel can reach the contact: {0}")]
    Unreachable(String),
}

/// The channel order when the customer stated none.
const DEFAULT_ORDER: [Channel; 3] = [Channel::Whatsapp, Channel::Email, Channel::Voice];

/// Decides the plan for a message.
pub fn plan(
    explicit: Option<Channel>,
    category: Category,
    contact: &Contact,
    preferences: &ChannelPreferences,
    configured: &[Channel],
    now: SystemTime,
) -> Result<RouteDecision, NoRoute> {
    let category_preference = preferences
        .categories
        .iter()
        .find(|c| c.category == category);
    if category_preference.is_some_and(|c| c.status == Some(OptStatus::OptedOut)) {
        return Err(NoRoute::OptedOut(category));
    }
    let order: Vec<Channel> = match explicit {
        Some(channel) => vec![channel],
        None => {
            let stated = category_preference
                .map(|c| c.channels.as_slice())
                .filter(|c| !c.is_empty())
                .unwrap_or(preferences.channel_order.as_slice());
            let mut order = stated.to_vec();
            if stated.is_empty() {
                order.extend(DEFAULT_ORDER);
            }
            order
        }
    };
    let mut skipped = Vec::new();
    for channel in order {
        let identity = contact
            .identities
            .iter()
            .filter(|i| i.address.channel() == channel)
            .min_by_key(|i| i.create_time);
        let Some(identity) = identity else {
            skipped.push(SkippedChannel {
                channel,
                reason: SkipReason::NoIdentity,
                detail: String::new(),
            });
            continue;
        };
        if !configured.contains(&channel) {
            skipped.push(SkippedChannel {
                channel,
                reason: SkipReason::ChannelDisabled,
                detail: "no provider is configured for it".to_owned(),
            });
            continue;
        }
        return Ok(RouteDecision {
            plan: vec![PlannedChannel {
                channel,
                address: identity.address.value().to_owned(),
                key: identity.address.key().to_owned(),
                wa_id: identity.address.wa_id().map(str::to_owned),
            }],
            skipped,
            hold_until: None,
            decide_time: now,
        });
    }
    let reasons = skipped
        .iter()
        .map(|s| match s.reason {
            SkipReason::NoIdentity => format!("no {} identity", s.channel),
            _ => format!("{} is not configured", s.channel),
        })
        .collect::<Vec<_>>()
        .join(", ");
    Err(NoRoute::Unreachable(reasons))
}

#[cfg(test)]
mod tests {
    use omniroute_channel::{Address, PhoneRegion};
    use omniroute_store::{CategoryPreference, ContactState, Identity, Profile};
    use uuid::Uuid;

    use super::*;

    fn contact(identities: &[(Channel, &str)]) -> Contact {
        let now = SystemTime::now();
        Contact {
            id: Uuid::now_v7(),
            state: ContactState::Active,
            profile: Profile::default(),
            identities: identities
                .iter()
                .map(|(c, a)| Identity {
                    address: Address::parse(*c, a, PhoneRegion::default()).unwrap(),
                    create_time: now,
                    provider_user_id: None,
                })
                .collect(),
            merged_from: Vec::new(),
            create_time: now,
            update_time: now,
            erasure: None,
            whatsapp_window_until: None,
            version: 1,
        }
    }

    const ALL: [Channel; 3] = Channel::ALL;

    fn chosen(result: Result<RouteDecision, NoRoute>) -> Channel {
        result.unwrap().plan[0].channel
    }

    #[test]
    fn explicit_channel_wins_when_reachable() {
        let c = contact(&[
            (Channel::Email, "a@example.com"),
            (Channel::Whatsapp, "+4915123456789"),
        ]);
        let prefs = ChannelPreferences::default();
        let now = SystemTime::now();
        assert_eq!(
            chosen(plan(
                Some(Channel::Email),
                Category::Transactional,
                &c,
                &prefs,
                &ALL,
                now
            )),
            Channel::Email
        );
        let err = plan(
            Some(Channel::Voice),
            Category::Transactional,
            &c,
            &prefs,
            &ALL,
            now,
        )
        .unwrap_err();
        assert!(matches!(err, NoRoute::Unreachable(_)));
    }

    #[test]
    fn first_preferred_channel_with_an_identity() {
        let c = contact(&[
            (Channel::Email, "a@example.com"),
            (Channel::Voice, "+4915123456789"),
        ]);
        let now = SystemTime::now();
        let prefs = ChannelPreferences {
            channel_order: vec![Channel::Whatsapp, Channel::Voice, Channel::Email],
            ..Default::default()
        };
        let decision = plan(None, Category::Transactional, &c, &prefs, &ALL, now).unwrap();
        assert_eq!(decision.plan[0].channel, Channel::Voice);
        assert_eq!(decision.plan[0].address, "+4915123456789");
        assert_eq!(decision.skipped[0].channel, Channel::Whatsapp);
        assert_eq!(decision.skipped[0].reason, SkipReason::NoIdentity);
        // Without preferences: WhatsApp, email, voice.
        let none = ChannelPreferences::default();
        assert_eq!(
            chosen(plan(None, Category::Transactional, &c, &none, &ALL, now)),
            Channel::Email
        );
        // A per-category order replaces the contact-wide one.
        let per_category = ChannelPreferences {
            channel_order: vec![Channel::Email],
            categories: vec![CategoryPreference {
                category: Category::Authentication,
                status: None,
                channels: vec![Channel::Voice],
            }],
            ..Default::default()
        };
        assert_eq!(
            chosen(plan(
                None,
                Category::Authentication,
                &c,
                &per_category,
                &ALL,
                now
            )),
            Channel::Voice
        );
        assert_eq!(
            chosen(plan(
                None,
                Category::Transactional,
                &c,
                &per_category,
                &ALL,
                now
            )),
            Channel::Email
        );
        // Unconfigured channels are skipped.
        let decision = plan(
            None,
            Category::Transactional,
            &c,
            &prefs,
            &[Channel::Email],
            now,
        )
        .unwrap();
        assert_eq!(decision.plan[0].channel, Channel::Email);
        assert!(
            decision
                .skipped
                .iter()
                .any(|s| s.reason == SkipReason::ChannelDisabled)
        );
    }

    #[test]
    fn opted_out_categories_get_nothing() {
        let c = contact(&[(Channel::Email, "a@example.com")]);
        let prefs = ChannelPreferences {
            categories: vec![CategoryPreference {
                category: Category::Marketing,
                status: Some(OptStatus::OptedOut),
                channels: Vec::new(),
            }],
            ..Default::default()
        };
        let err = plan(
            None,
            Category::Marketing,
            &c,
            &prefs,
            &ALL,
            SystemTime::now(),
        )
        .unwrap_err();
        assert_eq!(err, NoRoute::OptedOut(Category::Marketing));
        assert!(
            plan(
                None,
                Category::Transactional,
                &c,
                &prefs,
                &ALL,
                SystemTime::now()
            )
            .is_ok()
        );
    }

    #[test]
    fn no_identity_at_all_is_unreachable() {
        let err = plan(
            None,
            Category::Transactional,
            &contact(&[]),
            &Default::default(),
            &ALL,
            SystemTime::now(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no whatsapp identity"), "{err}");
    }
}
