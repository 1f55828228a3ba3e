//! Routing settings: each tenant's defaults (channel order, time zone, quiet
//! hours, the WhatsApp opt-in rule, delivery deadlines per category, the
//! window-closing lead time, the business's opening hours and holidays for
//! callbacks and their retry plan) and the circuit breakers. A contact's own
//! preferences override the defaults.

use std::collections::BTreeMap;
use std::time::Duration;

use omniroute_channel::{Category, Channel};
use serde::{Deserialize, Serialize};

use omniroute_domain::{OpeningHours, TenantPolicy, UnreportedDeadline, parse_spans};

use super::SettingsError;

/// Routing defaults for every tenant, and per-tenant overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingSettings {
    /// Channels to try, in order, for a contact who stated none.
    pub channel_order: Vec<Channel>,
    /// IANA time zone of contacts without one (quiet hours are kept in it).
    pub time_zone: String,
    /// Start of the default quiet hours, "HH:MM"; empty for none.
    pub quiet_hours_start: String,
    /// End of the default quiet hours, "HH:MM"; empty for none.
    pub quiet_hours_end: String,
    /// Whether business-initiated WhatsApp messages (outside the customer
    /// service window) need a WhatsApp opt-in on record for every category.
    /// False relaxes it for transactional, authentication and service
    /// messages; marketing always needs an explicit marketing opt-in.
    pub whatsapp_opt_in_required: bool,
    /// Per category: seconds a sent step may go undelivered before the
    /// plan's next step takes over (a message's own deadline wins). A
    /// category not named has no deadline (its fallback runs on failures
    /// only).
    pub deliver_within_secs: BTreeMap<Category, u64>,
    /// What a delivery deadline does on a channel that reports no delivery
    /// (an email relay without DSN, whose `250` is the last word of a mail
    /// that arrived): `acceptance` (the relay's acceptance ends it; a
    /// bounce still hands over) or `keep` (the next step follows unless the
    /// customer replies, even after a delivery nobody reported).
    pub deadline_without_delivery_reports: String,
    /// Seconds before a customer service window closes that a
    /// `window closing` event is logged; 0 for none.
    pub window_closing_lead_secs: u64,
    /// How often closing windows are looked for, in milliseconds.
    pub window_check_interval_ms: u64,
    /// Transient failures in a row that open a channel's circuit breaker.
    pub breaker_failures: u32,
    /// Seconds an open breaker skips its channel before a probe may go.
    pub breaker_cool_down_secs: u64,
    /// When the business takes callbacks, in `business_time_zone`:
    /// spans like `"mon-fri 09:00-17:00"`, `"sat 10:00-14:00"`; empty for
    /// always. A callback asked for outside them is placed at the next
    /// opening.
    pub business_hours: Vec<String>,
    /// IANA time zone of the business hours; empty for `time_zone`.
    pub business_time_zone: String,
    /// Days the business is closed, `YYYY-MM-DD`.
    pub holidays: Vec<String>,
    /// A callback's retry plan: seconds to wait before each next attempt
    /// after one that did not reach the customer (busy, no answer, an
    /// answering machine, a busy agent line); one attempt more than there
    /// are entries.
    pub callback_retry_secs: Vec<u64>,
    /// WhatsApp reply buttons that ask for a callback: a customer who taps
    /// one is called back on the number they write from.
    pub call_me: Vec<CallMeButton>,
    /// Tenants whose missed inbound calls are called back: a customer who
    /// called and whom nobody took gets a callback.
    pub missed_calls: Vec<MissedCallCallback>,
    /// Per-tenant overrides of the defaults above.
    pub tenants: Vec<TenantRouting>,
}

/// A reply button whose tap asks for a callback.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallMeButton {
    /// The tenant whose messages carry the button.
    pub tenant: String,
    /// The button's id, as the message's interactive content gives it.
    pub button_id: String,
    /// The agent line the callback bridges to, E.164.
    pub agent_address: String,
    /// Spoken to the customer before the bridge.
    pub greeting: String,
}

/// A tenant's callbacks for missed inbound calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MissedCallCallback {
    pub tenant: String,
    /// The agent line the callback bridges to, E.164.
    pub agent_address: String,
    /// Spoken to the customer before the bridge.
    pub greeting: String,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            channel_order: Channel::ALL.to_vec(),
            time_zone: "UTC".to_owned(),
            quiet_hours_start: String::new(),
            quiet_hours_end: String::new(),
            whatsapp_opt_in_required: true,
            deliver_within_secs: BTreeMap::new(),
            deadline_without_delivery_reports: "acceptance".to_owned(),
            window_closing_lead_secs: 3600,
            window_check_interval_ms: 10_000,
            breaker_failures: 5,
            breaker_cool_down_secs: 30,
            business_hours: Vec::new(),
            business_time_zone: String::new(),
            holidays: Vec::new(),
            callback_retry_secs: vec![300, 900, 3600],
            call_me: Vec::new(),
            missed_calls: Vec::new(),
            tenants: Vec::new(),
        }
    }
}

/// One tenant's routing defaults: each key means what the same key of
/// [`RoutingSettings`] does, for this tenant; unset keys take the global
/// ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantRouting {
    pub tenant: String,
    pub channel_order: Option<Vec<Channel>>,
    pub time_zone: Option<String>,
    /// Its default quiet hours' start, "HH:MM" ("" for none).
    pub quiet_hours_start: Option<String>,
    /// Its default quiet hours' end, "HH:MM" ("" for none).
    pub quiet_hours_end: Option<String>,
    pub whatsapp_opt_in_required: Option<bool>,
    /// Its delivery deadlines per category (replacing the global table).
    pub deliver_within_secs: Option<BTreeMap<Category, u64>>,
    pub deadline_without_delivery_reports: Option<String>,
    pub window_closing_lead_secs: Option<u64>,
    pub business_hours: Option<Vec<String>>,
    pub business_time_zone: Option<String>,
    pub holidays: Option<Vec<String>>,
    pub callback_retry_secs: Option<Vec<u64>>,
}

/// A business's callback rules as written in the settings.
struct Callbacks<'a> {
    hours: &'a [String],
    time_zone: &'a str,
    holidays: &'a [String],
    retry_secs: &'a [u64],
}

impl Callbacks<'_> {
    /// The opening hours (`None` for always) and the retry plan, checked.
    fn rules(
        &self,
        fallback_zone: &str,
    ) -> Result<(Option<OpeningHours>, Vec<u64>), SettingsError> {
        if self.retry_secs.len() > 20 {
            return Err(invalid("routing.callback_retry_secs", "at most 20 retries"));
        }
        let mut holidays = Vec::with_capacity(self.holidays.len());
        for day in self.holidays {
            if day.parse::<jiff::civil::Date>().is_err() {
                return Err(invalid(
                    "routing.holidays",
                    format!("{day:?} is not a date like \"2026-12-25\""),
                ));
            }
            holidays.push(day.clone());
        }
        if self.hours.is_empty() {
            return Ok((None, self.retry_secs.to_vec()));
        }
        let time_zone = match self.time_zone {
            "" => fallback_zone,
            zone => zone,
        };
        if jiff::tz::TimeZone::get(time_zone).is_err() {
            return Err(invalid(
                "routing.business_time_zone",
                "not an IANA time zone",
            ));
        }
        let mut spans = Vec::new();
        for text in self.hours {
            spans.extend(parse_spans(text).ok_or_else(|| {
                invalid(
                    "routing.business_hours",
                    format!("{text:?} is not like \"mon-fri 09:00-17:00\""),
                )
            })?);
        }
        Ok((
            Some(OpeningHours {
                time_zone: time_zone.to_owned(),
                spans,
                holidays,
            }),
            self.retry_secs.to_vec(),
        ))
    }
}

/// Minutes after midnight of "HH:MM".
fn minutes(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() == 5).then_some(h * 60 + m)
}

fn invalid(key: &'static str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// The rule for deadlines where delivery is not reported, checked.
fn unreported_deadline(text: &str) -> Result<UnreportedDeadline, SettingsError> {
    UnreportedDeadline::parse(text).ok_or_else(|| {
        invalid(
            "routing.deadline_without_delivery_reports",
            "\"acceptance\" or \"keep\"",
        )
    })
}

/// Builds one policy, checking every value.
#[allow(clippy::too_many_arguments)]
fn policy(
    order: &[Channel],
    time_zone: &str,
    start: &str,
    end: &str,
    opt_in: bool,
    deadlines: &BTreeMap<Category, u64>,
    lead: u64,
    callbacks: &Callbacks<'_>,
) -> Result<TenantPolicy, SettingsError> {
    let (business_hours, callback_retry_secs) = callbacks.rules(time_zone)?;
    if deadlines.values().any(|secs| *secs == 0) {
        return Err(invalid(
            "routing.deliver_within_secs",
            "a deadline must be at least 1 second",
        ));
    }
    if order.is_empty() {
        return Err(invalid(
            "routing.channel_order",
            "must name at least one channel",
        ));
    }
    if order
        .iter()
        .enumerate()
        .any(|(i, c)| order[..i].contains(c))
    {
        return Err(invalid("routing.channel_order", "names a channel twice"));
    }
    if jiff::tz::TimeZone::get(time_zone).is_err() {
        return Err(invalid("routing.time_zone", "not an IANA time zone"));
    }
    let quiet_hours = match (start, end) {
        ("", "") => None,
        (start, end) => {
            let s = minutes(start).ok_or_else(|| {
                invalid(
                    "routing.quiet_hours_start",
                    "must be \"HH:MM\" (24-hour) when quiet hours are set",
                )
            })?;
            let e = minutes(end).ok_or_else(|| {
                invalid(
                    "routing.quiet_hours_end",
                    "must be \"HH:MM\" (24-hour) when quiet hours are set",
                )
            })?;
            Some((s, e))
        }
    };
    Ok(TenantPolicy {
        channel_order: order.to_vec(),
        time_zone: time_zone.to_owned(),
        quiet_hours,
        whatsapp_opt_in_required: opt_in,
        deliver_within: deadlines
            .iter()
            .map(|(c, secs)| (*c, Duration::from_secs(*secs)))
            .collect(),
        window_closing_lead: (lead > 0).then(|| Duration::from_secs(lead)),
        business_hours,
        callback_retry_secs,
        // Set by `policies`, which reads the rule apart.
        unreported_deadline: UnreportedDeadline::default(),
    })
}

impl RoutingSettings {
    /// The default policy and each tenant's, validated.
    pub fn policies(
        &self,
    ) -> Result<
        (
            TenantPolicy,
            std::collections::HashMap<String, TenantPolicy>,
        ),
        SettingsError,
    > {
        let default = policy(
            &self.channel_order,
            &self.time_zone,
            &self.quiet_hours_start,
            &self.quiet_hours_end,
            self.whatsapp_opt_in_required,
            &self.deliver_within_secs,
            self.window_closing_lead_secs,
            &Callbacks {
                hours: &self.business_hours,
                time_zone: &self.business_time_zone,
                holidays: &self.holidays,
                retry_secs: &self.callback_retry_secs,
            },
        )?;
        let mut default = default;
        default.unreported_deadline = unreported_deadline(&self.deadline_without_delivery_reports)?;
        let mut tenants = std::collections::HashMap::new();
        for t in &self.tenants {
            if t.tenant.trim().is_empty() {
                return Err(invalid("routing.tenants.tenant", "must not be empty"));
            }
            let tenant_policy = policy(
                t.channel_order.as_deref().unwrap_or(&self.channel_order),
                t.time_zone.as_deref().unwrap_or(&self.time_zone),
                t.quiet_hours_start
                    .as_deref()
                    .unwrap_or(&self.quiet_hours_start),
                t.quiet_hours_end
                    .as_deref()
                    .unwrap_or(&self.quiet_hours_end),
                t.whatsapp_opt_in_required
                    .unwrap_or(self.whatsapp_opt_in_required),
                t.deliver_within_secs
                    .as_ref()
                    .unwrap_or(&self.deliver_within_secs),
                t.window_closing_lead_secs
                    .unwrap_or(self.window_closing_lead_secs),
                &Callbacks {
                    hours: t.business_hours.as_deref().unwrap_or(&self.business_hours),
                    time_zone: t
                        .business_time_zone
                        .as_deref()
                        .unwrap_or(&self.business_time_zone),
                    holidays: t.holidays.as_deref().unwrap_or(&self.holidays),
                    retry_secs: t
                        .callback_retry_secs
                        .as_deref()
                        .unwrap_or(&self.callback_retry_secs),
                },
            )?;
            let mut tenant_policy = tenant_policy;
            tenant_policy.unreported_deadline = unreported_deadline(
                t.deadline_without_delivery_reports
                    .as_deref()
                    .unwrap_or(&self.deadline_without_delivery_reports),
            )?;
            if tenants.insert(t.tenant.clone(), tenant_policy).is_some() {
                return Err(invalid("routing.tenants.tenant", "names a tenant twice"));
            }
        }
        let agent_line = |address: &str, key: &'static str| {
            let agent = omniroute_channel::Address::parse(
                Channel::Voice,
                address,
                omniroute_channel::PhoneRegion::default(),
            );
            if agent.is_err() || !address.starts_with('+') {
                return Err(invalid(key, "an E.164 number like +4930123456"));
            }
            Ok(())
        };
        for (i, rule) in self.missed_calls.iter().enumerate() {
            if rule.tenant.trim().is_empty() {
                return Err(invalid("routing.missed_calls.tenant", "must not be empty"));
            }
            agent_line(&rule.agent_address, "routing.missed_calls.agent_address")?;
            if self.missed_calls[..i]
                .iter()
                .any(|r| r.tenant == rule.tenant)
            {
                return Err(invalid("routing.missed_calls", "names a tenant twice"));
            }
        }
        for (i, button) in self.call_me.iter().enumerate() {
            if button.tenant.trim().is_empty() || button.button_id.trim().is_empty() {
                return Err(invalid(
                    "routing.call_me",
                    "each button needs a tenant and a button_id",
                ));
            }
            agent_line(&button.agent_address, "routing.call_me.agent_address")?;
            if self.call_me[..i]
                .iter()
                .any(|b| b.tenant == button.tenant && b.button_id == button.button_id)
            {
                return Err(invalid("routing.call_me", "names a button twice"));
            }
        }
        if self.window_check_interval_ms == 0 {
            return Err(invalid(
                "routing.window_check_interval_ms",
                "must be at least 1",
            ));
        }
        if self.breaker_failures == 0 {
            return Err(invalid("routing.breaker_failures", "must be at least 1"));
        }
        Ok((default, tenants))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_and_tenants() {
        let mut s = RoutingSettings {
            quiet_hours_start: "22:00".into(),
            quiet_hours_end: "07:30".into(),
            tenants: vec![TenantRouting {
                tenant: "acme".into(),
                time_zone: Some("Europe/Berlin".into()),
                quiet_hours_start: Some(String::new()),
                quiet_hours_end: Some(String::new()),
                ..TenantRouting::default()
            }],
            ..RoutingSettings::default()
        };
        let (default, tenants) = s.policies().unwrap();
        assert_eq!(default.quiet_hours, Some((22 * 60, 7 * 60 + 30)));
        assert_eq!(tenants["acme"].quiet_hours, None);
        assert_eq!(tenants["acme"].time_zone, "Europe/Berlin");
        assert_eq!(tenants["acme"].channel_order, Channel::ALL.to_vec());
        s.quiet_hours_end = "7:30".into();
        assert!(
            s.policies()
                .unwrap_err()
                .to_string()
                .contains("routing.quiet_hours_end")
        );
        s.quiet_hours_end = "07:30".into();
        s.time_zone = "Mars/Olympus".into();
        assert!(
            s.policies()
                .unwrap_err()
                .to_string()
                .contains("routing.time_zone")
        );
        s.time_zone = "UTC".into();
        s.channel_order = vec![Channel::Email, Channel::Email];
        assert!(s.policies().is_err());
    }

    fn parse(text: &str) -> RoutingSettings {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(text))
            .extract()
            .expect("routing settings")
    }

    #[test]
    fn deadlines_per_category_and_tenant() {
        let s = parse(
            r#"
            deliver_within_secs = { transactional = 900, authentication = 60 }
            window_closing_lead_secs = 0
            [[tenants]]
            tenant = "acme"
            deliver_within_secs = { marketing = 86400 }
            window_closing_lead_secs = 7200
            "#,
        );
        let (default, tenants) = s.policies().unwrap();
        assert_eq!(
            default.deadline(Category::Transactional),
            Some(Duration::from_secs(900))
        );
        assert_eq!(default.deadline(Category::Marketing), None);
        assert_eq!(default.window_closing_lead, None);
        assert_eq!(tenants["acme"].deadline(Category::Transactional), None);
        assert_eq!(
            tenants["acme"].deadline(Category::Marketing),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            tenants["acme"].window_closing_lead,
            Some(Duration::from_secs(7200))
        );
        let zero = parse("deliver_within_secs = { transactional = 0 }");
        assert!(
            zero.policies()
                .unwrap_err()
                .to_string()
                .contains("routing.deliver_within_secs")
        );
    }

    #[test]
    fn business_hours_holidays_and_call_me_buttons_are_checked() {
        let ok = RoutingSettings {
            business_hours: vec!["mon-fri 09:00-17:00".into(), "sat 10:00-14:00".into()],
            business_time_zone: "Europe/Berlin".into(),
            holidays: vec!["2026-12-25".into()],
            call_me: vec![CallMeButton {
                tenant: "default".into(),
                button_id: "call_me".into(),
                agent_address: "+4930555000111".into(),
                greeting: String::new(),
            }],
            ..RoutingSettings::default()
        };
        let (default, _) = ok.policies().unwrap();
        let hours = default.business_hours.expect("hours");
        assert_eq!(hours.time_zone, "Europe/Berlin");
        assert_eq!(hours.spans.len(), 6);
        assert_eq!(default.callback_retry_secs, [300, 900, 3600]);
        let key = |s: RoutingSettings| crate::settings::refused_key(s.policies().map(|_| ()));
        assert_eq!(
            key(RoutingSettings {
                business_hours: vec!["weekdays 9-5".into()],
                ..ok.clone()
            }),
            "routing.business_hours"
        );
        assert_eq!(
            key(RoutingSettings {
                holidays: vec!["25.12.2026".into()],
                ..ok.clone()
            }),
            "routing.holidays"
        );
        assert_eq!(
            key(RoutingSettings {
                business_time_zone: "Mars/Olympus".into(),
                ..ok.clone()
            }),
            "routing.business_time_zone"
        );
        let mut bad = ok.clone();
        bad.call_me[0].agent_address = "the desk".into();
        assert_eq!(key(bad), "routing.call_me.agent_address");
        let mut twice = ok.clone();
        twice.call_me.push(twice.call_me[0].clone());
        assert_eq!(key(twice), "routing.call_me");
        // No hours: always open.
        let (always, _) = RoutingSettings::default().policies().unwrap();
        assert_eq!(always.business_hours, None);
    }
}
