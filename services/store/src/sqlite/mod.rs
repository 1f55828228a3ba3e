//! The embedded store: one SQLite file, the default when no database URL is
//! configured.
//!
//! Durability: the file runs in WAL mode with `synchronous=FULL`, so every
//! committed transaction is fsynced before the call returns. All access goes
//! through one connection behind a mutex on tokio's blocking pool: SQLite
//! allows one writer at a time anyway, and one connection keeps every
//! transaction serializable without busy retries.
//!
//! Contacts live here; messages and jobs in `messages.rs`, the event log in
//! `events.rs`, both called inside the transactions opened here.

mod events;
mod messages;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use omniroute_channel::{Address, Category, Channel};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::watch;
use uuid::Uuid;

use crate::model::*;
use crate::{
    Accepted, Attempt, ClaimedJob, Cursor, Event, EventFilter, EventType, Message, NewInbound,
    NewMessage, NextStep, ProviderStatus, Received, Result, Store, StoreError, contact_event,
    dedup_addresses,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_contacts.sql"),
    include_str!("../../migrations/sqlite/0002_messages.sql"),
    include_str!("../../migrations/sqlite/0003_inbound.sql"),
];

/// The embedded SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// Bumped after every commit that wrote events or jobs (see
    /// [`Store::changes`]); one process holds the file, so no cross-process
    /// signal is needed.
    changes: Arc<watch::Sender<u64>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store file and applies migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let opened = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            if let Some(dir) = opened.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(StoreError::backend)?;
            }
            let mut conn = Connection::open(&opened).map_err(StoreError::backend)?;
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;",
            )
            .map_err(StoreError::backend)?;
            migrate(&mut conn)?;
            Ok(conn)
        })
        .await
        .map_err(StoreError::backend)??;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path,
            changes: Arc::new(watch::Sender::new(0)),
        })
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one transaction on the blocking pool; commits if it returns Ok.
    async fn tx<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let tx = guard.transaction().map_err(StoreError::backend)?;
            let value = f(&tx)?;
            tx.commit().map_err(StoreError::backend)?;
            Ok(value)
        })
        .await
        .map_err(StoreError::backend)?
    }

    /// Tells readers to look again; called after the commit, so whoever
    /// wakes up sees the change.
    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// [`SqliteStore::tx`] followed by [`SqliteStore::bump`] once it committed.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let value = self.tx(f).await?;
        self.bump();
        Ok(value)
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction().map_err(StoreError::backend)?;
    let applied: i64 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(StoreError::backend)?;
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let version = index as i64 + 1;
        if version > applied {
            tx.execute_batch(sql).map_err(StoreError::backend)?;
            tx.pragma_update(None, "user_version", version)
                .map_err(StoreError::backend)?;
            tracing::info!(version, "applied sqlite migration");
        }
    }
    tx.commit().map_err(StoreError::backend)
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

fn from_json<T: serde::de::DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

fn uuid_col(text: String) -> Uuid {
    Uuid::parse_str(&text).unwrap_or_default()
}

/// The id a (possibly merged) id resolves to, with its state.
fn resolve(tx: &Transaction<'_>, tenant: &str, id: Uuid) -> Result<(Uuid, ContactState)> {
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
fn resolve_active(tx: &Transaction<'_>, tenant: &str, id: Uuid) -> Result<Uuid> {
    match resolve(tx, tenant, id)? {
        (id, ContactState::Active) => Ok(id),
        (id, _) => Err(StoreError::Erased(id)),
    }
}

fn load_contact(tx: &Transaction<'_>, tenant: &str, id: Uuid) -> Result<Contact> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT state, display_name, locale, time_zone, external_ref, labels, attributes,
                    create_time, update_time, erase_time, erasure, whatsapp_window_until
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
                whatsapp_window_until: r.get::<_, Option<i64>>(11)?.map(from_micros),
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

fn check_external_ref(
    tx: &Transaction<'_>,
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
    tx: &Transaction<'_>,
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

fn write_profile(
    tx: &Transaction<'_>,
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

fn touch(tx: &Transaction<'_>, tenant: &str, id: Uuid, now: i64) -> Result<()> {
    tx.prepare_cached("UPDATE contacts SET update_time = ?3 WHERE tenant = ?1 AND id = ?2")
        .map_err(db)?
        .execute(params![tenant, id.to_string(), now])
        .map_err(db)?;
    Ok(())
}

fn read_preferences(tx: &Transaction<'_>, tenant: &str, id: Uuid) -> Result<Preferences> {
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

fn read_consents(
    tx: &Transaction<'_>,
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

/// Erases a contact inside a transaction; returns the tombstone and whether
/// anything was written (erasing twice writes nothing).
fn erase(tx: &Transaction<'_>, tenant: &str, id: Uuid) -> Result<(Contact, bool)> {
    let (id, state) = resolve(tx, tenant, id)?;
    if state == ContactState::Erased {
        return Ok((load_contact(tx, tenant, id)?, false));
    }
    let s = id.to_string();
    let identities = tx
        .execute(
            "DELETE FROM identities WHERE tenant = ?1 AND contact_id = ?2",
            params![tenant, s],
        )
        .map_err(db)?;
    let consents = tx
        .execute(
            "DELETE FROM consent_records WHERE tenant = ?1 AND contact_id = ?2",
            params![tenant, s],
        )
        .map_err(db)?;
    let messages_redacted = messages::erase_messages(tx, tenant, id)?;
    let summary = ErasureSummary {
        identities_removed: i32::try_from(identities).unwrap_or(i32::MAX),
        consent_records_removed: i32::try_from(consents).unwrap_or(i32::MAX),
        messages_redacted,
    };
    let now = to_micros(now());
    tx.execute(
        "UPDATE contacts SET state = ?3, display_name = '', locale = '', time_zone = '',
                external_ref = NULL, labels = '[]', attributes = '{}', preferences = '{}',
                preferences_update_time = NULL, whatsapp_window_until = NULL, update_time = ?4, erase_time = ?4, erasure = ?5
         WHERE tenant = ?1 AND id = ?2",
        params![tenant, s, ContactState::Erased.code(), now, json(&summary)],
    )
    .map_err(db)?;
    // The log keeps that these events happened (readers resume by position)
    // but no longer what they said about the contact.
    events::redact_contact(tx, tenant, id)?;
    events::append(
        tx,
        tenant,
        &crate::messages::erased_event(id),
        from_micros(now),
    )?;
    Ok((load_contact(tx, tenant, id)?, true))
}

#[async_trait]
impl Store for SqliteStore {
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
        self.tx(move |tx| {
            let (id, _) = resolve(tx, &tenant, id)?;
            load_contact(tx, &tenant, id)
        })
        .await
    }

    async fn list_contacts(&self, tenant: &str, query: ContactQuery) -> Result<Vec<Contact>> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT id FROM contacts
                     WHERE tenant = ?1 AND id > ?2
                       AND (state = 1 OR (?3 AND state = 2))
                       AND (?4 IS NULL OR EXISTS (SELECT 1 FROM json_each(contacts.labels) WHERE value = ?4))
                     ORDER BY id LIMIT ?5",
                )
                .map_err(db)?;
            let after = query.after.map(|a| a.to_string()).unwrap_or_default();
            let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
            let ids: Vec<String> = stmt
                .query_map(
                    params![tenant, after, query.show_erased, query.label, limit],
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
        self.tx(move |tx| {
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
        self.tx(move |tx| {
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
        self.write(move |tx| {
            let survivor = resolve_active(tx, &tenant, survivor)?;
            let mut retired = Vec::new();
            for source in sources {
                let (id, state) = resolve(tx, &tenant, source)?;
                if id == survivor {
                    if source == survivor {
                        return Err(StoreError::InvalidMerge(format!(
                            "contacts/{survivor} cannot be merged into itself"
                        )));
                    }
                    continue; // merged before: nothing left to move
                }
                if state != ContactState::Active {
                    return Err(StoreError::InvalidMerge(format!("contacts/{id} is erased")));
                }
                if !retired.contains(&id) {
                    retired.push(id);
                }
            }
            let now = to_micros(now());
            let mut profile = load_contact(tx, &tenant, survivor)?.profile;
            let mut prefs = read_preferences(tx, &tenant, survivor)?.channels;
            for &source in &retired {
                let src = load_contact(tx, &tenant, source)?;
                merge_profiles(&mut profile, &src.profile);
                if prefs.is_empty() {
                    prefs = read_preferences(tx, &tenant, source)?.channels;
                }
                let s = source.to_string();
                let t = survivor.to_string();
                tx.execute(
                    "UPDATE identities SET contact_id = ?3 WHERE tenant = ?1 AND contact_id = ?2",
                    params![tenant, s, t],
                )
                .map_err(db)?;
                tx.execute(
                    "UPDATE consent_records SET contact_id = ?3 WHERE tenant = ?1 AND contact_id = ?2",
                    params![tenant, s, t],
                )
                .map_err(db)?;
                messages::move_messages(tx, &tenant, source, survivor)?;
                // Earlier merges into the source now point at the survivor, so
                // every retired id resolves in one step.
                tx.execute(
                    "UPDATE contacts SET merged_into = ?3 WHERE tenant = ?1 AND merged_into = ?2",
                    params![tenant, s, t],
                )
                .map_err(db)?;
                // The survivor's WhatsApp window is the later of the two.
                tx.execute(
                    "UPDATE contacts SET whatsapp_window_until = (
                         SELECT max(whatsapp_window_until) FROM contacts
                         WHERE tenant = ?1 AND id IN (?2, ?3))
                     WHERE tenant = ?1 AND id = ?3",
                    params![tenant, s, t],
                )
                .map_err(db)?;
                // The retired row keeps no personal data: it all moved.
                tx.execute(
                    "UPDATE contacts SET state = ?3, merged_into = ?4, display_name = '', locale = '',
                            time_zone = '', external_ref = NULL, labels = '[]', attributes = '{}',
                            preferences = '{}', whatsapp_window_until = NULL, update_time = ?5
                     WHERE tenant = ?1 AND id = ?2",
                    params![tenant, s, ContactState::Merged.code(), t, now],
                )
                .map_err(db)?;
            }
            write_profile(tx, &tenant, survivor, &profile, now)?;
            tx.execute(
                "UPDATE contacts SET preferences = ?3 WHERE tenant = ?1 AND id = ?2",
                params![tenant, survivor.to_string(), json(&prefs)],
            )
            .map_err(db)?;
            if !retired.is_empty() {
                let event = contact_event(EventType::ContactMerged, survivor, retired);
                events::append(tx, &tenant, &event, from_micros(now))?;
            }
            load_contact(tx, &tenant, survivor)
        })
        .await
    }

    async fn erase_contact(&self, tenant: &str, id: Uuid) -> Result<Contact> {
        let tenant = tenant.to_owned();
        let (contact, erased) = self.tx(move |tx| erase(tx, &tenant, id)).await?;
        if erased {
            self.bump();
        }
        Ok(contact)
    }

    async fn get_preferences(&self, tenant: &str, id: Uuid) -> Result<Preferences> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let (id, _) = resolve(tx, &tenant, id)?;
            read_preferences(tx, &tenant, id)
        })
        .await
    }

    async fn update_preferences(
        &self,
        tenant: &str,
        id: Uuid,
        patch: PreferencesPatch,
    ) -> Result<Preferences> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let id = resolve_active(tx, &tenant, id)?;
            let current = read_preferences(tx, &tenant, id)?;
            let mut channels = current.channels;
            let (time_zone, locale) = patch.apply(&mut channels);
            let now = to_micros(now());
            tx.execute(
                "UPDATE contacts SET preferences = ?3, time_zone = ?4, locale = ?5,
                        preferences_update_time = ?6, update_time = ?6
                 WHERE tenant = ?1 AND id = ?2",
                params![
                    tenant,
                    id.to_string(),
                    json(&channels),
                    time_zone.unwrap_or(current.time_zone),
                    locale.unwrap_or(current.locale),
                    now
                ],
            )
            .map_err(db)?;
            read_preferences(tx, &tenant, id)
        })
        .await
    }

    async fn record_consent(
        &self,
        tenant: &str,
        id: Uuid,
        consent: NewConsent,
    ) -> Result<ConsentRecord> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let id = resolve_active(tx, &tenant, id)?;
            let record = consent.into_record(id, now());
            tx.prepare_cached(
                "INSERT INTO consent_records (tenant, id, contact_id, channel, category, action,
                        source, legal_basis, evidence, record_time, create_time)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .map_err(db)?
            .execute(params![
                tenant,
                record.id.to_string(),
                id.to_string(),
                record.channel.as_str(),
                record.category.as_str(),
                if record.action == ConsentAction::Grant {
                    1
                } else {
                    2
                },
                record.source,
                record.legal_basis.code(),
                record.evidence,
                to_micros(record.record_time),
                to_micros(record.create_time)
            ])
            .map_err(db)?;
            Ok(record)
        })
        .await
    }

    async fn list_consents(
        &self,
        tenant: &str,
        id: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ConsentRecord>> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let (id, _) = resolve(tx, &tenant, id)?;
            read_consents(tx, &tenant, id, after, limit)
        })
        .await
    }

    async fn export_contact(&self, tenant: &str, id: Uuid) -> Result<ContactExport> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| {
            let (id, _) = resolve(tx, &tenant, id)?;
            Ok(ContactExport {
                contact: load_contact(tx, &tenant, id)?,
                preferences: read_preferences(tx, &tenant, id)?,
                consent_records: read_consents(tx, &tenant, id, None, usize::MAX)?,
            })
        })
        .await
    }

    async fn accept_message(&self, tenant: &str, message: NewMessage) -> Result<Accepted> {
        let tenant = tenant.to_owned();
        let accepted = self
            .tx(move |tx| messages::accept(tx, &tenant, message))
            .await?;
        // A replay wrote nothing: no one needs to look again.
        if matches!(accepted, Accepted::New(_)) {
            self.bump();
        }
        Ok(accepted)
    }

    async fn record_inbound(&self, tenant: &str, inbound: NewInbound) -> Result<Received> {
        let tenant = tenant.to_owned();
        let received = self
            .tx(move |tx| messages::record_inbound(tx, &tenant, inbound))
            .await?;
        if matches!(received, Received::New(_)) {
            self.bump();
        }
        Ok(received)
    }

    async fn get_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| messages::get(tx, &tenant, id)).await
    }

    async fn list_messages(
        &self,
        tenant: &str,
        contact_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| messages::list(tx, &tenant, contact_id, before, limit))
            .await
    }

    async fn cancel_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        let tenant = tenant.to_owned();
        self.write(move |tx| messages::cancel(tx, &tenant, id))
            .await
    }

    async fn retry_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        let tenant = tenant.to_owned();
        self.write(move |tx| messages::retry(tx, &tenant, id)).await
    }

    async fn claim_jobs(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        // Claiming is not announced: only the claiming worker cares.
        self.tx(move |tx| messages::claim(tx, limit, lease)).await
    }

    async fn complete_job(
        &self,
        job: &ClaimedJob,
        attempt: Option<Attempt>,
        next: NextStep,
    ) -> Result<Option<Message>> {
        let job = job.clone();
        let completed = self
            .tx(move |tx| messages::complete(tx, &job, attempt, next))
            .await?;
        if completed.is_some() {
            self.bump();
        }
        Ok(completed)
    }

    async fn apply_provider_status(&self, status: ProviderStatus) -> Result<Option<Message>> {
        let applied = self
            .tx(move |tx| messages::apply_provider_status(tx, &status))
            .await?;
        Ok(applied.map(|(message, changed)| {
            if changed {
                self.bump();
            }
            message
        }))
    }

    async fn read_events(
        &self,
        tenant: &str,
        after: Cursor,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>> {
        let tenant = tenant.to_owned();
        let filter = filter.clone();
        self.tx(move |tx| events::read(tx, &tenant, after, &filter, limit))
            .await
    }

    async fn event_head(&self, tenant: &str) -> Result<Cursor> {
        let tenant = tenant.to_owned();
        self.tx(move |tx| events::head(tx, &tenant)).await
    }

    async fn prune_events(&self, before: SystemTime) -> Result<u64> {
        self.tx(move |tx| events::prune(tx, before)).await
    }

    async fn stale_sent(&self, sent_before: SystemTime, limit: usize) -> Result<Vec<Message>> {
        self.tx(move |tx| messages::stale_sent(tx, sent_before, limit))
            .await
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
