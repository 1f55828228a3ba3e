//! Merging contacts: which contacts retire, what the survivor becomes, and
//! what is written for it.
//!
//! A backend runs a merge in three steps inside one transaction:
//! 1. it locks (or, on the single writer, reads) every contact named, in the
//!    order [`lock_order`] gives, resolving each to its survivor;
//! 2. [`retire`] checks the request against what was resolved and names the
//!    survivor and the contacts that retire;
//! 3. it reads those contacts (with their windows) and their channel
//!    preferences, and [`plan`] says what to write.

use std::collections::HashMap;
use std::time::SystemTime;

use uuid::Uuid;

use crate::events::{EventType, NewEvent, contact_event};
use crate::model::{ChannelPreferences, Contact, ContactState, Profile, merge_profiles};
use crate::{Result, ServiceWindow, StoreError};

/// Every contact a merge of `sources` into `survivor` names, each once, in
/// id order: the order to lock them in, so that concurrent merges of
/// overlapping sets wait for each other instead of deadlocking.
pub fn lock_order(survivor: Uuid, sources: &[Uuid]) -> Vec<Uuid> {
    let mut all: Vec<Uuid> = sources.to_vec();
    all.push(survivor);
    all.sort();
    all.dedup();
    all
}

/// The contacts a merge involves, once resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// The contact that stays (the requested survivor, resolved).
    pub survivor: Uuid,
    /// The contacts that retire into it, each once, in the order asked;
    /// empty when every source was merged into the survivor before.
    pub retired: Vec<Uuid>,
}

/// Checks a merge request against what each id resolved to (its survivor
/// and state, for every id of [`lock_order`]): the survivor must be active,
/// no contact merges into itself, no erased contact merges. A source
/// merged into the survivor before is skipped (nothing is left to move).
pub fn retire(
    survivor: Uuid,
    sources: &[Uuid],
    resolved: &HashMap<Uuid, (Uuid, ContactState)>,
) -> Result<Retirement> {
    let lookup = |id: Uuid| {
        resolved
            .get(&id)
            .copied()
            .ok_or_else(|| StoreError::contact_not_found(id))
    };
    let (survivor_id, state) = lookup(survivor)?;
    if state != ContactState::Active {
        return Err(StoreError::Erased(survivor_id));
    }
    let mut retired = Vec::new();
    for &source in sources {
        let (id, state) = lookup(source)?;
        if id == survivor_id {
            if source == survivor {
                return Err(StoreError::InvalidMerge(format!(
                    "contacts/{survivor} cannot be merged into itself"
                )));
            }
            continue;
        }
        if state != ContactState::Active {
            return Err(StoreError::InvalidMerge(format!("contacts/{id} is erased")));
        }
        if !retired.contains(&id) {
            retired.push(id);
        }
    }
    Ok(Retirement {
        survivor: survivor_id,
        retired,
    })
}

/// What a merge writes.
#[derive(Debug, Clone, PartialEq)]
pub struct MergePlan {
    /// The contact that stays.
    pub survivor: Uuid,
    /// The contacts that retire: their identities, consent records,
    /// messages, watches and windows move to the survivor, the ids merged
    /// into them before are re-pointed at it (so every retired id resolves
    /// in one step), and their rows become empty tombstones
    /// ([`MergePlan::retired_state`], `merged_into` the survivor).
    pub retired: Vec<Uuid>,
    /// The survivor's profile: its own values win, empty fields are filled
    /// from the retired contacts in order, labels and attributes united.
    pub profile: Profile,
    /// The survivor's channel preferences: its own, or when it has none the
    /// first retired contact's that has some.
    pub preferences: ChannelPreferences,
    /// The survivor's windows after the merge, per channel and line the
    /// latest of all, for each channel and line a retired contact had a
    /// window on (the survivor's other windows stay as they are). Written
    /// as upserts that never shorten a window and clear its closing notice.
    pub windows: Vec<ServiceWindow>,
    /// The state the retired rows take.
    pub retired_state: ContactState,
    /// The time of every change.
    pub now: SystemTime,
    /// The events to append: `ContactMerged` when anything retired.
    pub events: Vec<NewEvent>,
}

/// Plans a merge of `retired` (each with its channel preferences, in the
/// order of [`Retirement::retired`]) into `survivor`.
pub fn plan(
    survivor: &Contact,
    survivor_preferences: ChannelPreferences,
    retired: &[(Contact, ChannelPreferences)],
    now: SystemTime,
) -> MergePlan {
    let mut profile = survivor.profile.clone();
    let mut preferences = survivor_preferences;
    for (contact, prefs) in retired {
        merge_profiles(&mut profile, &contact.profile);
        if preferences.is_empty() {
            preferences.clone_from(prefs);
        }
    }
    let mut windows: Vec<ServiceWindow> = Vec::new();
    for window in retired.iter().flat_map(|(c, _)| &c.windows) {
        match windows
            .iter_mut()
            .find(|w| w.channel == window.channel && w.line == window.line)
        {
            Some(w) => w.open_until = w.open_until.max(window.open_until),
            None => windows.push(window.clone()),
        }
    }
    for w in &mut windows {
        if let Some(own) = survivor
            .windows
            .iter()
            .find(|o| o.channel == w.channel && o.line == w.line)
        {
            w.open_until = w.open_until.max(own.open_until);
        }
    }
    let ids: Vec<Uuid> = retired.iter().map(|(c, _)| c.id).collect();
    let events = if ids.is_empty() {
        Vec::new()
    } else {
        vec![contact_event(
            EventType::ContactMerged,
            survivor.id,
            ids.clone(),
        )]
    };
    MergePlan {
        survivor: survivor.id,
        retired: ids,
        profile,
        preferences,
        windows,
        retired_state: ContactState::Merged,
        now,
        events,
    }
}
