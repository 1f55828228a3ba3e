//! Contacts on PostgreSQL: resolution of merged ids, row locks, loading
//! contacts with their identities in pipelined queries, identity links in one
//! statement, and the preference and consent reads. Called inside the
//! transactions of the `Store` methods in `mod.rs`.

use std::collections::HashMap;
use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use omniroute_channel::{Address, Category, Channel};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::db;
use crate::model::*;
use crate::{Result, StoreError};

/// Resolves a possibly merged id without locking.
pub(super) async fn resolve(
    c: &impl GenericClient,
    tenant: &str,
    id: Uuid,
) -> Result<(Uuid, ContactState)> {
    let stmt = c
        .prepare_cached(
            "SELECT COALESCE(t.id, c.id), COALESCE(t.state, c.state)
             FROM contacts c
             LEFT JOIN contacts t ON c.state = 3 AND t.tenant = c.tenant AND t.id = c.merged_into
             WHERE c.tenant = $1 AND c.id = $2",
        )
        .await
        .map_err(db)?;
    let row = c
        .query_opt(&stmt, &[&tenant, &id])
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::contact_not_found(id))?;
    Ok((row.get(0), ContactState::from_code(row.get(1))))
}

/// Resolves a possibly merged id and locks the resolved row.
pub(super) async fn lock(
    c: &impl GenericClient,
    tenant: &str,
    id: Uuid,
) -> Result<(Uuid, ContactState)> {
    let stmt = c
        .prepare_cached(
            "SELECT state, merged_into FROM contacts WHERE tenant = $1 AND id = $2 FOR UPDATE",
        )
        .await
        .map_err(db)?;
    let mut current = id;
    // Merges re-point every retired id at the survivor, so one hop suffices;
    // the loop only covers a merge that committed while we waited for the lock.
    for _ in 0..4 {
        let row = c
            .query_opt(&stmt, &[&tenant, &current])
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::contact_not_found(id))?;
        let state = ContactState::from_code(row.get(0));
        match (state, row.get::<_, Option<Uuid>>(1)) {
            (ContactState::Merged, Some(into)) => current = into,
            _ => return Ok((current, state)),
        }
    }
    Err(StoreError::contact_not_found(id))
}

pub(super) async fn lock_active(c: &impl GenericClient, tenant: &str, id: Uuid) -> Result<Uuid> {
    match lock(c, tenant, id).await? {
        (id, ContactState::Active) => Ok(id),
        (id, _) => Err(StoreError::Erased(id)),
    }
}

/// Loads contacts by id (already resolved), in the order given.
pub(super) async fn load_contacts(
    c: &impl GenericClient,
    tenant: &str,
    ids: &[Uuid],
) -> Result<Vec<Contact>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let contacts_stmt = c
        .prepare_cached(
            "SELECT id, state, display_name, locale, time_zone, external_ref, labels, attributes,
                    create_time, update_time, erase_time, erasure, whatsapp_window_until, version
             FROM contacts WHERE tenant = $1 AND id = ANY($2)",
        )
        .await
        .map_err(db)?;
    let identities_stmt = c
        .prepare_cached(
            "SELECT contact_id, channel, key, address, wa_id, create_time, provider_user_id
             FROM identities
             WHERE tenant = $1 AND contact_id = ANY($2) ORDER BY create_time, channel, key",
        )
        .await
        .map_err(db)?;
    let merged_stmt = c
        .prepare_cached(
            "SELECT merged_into, id FROM contacts
             WHERE tenant = $1 AND merged_into = ANY($2) ORDER BY id",
        )
        .await
        .map_err(db)?;
    let ids = ids.to_vec();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&tenant, &ids];
    let (rows, identity_rows, merged_rows) = tokio::try_join!(
        c.query(&contacts_stmt, &params),
        c.query(&identities_stmt, &params),
        c.query(&merged_stmt, &params),
    )
    .map_err(db)?;

    let mut by_id: HashMap<Uuid, Contact> = HashMap::with_capacity(rows.len());
    for r in rows {
        let id: Uuid = r.get(0);
        let attributes: serde_json::Value = r.get(7);
        let erase_time: Option<SystemTime> = r.get(10);
        let erasure: Option<serde_json::Value> = r.get(11);
        by_id.insert(
            id,
            Contact {
                id,
                state: ContactState::from_code(r.get(1)),
                profile: Profile {
                    display_name: r.get(2),
                    locale: r.get(3),
                    time_zone: r.get(4),
                    external_ref: r.get(5),
                    labels: r.get(6),
                    attributes: serde_json::from_value(attributes).unwrap_or_default(),
                },
                identities: Vec::new(),
                merged_from: Vec::new(),
                create_time: r.get(8),
                update_time: r.get(9),
                erasure: erase_time.map(|t| {
                    (
                        t,
                        erasure
                            .and_then(|e| serde_json::from_value(e).ok())
                            .unwrap_or_default(),
                    )
                }),
                whatsapp_window_until: r.get(12),
                version: r.get(13),
            },
        );
    }
    for r in identity_rows {
        let Some(channel) = Channel::parse(r.get(1)) else {
            continue;
        };
        if let Some(contact) = by_id.get_mut(&r.get::<_, Uuid>(0)) {
            contact.identities.push(Identity {
                address: Address::from_stored(channel, r.get(3), r.get(2), r.get(4)),
                create_time: r.get(5),
                provider_user_id: r.get(6),
            });
        }
    }
    for r in merged_rows {
        if let Some(contact) = by_id.get_mut(&r.get::<_, Uuid>(0)) {
            contact.merged_from.push(r.get(1));
        }
    }
    ids.iter()
        .map(|id| {
            by_id
                .remove(id)
                .ok_or_else(|| StoreError::contact_not_found(*id))
        })
        .collect()
}

pub(super) async fn load_contact(
    c: &impl GenericClient,
    tenant: &str,
    id: Uuid,
) -> Result<Contact> {
    let mut contacts = load_contacts(c, tenant, &[id]).await?;
    contacts
        .pop()
        .ok_or_else(|| StoreError::contact_not_found(id))
}

/// Fails with the owner if another contact holds `external_ref`. Call it in
/// the transaction that then writes the reference.
pub(super) async fn external_ref_owner(
    c: &impl GenericClient,
    tenant: &str,
    external_ref: Option<&str>,
    except: Uuid,
) -> Result<()> {
    let Some(external_ref) = external_ref else {
        return Ok(());
    };
    // Writers of one reference take turns (until their transactions end), so
    // the check below sees a concurrent winner's commit and names it, instead
    // of both seeing the reference free and the loser failing on the unique
    // index without an owner.
    let turn = c
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2, 0))")
        .await
        .map_err(db)?;
    c.execute(&turn, &[&tenant, &external_ref])
        .await
        .map_err(db)?;
    let stmt = c
        .prepare_cached(
            "SELECT id FROM contacts WHERE tenant = $1 AND external_ref = $2 AND id <> $3",
        )
        .await
        .map_err(db)?;
    match c
        .query_opt(&stmt, &[&tenant, &external_ref, &except])
        .await
        .map_err(db)?
    {
        Some(row) => Err(StoreError::ExternalRefTaken { owner: row.get(0) }),
        None => Ok(()),
    }
}

/// Maps a unique violation that lost a race against a concurrent writer.
pub(super) fn conflict(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION)
        && let Some(db_error) = e.as_db_error()
        && db_error.constraint() == Some("contacts_external_ref")
    {
        return StoreError::ExternalRefTaken { owner: Uuid::nil() };
    }
    db(e)
}

/// Links addresses to a contact in one statement; refuses any owned by another
/// contact, and refreshes the last-seen wa_id of those the contact already has.
pub(super) async fn link(
    c: &impl GenericClient,
    tenant: &str,
    id: Uuid,
    addresses: &[Address],
    now: SystemTime,
) -> Result<()> {
    if addresses.is_empty() {
        return Ok(());
    }
    let channels: Vec<&str> = addresses.iter().map(|a| a.channel().as_str()).collect();
    let keys: Vec<&str> = addresses.iter().map(Address::key).collect();
    let values: Vec<&str> = addresses.iter().map(Address::value).collect();
    let wa_ids: Vec<Option<&str>> = addresses.iter().map(Address::wa_id).collect();
    let insert = c
        .prepare_cached(
            "INSERT INTO identities (tenant, channel, key, address, wa_id, contact_id, create_time)
             SELECT $1, channel, key, address, wa_id, $6, $7
             FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS t(channel, key, address, wa_id)
             ON CONFLICT (tenant, channel, key)
             DO UPDATE SET wa_id = COALESCE(EXCLUDED.wa_id, identities.wa_id)
             WHERE identities.contact_id = EXCLUDED.contact_id
             RETURNING channel, key",
        )
        .await
        .map_err(db)?;
    let done = c
        .query(
            &insert,
            &[&tenant, &channels, &keys, &values, &wa_ids, &id, &now],
        )
        .await
        .map_err(db)?;
    if done.len() == addresses.len() {
        return Ok(());
    }
    // Some identity belongs to another contact: name the owner.
    let owners = c
        .prepare_cached(
            "SELECT channel, contact_id FROM identities
             WHERE tenant = $1 AND (channel, key) IN (SELECT * FROM unnest($2::text[], $3::text[]))
               AND contact_id <> $4
             LIMIT 1",
        )
        .await
        .map_err(db)?;
    match c
        .query_opt(&owners, &[&tenant, &channels, &keys, &id])
        .await
        .map_err(db)?
    {
        Some(row) => Err(StoreError::IdentityTaken {
            channel: Channel::parse(row.get(0)).unwrap_or(Channel::Email),
            owner: row.get(1),
        }),
        None => Err(StoreError::backend(std::io::Error::other(
            "identity insert conflicted without an owner",
        ))),
    }
}

pub(super) async fn write_profile(
    c: &impl GenericClient,
    tenant: &str,
    id: Uuid,
    p: &Profile,
    now: SystemTime,
) -> Result<()> {
    let stmt = c
        .prepare_cached(
            "UPDATE contacts SET display_name = $3, locale = $4, time_zone = $5, external_ref = $6,
                    labels = $7, attributes = $8, update_time = $9
             WHERE tenant = $1 AND id = $2",
        )
        .await
        .map_err(db)?;
    let attributes = serde_json::to_value(&p.attributes).map_err(StoreError::backend)?;
    c.execute(
        &stmt,
        &[
            &tenant,
            &id,
            &p.display_name,
            &p.locale,
            &p.time_zone,
            &p.external_ref,
            &p.labels,
            &attributes,
            &now,
        ],
    )
    .await
    .map_err(conflict)?;
    Ok(())
}

pub(super) async fn touch(
    c: &impl GenericClient,
    tenant: &str,
    id: Uuid,
    now: SystemTime,
) -> Result<()> {
    c.execute(
        "UPDATE contacts SET update_time = $3 WHERE tenant = $1 AND id = $2",
        &[&tenant, &id, &now],
    )
    .await
    .map_err(db)?;
    Ok(())
}

pub(super) async fn read_consents(
    c: &impl GenericClient,
    tenant: &str,
    id: Uuid,
    after: Option<Uuid>,
    limit: usize,
) -> Result<Vec<ConsentRecord>> {
    let stmt = c
        .prepare_cached(
            "SELECT id, channel, category, action, source, legal_basis, evidence, record_time, create_time
             FROM consent_records
             WHERE tenant = $1 AND contact_id = $2 AND ($3::uuid IS NULL OR id > $3)
             ORDER BY id LIMIT $4",
        )
        .await
        .map_err(db)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = c
        .query(&stmt, &[&tenant, &id, &after, &limit])
        .await
        .map_err(db)?;
    Ok(rows.iter().filter_map(|r| consent_at(r, 0, id)).collect())
}

/// A consent record whose columns (as [`read_consents`] selects them) start
/// at column `o`; `None` for a channel or category this build does not know.
fn consent_at(r: &tokio_postgres::Row, o: usize, contact_id: Uuid) -> Option<ConsentRecord> {
    Some(ConsentRecord {
        id: r.get(o),
        contact_id,
        channel: Channel::parse(r.get(o + 1))?,
        category: Category::parse(r.get(o + 2))?,
        action: if r.get::<_, i16>(o + 3) == 2 {
            ConsentAction::Revoke
        } else {
            ConsentAction::Grant
        },
        source: r.get(o + 4),
        legal_basis: LegalBasis::from_code(r.get(o + 5)),
        evidence: r.get(o + 6),
        record_time: r.get(o + 7),
        create_time: r.get(o + 8),
    })
}

pub(super) async fn read_preferences(
    c: &impl GenericClient,
    tenant: &str,
    id: Uuid,
) -> Result<Preferences> {
    let stmt = c
        .prepare_cached(
            "SELECT preferences, time_zone, locale, preferences_update_time
             FROM contacts WHERE tenant = $1 AND id = $2",
        )
        .await
        .map_err(db)?;
    let (row, records) = tokio::try_join!(
        async { c.query_one(&stmt, &[&tenant, &id]).await.map_err(db) },
        read_consents(c, tenant, id, None, usize::MAX),
    )?;
    let channels: serde_json::Value = row.get(0);
    Ok(Preferences {
        contact_id: id,
        channels: serde_json::from_value(channels).unwrap_or_default(),
        time_zone: row.get(1),
        locale: row.get(2),
        consents: derive_consents(&records),
        update_time: row.get(3),
    })
}

/// See [`crate::Store::routing_contacts`]: one round trip resolves every
/// lookup, one loads the contacts with their identities, one their
/// preferences and consent records.
///
/// The queries run outside a transaction, in order: the contact rows (with
/// their versions) first, everything else after. So what is read is never
/// older than the version read, and a send routed on it is committed only
/// if nothing changed since (else it is routed again).
pub(super) async fn routing_contacts(
    c: &impl GenericClient,
    tenant: &str,
    lookups: &[ContactLookup],
) -> Result<Vec<Option<RoutingContact>>> {
    let mut ids = Vec::new();
    let mut refs = Vec::new();
    let mut channels = Vec::new();
    let mut keys = Vec::new();
    for lookup in lookups {
        match lookup {
            ContactLookup::Id(id) => ids.push(*id),
            ContactLookup::ExternalRef(r) => refs.push(r.as_str()),
            ContactLookup::Identity(channel, key) => {
                channels.push(channel.as_str());
                keys.push(key.as_str());
            }
        }
    }
    let by_id = async {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let stmt = c
            .prepare_cached(
                "SELECT c.id, COALESCE(t.id, c.id) FROM contacts c
                 LEFT JOIN contacts t ON c.state = 3 AND t.tenant = c.tenant AND t.id = c.merged_into
                 WHERE c.tenant = $1 AND c.id = ANY($2)",
            )
            .await?;
        c.query(&stmt, &[&tenant, &ids]).await
    };
    let by_ref = async {
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let stmt = c
            .prepare_cached(
                "SELECT external_ref, id FROM contacts WHERE tenant = $1 AND external_ref = ANY($2)",
            )
            .await?;
        c.query(&stmt, &[&tenant, &refs]).await
    };
    let by_key = async {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let stmt = c
            .prepare_cached(
                "SELECT i.channel, i.key, i.contact_id FROM identities i
                 JOIN unnest($2::text[], $3::text[]) AS k(channel, key)
                   ON i.channel = k.channel AND i.key = k.key
                 WHERE i.tenant = $1",
            )
            .await?;
        c.query(&stmt, &[&tenant, &channels, &keys]).await
    };
    let (by_id, by_ref, by_key) = tokio::try_join!(by_id, by_ref, by_key).map_err(db)?;
    let by_id: HashMap<Uuid, Uuid> = by_id.iter().map(|r| (r.get(0), r.get(1))).collect();
    let by_ref: HashMap<&str, Uuid> = by_ref.iter().map(|r| (r.get(0), r.get(1))).collect();
    let by_key: HashMap<(&str, &str), Uuid> = by_key
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    let resolved: Vec<Option<Uuid>> = lookups
        .iter()
        .map(|lookup| match lookup {
            ContactLookup::Id(id) => by_id.get(id).copied(),
            ContactLookup::ExternalRef(r) => by_ref.get(r.as_str()).copied(),
            ContactLookup::Identity(channel, key) => {
                by_key.get(&(channel.as_str(), key.as_str())).copied()
            }
        })
        .collect();
    let mut wanted: Vec<Uuid> = resolved.iter().flatten().copied().collect();
    wanted.sort();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(resolved.iter().map(|_| None).collect());
    }
    let preferences_stmt = c
        .prepare_cached(
            "SELECT id, preferences, time_zone, locale, preferences_update_time
             FROM contacts WHERE tenant = $1 AND id = ANY($2)",
        )
        .await
        .map_err(db)?;
    let consents_stmt = c
        .prepare_cached(
            "SELECT contact_id, id, channel, category, action, source, legal_basis, evidence,
                    record_time, create_time
             FROM consent_records WHERE tenant = $1 AND contact_id = ANY($2) ORDER BY id",
        )
        .await
        .map_err(db)?;
    // The contact rows, with their versions, are read first (see above).
    let contacts = load_contacts(c, tenant, &wanted).await?;
    let (preference_rows, consent_rows) = tokio::try_join!(
        async {
            c.query(&preferences_stmt, &[&tenant, &wanted])
                .await
                .map_err(db)
        },
        async {
            c.query(&consents_stmt, &[&tenant, &wanted])
                .await
                .map_err(db)
        },
    )?;
    let mut records: HashMap<Uuid, Vec<ConsentRecord>> = HashMap::new();
    for r in &consent_rows {
        let contact_id: Uuid = r.get(0);
        if let Some(record) = consent_at(r, 1, contact_id) {
            records.entry(contact_id).or_default().push(record);
        }
    }
    let mut preferences: HashMap<Uuid, Preferences> = HashMap::new();
    for r in &preference_rows {
        let id: Uuid = r.get(0);
        let channels: serde_json::Value = r.get(1);
        preferences.insert(
            id,
            Preferences {
                contact_id: id,
                channels: serde_json::from_value(channels).unwrap_or_default(),
                time_zone: r.get(2),
                locale: r.get(3),
                consents: derive_consents(records.get(&id).map_or(&[][..], Vec::as_slice)),
                update_time: r.get(4),
            },
        );
    }
    let loaded: HashMap<Uuid, RoutingContact> = contacts
        .into_iter()
        .filter_map(|contact| {
            let preferences = preferences.remove(&contact.id)?;
            Some((
                contact.id,
                RoutingContact {
                    contact,
                    preferences,
                },
            ))
        })
        .collect();
    Ok(resolved
        .iter()
        .map(|id| id.and_then(|id| loaded.get(&id).cloned()))
        .collect())
}
