//! Builders and assertions shared by the conformance checks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use omniroute_channel::{Address, Category, Channel, PhoneRegion, lookup_keys};
use omniroute_domain::{
    ConsentAction, Contact, ContactQuery, LegalBasis, NewConsent, NewContact, Profile,
};
use omniroute_store::prelude::*;
use uuid::Uuid;

/// The store under test.
pub type S = Arc<dyn Store>;

/// The tenant most checks use.
pub const T: &str = "tenant-a";

/// Asserts that a result is an error matching a pattern (with an optional
/// guard), printing what it was otherwise.
macro_rules! assert_err {
    ($result:expr, $pattern:pat $(if $guard:expr)? $(,)?) => {
        match $result {
            Err($pattern) $(if $guard)? => {}
            other => panic!(
                "expected Err({}), got {:?}",
                stringify!($pattern $(if $guard)?),
                other
            ),
        }
    };
}
pub(crate) use assert_err;

pub fn de() -> PhoneRegion {
    "DE".parse().expect("DE is a region")
}

pub fn email(input: &str) -> Address {
    Address::parse(Channel::Email, input, de()).expect("valid email")
}

pub fn whatsapp(input: &str) -> Address {
    Address::parse(Channel::Whatsapp, input, de()).expect("valid wa_id")
}

pub fn voice(input: &str) -> Address {
    Address::parse(Channel::Voice, input, de()).expect("valid phone number")
}

pub fn keys(input: &str) -> Vec<(Channel, String)> {
    lookup_keys(input, de()).expect("valid lookup input")
}

pub fn named(name: &str) -> Profile {
    Profile {
        display_name: name.to_owned(),
        ..Profile::default()
    }
}

pub fn attributes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| (*v).to_owned()).collect()
}

/// Creates a contact, panicking on failure.
pub async fn create(store: &S, profile: Profile, identities: Vec<Address>) -> Contact {
    store
        .create_contact(
            T,
            NewContact {
                profile,
                identities,
            },
        )
        .await
        .expect("create_contact")
}

pub async fn get(store: &S, id: Uuid) -> Contact {
    store.get_contact(T, id).await.expect("get_contact")
}

/// A consent record to append.
pub fn consent(
    channel: Channel,
    category: Category,
    action: ConsentAction,
    record_time: Option<SystemTime>,
) -> NewConsent {
    NewConsent {
        channel,
        category,
        action,
        source: "web-form".to_owned(),
        legal_basis: LegalBasis::Consent,
        evidence: "checkbox „Newsletter“ ticked".to_owned(),
        record_time,
    }
}

pub fn page(after: Option<Uuid>, limit: usize) -> ContactQuery {
    ContactQuery {
        after,
        limit,
        ..ContactQuery::default()
    }
}

/// Every contact of tenant [`T`] that a default listing shows.
pub async fn list_all(store: &S) -> Vec<Contact> {
    store
        .list_contacts(T, page(None, 1000))
        .await
        .expect("list_contacts")
}

pub fn ids(contacts: &[Contact]) -> Vec<Uuid> {
    contacts.iter().map(|c| c.id).collect()
}

/// The (channel, key, wa_id) of a contact's identities, sorted.
pub fn identity_keys(contact: &Contact) -> Vec<(Channel, String, Option<String>)> {
    let mut keys: Vec<_> = contact
        .identities
        .iter()
        .map(|i| {
            (
                i.address.channel(),
                i.address.key().to_owned(),
                i.address.wa_id().map(str::to_owned),
            )
        })
        .collect();
    keys.sort();
    keys
}

/// The (channel, key) pairs of some addresses, sorted, as
/// [`identity_keys`] reports them.
pub fn address_keys(addresses: &[Address]) -> Vec<(Channel, String, Option<String>)> {
    let mut keys: Vec<_> = addresses
        .iter()
        .map(|a| {
            (
                a.channel(),
                a.key().to_owned(),
                a.wa_id().map(str::to_owned),
            )
        })
        .collect();
    keys.sort();
    keys
}

/// The id of the contact owning any of `keys`, if any.
pub async fn owner_of(store: &S, keys: &[(Channel, String)]) -> Option<Uuid> {
    store
        .find_by_keys(T, keys)
        .await
        .expect("find_by_keys")
        .map(|c| c.id)
}

/// The key of one address, for `find_by_keys`.
pub fn key_of(address: &Address) -> Vec<(Channel, String)> {
    vec![(address.channel(), address.key().to_owned())]
}

/// Awaits racing creates: exactly one wins, and `lost` checks each other
/// one's error (given the winner); the winner.
pub async fn the_one_winner<W, E>(
    tasks: Vec<tokio::task::JoinHandle<Result<W, E>>>,
    lost: impl Fn(&W, &E),
) -> W
where
    W: Clone + std::fmt::Debug,
    E: std::fmt::Debug,
{
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("the task ran"));
    }
    let winners: Vec<&W> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one create wins: {results:?}");
    let winner = winners[0].clone();
    for error in results.iter().filter_map(|r| r.as_ref().err()) {
        lost(&winner, error);
    }
    winner
}

/// Appends a grant (recorded now) to a contact's consent ledger,
/// panicking on failure; the stored record.
pub async fn append_grant(
    store: &S,
    contact: Uuid,
    channel: Channel,
    category: Category,
) -> omniroute_domain::ConsentRecord {
    let grant = consent(channel, category, ConsentAction::Grant, None);
    store
        .record_consent(T, contact, grant)
        .await
        .expect("record_consent")
}

/// Appends a revocation (recorded now) to a contact's consent ledger,
/// panicking on failure; the stored record.
pub async fn append_revocation(
    store: &S,
    contact: Uuid,
    channel: Channel,
    category: Category,
) -> omniroute_domain::ConsentRecord {
    let revoke = consent(channel, category, ConsentAction::Revoke, None);
    store
        .record_consent(T, contact, revoke)
        .await
        .expect("record_consent")
}

/// Anna's profile with every field set: locale, zone, external reference
/// `crm-1`, the label `vip` and the attribute `tier = gold`.
pub fn full_profile() -> Profile {
    Profile {
        display_name: "Anna".into(),
        locale: "de-DE".into(),
        time_zone: "Europe/Berlin".into(),
        external_ref: Some("crm-1".into()),
        labels: strings(&["vip"]),
        attributes: attributes(&[("tier", "gold")]),
    }
}
