//! The contacts sends are routed on, from a cache.
//!
//! Routing a send needs its contact with identities, preferences and consent
//! state; reading those for every send would cost more than writing the
//! message. So they are kept in memory, keyed by how sends name contacts (id,
//! external reference, identity), in two generations: lookups hit the newer
//! and promote from the older; when the newer is full the older is dropped.
//! Entries also expire after a time to live, which bounds how long data of a
//! contact erased through another replica stays in memory.
//!
//! A cached contact may be stale (another replica may have changed it), and
//! that never reaches the database: every accepted message carries the
//! contact version its route was decided on, and the store commits it only
//! while the contact is still at that version (else the send is routed again
//! on fresh data). And nothing is refused on cached data: the caller decides
//! a refusal (opted out, erased, no channel) again on fresh data first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use omniroute_domain::{ContactLookup, RoutingContact};
use omniroute_store::StoreError;
use omniroute_store::prelude::*;

/// A cache key: the tenant and how the contact was named.
type Key = (Arc<str>, ContactLookup);

#[derive(Debug, Clone)]
struct Entry {
    contact: Arc<RoutingContact>,
    loaded: Instant,
}

#[derive(Debug, Default)]
struct Generations {
    current: HashMap<Key, Entry>,
    previous: HashMap<Key, Entry>,
}

/// Contacts for routing, cached (see the module documentation).
#[derive(Debug)]
pub struct Recipients {
    entries: Mutex<Generations>,
    /// Entries per generation; 0 disables the cache.
    generation: usize,
    ttl: Duration,
}

impl Recipients {
    /// A cache of about `capacity` entries, each used for at most `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Recipients {
        Recipients {
            entries: Mutex::default(),
            generation: capacity.div_ceil(2),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached(&self, key: &Key, now: Instant) -> Option<Arc<RoutingContact>> {
        if self.generation == 0 {
            return None;
        }
        let mut entries = self.lock();
        let fresh = |e: &Entry| now.duration_since(e.loaded) < self.ttl;
        if let Some(entry) = entries.current.get(key) {
            return fresh(entry).then(|| Arc::clone(&entry.contact));
        }
        let entry = entries.previous.remove(key).filter(fresh)?;
        let contact = Arc::clone(&entry.contact);
        Self::put(&mut entries, self.generation, key.clone(), entry);
        Some(contact)
    }

    fn put(entries: &mut Generations, generation: usize, key: Key, entry: Entry) {
        if entries.current.len() >= generation {
            entries.previous = std::mem::take(&mut entries.current);
        }
        entries.current.insert(key, entry);
    }

    fn remember(&self, tenant: &Arc<str>, lookup: &ContactLookup, contact: &Arc<RoutingContact>) {
        if self.generation == 0 {
            return;
        }
        let entry = Entry {
            contact: Arc::clone(contact),
            loaded: Instant::now(),
        };
        let mut entries = self.lock();
        // The contact's own id finds it too (a merged id resolves to it).
        let id = ContactLookup::Id(contact.contact.id);
        if *lookup != id {
            Self::put(
                &mut entries,
                self.generation,
                (Arc::clone(tenant), id),
                entry.clone(),
            );
        }
        Self::put(
            &mut entries,
            self.generation,
            (Arc::clone(tenant), lookup.clone()),
            entry,
        );
    }

    /// Forgets what `lookup` found, and the contact `contact_id` by id: it
    /// changed since it was read.
    pub fn forget(&self, tenant: &Arc<str>, lookup: &ContactLookup, contact_id: uuid::Uuid) {
        let mut entries = self.lock();
        for key in [
            (Arc::clone(tenant), lookup.clone()),
            (Arc::clone(tenant), ContactLookup::Id(contact_id)),
        ] {
            entries.current.remove(&key);
            entries.previous.remove(&key);
        }
    }

    /// Forgets every entry of contact `contact_id` (however it was named):
    /// it was erased or merged away, and its data must not outlive that
    /// here.
    pub fn forget_contact(&self, tenant: &str, contact_id: uuid::Uuid) {
        let mut entries = self.lock();
        let other = |key: &Key, entry: &mut Entry| {
            &*key.0 != tenant || entry.contact.contact.id != contact_id
        };
        entries.current.retain(other);
        entries.previous.retain(other);
    }

    /// The contacts `lookups` name, in order (`None` where none matches):
    /// from the cache unless `fresh`, the rest read from the store in one
    /// call, and remembered.
    pub async fn find(
        &self,
        store: &dyn Store,
        tenant: &Arc<str>,
        lookups: &[ContactLookup],
        fresh: bool,
    ) -> Result<Vec<Option<Arc<RoutingContact>>>, StoreError> {
        let now = Instant::now();
        let mut found: Vec<Option<Arc<RoutingContact>>> = lookups
            .iter()
            .map(|lookup| {
                if fresh {
                    None
                } else {
                    self.cached(&(Arc::clone(tenant), lookup.clone()), now)
                }
            })
            .collect();
        let missing: Vec<usize> = (0..lookups.len()).filter(|&i| found[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let wanted: Vec<ContactLookup> = missing.iter().map(|&i| lookups[i].clone()).collect();
        let loaded = store.routing_contacts(tenant, &wanted).await?;
        for (i, contact) in missing.into_iter().zip(loaded) {
            if let Some(contact) = contact {
                let contact = Arc::new(contact);
                self.remember(tenant, &lookups[i], &contact);
                found[i] = Some(contact);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use omniroute_domain::{
        ChannelPreferences, Contact, ContactState, Preferences, Profile, RoutingContact,
    };
    use uuid::Uuid;

    use super::*;

    fn routing(id: Uuid) -> Arc<RoutingContact> {
        Arc::new(RoutingContact {
            contact: Contact {
                id,
                state: ContactState::Active,
                profile: Profile::default(),
                identities: Vec::new(),
                merged_from: Vec::new(),
                create_time: SystemTime::UNIX_EPOCH,
                update_time: SystemTime::UNIX_EPOCH,
                erasure: None,
                windows: Vec::new(),
                version: 1,
            },
            preferences: Preferences {
                contact_id: id,
                channels: ChannelPreferences::default(),
                time_zone: String::new(),
                locale: String::new(),
                consents: Vec::new(),
                update_time: None,
            },
        })
    }

    #[test]
    fn remembers_by_lookup_and_by_id_and_forgets() {
        let cache = Recipients::new(10, Duration::from_secs(60));
        let tenant: Arc<str> = Arc::from("t");
        let id = Uuid::now_v7();
        let by_ref = ContactLookup::ExternalRef("crm-1".into());
        cache.remember(&tenant, &by_ref, &routing(id));
        let now = Instant::now();
        let key = |l: &ContactLookup| (Arc::clone(&tenant), l.clone());
        assert!(cache.cached(&key(&by_ref), now).is_some());
        assert!(cache.cached(&key(&ContactLookup::Id(id)), now).is_some());
        let other: Arc<str> = Arc::from("u");
        assert!(
            cache.cached(&(other, ContactLookup::Id(id)), now).is_none(),
            "tenants never share entries"
        );
        cache.forget(&tenant, &by_ref, id);
        assert!(cache.cached(&key(&by_ref), now).is_none());
        assert!(cache.cached(&key(&ContactLookup::Id(id)), now).is_none());
    }

    #[test]
    fn a_contact_is_forgotten_however_it_was_named() {
        let cache = Recipients::new(10, Duration::from_secs(60));
        let tenant: Arc<str> = Arc::from("t");
        let id = Uuid::now_v7();
        let by_ref = ContactLookup::ExternalRef("crm-1".into());
        cache.remember(&tenant, &by_ref, &routing(id));
        let other = Uuid::now_v7();
        cache.remember(&tenant, &ContactLookup::Id(other), &routing(other));
        cache.forget_contact("t", id);
        let now = Instant::now();
        let key = |l: &ContactLookup| (Arc::clone(&tenant), l.clone());
        assert!(cache.cached(&key(&by_ref), now).is_none());
        assert!(cache.cached(&key(&ContactLookup::Id(id)), now).is_none());
        assert!(cache.cached(&key(&ContactLookup::Id(other)), now).is_some());
    }

    #[test]
    fn entries_expire_and_the_cache_stays_bounded() {
        let cache = Recipients::new(4, Duration::from_secs(60));
        let tenant: Arc<str> = Arc::from("t");
        let ids: Vec<Uuid> = (0..10).map(|_| Uuid::now_v7()).collect();
        for id in &ids {
            cache.remember(&tenant, &ContactLookup::Id(*id), &routing(*id));
        }
        let entries = cache.lock();
        assert!(entries.current.len() + entries.previous.len() <= 4);
        drop(entries);
        let key = (Arc::clone(&tenant), ContactLookup::Id(ids[9]));
        assert!(
            cache.cached(&key, Instant::now()).is_some(),
            "the newest stays"
        );
        let later = Instant::now() + Duration::from_secs(61);
        assert!(
            cache.cached(&key, later).is_none(),
            "an old entry is not used"
        );
        let off = Recipients::new(0, Duration::from_secs(60));
        off.remember(&tenant, &ContactLookup::Id(ids[0]), &routing(ids[0]));
        assert!(
            off.cached(
                &(Arc::clone(&tenant), ContactLookup::Id(ids[0])),
                Instant::now()
            )
            .is_none()
        );
    }
}
