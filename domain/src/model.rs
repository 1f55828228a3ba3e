//! The stored domain records: contacts, identities, preferences and the consent
//! ledger. These are plain data; validation of caller input happens in the API
//! layer before anything reaches a store, and the stores enforce only the
//! invariants a database must (identity and external-reference uniqueness,
//! merge and erasure atomicity).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use omniroute_channel::{Address, Category, Channel};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The current time, truncated to microseconds: the precision both stores keep,
/// so that a record reads back exactly as it was written.
pub fn now() -> SystemTime {
    from_micros(to_micros(SystemTime::now()))
}

/// Microseconds since the Unix epoch.
pub fn to_micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The inverse of [`to_micros`].
pub fn from_micros(micros: i64) -> SystemTime {
    if micros >= 0 {
        UNIX_EPOCH + Duration::from_micros(micros.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs())
    }
}

/// Lifecycle of a contact row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactState {
    /// A live contact.
    Active,
    /// Erased: a tombstone with counts.
    Erased,
    /// Merged into another contact; its id resolves to the survivor. Never
    /// returned by a store: reads follow the merge.
    Merged,
}

impl ContactState {
    pub fn code(self) -> i16 {
        match self {
            ContactState::Active => 1,
            ContactState::Erased => 2,
            ContactState::Merged => 3,
        }
    }

    pub fn from_code(code: i16) -> ContactState {
        match code {
            2 => ContactState::Erased,
            3 => ContactState::Merged,
            _ => ContactState::Active,
        }
    }
}

/// The company's data about a customer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// How the company addresses the customer.
    pub display_name: String,
    /// BCP 47 tag, validated by the API layer.
    pub locale: String,
    /// IANA zone name, validated by the API layer.
    pub time_zone: String,
    /// The company's CRM id; unique per tenant.
    pub external_ref: Option<String>,
    /// Free labels, deduplicated, in the order given.
    pub labels: Vec<String>,
    /// Free attributes.
    pub attributes: BTreeMap<String, String>,
}

/// A change to some fields of a [`Profile`]; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilePatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New locale.
    pub locale: Option<String>,
    /// New time zone.
    pub time_zone: Option<String>,
    /// New external reference; `Some(None)` clears it.
    pub external_ref: Option<Option<String>>,
    /// New labels, replacing the old ones.
    pub labels: Option<Vec<String>>,
    /// New attributes, replacing the old ones.
    pub attributes: Option<BTreeMap<String, String>>,
}

impl ProfilePatch {
    pub fn apply(self, profile: &mut Profile) {
        if let Some(v) = self.display_name {
            profile.display_name = v;
        }
        if let Some(v) = self.locale {
            profile.locale = v;
        }
        if let Some(v) = self.time_zone {
            profile.time_zone = v;
        }
        if let Some(v) = self.external_ref {
            profile.external_ref = v;
        }
        if let Some(v) = self.labels {
            profile.labels = v;
        }
        if let Some(v) = self.attributes {
            profile.attributes = v;
        }
    }
}

/// An identity linked to a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The normalized address.
    pub address: Address,
    /// When it was linked.
    pub create_time: SystemTime,
    /// A provider-scoped user id (WhatsApp's business-scoped user id), when
    /// the provider reported one.
    pub provider_user_id: Option<String>,
}

/// What erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureSummary {
    pub identities_removed: i32,
    pub consent_records_removed: i32,
    pub messages_redacted: i32,
}

/// A contact as read from a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The contact's id.
    pub id: Uuid,
    /// Active or erased.
    pub state: ContactState,
    /// The company's data.
    pub profile: Profile,
    /// Linked identities, oldest first.
    pub identities: Vec<Identity>,
    /// Ids of the contacts merged into this one.
    pub merged_from: Vec<Uuid>,
    /// Creation time.
    pub create_time: SystemTime,
    /// Last change of the profile, identities or merges.
    pub update_time: SystemTime,
    /// Erasure time and counts, once erased.
    pub erasure: Option<(SystemTime, ErasureSummary)>,
    /// The customer service windows the customer opened (WhatsApp: 24
    /// hours after their last message), per channel and business line.
    pub windows: Vec<ServiceWindow>,
    /// Bumped by the database on every change to the contact, its identities,
    /// preferences or consent records. A send carries the version its route
    /// was decided on and is committed only while it still holds (see
    /// [`crate::NewMessage::contact_version`).
    pub version: i64,
}

/// A customer service window: while it is open, the business may write to
/// the customer free-form on this channel and line (WhatsApp: 24 hours
/// after the customer's last message to that business number).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceWindow {
    pub channel: Channel,
    /// The business line the customer wrote to or called (the WhatsApp
    /// phone number id, the mailbox, the phone line); empty when unknown
    /// (windows opened before lines were kept).
    #[serde(default)]
    pub line: String,
    /// Open until this time.
    #[serde(with = "micros")]
    pub open_until: SystemTime,
}

mod micros {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(super::to_micros(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(super::from_micros(i64::deserialize(d)?))
    }
}

impl Contact {
    /// Until when the customer service window of `channel` on `line` is
    /// open (a window of unknown line counts for every line).
    pub fn window_until(&self, channel: Channel, line: &str) -> Option<SystemTime> {
        self.windows
            .iter()
            .filter(|w| w.channel == channel && (w.line == line || w.line.is_empty()))
            .map(|w| w.open_until)
            .max()
    }
}

/// Windows as both stores' contact reads answer them: a JSON array of
/// `[channel, line, open_until in microseconds]`, or nothing.
pub fn windows_from_json(json: Option<&str>) -> Vec<ServiceWindow> {
    let rows: Vec<(String, String, i64)> = json
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    rows.into_iter()
        .filter_map(|(channel, line, until)| {
            Some(ServiceWindow {
                channel: Channel::parse(&channel)?,
                line,
                open_until: from_micros(until),
            })
        })
        .collect()
}

/// How a send names its contact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContactLookup {
    /// By id (a merged id resolves to its survivor).
    Id(Uuid),
    /// By the company's reference.
    ExternalRef(String),
    /// By one identity: channel and normalized key.
    Identity(Channel, String),
}

/// A contact with everything routing decides on: its identities, state and
/// WhatsApp window (on the contact), preferences and consent state. Its
/// `contact.version` is the version these were read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingContact {
    /// The contact (the survivor for a merged id).
    pub contact: Contact,
    /// Its preferences and derived consent state.
    pub preferences: Preferences,
}

/// A contact to create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewContact {
    pub profile: Profile,
    /// Its first identities.
    pub identities: Vec<Address>,
}

/// Which contacts the store's `list_contacts` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactQuery {
    /// Only contacts created after this id (ids are time-ordered).
    pub after: Option<Uuid>,
    /// At most this many.
    pub limit: usize,
    /// Only contacts with this label.
    pub label: Option<String>,
    /// Include erased tombstones.
    pub show_erased: bool,
}

/// A customer's stated wish about a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptStatus {
    /// Wants these messages.
    OptedIn,
    /// Wants none of these messages.
    OptedOut,
}

/// The wish for one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryPreference {
    pub category: Category,
    /// Opted in or out; `None` when no wish is stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<OptStatus>,
    /// Channels for this category, most preferred first; empty for the
    /// contact-wide order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<Channel>,
}

/// Quiet hours as minutes after local midnight; `start > end` crosses midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    /// Start, minutes after midnight (0..1440).
    pub start_minute: u16,
    /// End, minutes after midnight (0..1440).
    pub end_minute: u16,
}

/// The stored channel preferences of a contact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPreferences {
    /// Preferred channels, most preferred first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channel_order: Vec<Channel>,
    /// Per-category wishes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<CategoryPreference>,
    /// When not to reach the customer: no step is due inside them unless
    /// urgent; `None`: any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
}

impl ChannelPreferences {
    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.channel_order.is_empty() && self.categories.is_empty() && self.quiet_hours.is_none()
    }
}

/// A change to some preference fields; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreferencesPatch {
    /// New channel order.
    pub channel_order: Option<Vec<Channel>>,
    /// New category wishes.
    pub categories: Option<Vec<CategoryPreference>>,
    /// New quiet hours; `Some(None)` clears them.
    pub quiet_hours: Option<Option<QuietHours>>,
    /// New time zone (stored on the contact).
    pub time_zone: Option<String>,
    /// New locale (stored on the contact).
    pub locale: Option<String>,
}

impl PreferencesPatch {
    /// Applies the channel fields to `channels`; returns the time zone and
    /// locale changes, which are stored on the contact.
    pub fn apply(self, channels: &mut ChannelPreferences) -> (Option<String>, Option<String>) {
        if let Some(v) = self.channel_order {
            channels.channel_order = v;
        }
        if let Some(v) = self.categories {
            channels.categories = v;
        }
        if let Some(v) = self.quiet_hours {
            channels.quiet_hours = v;
        }
        (self.time_zone, self.locale)
    }
}

/// A contact's preferences with the fields they share with the contact and the
/// consent state derived from the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    /// The contact (the survivor, when asked through a merged id).
    pub contact_id: Uuid,
    /// The stored preferences.
    pub channels: ChannelPreferences,
    /// The contact's time zone.
    pub time_zone: String,
    /// The contact's locale.
    pub locale: String,
    /// Current consent per channel and category that has a record.
    pub consents: Vec<ConsentState>,
    /// Last change of the preferences, if ever changed.
    pub update_time: Option<SystemTime>,
}

/// Grant or revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAction {
    /// Consent given.
    Grant,
    /// Consent withdrawn.
    Revoke,
}

/// GDPR Art. 6(1) legal bases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegalBasis {
    /// (a)
    Consent,
    /// (b)
    Contract,
    /// (c)
    LegalObligation,
    /// (d)
    VitalInterests,
    /// (e)
    PublicTask,
    /// (f)
    LegitimateInterests,
}

impl LegalBasis {
    pub fn code(self) -> i16 {
        match self {
            LegalBasis::Consent => 1,
            LegalBasis::Contract => 2,
            LegalBasis::LegalObligation => 3,
            LegalBasis::VitalInterests => 4,
            LegalBasis::PublicTask => 5,
            LegalBasis::LegitimateInterests => 6,
        }
    }

    pub fn from_code(code: i16) -> LegalBasis {
        match code {
            2 => LegalBasis::Contract,
            3 => LegalBasis::LegalObligation,
            4 => LegalBasis::VitalInterests,
            5 => LegalBasis::PublicTask,
            6 => LegalBasis::LegitimateInterests,
            _ => LegalBasis::Consent,
        }
    }
}

/// A ledger entry to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConsent {
    pub channel: Channel,
    pub category: Category,
    /// Grant or revoke.
    pub action: ConsentAction,
    /// Where it was given.
    pub source: String,
    pub legal_basis: LegalBasis,
    /// Free-form evidence.
    pub evidence: String,
    /// When the customer acted; the store uses now when absent.
    pub record_time: Option<SystemTime>,
}

impl NewConsent {
    /// The record this entry becomes for `contact_id`, stored at `created`.
    /// A missing record time is the storage time; times keep microseconds.
    pub fn into_record(self, contact_id: Uuid, created: SystemTime) -> ConsentRecord {
        ConsentRecord {
            id: Uuid::now_v7(),
            contact_id,
            channel: self.channel,
            category: self.category,
            action: self.action,
            source: self.source,
            legal_basis: self.legal_basis,
            evidence: self.evidence,
            record_time: self
                .record_time
                .map(|t| from_micros(to_micros(t)))
                .unwrap_or(created),
            create_time: created,
        }
    }
}

/// A stored ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    /// The record's id.
    pub id: Uuid,
    /// The contact it belongs to.
    pub contact_id: Uuid,
    pub channel: Channel,
    pub category: Category,
    /// Grant or revoke.
    pub action: ConsentAction,
    /// Where it was given.
    pub source: String,
    pub legal_basis: LegalBasis,
    /// Free-form evidence.
    pub evidence: String,
    /// When the customer acted.
    pub record_time: SystemTime,
    /// When it was stored.
    pub create_time: SystemTime,
}

/// The current consent for one channel and category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentState {
    pub channel: Channel,
    pub category: Category,
    /// Whether the deciding record is a grant.
    pub granted: bool,
    /// The deciding record.
    pub record_id: Uuid,
    pub record_time: SystemTime,
}

/// Derives the current consent per (channel, category) from a ledger: the
/// record with the latest record time wins; among equal times, the one stored
/// last. Sorted by channel, then category.
pub fn derive_consents(records: &[ConsentRecord]) -> Vec<ConsentState> {
    let mut latest: BTreeMap<(Channel, Category), &ConsentRecord> = BTreeMap::new();
    for record in records {
        let slot = latest
            .entry((record.channel, record.category))
            .or_insert(record);
        if (record.record_time, record.create_time, record.id)
            >= (slot.record_time, slot.create_time, slot.id)
        {
            *slot = record;
        }
    }
    latest
        .into_values()
        .map(|r| ConsentState {
            channel: r.channel,
            category: r.category,
            granted: r.action == ConsentAction::Grant,
            record_id: r.id,
            record_time: r.record_time,
        })
        .collect()
}

/// Everything held about a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactExport {
    pub contact: Contact,
    pub preferences: Preferences,
    /// Its consent ledger, oldest first.
    pub consent_records: Vec<ConsentRecord>,
}

/// Merges the profile of a retired contact into the survivor's: the survivor's
/// values win, empty fields are filled, labels and attributes are united.
pub fn merge_profiles(survivor: &mut Profile, source: &Profile) {
    if survivor.display_name.is_empty() {
        survivor.display_name.clone_from(&source.display_name);
    }
    if survivor.locale.is_empty() {
        survivor.locale.clone_from(&source.locale);
    }
    if survivor.time_zone.is_empty() {
        survivor.time_zone.clone_from(&source.time_zone);
    }
    if survivor.external_ref.is_none() {
        survivor.external_ref.clone_from(&source.external_ref);
    }
    for label in &source.labels {
        if !survivor.labels.contains(label) {
            survivor.labels.push(label.clone());
        }
    }
    for (k, v) in &source.attributes {
        survivor
            .attributes
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u128, action: ConsentAction, secs: u64) -> ConsentRecord {
        ConsentRecord {
            id: Uuid::from_u128(n),
            contact_id: Uuid::nil(),
            channel: Channel::Email,
            category: Category::Marketing,
            action,
            source: "test".into(),
            legal_basis: LegalBasis::Consent,
            evidence: String::new(),
            record_time: UNIX_EPOCH + Duration::from_secs(secs),
            create_time: UNIX_EPOCH + Duration::from_secs(n as u64),
        }
    }

    #[test]
    fn latest_record_time_decides_even_when_stored_earlier() {
        // A revoke that happened later but was recorded first still wins over a
        // grant that happened earlier but was recorded afterwards.
        let records = [
            record(1, ConsentAction::Revoke, 200),
            record(2, ConsentAction::Grant, 100),
        ];
        let state = derive_consents(&records);
        assert_eq!(state.len(), 1);
        assert!(!state[0].granted);
        assert_eq!(state[0].record_id, Uuid::from_u128(1));
    }

    #[test]
    fn equal_record_times_go_to_the_record_stored_last() {
        let records = [
            record(1, ConsentAction::Grant, 100),
            record(2, ConsentAction::Revoke, 100),
        ];
        assert!(!derive_consents(&records)[0].granted);
    }

    #[test]
    fn micros_round_trip() {
        let t = now();
        assert_eq!(from_micros(to_micros(t)), t);
        let before = UNIX_EPOCH - Duration::from_micros(5);
        assert_eq!(from_micros(to_micros(before)), before);
    }
}
