//! Conversions between the wire types of omniroute.v1 and the store's domain
//! records, with the validation of everything a caller sends.
//!
//! Every check reports the field path as the caller wrote it (for example
//! `contact.identities[1].address`), so that a BadRequest tells a client
//! exactly what to fix. Nothing here touches storage.

use std::collections::BTreeMap;
use std::time::SystemTime;

use omniroute_channel::{Address, Category, Channel, PhoneRegion};
use omniroute_domain as domain;
use omniroute_proto::v1 as pb;
use prost_types::Timestamp;
use uuid::Uuid;

use crate::app::{AppError, Violations};

const MAX_LABELS: usize = 64;
const MAX_LABEL_LEN: usize = 64;
const MAX_ATTRIBUTES: usize = 64;
const MAX_ATTRIBUTE_KEY_LEN: usize = 64;
const MAX_ATTRIBUTE_VALUE_LEN: usize = 1024;
const MAX_NAME_LEN: usize = 256;
const MAX_REF_LEN: usize = 256;
const MAX_TEXT_LEN: usize = 4096;

/// `{collection}/{uuid}` → the uuid (hyphenated, not nil), else `None`.
pub(crate) fn parse_resource_name(collection: &str, name: &str) -> Option<Uuid> {
    name.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|id| id.len() == 36)
        .and_then(|id| Uuid::parse_str(id).ok())
        .filter(|id| !id.is_nil())
}

/// `contacts/{id}` → id.
pub fn parse_contact_name(name: &str) -> Result<Uuid, &'static str> {
    parse_resource_name("contacts", name)
        .ok_or("expected a contact name like \"contacts/0190f5c2-8a4e-7cc1-9c1e-2f8f4d1a2b3c\"")
}

/// `contacts/{id}` → id, or INVALID_ARGUMENT on `field`.
pub fn contact_id(field: &str, name: &str) -> Result<Uuid, AppError> {
    parse_contact_name(name).map_err(|e| AppError::invalid(field, e))
}

/// `contacts/{id}/preferences` → id.
pub fn preferences_contact_id(field: &str, name: &str) -> Result<Uuid, AppError> {
    let contact = name.strip_suffix("/preferences").ok_or_else(|| {
        AppError::invalid(
            field,
            "expected a name like \"contacts/{contact}/preferences\"",
        )
    })?;
    contact_id(field, contact)
}

/// The resource name of a contact.
pub fn contact_name(id: Uuid) -> String {
    format!("contacts/{id}")
}

pub(crate) fn timestamp(time: SystemTime) -> Option<Timestamp> {
    Some(Timestamp::from(time))
}

/// A wire channel; `Unspecified` and unknown values are errors.
pub fn channel(value: i32) -> Result<Channel, &'static str> {
    match pb::Channel::try_from(value) {
        Ok(pb::Channel::Whatsapp) => Ok(Channel::Whatsapp),
        Ok(pb::Channel::Email) => Ok(Channel::Email),
        Ok(pb::Channel::Voice) => Ok(Channel::Voice),
        Ok(pb::Channel::Unspecified) => Err("a channel is required"),
        Err(_) => Err("unknown channel"),
    }
}

pub(crate) fn channel_to_pb(channel: Channel) -> pb::Channel {
    match channel {
        Channel::Whatsapp => pb::Channel::Whatsapp,
        Channel::Email => pb::Channel::Email,
        Channel::Voice => pb::Channel::Voice,
    }
}

/// A wire category; `Unspecified` and unknown values are errors.
pub fn category(value: i32) -> Result<Category, &'static str> {
    match pb::Category::try_from(value) {
        Ok(pb::Category::Transactional) => Ok(Category::Transactional),
        Ok(pb::Category::Marketing) => Ok(Category::Marketing),
        Ok(pb::Category::Authentication) => Ok(Category::Authentication),
        Ok(pb::Category::Service) => Ok(Category::Service),
        Ok(pb::Category::Unspecified) => Err("a category is required"),
        Err(_) => Err("unknown category"),
    }
}

pub(crate) fn category_to_pb(category: Category) -> pb::Category {
    match category {
        Category::Transactional => pb::Category::Transactional,
        Category::Marketing => pb::Category::Marketing,
        Category::Authentication => pb::Category::Authentication,
        Category::Service => pb::Category::Service,
    }
}

/// Normalizes an identity from the wire.
pub fn address(
    v: &mut Violations,
    field: &str,
    identity: Option<&pb::Identity>,
    region: PhoneRegion,
) -> Option<Address> {
    let Some(identity) = identity else {
        v.add(field, "an identity is required");
        return None;
    };
    let channel = v.check(format!("{field}.channel"), channel(identity.channel))?;
    v.check(
        format!("{field}.address"),
        Address::parse(channel, &identity.address, region),
    )
}

/// Checks a BCP 47 language tag and returns it in canonical case ("de-DE").
pub fn locale(tag: &str) -> Result<String, &'static str> {
    if tag.is_empty() {
        return Ok(String::new());
    }
    let mut out = Vec::new();
    for (i, part) in tag.split(['-', '_']).enumerate() {
        let ok_len = if i == 0 {
            (2..=3).contains(&part.len()) || (5..=8).contains(&part.len())
        } else {
            (1..=8).contains(&part.len())
        };
        let ok_chars = if i == 0 {
            part.chars().all(|c| c.is_ascii_alphabetic())
        } else {
            part.chars().all(|c| c.is_ascii_alphanumeric())
        };
        if !ok_len || !ok_chars {
            return Err("not a BCP 47 language tag such as \"de-DE\" or \"pt-BR\"");
        }
        out.push(match (i, part.len()) {
            (0, _) => part.to_ascii_lowercase(),
            (_, 2) if part.chars().all(|c| c.is_ascii_alphabetic()) => part.to_ascii_uppercase(),
            (_, 4) if part.chars().all(|c| c.is_ascii_alphabetic()) => {
                let lower = part.to_ascii_lowercase();
                let mut chars = lower.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            }
            _ => part.to_ascii_lowercase(),
        });
    }
    Ok(out.join("-"))
}

/// Checks an IANA time zone name against the time zone database.
pub fn time_zone(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Ok(String::new());
    }
    jiff::tz::TimeZone::get(name)
        .map(|_| name.to_owned())
        .map_err(|_| {
            format!("unknown IANA time zone {name:?}; expected a name such as \"Europe/Berlin\"")
        })
}

fn bounded_text(value: &str, max: usize) -> Result<String, String> {
    if value.chars().count() > max {
        return Err(format!("longer than {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("contains control characters".to_owned());
    }
    Ok(value.trim().to_owned())
}

fn labels(v: &mut Violations, field: &str, labels: &[String]) -> Vec<String> {
    if labels.len() > MAX_LABELS {
        v.add(field, format!("at most {MAX_LABELS} labels"));
    }
    let mut out = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let label = label.trim();
        if label.is_empty()
            || label.chars().count() > MAX_LABEL_LEN
            || label.chars().any(char::is_control)
        {
            v.add(
                format!("{field}[{i}]"),
                format!("a label has 1 to {MAX_LABEL_LEN} printable characters"),
            );
        } else if !out.iter().any(|l| l == label) {
            out.push(label.to_owned());
        }
    }
    out
}

/// Checks a free string map (attributes, metadata): at most `max` keys, keys
/// of 1 to 64 printable characters, values of at most 1024.
pub fn string_map(
    v: &mut Violations,
    field: &str,
    attributes: &std::collections::HashMap<String, String>,
    max: usize,
) -> BTreeMap<String, String> {
    if attributes.len() > max {
        v.add(field, format!("at most {max} keys"));
    }
    let mut out = BTreeMap::new();
    for (key, value) in attributes {
        if key.is_empty()
            || key.chars().count() > MAX_ATTRIBUTE_KEY_LEN
            || key.chars().any(char::is_control)
        {
            v.add(
                format!("{field}[{key:?}]"),
                format!("keys have 1 to {MAX_ATTRIBUTE_KEY_LEN} printable characters"),
            );
        } else if value.chars().count() > MAX_ATTRIBUTE_VALUE_LEN {
            v.add(
                format!("{field}[{key:?}]"),
                format!("values have at most {MAX_ATTRIBUTE_VALUE_LEN} characters"),
            );
        } else {
            out.insert(key.clone(), value.clone());
        }
    }
    out
}

/// The fields of a contact's profile a caller may set.
pub const CONTACT_FIELDS: [&str; 6] = [
    "display_name",
    "locale",
    "time_zone",
    "external_ref",
    "labels",
    "attributes",
];

/// Validates the settable fields of a contact named in `fields`.
pub fn profile_patch(
    v: &mut Violations,
    prefix: &str,
    contact: &pb::Contact,
    fields: &[&str],
) -> domain::ProfilePatch {
    let mut patch = domain::ProfilePatch::default();
    for field in fields {
        let path = format!("{prefix}.{field}");
        match *field {
            "display_name" => {
                patch.display_name =
                    v.check(&path, bounded_text(&contact.display_name, MAX_NAME_LEN));
            }
            "locale" => patch.locale = v.check(&path, locale(&contact.locale)),
            "time_zone" => patch.time_zone = v.check(&path, time_zone(&contact.time_zone)),
            "external_ref" => {
                patch.external_ref = v
                    .check(&path, bounded_text(&contact.external_ref, MAX_REF_LEN))
                    .map(|r| Some(r).filter(|r| !r.is_empty()));
            }
            "labels" => patch.labels = Some(labels(v, &path, &contact.labels)),
            "attributes" => {
                patch.attributes = Some(string_map(v, &path, &contact.attributes, MAX_ATTRIBUTES));
            }
            _ => {}
        }
    }
    patch
}

/// Checks an update mask against the settable fields; an empty mask means all.
pub fn update_mask<'a>(
    v: &mut Violations,
    mask: Option<&prost_types::FieldMask>,
    allowed: &[&'a str],
) -> Vec<&'a str> {
    let paths = mask.map(|m| m.paths.as_slice()).unwrap_or_default();
    if paths.is_empty() {
        return allowed.to_vec();
    }
    let mut fields = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        match allowed.iter().find(|a| **a == path) {
            Some(field) => fields.push(*field),
            None => v.add(
                format!("update_mask.paths[{i}]"),
                format!(
                    "unknown or read-only field {path:?}; updatable: {}",
                    allowed.join(", ")
                ),
            ),
        }
    }
    fields
}

/// A contact on the wire.
pub fn contact_to_pb(contact: &domain::Contact) -> pb::Contact {
    let state = match contact.state {
        domain::ContactState::Erased => pb::ContactState::Erased,
        _ => pb::ContactState::Active,
    };
    let p = &contact.profile;
    pb::Contact {
        name: contact_name(contact.id),
        display_name: p.display_name.clone(),
        locale: p.locale.clone(),
        time_zone: p.time_zone.clone(),
        external_ref: p.external_ref.clone().unwrap_or_default(),
        labels: p.labels.clone(),
        attributes: p.attributes.clone().into_iter().collect(),
        identities: contact
            .identities
            .iter()
            .map(|i| pb::Identity {
                channel: channel_to_pb(i.address.channel()) as i32,
                address: i.address.value().to_owned(),
                wa_id: i.address.wa_id().unwrap_or_default().to_owned(),
                create_time: timestamp(i.create_time),
                provider_user_id: i.provider_user_id.clone().unwrap_or_default(),
            })
            .collect(),
        state: state as i32,
        merged_contacts: contact
            .merged_from
            .iter()
            .map(|id| contact_name(*id))
            .collect(),
        create_time: timestamp(contact.create_time),
        update_time: timestamp(contact.update_time),
        erase_time: contact.erasure.and_then(|(t, _)| timestamp(t)),
        whatsapp_window_end_time: contact
            .windows
            .iter()
            .filter(|w| w.channel == Channel::Whatsapp)
            .map(|w| w.open_until)
            .max()
            .and_then(timestamp),
        service_windows: contact.windows.iter().map(service_window).collect(),
        erasure: contact.erasure.map(|(_, s)| pb::ErasureSummary {
            identities_removed: s.identities_removed,
            consent_records_removed: s.consent_records_removed,
            messages_redacted: s.messages_redacted,
        }),
    }
}

/// "HH:MM" → minutes after midnight.
pub fn clock(text: &str) -> Result<u16, &'static str> {
    const ERR: &str = "expected 24-hour time \"HH:MM\", for example \"22:00\"";
    let (h, m) = text.split_once(':').ok_or(ERR)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(ERR);
    }
    let h: u16 = h.parse().map_err(|_| ERR)?;
    let m: u16 = m.parse().map_err(|_| ERR)?;
    if h > 23 || m > 59 {
        return Err(ERR);
    }
    Ok(h * 60 + m)
}

fn clock_text(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The preference fields a caller may set.
pub const PREFERENCE_FIELDS: [&str; 5] = [
    "channel_order",
    "categories",
    "quiet_hours",
    "time_zone",
    "locale",
];

fn channel_list(v: &mut Violations, field: &str, values: &[i32]) -> Vec<Channel> {
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if let Some(c) = v.check(format!("{field}[{i}]"), channel(*value)) {
            if out.contains(&c) {
                v.add(format!("{field}[{i}]"), format!("{c} is listed twice"));
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// Validates the preference fields named in `fields`.
pub fn preferences_patch(
    v: &mut Violations,
    prefs: &pb::Preferences,
    fields: &[&str],
) -> domain::PreferencesPatch {
    let mut patch = domain::PreferencesPatch::default();
    for field in fields {
        let path = format!("preferences.{field}");
        match *field {
            "channel_order" => {
                patch.channel_order = Some(channel_list(v, &path, &prefs.channel_order))
            }
            "categories" => {
                let mut out: Vec<domain::CategoryPreference> = Vec::new();
                for (i, c) in prefs.categories.iter().enumerate() {
                    let item = format!("{path}[{i}]");
                    let cat = v.check(format!("{item}.category"), category(c.category));
                    let status = match pb::OptStatus::try_from(c.status) {
                        Ok(pb::OptStatus::Unspecified) => None,
                        Ok(pb::OptStatus::OptedIn) => Some(domain::OptStatus::OptedIn),
                        Ok(pb::OptStatus::OptedOut) => Some(domain::OptStatus::OptedOut),
                        Err(_) => {
                            v.add(format!("{item}.status"), "unknown opt status");
                            None
                        }
                    };
                    let channels = channel_list(v, &format!("{item}.channels"), &c.channels);
                    if let Some(cat) = cat {
                        if out.iter().any(|p| p.category == cat) {
                            v.add(format!("{item}.category"), format!("{cat} is listed twice"));
                        }
                        out.push(domain::CategoryPreference {
                            category: cat,
                            status,
                            channels,
                        });
                    }
                }
                patch.categories = Some(out);
            }
            "quiet_hours" => {
                patch.quiet_hours = Some(match &prefs.quiet_hours {
                    None => None,
                    Some(q) if q.start.is_empty() && q.end.is_empty() => None,
                    Some(q) => {
                        let start = v.check(format!("{path}.start"), clock(&q.start));
                        let end = v.check(format!("{path}.end"), clock(&q.end));
                        match (start, end) {
                            (Some(s), Some(e)) if s == e => {
                                v.add(format!("{path}.end"), "must differ from start");
                                None
                            }
                            (Some(start_minute), Some(end_minute)) => Some(domain::QuietHours {
                                start_minute,
                                end_minute,
                            }),
                            _ => None,
                        }
                    }
                });
            }
            "time_zone" => patch.time_zone = v.check(&path, time_zone(&prefs.time_zone)),
            "locale" => patch.locale = v.check(&path, locale(&prefs.locale)),
            _ => {}
        }
    }
    patch
}

/// Preferences on the wire.
pub fn preferences_to_pb(p: &domain::Preferences) -> pb::Preferences {
    let contact = contact_name(p.contact_id);
    pb::Preferences {
        name: format!("{contact}/preferences"),
        channel_order: p
            .channels
            .channel_order
            .iter()
            .map(|c| channel_to_pb(*c) as i32)
            .collect(),
        categories: p
            .channels
            .categories
            .iter()
            .map(|c| pb::CategoryPreference {
                category: category_to_pb(c.category) as i32,
                status: match c.status {
                    None => pb::OptStatus::Unspecified,
                    Some(domain::OptStatus::OptedIn) => pb::OptStatus::OptedIn,
                    Some(domain::OptStatus::OptedOut) => pb::OptStatus::OptedOut,
                } as i32,
                channels: c
                    .channels
                    .iter()
                    .map(|c| channel_to_pb(*c) as i32)
                    .collect(),
            })
            .collect(),
        quiet_hours: p.channels.quiet_hours.map(|q| pb::QuietHours {
            start: clock_text(q.start_minute),
            end: clock_text(q.end_minute),
        }),
        time_zone: p.time_zone.clone(),
        locale: p.locale.clone(),
        consents: p
            .consents
            .iter()
            .map(|c| pb::ConsentState {
                channel: channel_to_pb(c.channel) as i32,
                category: category_to_pb(c.category) as i32,
                granted: c.granted,
                consent_record: format!("{contact}/consentRecords/{}", c.record_id),
                record_time: timestamp(c.record_time),
            })
            .collect(),
        update_time: p.update_time.and_then(timestamp),
    }
}

/// Validates a consent record from the wire.
pub fn new_consent(
    v: &mut Violations,
    record: Option<&pb::ConsentRecord>,
) -> Option<domain::NewConsent> {
    let Some(r) = record else {
        v.add("consent_record", "a consent record is required");
        return None;
    };
    let channel = v.check("consent_record.channel", channel(r.channel));
    let category = v.check("consent_record.category", category(r.category));
    let action = match pb::ConsentAction::try_from(r.action) {
        Ok(pb::ConsentAction::Grant) => Some(domain::ConsentAction::Grant),
        Ok(pb::ConsentAction::Revoke) => Some(domain::ConsentAction::Revoke),
        _ => {
            v.add("consent_record.action", "GRANT or REVOKE is required");
            None
        }
    };
    let legal_basis = match pb::LegalBasis::try_from(r.legal_basis) {
        Ok(pb::LegalBasis::Consent) => Some(domain::LegalBasis::Consent),
        Ok(pb::LegalBasis::Contract) => Some(domain::LegalBasis::Contract),
        Ok(pb::LegalBasis::LegalObligation) => Some(domain::LegalBasis::LegalObligation),
        Ok(pb::LegalBasis::VitalInterests) => Some(domain::LegalBasis::VitalInterests),
        Ok(pb::LegalBasis::PublicTask) => Some(domain::LegalBasis::PublicTask),
        Ok(pb::LegalBasis::LegitimateInterests) => Some(domain::LegalBasis::LegitimateInterests),
        _ => {
            v.add("consent_record.legal_basis", "a legal basis is required");
            None
        }
    };
    let source = v.check(
        "consent_record.source",
        bounded_text(&r.source, MAX_NAME_LEN),
    );
    if source.as_deref() == Some("") {
        v.add(
            "consent_record.source",
            "a source is required, for example \"checkout-form\"",
        );
    }
    let evidence = v.check(
        "consent_record.evidence",
        bounded_text(&r.evidence, MAX_TEXT_LEN),
    );
    let record_time = match &r.record_time {
        None => Some(None),
        Some(t) => match SystemTime::try_from(*t) {
            Ok(t) if t <= SystemTime::now() + std::time::Duration::from_secs(300) => Some(Some(t)),
            Ok(_) => {
                v.add("consent_record.record_time", "lies in the future");
                None
            }
            Err(_) => {
                v.add("consent_record.record_time", "not a valid timestamp");
                None
            }
        },
    };
    Some(domain::NewConsent {
        channel: channel?,
        category: category?,
        action: action?,
        source: source?,
        legal_basis: legal_basis?,
        evidence: evidence?,
        record_time: record_time?,
    })
}

/// A consent record on the wire.
pub fn consent_to_pb(r: &domain::ConsentRecord) -> pb::ConsentRecord {
    pb::ConsentRecord {
        name: format!("{}/consentRecords/{}", contact_name(r.contact_id), r.id),
        channel: channel_to_pb(r.channel) as i32,
        category: category_to_pb(r.category) as i32,
        action: match r.action {
            domain::ConsentAction::Grant => pb::ConsentAction::Grant,
            domain::ConsentAction::Revoke => pb::ConsentAction::Revoke,
        } as i32,
        source: r.source.clone(),
        legal_basis: match r.legal_basis {
            domain::LegalBasis::Consent => pb::LegalBasis::Consent,
            domain::LegalBasis::Contract => pb::LegalBasis::Contract,
            domain::LegalBasis::LegalObligation => pb::LegalBasis::LegalObligation,
            domain::LegalBasis::VitalInterests => pb::LegalBasis::VitalInterests,
            domain::LegalBasis::PublicTask => pb::LegalBasis::PublicTask,
            domain::LegalBasis::LegitimateInterests => pb::LegalBasis::LegitimateInterests,
        } as i32,
        evidence: r.evidence.clone(),
        record_time: timestamp(r.record_time),
        create_time: timestamp(r.create_time),
    }
}

/// A customer service window on the wire.
pub fn service_window(window: &omniroute_domain::ServiceWindow) -> pb::ServiceWindow {
    pb::ServiceWindow {
        channel: channel_to_pb(window.channel).into(),
        open_until: timestamp(window.open_until),
        line: window.line.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_are_checked_and_canonicalized() {
        assert_eq!(locale("de-de").unwrap(), "de-DE");
        assert_eq!(locale("pt_BR").unwrap(), "pt-BR");
        assert_eq!(locale("zh-hant-tw").unwrap(), "zh-Hant-TW");
        assert!(locale("german!").is_err());
        assert!(locale("d").is_err());
    }

    #[test]
    fn time_zones_come_from_the_database() {
        assert!(time_zone("Europe/Berlin").is_ok());
        assert!(time_zone("Mars/Olympus").is_err());
    }

    #[test]
    fn clock_times() {
        assert_eq!(clock("22:30").unwrap(), 22 * 60 + 30);
        assert!(clock("24:00").is_err());
        assert!(clock("7:00").is_err());
    }

    #[test]
    fn contact_names() {
        let id = Uuid::now_v7();
        assert_eq!(contact_id("name", &contact_name(id)).unwrap(), id);
        assert!(contact_id("name", "contacts/nope").is_err());
        assert!(contact_id("name", &format!("users/{id}")).is_err());
        assert!(contact_id("name", &format!("contacts/{}", id.simple())).is_err());
    }
}
