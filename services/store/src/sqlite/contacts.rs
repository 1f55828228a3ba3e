//! Contacts on SQLite: resolution of merged ids, loading a contact with its
//! identities and merges, identity links, profile writes, preference and
//! consent reads. [`ContactStore`] for
//! [`SqliteStore`] runs them in its transactions (merge and erasure execute
//! their plans in `lifecycle.rs`).

use omniroute_channel::{Address, Category, Channel};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{SqliteStore, events, lifecycle};
use super::{db, from_json, json, uuid_col};
use crate::dedup_addresses;
use crate::events::{EventType, contact_event};
use crate::model::*;
use crate::parts::ContactStore;
use crate::{Result, StoreError};
use async_trait::async_trait;

/// The id a (possibly merged) id resolves to, with its state.
pub(super) fn resolve(tx: &Connection, tenant: &str, id: Uuid) -> Result<(Uuid, ContactState)> {
    let row: Option<(i16, Option<String>)> = tx
        .prepare_cached("SELECT state, merged_into FROM contacts WHERE tenant = ?1 AND id = ?2")
        .map_err(db)?
        .query_row(params![tenant, id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(db)?;
    match row {
        None => Err(StoreError::contact_not_found(id)),
        Some((state, Some(into))) if ContactState::from_code(state) == ContactState::Merged => {
            resolve(tx, tenant, uuid_col(into))
        }
        Some((state, _)) => Ok((id, ContactState::from_code(state))),
    }
}

/// Resolves and requires an active contact.
pub(super) fn resolve_active(tx: &Connection, tenant: &str, id: Uuid) -> Result<Uuid> {
    match resolve(tx, tenant, id)? {
        (id, ContactState::Active) => Ok(id),
        (id, _) => Err(StoreError::Erased(id)),
    }
}

pub(super) fn load_contact(tx: &Connection, tenant: &str, id: Uuid) -> Result<Contact> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT state, display_name, locale, time_zone, external_ref, labels, attributes,
                    create_time, update_time, erase_time, erasure,
                    (SELECT json_group_array(json_array(w.channel, w.line, w.open_until))
                     FROM (SELECT channel, line, open_until FROM service_windows
                           WHERE tenant = ?1 AND contact_id = ?2 ORDER BY channel, line) w),
                    version
             FROM contacts WHERE tenant = ?1 AND id = ?2",
        )
        .map_err(db)?;
    let mut contact = stmt
        .query_row(params![tenant, id.to_string()], |r| {
            let erase_time: Option<i64> = r.get(9)?;
            let erasure: Option<String> = r.get(10)?;
            Ok(Contact {
                id,
                state: ContactState::from_code(r.get(0)?),
                profile: Profile {
                    display_name: r.get(1)?,
                    locale: r.get(2)?,
                    time_zone: r.get(3)?,
                    external_ref: r.get(4)?,
                    labels: from_json(&r.get::<_, String>(5)?),
                    attributes: from_json(&r.get::<_, String>(6)?),
                },
                identities: Vec::new(),
                merged_from: Vec::new(),
                create_time: from_micros(r.get(7)?),
                update_time: from_micros(r.get(8)?),
                erasure: erase_time.map(|t| {
                    (
                        from_micros(t),
                        erasure
                            .map(|e| from_json::<ErasureSummary>(&e))
                            .unwrap_or_default(),
                    )
                }),
                windows: crate::model::windows_from_json(
                    r.get::<_, Option<String>>(11)?.as_deref(),
                ),
                version: r.get(12)?,
            })
        })
        .optional()
        .map_err(db)?
        .ok_or_else(|| StoreError::contact_not_found(id))?;

    let mut stmt = tx
        .prepare_cached(
            "SELECT channel, key, address, wa_id, create_time, provider_user_id FROM identities
             WHERE tenant = ?1 AND contact_id = ?2 ORDER BY create_time, channel, key",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map(params![tenant, id.to_string()], |r| {
            let channel: String = r.get(0)?;
            Ok((
                channel,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })
        .map_err(db)?;
    for row in rows {
        let (channel, key, address, wa_id, created, provider_user_id) = row.map_err(db)?;
        if let Some(channel) = Channel::parse(&channel) {
            contact.identities.push(Identity {
                address: Address::from_stored(channel, address, key, wa_id),
                create_time: from_micros(created),
                provider_user_id,
            });
        }
    }

    let mut stmt = tx
        .prepare_cached(
            "SELECT id FROM contacts WHERE tenant = ?1 AND merged_into = ?2 ORDER BY id",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map(params![tenant, id.to_string()], |r| r.get::<_, String>(0))
        .map_err(db)?;
    for row in rows {
        contact.merged_from.push(uuid_col(row.map_err(db)?));
    }
    Ok(contact)
}

pub(super) fn check_external_ref(
    tx: &Connection,
    tenant: &str,
    external_ref: Option<&str>,
    except: Uuid,
) -> Result<()> {
    let Some(external_ref) = external_ref else {
        return Ok(());
    };
    let owner: Option<String> = tx
        .prepare_cached(
            "SELECT id FROM contacts WHERE tenant = ?1 AND external_ref = ?2 AND id <> ?3",
        )
        .map_err(db)?
        .query_row(params![tenant, external_ref, except.to_string()], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db)?;
    match owner {
        Some(owner) => Err(StoreError::ExternalRefTaken {
            owner: uuid_col(owner),
        }),
        None => Ok(()),
    }
}

/// Links an address to a contact, refusing one owned by another contact.
pub(super) fn link(
    tx: &Connection,
    tenant: &str,
    id: Uuid,
    address: &Address,
    now: i64,
) -> Result<()> {
    let owner: Option<String> = tx
        .prepare_cached(
            "SELECT contact_id FROM identities WHERE tenant = ?1 AND channel = ?2 AND key = ?3",
        )
        .map_err(db)?
        .query_row(
            params![tenant, address.channel().as_str(), address.key()],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    match owner.map(uuid_col) {
        Some(owner) if owner != id => Err(StoreError::IdentityTaken {
            channel: address.channel(),
            owner,
        }),
        Some(_) => {
            tx.prepare_cached(
                "UPDATE identities SET wa_id = COALESCE(?4, wa_id)
                 WHERE tenant = ?1 AND channel = ?2 AND key = ?3",
            )
            .map_err(db)?
            .execute(params![
                tenant,
                address.channel().as_str(),
                address.key(),
                address.wa_id()
            ])
            .map_err(db)?;
            Ok(())
        }
        None => {
            tx.prepare_cached(
                "INSERT INTO identities (tenant, channel, key, address, wa_id, contact_id, create_time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(db)?
            .execute(params![
                tenant,
                address.channel().as_str(),
                address.key(),
                address.value(),
                address.wa_id(),
                id.to_string(),
                now
            ])
            .map_err(db)?;
            Ok(())
        }
    }
}

pub(super) fn write_profile(
    tx: &Connection,
    tenant: &str,
    id: Uuid,
    p: &Profile,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE contacts SET display_name = ?3, locale = ?4, time_zone = ?5, external_ref = ?6,
                labels = ?7, attributes = ?8, update_time = ?9
         WHERE tenant = ?1 AND id = ?2",
    )
    .map_err(db)?
    .execute(params![
        tenant,
        id.to_string(),
        p.display_name,
        p.locale,
        p.time_zone,
        p.external_ref,
        json(&p.labels),
        json(&p.attributes),
        now
    ])
    .map_err(db)?;
    Ok(())
}

pub(super) fn touch(tx: &Connection, tenant: &str, id: Uuid, now: i64) -> Result<()> {
    tx.prepare_cached("UPDATE contacts SET update_time = ?3 WHERE tenant = ?1 AND id = ?2")
        .map_err(db)?
        .execute(params![tenant, id.to_string(), now])
        .map_err(db)?;
    Ok(())
}

pub(super) fn read_preferences(tx: &Connection, tenant: &str, id: Uuid) -> Result<Preferences> {
    let (channels, time_zone, locale, updated): (String, String, String, Option<i64>) = tx
        .prepare_cached(
            "SELECT preferences, time_zone, locale, preferences_update_time
             FROM contacts WHERE tenant = ?1 AND id = ?2",
        )
        .map_err(db)?
        .query_row(params![tenant, id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .map_err(db)?;
    let records = read_consents(tx, tenant, id, None, usize::MAX)?;
    Ok(Preferences {
        contact_id: id,
        channels: from_json(&channels),
        time_zone,
        locale,
        consents: derive_consents(&records),
        update_time: updated.map(from_micros),
    })
}

pub(super) fn read_consents(
    tx: &Connection,
    tenant: &str,
    id: Uuid,
    after: Option<Uuid>,
    limit: usize,
) -> Result<Vec<ConsentRecord>> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT id, channel, category, action, source, legal_basis, evidence, record_time, create_time
             FROM consent_records
             WHERE tenant = ?1 AND contact_id = ?2 AND id > ?3
             ORDER BY id LIMIT ?4",
        )
        .map_err(db)?;
    let after = after.map(|a| a.to_string()).unwrap_or_default();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![tenant, id.to_string(), after, limit], |r| {
            let channel: String = r.get(1)?;
            let category: String = r.get(2)?;
            let action: i16 = r.get(3)?;
            Ok((
                r.get::<_, String>(0)?,
                channel,
                category,
                action,
                r.get::<_, String>(4)?,
                r.get::<_, i16>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, i64>(8)?,
            ))
        })
        .map_err(db)?;
    let mut records = Vec::new();
    for row in rows {
        let (rid, channel, category, action, source, basis, evidence, record_time, create_time) =
            row.map_err(db)?;
        let (Some(channel), Some(category)) =
            (Channel::parse(&channel), Category::parse(&category))
        else {
            continue;
        };
        records.push(ConsentRecord {
            id: uuid_col(rid),
            contact_id: id,
            channel,
            category,
            action: if action == 2 {
                ConsentAction::Revoke
            } else {
                ConsentAction::Grant
            },
            source,
            legal_basis: LegalBasis::from_code(basis),
            evidence,
            record_time: from_micros(record_time),
            create_time: from_micros(create_time),
        });
    }
    Ok(records)
}

/// The stored channel preferences of a contact (a resolved id).
pub(super) fn read_channel_preferences(
    tx: &Connection,
    tenant: &str,
    id: Uuid,
) -> Result<ChannelPreferences> {
    let stored: String = tx
        .prepare_cached("SELECT preferences FROM contacts WHERE tenant = ?1 AND id = ?2")
        .map_err(db)?
        .query_row(params![tenant, id.to_string()], |r| r.get(0))
        .map_err(db)?;
    Ok(from_json(&stored))
}

/// One lookup of [`crate::ContactStore::routing_contacts`], inside the caller's
/// read transaction (one snapshot: the version read is the data's).
pub(super) fn routing_contact(
    tx: &Connection,
    tenant: &str,
    lookup: &ContactLookup,
) -> Result<Option<RoutingContact>> {
    let id = match lookup {
        ContactLookup::Id(id) => match resolve(tx, tenant, *id) {
            Ok((id, _)) => Some(id),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        },
        ContactLookup::ExternalRef(external_ref) => tx
            .prepare_cached("SELECT id FROM contacts WHERE tenant = ?1 AND external_ref = ?2")
            .map_err(db)?
            .query_row(params![tenant, external_ref], |r| r.get::<_, String>(0))
            .optional()
            .map_err(db)?
            .map(uuid_col),
        ContactLookup::Identity(channel, key) => tx
            .prepare_cached(
                "SELECT contact_id FROM identities WHERE tenant = ?1 AND channel = ?2 AND key = ?3",
            )
            .map_err(db)?
            .query_row(params![tenant, channel.as_str(), key], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(db)?
            .map(uuid_col),
    };
    let Some(id) = id else {
        return Ok(None);
    };
    Ok(Some(RoutingContact {
        contact: load_contact(tx, tenant, id)?,
        preferences: read_preferences(tx, tenant, id)?,
    }))
}

#[async_trait]
impl ContactStore for SqliteStore {
    async fn create_contact(&self, tenant: &str, contact: NewContact) -> Result<Contact> {
        let tenant = tenant.to_owned();
        self.write(move |tx| {
            let id = Uuid::now_v7();
            let now = to_micros(now());
            check_external_ref(tx, &tenant, contact.profile.external_ref.as_deref(), id)?;
            let p = &contact.profile;
            tx.prepare_cached(
                "INSERT INTO contacts (tenant, id, state, display_name, locale, time_zone, external_ref,
                        labels, attributes, preferences, create_time, update_time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '{}', ?10, ?10)",
            )
            .map_err(db)?
            .execute(params![
                tenant,
                id.to_string(),
                ContactState::Active.code(),
                p.display_name,
                p.locale,
                p.time_zone,
                p.external_ref,
                json(&p.labels),
                json(&p.attributes),
                now
            ])
            .map_err(db)?;
            for address in dedup_addresses(contact.identities) {
                link(tx, &tenant, id, &address, now)?;
            }
            let event = contact_event(EventType::ContactCreated, id, Vec::new());
            events::append(tx, &tenant, &event, from_micros(now))?;
            load_contact(tx, &tenant, id)
        })
        .await
    }

    async fn get_contact(&self, tenant: &str, id: Uuid) -> Result<Contact> {
        let tenant = tenant.to_owned();
        self.read(move |tx| {
            let (id, _) = resolve(tx, &tenant, id)?;
            load_contact(tx, &tenant, id)
        })
        .await
    }

    async fn list_contacts(&self, tenant: &str, query: ContactQuery) -> Result<Vec<Contact>> {
        let tenant = tenant.to_owned();
        self.read(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id FROM contacts
                     WHERE tenant = ?1 AND id > ?2
                       AND (state = ?6 OR (?3 AND state = ?7))
                       AND (?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(contacts.labels) WHERE value = ?4))
                     ORDER BY id LIMIT ?5",
                )
                .map_err(db)?;
            let after = query.after.map(|a| a.to_string()).unwrap_or_default();
            let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
            let ids: Vec<String> = stmt
                .query_map(
                    params![
                        tenant,
                        after,
                        query.show_erased,
                        query.label,
                        limit,
                        ContactState::Active.code(),
                        ContactState::Erased.code()
                    ],
                    |r| r.get(0),
                )
                .map_err(db)?
                .collect::<Result<_, _>>()
                .map_err(db)?;
            ids.into_iter()
                .map(|id| load_contact(tx, &tenant, uuid_col(id)))
                .collect()
        })
        .await
    }

    async fn update_contact(&self, tenant: &str, id: Uuid, patch: ProfilePatch) -> Result<Contact> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let id = resolve_active(tx, &tenant, id)?;
            let mut profile = load_contact(tx, &tenant, id)?.profile;
            patch.apply(&mut profile);
            check_external_ref(tx, &tenant, profile.external_ref.as_deref(), id)?;
            write_profile(tx, &tenant, id, &profile, to_micros(now()))?;
            load_contact(tx, &tenant, id)
        })
        .await
    }

    async fn link_identity(&self, tenant: &str, id: Uuid, address: Address) -> Result<Contact> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let id = resolve_active(tx, &tenant, id)?;
            let now = to_micros(now());
            link(tx, &tenant, id, &address, now)?;
            touch(tx, &tenant, id, now)?;
            load_contact(tx, &tenant, id)
        })
        .await
    }

    async fn unlink_identity(&self, tenant: &str, id: Uuid, address: Address) -> Result<Contact> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let id = resolve_active(tx, &tenant, id)?;
            let removed = tx
                .prepare_cached(
                    "DELETE FROM identities
                     WHERE tenant = ?1 AND channel = ?2 AND key = ?3 AND contact_id = ?4",
                )
                .map_err(db)?
                .execute(params![
                    tenant,
                    address.channel().as_str(),
                    address.key(),
                    id.to_string()
                ])
                .map_err(db)?;
            if removed == 0 {
                return Err(StoreError::IdentityNotLinked(id));
            }
            touch(tx, &tenant, id, to_micros(now()))?;
            load_contact(tx, &tenant, id)
        })
        .await
    }

    async fn find_by_keys(
        &self,
        tenant: &str,
        keys: &[(Channel, String)],
    ) -> Result<Option<Contact>> {
        let tenant = tenant.to_owned();
        let keys = keys.to_vec();
        self.read(move |tx| {
            for (channel, key) in &keys {
                let owner: Option<String> = tx
                    .prepare_cached(
                        "SELECT contact_id FROM identities
                         WHERE tenant = ?1 AND channel = ?2 AND key = ?3",
                    )
                    .map_err(db)?
                    .query_row(params![tenant, channel.as_str(), key], |r| r.get(0))
                    .optional()
                    .map_err(db)?;
                if let Some(owner) = owner {
                    return load_contact(tx, &tenant, uuid_col(owner)).map(Some);
                }
            }
            Ok(None)
        })
        .await
    }

    async fn find_by_external_ref(
        &self,
        tenant: &str,
        external_ref: &str,
    ) -> Result<Option<Contact>> {
        let tenant = tenant.to_owned();
        let external_ref = external_ref.to_owned();
        self.read(move |tx| {
            let id: Option<String> = tx
                .prepare_cached("SELECT id FROM contacts WHERE tenant = ?1 AND external_ref = ?2")
                .map_err(db)?
                .query_row(params![tenant, external_ref], |r| r.get(0))
                .optional()
                .map_err(db)?;
            id.map(|id| load_contact(tx, &tenant, uuid_col(id)))
                .transpose()
        })
        .await
    }

    async fn merge_contacts(
        &self,
        tenant: &str,
        survivor: Uuid,
        sources: &[Uuid],
    ) -> Result<Contact> {
        let tenant = tenant.to_owned();
        let sources = sources.to_vec();
        self.write(move |tx| lifecycle::merge(tx, &tenant, survivor, &sources))
            .await
    }

    async fn erase_contact(&self, tenant: &str, id: Uuid) -> Result<Contact> {
        let tenant = tenant.to_owned();
        let (contact, erased) = self.tx(move |tx| lifecycle::erase(tx, &tenant, id)).await?;
        if erased {
            self.bump();
            // The WAL's older frames still hold what was erased: empty it
            // into the (zeroed) database pages.
            self.writer.shred().await?;
        }
        Ok(contact)
    }

    async fn export_contact(&self, tenant: &str, id: Uuid) -> Result<ContactExport> {
        let tenant = tenant.to_owned();
        self.read(move |tx| {
            let (id, _) = resolve(tx, &tenant, id)?;
            Ok(ContactExport {
                contact: load_contact(tx, &tenant, id)?,
                preferences: read_preferences(tx, &tenant, id)?,
                consent_records: read_consents(tx, &tenant, id, None, usize::MAX)?,
            })
        })
        .await
    }

    async fn routing_contacts(
        &self,
        tenant: &str,
        lookups: &[ContactLookup],
    ) -> Result<Vec<Option<RoutingContact>>> {
        let tenant = tenant.to_owned();
        let lookups = lookups.to_vec();
        self.read(move |tx| {
            lookups
                .iter()
                .map(|lookup| routing_contact(tx, &tenant, lookup))
                .collect()
        })
        .await
    }
}
