//! The embedded store: one SQLite file, the default when no database URL is
//! configured.
//!
//! Durability: the file runs in WAL mode with `synchronous=FULL`, so every
//! committed transaction is fsynced before the call returns. Every write
//! goes to one writer thread that commits the writes queued meanwhile
//! together, each in its own savepoint (see `writer.rs`): SQLite allows one
//! writer at a time anyway, and one writer keeps every write serializable
//! without busy retries. Reads run on read connections and never wait for
//! writes.
//!
//! Contacts live here; messages and jobs in `messages.rs`, the event log in
//! `events.rs`, both called inside the transactions opened here.

mod auth;
mod callbacks;
mod contacts;
mod events;
mod lifecycle;
mod messages;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use omniroute_channel::{Address, Channel};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;
use uuid::Uuid;

use crate::model::*;
use crate::{
    Accepted, ApiKey, Callback, CallbackFilter, CallbackMark, CanceledCallback, ClaimedJob,
    Completion, Cursor, CursorCheck, Event, EventFilter, EventType, Message, MessageStatus,
    NewApiKey, NewInbound, NewMessage, ProviderStatus, Received, Reported, Result, SentMark, Store,
    StoreError, Tenant, contact_event, dedup_addresses,
};
use contacts::*;

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_contacts.sql"),
    include_str!("../../migrations/sqlite/0002_messages.sql"),
    include_str!("../../migrations/sqlite/0003_inbound.sql"),
    include_str!("../../migrations/sqlite/0004_contact_versions.sql"),
    include_str!("../../migrations/sqlite/0005_routing.sql"),
    include_str!("../../migrations/sqlite/0006_reconcile.sql"),
    include_str!("../../migrations/sqlite/0007_inbound_media.sql"),
    include_str!("../../migrations/sqlite/0008_callbacks.sql"),
    include_str!("../../migrations/sqlite/0009_auth.sql"),
    include_str!("../../migrations/sqlite/0010_quotas.sql"),
    include_str!("../../migrations/sqlite/0011_automatic.sql"),
];

/// The embedded SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// The writer thread (group commit).
    writer: writer::Writer,
    /// Read connections.
    readers: writer::Readers,
    path: PathBuf,
    /// Bumped after every commit that wrote events or jobs (see
    /// [`Store::changes`]); one process holds the file, so no cross-process
    /// signal is needed.
    changes: Arc<watch::Sender<u64>>,
    /// Bumped after commits that made jobs due (see [`Store::job_changes`]).
    jobs: Arc<watch::Sender<u64>>,
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
            // Checkpoints run on their own thread (see `writer.rs`), not in
            // the writer's commits. Deleted and overwritten content is
            // zeroed (`secure_delete`), so that an erasure reaches the file's
            // bytes, not only its tables.
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;
                 PRAGMA cache_size = -16384;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA wal_autocheckpoint = 0;
                 PRAGMA secure_delete = ON;",
            )
            .map_err(StoreError::backend)?;
            migrate(&mut conn)?;
            Ok(conn)
        })
        .await
        .map_err(StoreError::backend)??;
        Ok(SqliteStore {
            writer: writer::Writer::start(conn, &path)?,
            readers: writer::Readers::new(&path),
            path,
            changes: Arc::new(watch::Sender::new(0)),
            jobs: Arc::new(watch::Sender::new(0)),
        })
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` as one write (see `writer.rs`); answers after its commit.
    async fn tx<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.write(f).await
    }

    /// Runs `f` in one read transaction on a read connection.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.readers.read(f).await
    }

    /// Tells readers to look again; called after the commit, so whoever
    /// wakes up sees the change.
    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// [`SqliteStore::bump`] for a commit that also made jobs due.
    fn bump_jobs(&self) {
        self.bump();
        self.jobs.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// [`SqliteStore::tx`] followed by [`SqliteStore::bump`] once it committed.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
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

/// An SQLite error in the store's terms: a locked or busy file (another
/// process holds it) is [`StoreError::Unavailable`].
fn db(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(Box::new(e))
        }
        _ => StoreError::backend(e),
    }
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

    async fn get_preferences(&self, tenant: &str, id: Uuid) -> Result<Preferences> {
        let tenant = tenant.to_owned();
        self.read(move |tx| {
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
        self.read(move |tx| {
            let (id, _) = resolve(tx, &tenant, id)?;
            read_consents(tx, &tenant, id, after, limit)
        })
        .await
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

    async fn messages_by_idempotency_keys(
        &self,
        tenant: &str,
        keys: &[String],
    ) -> Result<Vec<Option<(Message, String)>>> {
        let (tenant, keys) = (tenant.to_owned(), keys.to_vec());
        self.read(move |tx| {
            keys.iter()
                .map(|key| messages::by_idempotency_key(tx, &tenant, key))
                .collect()
        })
        .await
    }

    async fn accept_messages(
        &self,
        tenant: &str,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Result<Accepted>>> {
        let tenant = tenant.to_owned();
        let accepted = self
            .tx(move |tx| {
                Ok(messages
                    .into_iter()
                    .map(|message| {
                        writer::in_savepoint(tx, || messages::accept(tx, &tenant, message))
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
        // A replay wrote nothing: no one needs to look again.
        if accepted.iter().any(|a| matches!(a, Ok(Accepted::New(_)))) {
            self.bump_jobs();
        }
        Ok(accepted)
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

    async fn record_inbound(&self, tenant: &str, inbound: NewInbound) -> Result<Received> {
        let tenant = tenant.to_owned();
        let received = self
            .tx(move |tx| messages::record_inbound(tx, &tenant, inbound))
            .await?;
        // A message from the customer may end watches (due at once).
        if matches!(received, Received::New(_)) {
            self.bump_jobs();
        }
        Ok(received)
    }

    async fn get_inbound_media(&self, tenant: &str, id: Uuid) -> Result<Option<Vec<u8>>> {
        let tenant = tenant.to_owned();
        self.read(move |tx| messages::inbound_media(tx, &tenant, id))
            .await
    }

    async fn record_call_progress(
        &self,
        channel: Channel,
        call_id: &str,
        answered_by: Option<&str>,
        bridged_seconds: Option<u32>,
    ) -> Result<bool> {
        let call_id = call_id.to_owned();
        let answered_by = answered_by.map(str::to_owned);
        // A callback's event may be written: subscribers look again.
        self.write(move |tx| {
            let answered_by = answered_by.as_deref();
            callbacks::record(tx, channel, &call_id, answered_by, bridged_seconds, now())
        })
        .await
    }

    async fn get_callback(&self, tenant: &str, id: Uuid) -> Result<Callback> {
        let tenant = tenant.to_owned();
        self.read(move |tx| callbacks::get(tx, &tenant, id)).await
    }

    async fn list_callbacks(
        &self,
        tenant: &str,
        filter: &CallbackFilter,
        after: Option<CallbackMark>,
        limit: usize,
    ) -> Result<Vec<Callback>> {
        let tenant = tenant.to_owned();
        let filter = filter.clone();
        self.read(move |tx| callbacks::list(tx, &tenant, &filter, after, limit))
            .await
    }

    async fn cancel_callback(&self, tenant: &str, id: Uuid) -> Result<CanceledCallback> {
        let tenant = tenant.to_owned();
        self.write(move |tx| callbacks::cancel(tx, &tenant, id, now()))
            .await
    }

    async fn get_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        let tenant = tenant.to_owned();
        self.read(move |tx| messages::get(tx, &tenant, id)).await
    }

    async fn list_messages(
        &self,
        tenant: &str,
        contact_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let tenant = tenant.to_owned();
        self.read(move |tx| messages::list(tx, &tenant, contact_id, before, limit))
            .await
    }

    async fn cancel_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        let tenant = tenant.to_owned();
        self.write(move |tx| messages::cancel(tx, &tenant, id))
            .await
    }

    async fn retry_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        let tenant = tenant.to_owned();
        let retried = self.tx(move |tx| messages::retry(tx, &tenant, id)).await?;
        self.bump_jobs();
        Ok(retried)
    }

    async fn claim_jobs(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        // Claiming is not announced: only the claiming worker cares.
        self.tx(move |tx| messages::claim(tx, limit, lease)).await
    }

    async fn complete_jobs(&self, completions: &[Completion]) -> Result<Vec<Option<Message>>> {
        let completions = completions.to_vec();
        let completed = self
            .tx(move |tx| {
                completions
                    .into_iter()
                    .map(|c| messages::complete(tx, &c.job, c.attempt, c.next))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        // A job released for a retry or the next channel is due again.
        if completed
            .iter()
            .flatten()
            .any(|m| m.history.last().map(|h| h.status) == Some(MessageStatus::Queued))
        {
            self.bump_jobs();
        } else if completed.iter().any(Option::is_some) {
            self.bump();
        }
        Ok(completed)
    }

    async fn announce_closing_windows(
        &self,
        scope: &crate::TenantScope,
        lead: Duration,
        limit: usize,
    ) -> Result<usize> {
        let scope = scope.clone();
        let announced = self
            .tx(move |tx| messages::closing_windows(tx, &scope, lead, limit))
            .await?;
        if announced > 0 {
            self.bump();
        }
        Ok(announced)
    }

    async fn apply_provider_statuses(
        &self,
        statuses: Vec<ProviderStatus>,
    ) -> Result<Vec<Option<Reported>>> {
        let applied = self
            .tx(move |tx| {
                statuses
                    .iter()
                    .map(|status| messages::apply_provider_status(tx, status))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        // A failure of a watched step made its watch due.
        let failed =
            |m: &Message| m.history.last().map(|h| h.status) == Some(MessageStatus::Failed);
        if applied
            .iter()
            .flatten()
            .any(|(r, changed)| *changed && failed(&r.message))
        {
            self.bump_jobs();
        } else if applied.iter().flatten().any(|(_, changed)| *changed) {
            self.bump();
        }
        Ok(applied
            .into_iter()
            .map(|a| a.map(|(reported, _)| reported))
            .collect())
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
        self.read(move |tx| events::read(tx, &tenant, after, &filter, limit))
            .await
    }

    async fn event_head(&self, tenant: &str) -> Result<Cursor> {
        let tenant = tenant.to_owned();
        self.read(move |tx| events::head(tx, &tenant)).await
    }

    async fn ping(&self) -> Result<()> {
        self.read(|tx| {
            tx.query_row("SELECT 1", [], |_| Ok(())).map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn consume_quota(&self, tenant: &str, day: &str, wanted: u64, limit: u64) -> Result<u64> {
        let (tenant, day) = (tenant.to_owned(), day.to_owned());
        self.tx(move |tx| {
            let used: i64 = tx
                .query_row(
                    "SELECT sent FROM tenant_usage WHERE tenant = ?1 AND day = ?2",
                    params![tenant, day],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db)?
                .unwrap_or(0);
            let granted = crate::granted(u64::try_from(used).unwrap_or(0), wanted, limit);
            if granted > 0 {
                tx.execute(
                    "INSERT INTO tenant_usage (tenant, day, sent) VALUES (?1, ?2, ?3)
                     ON CONFLICT (tenant, day) DO UPDATE SET sent = sent + excluded.sent",
                    params![tenant, day, i64::try_from(granted).unwrap_or(i64::MAX)],
                )
                .map_err(db)?;
            }
            Ok(granted)
        })
        .await
    }

    async fn release_quota(&self, tenant: &str, day: &str, count: u64) -> Result<()> {
        let (tenant, day) = (tenant.to_owned(), day.to_owned());
        self.tx(move |tx| {
            tx.prepare_cached(
                "UPDATE tenant_usage SET sent = max(0, sent - ?3) WHERE tenant = ?1 AND day = ?2",
            )
            .map_err(db)?
            .execute(params![
                tenant,
                day,
                i64::try_from(count).unwrap_or(i64::MAX)
            ])
            .map_err(db)?;
            Ok(())
        })
        .await
    }

    async fn queue_stats(&self) -> Result<crate::QueueStats> {
        self.read(|tx| {
            let jobs: i64 = tx
                .query_row("SELECT count(*) FROM dispatch_jobs", [], |r| r.get(0))
                .map_err(db)?;
            let earliest: Option<i64> = tx
                .query_row(crate::EARLIEST_DUE, [], |r| r.get(0))
                .map_err(db)?;
            Ok(crate::QueueStats {
                jobs: u64::try_from(jobs).unwrap_or(0),
                earliest_due: earliest.map(from_micros),
            })
        })
        .await
    }

    async fn check_cursor(&self, tenant: &str, cursor: Cursor) -> Result<CursorCheck> {
        let tenant = tenant.to_owned();
        self.read(move |tx| events::check_cursor(tx, &tenant, cursor))
            .await
    }

    async fn prune_events(&self, before: SystemTime) -> Result<u64> {
        self.tx(move |tx| events::prune(tx, before)).await
    }

    async fn stale_sent(
        &self,
        after: SentMark,
        sent_before: SystemTime,
        limit: usize,
    ) -> Result<Vec<(SentMark, Message)>> {
        self.read(move |tx| messages::stale_sent(tx, after, sent_before, limit))
            .await
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn job_changes(&self) -> watch::Receiver<u64> {
        self.jobs.subscribe()
    }

    async fn create_tenant(&self, id: &str, display_name: &str) -> Result<Tenant> {
        let id = id.to_owned();
        let display_name = display_name.to_owned();
        // No event or job is written: nobody needs to look again.
        self.tx(move |tx| auth::create_tenant(tx, &id, &display_name, now()))
            .await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.read(auth::list_tenants).await
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        let id = id.to_owned();
        self.read(move |tx| auth::get_tenant(tx, &id)).await
    }

    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey> {
        self.tx(move |tx| auth::create_key(tx, key, now())).await
    }

    async fn find_api_key(&self, prefix: &str) -> Result<Option<ApiKey>> {
        let prefix = prefix.to_owned();
        self.read(move |tx| auth::find_key(tx, &prefix)).await
    }

    async fn list_api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>> {
        let tenant = tenant.map(str::to_owned);
        self.read(move |tx| auth::list_keys(tx, tenant.as_deref()))
            .await
    }

    async fn revoke_api_key(&self, tenant: Option<&str>, id: Uuid) -> Result<ApiKey> {
        let tenant = tenant.map(str::to_owned);
        self.tx(move |tx| auth::revoke_key(tx, tenant.as_deref(), id, now()))
            .await
    }
}

/// The plan SQLite picks for `sql` (with `args` parameters, all NULL) on a
/// freshly migrated store file: the statements' plan tests read it.
#[cfg(test)]
pub(crate) async fn plan(sql: &str, args: usize) -> String {
    let (store, _dir) = crate::testing::fresh_sqlite_store().await;
    let conn = Connection::open(store.path()).expect("open the store file");
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("prepare");
    let nulls = vec![rusqlite::types::Value::Null; args];
    let rows = stmt
        .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
        .expect("explain");
    rows.map(|r| r.expect("a plan row"))
        .collect::<Vec<_>>()
        .join("\n")
}
