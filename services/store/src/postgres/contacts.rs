//! Contacts on PostgreSQL: resolution of merged ids, row locks, loading
//! contacts with their identities in pipelined queries, identity links in one
//! statement, and the preference and consent reads; and [`ContactStore`] for
//! [`PgStore`] (merge and erasure execute their plans in `lifecycle.rs`).

use std::collections::HashMap;
use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use omniroute_channel::{Address, Category, Channel};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::db;
use super::lifecycle::{erase, merge};
use super::{PgStore, messages};
use crate::dedup_addresses;
use crate::events::{EventType, contact_event};
use crate::model::*;
use crate::parts::ContactStore;
use crate::{Result, StoreError};
use async_trait::async_trait;

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
             LEFT JOIN contacts t ON c.state = $3 AND t.tenant = c.tenant AND t.id = c.merged_into
             WHERE c.tenant = $1 AND c.id = $2",
        )
        .await
        .map_err(db)?;
    let row = c
        .query_opt(&stmt, &[&tenant, &id, &ContactState::Merged.code()])
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

/// The contact's service windows (see [`crate::model::windows_from_json`])
/// of the contact row `c`, by its primary key's prefix.
macro_rules! windows_column {
    () => {
        "(SELECT json_agg(json_build_array(w.channel, w.line, \
              (extract(epoch FROM w.open_until) * 1000000)::bigint) ORDER BY w.channel, w.line)::text \
          FROM service_windows w WHERE w.tenant = c.tenant AND w.contact_id = c.id)"
    };
}

/// The columns [`contact_at`] reads, in order, of the contact row `c`.
const CONTACT_COLUMNS: &str = concat!(
    "c.id, c.state, c.display_name, c.locale, c.time_zone, c.external_ref, c.labels, \
     c.attributes, c.create_time, c.update_time, c.erase_time, c.erasure, ",
    windows_column!(),
    ", c.version"
);

/// A contact whose [`CONTACT_COLUMNS`] start at column `o`, without its
/// identities and merged ids.
fn contact_at(r: &tokio_postgres::Row, o: usize) -> Contact {
    let attributes: serde_json::Value = r.get(o + 7);
    let erase_time: Option<SystemTime> = r.get(o + 10);
    let erasure: Option<serde_json::Value> = r.get(o + 11);
    Contact {
        id: r.get(o),
        state: ContactState::from_code(r.get(o + 1)),
        profile: Profile {
            display_name: r.get(o + 2),
            locale: r.get(o + 3),
            time_zone: r.get(o + 4),
            external_ref: r.get(o + 5),
            labels: r.get(o + 6),
            attributes: serde_json::from_value(attributes).unwrap_or_default(),
        },
        identities: Vec::new(),
        merged_from: Vec::new(),
        create_time: r.get(o + 8),
        update_time: r.get(o + 9),
        erasure: erase_time.map(|t| {
            (
                t,
                erasure
                    .and_then(|e| serde_json::from_value(e).ok())
                    .unwrap_or_default(),
            )
        }),
        windows: crate::model::windows_from_json(r.get(o + 12)),
        version: r.get(o + 13),
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
        .prepare_cached(&format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts c WHERE c.tenant = $1 AND c.id = ANY($2)"
        ))
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
    for r in &rows {
        let contact = contact_at(r, 0);
        by_id.insert(contact.id, contact);
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

/// The routing read (see [`routing_contacts`]): `$2`–`$6` are one element
/// per lookup (kind 1 by id, 2 by external reference, 3 by identity), `$7`
/// the state of merged contacts.
const ROUTING: &str = concat!(
    "
WITH wanted AS (
    SELECT * FROM unnest($2::smallint[], $3::uuid[], $4::text[], $5::text[], $6::text[])
        WITH ORDINALITY AS w(kind, id, ref, channel, key, n)
),
found AS (
    SELECT w.n, COALESCE(t.id, c.id) AS id FROM wanted w
    JOIN contacts c ON c.tenant = $1 AND c.id = w.id
    LEFT JOIN contacts t ON c.state = $7 AND t.tenant = c.tenant AND t.id = c.merged_into
    WHERE w.kind = 1
    UNION ALL
    SELECT w.n, c.id FROM wanted w
    JOIN contacts c ON c.tenant = $1 AND c.external_ref = w.ref
    WHERE w.kind = 2
    UNION ALL
    SELECT w.n, i.contact_id FROM wanted w
    JOIN identities i ON i.tenant = $1 AND i.channel = w.channel AND i.key = w.key
    WHERE w.kind = 3
)
SELECT f.n, c.id, c.state, c.display_name, c.locale, c.time_zone, c.external_ref, c.labels,
       c.attributes, c.create_time, c.update_time, c.erase_time, c.erasure,
       ",
    windows_column!(),
    ", c.version, c.preferences, c.preferences_update_time,
       i.channels, i.keys, i.addresses, i.wa_ids, i.created, i.user_ids,
       m.merged,
       r.ids, r.channels, r.categories, r.actions, r.sources, r.bases, r.evidence,
       r.record_times, r.create_times
FROM found f
JOIN contacts c ON c.tenant = $1 AND c.id = f.id
LEFT JOIN LATERAL (
    SELECT array_agg(channel ORDER BY create_time, channel, key) AS channels,
           array_agg(key ORDER BY create_time, channel, key) AS keys,
           array_agg(address ORDER BY create_time, channel, key) AS addresses,
           array_agg(wa_id ORDER BY create_time, channel, key) AS wa_ids,
           array_agg(create_time ORDER BY create_time, channel, key) AS created,
           array_agg(provider_user_id ORDER BY create_time, channel, key) AS user_ids
    FROM identities WHERE tenant = $1 AND contact_id = c.id
) i ON true
LEFT JOIN LATERAL (
    SELECT array_agg(id ORDER BY id) AS merged
    FROM contacts WHERE tenant = $1 AND merged_into = c.id
) m ON true
LEFT JOIN LATERAL (
    SELECT array_agg(id ORDER BY id) AS ids, array_agg(channel ORDER BY id) AS channels,
           array_agg(category ORDER BY id) AS categories, array_agg(action ORDER BY id) AS actions,
           array_agg(source ORDER BY id) AS sources, array_agg(legal_basis ORDER BY id) AS bases,
           array_agg(evidence ORDER BY id) AS evidence,
           array_agg(record_time ORDER BY id) AS record_times,
           array_agg(create_time ORDER BY id) AS create_times
    FROM consent_records WHERE tenant = $1 AND contact_id = c.id
) r ON true"
);

/// See [`crate::ContactStore::routing_contacts`]: every lookup resolved and every
/// contact found read with its identities, merged ids, preferences and
/// consent records by one statement, so in one snapshot: what is read is the
/// contact at the version read.
pub(super) async fn routing_contacts(
    c: &impl GenericClient,
    tenant: &str,
    lookups: &[ContactLookup],
) -> Result<Vec<Option<RoutingContact>>> {
    if lookups.is_empty() {
        return Ok(Vec::new());
    }
    let mut kinds: Vec<i16> = Vec::with_capacity(lookups.len());
    let mut ids: Vec<Option<Uuid>> = Vec::with_capacity(lookups.len());
    let mut refs: Vec<Option<&str>> = Vec::with_capacity(lookups.len());
    let mut channels: Vec<Option<&str>> = Vec::with_capacity(lookups.len());
    let mut keys: Vec<Option<&str>> = Vec::with_capacity(lookups.len());
    for lookup in lookups {
        let (kind, id, external_ref, identity) = match lookup {
            ContactLookup::Id(id) => (1, Some(*id), None, None),
            ContactLookup::ExternalRef(r) => (2, None, Some(r.as_str()), None),
            ContactLookup::Identity(channel, key) => {
                (3, None, None, Some((channel.as_str(), key.as_str())))
            }
        };
        kinds.push(kind);
        ids.push(id);
        refs.push(external_ref);
        channels.push(identity.map(|(c, _)| c));
        keys.push(identity.map(|(_, k)| k));
    }
    let stmt = c.prepare_cached(ROUTING).await.map_err(db)?;
    let rows = c
        .query(
            &stmt,
            &[
                &tenant,
                &kinds,
                &ids,
                &refs,
                &channels,
                &keys,
                &ContactState::Merged.code(),
            ],
        )
        .await
        .map_err(db)?;
    let mut found: Vec<Option<RoutingContact>> = vec![None; lookups.len()];
    for r in &rows {
        let n = usize::try_from(r.get::<_, i64>(0)).unwrap_or(0);
        let Some(slot) = n.checked_sub(1).and_then(|i| found.get_mut(i)) else {
            continue;
        };
        let mut contact = contact_at(r, 1);
        let channels: Vec<String> = r.get::<_, Option<_>>(17).unwrap_or_default();
        let keys: Vec<String> = r.get::<_, Option<_>>(18).unwrap_or_default();
        let addresses: Vec<String> = r.get::<_, Option<_>>(19).unwrap_or_default();
        let wa_ids: Vec<Option<String>> = r.get::<_, Option<_>>(20).unwrap_or_default();
        let created: Vec<SystemTime> = r.get::<_, Option<_>>(21).unwrap_or_default();
        let user_ids: Vec<Option<String>> = r.get::<_, Option<_>>(22).unwrap_or_default();
        for (i, (channel, key)) in channels.iter().zip(keys).enumerate() {
            let (Some(channel), Some(address), Some(&create_time)) =
                (Channel::parse(channel), addresses.get(i), created.get(i))
            else {
                continue;
            };
            contact.identities.push(Identity {
                address: Address::from_stored(
                    channel,
                    address.clone(),
                    key,
                    wa_ids.get(i).cloned().flatten(),
                ),
                create_time,
                provider_user_id: user_ids.get(i).cloned().flatten(),
            });
        }
        contact.merged_from = r.get::<_, Option<_>>(23).unwrap_or_default();
        let records = consents_from_arrays(r, 24, contact.id);
        let preferences: serde_json::Value = r.get(15);
        let preferences = Preferences {
            contact_id: contact.id,
            channels: serde_json::from_value(preferences).unwrap_or_default(),
            time_zone: contact.profile.time_zone.clone(),
            locale: contact.profile.locale.clone(),
            consents: derive_consents(&records),
            update_time: r.get(16),
        };
        *slot = Some(RoutingContact {
            contact,
            preferences,
        });
    }
    Ok(found)
}

/// The consent records of one contact from the arrays of [`ROUTING`]
/// (starting at column `o`); records of a channel or category this build
/// does not know are left out, as [`read_consents`] does.
fn consents_from_arrays(r: &tokio_postgres::Row, o: usize, contact_id: Uuid) -> Vec<ConsentRecord> {
    let ids: Vec<Uuid> = r.get::<_, Option<_>>(o).unwrap_or_default();
    let channels: Vec<String> = r.get::<_, Option<_>>(o + 1).unwrap_or_default();
    let categories: Vec<String> = r.get::<_, Option<_>>(o + 2).unwrap_or_default();
    let actions: Vec<i16> = r.get::<_, Option<_>>(o + 3).unwrap_or_default();
    let sources: Vec<String> = r.get::<_, Option<_>>(o + 4).unwrap_or_default();
    let bases: Vec<i16> = r.get::<_, Option<_>>(o + 5).unwrap_or_default();
    let evidence: Vec<String> = r.get::<_, Option<_>>(o + 6).unwrap_or_default();
    let record_times: Vec<SystemTime> = r.get::<_, Option<_>>(o + 7).unwrap_or_default();
    let create_times: Vec<SystemTime> = r.get::<_, Option<_>>(o + 8).unwrap_or_default();
    (0..ids.len())
        .filter_map(|i| {
            Some(ConsentRecord {
                id: ids[i],
                contact_id,
                channel: Channel::parse(channels.get(i)?)?,
                category: Category::parse(categories.get(i)?)?,
                action: if *actions.get(i)? == 2 {
                    ConsentAction::Revoke
                } else {
                    ConsentAction::Grant
                },
                source: sources.get(i)?.clone(),
                legal_basis: LegalBasis::from_code(*bases.get(i)?),
                evidence: evidence.get(i)?.clone(),
                record_time: *record_times.get(i)?,
                create_time: *create_times.get(i)?,
            })
        })
        .collect()
}

#[async_trait]
impl ContactStore for PgStore {
    async fn create_contact(&self, tenant: &str, contact: NewContact) -> Result<Contact> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let id = Uuid::now_v7();
        let now = now();
        let p = &contact.profile;
        external_ref_owner(&tx, tenant, p.external_ref.as_deref(), id).await?;
        let attributes = serde_json::to_value(&p.attributes).map_err(StoreError::backend)?;
        let stmt = tx
            .prepare_cached(
                "INSERT INTO contacts (tenant, id, state, display_name, locale, time_zone, external_ref,
                        labels, attributes, create_time, update_time)
                 VALUES ($1, $2, $10, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .await
            .map_err(db)?;
        tx.execute(
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
                &ContactState::Active.code(),
            ],
        )
        .await
        .map_err(conflict)?;
        link(&tx, tenant, id, &dedup_addresses(contact.identities), now).await?;
        let contact = load_contact(&tx, tenant, id).await?;
        messages::append_events(
            &tx,
            tenant,
            &[contact_event(EventType::ContactCreated, id, Vec::new())],
            now,
        )
        .await?;
        tx.commit().await.map_err(db)?;
        self.bump();
        Ok(contact)
    }

    async fn get_contact(&self, tenant: &str, id: Uuid) -> Result<Contact> {
        let client = self.client().await?;
        let (id, _) = resolve(&client, tenant, id).await?;
        load_contact(&client, tenant, id).await
    }

    async fn list_contacts(&self, tenant: &str, query: ContactQuery) -> Result<Vec<Contact>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id FROM contacts
                 WHERE tenant = $1 AND ($2::uuid IS NULL OR id > $2)
                   AND (state = $6 OR ($3 AND state = $7))
                   AND ($4::text IS NULL OR labels @> ARRAY[$4::text])
                 ORDER BY id LIMIT $5",
            )
            .await
            .map_err(db)?;
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let ids: Vec<Uuid> = client
            .query(
                &stmt,
                &[
                    &tenant,
                    &query.after,
                    &query.show_erased,
                    &query.label,
                    &limit,
                    &ContactState::Active.code(),
                    &ContactState::Erased.code(),
                ],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        load_contacts(&client, tenant, &ids).await
    }

    async fn update_contact(&self, tenant: &str, id: Uuid, patch: ProfilePatch) -> Result<Contact> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let id = lock_active(&tx, tenant, id).await?;
        let mut profile = load_contact(&tx, tenant, id).await?.profile;
        patch.apply(&mut profile);
        external_ref_owner(&tx, tenant, profile.external_ref.as_deref(), id).await?;
        write_profile(&tx, tenant, id, &profile, now()).await?;
        let contact = load_contact(&tx, tenant, id).await?;
        tx.commit().await.map_err(db)?;
        Ok(contact)
    }

    async fn link_identity(&self, tenant: &str, id: Uuid, address: Address) -> Result<Contact> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let id = lock_active(&tx, tenant, id).await?;
        let now = now();
        link(&tx, tenant, id, std::slice::from_ref(&address), now).await?;
        touch(&tx, tenant, id, now).await?;
        let contact = load_contact(&tx, tenant, id).await?;
        tx.commit().await.map_err(db)?;
        Ok(contact)
    }

    async fn unlink_identity(&self, tenant: &str, id: Uuid, address: Address) -> Result<Contact> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let id = lock_active(&tx, tenant, id).await?;
        let removed = tx
            .execute(
                "DELETE FROM identities
                 WHERE tenant = $1 AND channel = $2 AND key = $3 AND contact_id = $4",
                &[&tenant, &address.channel().as_str(), &address.key(), &id],
            )
            .await
            .map_err(db)?;
        if removed == 0 {
            return Err(StoreError::IdentityNotLinked(id));
        }
        touch(&tx, tenant, id, now()).await?;
        let contact = load_contact(&tx, tenant, id).await?;
        tx.commit().await.map_err(db)?;
        Ok(contact)
    }

    async fn find_by_keys(
        &self,
        tenant: &str,
        keys: &[(Channel, String)],
    ) -> Result<Option<Contact>> {
        if keys.is_empty() {
            return Ok(None);
        }
        let client = self.client().await?;
        let channels: Vec<&str> = keys.iter().map(|(c, _)| c.as_str()).collect();
        let key_values: Vec<&str> = keys.iter().map(|(_, k)| k.as_str()).collect();
        let stmt = client
            .prepare_cached(
                "SELECT i.contact_id FROM identities i
                 JOIN unnest($2::text[], $3::text[]) WITH ORDINALITY AS k(channel, key, n)
                   ON i.channel = k.channel AND i.key = k.key
                 WHERE i.tenant = $1
                 ORDER BY k.n LIMIT 1",
            )
            .await
            .map_err(db)?;
        match client
            .query_opt(&stmt, &[&tenant, &channels, &key_values])
            .await
            .map_err(db)?
        {
            Some(row) => load_contact(&client, tenant, row.get(0)).await.map(Some),
            None => Ok(None),
        }
    }

    async fn find_by_external_ref(
        &self,
        tenant: &str,
        external_ref: &str,
    ) -> Result<Option<Contact>> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT id FROM contacts WHERE tenant = $1 AND external_ref = $2")
            .await
            .map_err(db)?;
        match client
            .query_opt(&stmt, &[&tenant, &external_ref])
            .await
            .map_err(db)?
        {
            Some(row) => load_contact(&client, tenant, row.get(0)).await.map(Some),
            None => Ok(None),
        }
    }

    async fn merge_contacts(
        &self,
        tenant: &str,
        survivor: Uuid,
        sources: &[Uuid],
    ) -> Result<Contact> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let contact = merge(&tx, tenant, survivor, sources).await?;
        tx.commit().await.map_err(db)?;
        self.bump();
        Ok(contact)
    }

    async fn erase_contact(&self, tenant: &str, id: Uuid) -> Result<Contact> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let contact = erase(&tx, tenant, id).await?;
        tx.commit().await.map_err(db)?;
        self.bump();
        Ok(contact)
    }

    async fn export_contact(&self, tenant: &str, id: Uuid) -> Result<ContactExport> {
        let mut client = self.client().await?;
        // One snapshot for the whole document.
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db)?;
        let (id, _) = resolve(&tx, tenant, id).await?;
        let (contact, preferences, consent_records) = tokio::try_join!(
            load_contact(&tx, tenant, id),
            read_preferences(&tx, tenant, id),
            read_consents(&tx, tenant, id, None, usize::MAX),
        )?;
        tx.commit().await.map_err(db)?;
        Ok(ContactExport {
            contact,
            preferences,
            consent_records,
        })
    }

    async fn routing_contacts(
        &self,
        tenant: &str,
        lookups: &[ContactLookup],
    ) -> Result<Vec<Option<RoutingContact>>> {
        let client = self.client().await?;
        routing_contacts(&client, tenant, lookups).await
    }
}
