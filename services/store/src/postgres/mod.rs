//! The PostgreSQL store, for production: any number of stateless replicas on
//! one database.
//!
//! Concurrency: every write runs in one short transaction that locks the rows
//! it changes (`SELECT … FOR UPDATE`, in id order for merges, so two merges
//! cannot deadlock). Identity and external-reference uniqueness are enforced by
//! unique indexes; an insert that loses a race is reported as the conflict it
//! is, never as an internal error. Reads of a contact issue their queries
//! together on one connection (tokio-postgres pipelines them), and lists load
//! the identities of a whole page in one query.

mod accept;
mod auth;
mod callbacks;
mod contacts;
mod dispatch;
mod errors;
mod events;
mod json;
mod lifecycle;
mod messages;
mod quotas;
mod signals;

pub use events::HotStatement;

/// The statements on hot paths whose plans must stay good on large tables
/// with generic plans (the event log's reads, the callbacks', the lookup
/// of API keys), with sample arguments, for `tests/plans.rs`.
pub fn hot_statements() -> Vec<HotStatement> {
    let mut statements = events::hot_statements();
    statements.extend(callbacks::hot_statements());
    statements.extend(auth::hot_statements());
    statements.extend(messages::hot_statements());
    statements.extend(quotas::hot_statements());
    statements
}

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use omniroute_channel::{Address, Channel};
use tokio::sync::watch;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::auth::{ApiKey, NewApiKey, Tenant};
use crate::callbacks::{Callback, CallbackFilter, CallbackMark, CanceledCallback};
use crate::jobs::{ClaimedJob, Completion, ProviderStatus, Reported};
use crate::model::*;
use crate::{
    Accepted, Cursor, CursorCheck, Event, EventFilter, EventType, Message, NewInbound, NewMessage,
    Received, SentMark, TenantScope, contact_event,
};
use crate::{Result, Store, StoreError, dedup_addresses};
use contacts::*;
use errors::{db, pool_error};
use lifecycle::{erase, merge};
use signals::{AbortOnDrop, Signals, spawn_listener, spawn_notifier};

/// Versioned migrations, applied in order; each runs once per database.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        include_str!("../../migrations/postgres/0001_contacts.sql"),
    ),
    (
        2,
        include_str!("../../migrations/postgres/0002_messages.sql"),
    ),
    (
        3,
        include_str!("../../migrations/postgres/0003_inbound.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_contact_versions.sql"),
    ),
    (5, include_str!("../../migrations/postgres/0005_queue.sql")),
    (
        6,
        include_str!("../../migrations/postgres/0006_hot_status.sql"),
    ),
    (
        7,
        include_str!("../../migrations/postgres/0007_routing.sql"),
    ),
    (8, include_str!("../../migrations/postgres/0008_reads.sql")),
    (
        9,
        include_str!("../../migrations/postgres/0009_inbound_media.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_callbacks.sql"),
    ),
    (11, include_str!("../../migrations/postgres/0011_auth.sql")),
    (
        12,
        include_str!("../../migrations/postgres/0012_quotas.sql"),
    ),
    (
        13,
        include_str!("../../migrations/postgres/0013_automatic.sql"),
    ),
];

/// Serializes migrations of replicas that start together.
const MIGRATION_LOCK: i64 = 0x6f6d_6e69_726f_7574; // "omnirout"

/// How to reach PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStoreConfig {
    /// A libpq-style URL or key=value string.
    pub url: String,
    /// Maximum connections in the pool.
    pub pool_size: usize,
    /// How long to wait for a connection before failing a call.
    pub connect_timeout: Duration,
    /// Writer tasks that commit accepted messages in groups (see
    /// `postgres/accept.rs`); each holds a pool connection while it writes.
    pub writers: usize,
}

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Connections for statements on the job queue, which plan every
    /// execution afresh (see `dispatch.rs`).
    queue: Pool,
    /// Connections that read the event log (see `events.rs`).
    readers: Pool,
    /// Bumped after our own commits and on NOTIFY from other replicas.
    signals: Arc<Signals>,
    /// The group-commit writers of accepted messages.
    accepts: accept::AcceptQueue,
    /// The LISTEN and NOTIFY tasks, stopped when the last clone of the store
    /// is dropped.
    _tasks: Arc<[AbortOnDrop; 2]>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's config holds the password: never print it.
        f.debug_struct("PgStore")
            .field("pool_size", &self.pool.status().max_size)
            .finish()
    }
}

/// Connections that read the event log, at least.
const READER_CONNECTIONS: usize = 2;

/// Connections in the queue pool, at least: the claim loop, the outcome
/// recorder, status ingestion, and webhooks applying statuses.
const QUEUE_CONNECTIONS: usize = 4;

/// A pool of `size` connections configured by `config`.
fn pool_of(config: tokio_postgres::Config, size: usize, timeout: Duration) -> Result<Pool> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .build()
        .map_err(StoreError::backend)
}

impl PgStore {
    /// Connects, checks the connection and applies pending migrations.
    pub async fn connect(config: &PgStoreConfig) -> Result<PgStore> {
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(db)?;
        pg.connect_timeout(config.connect_timeout);
        pg.application_name("omniroute");
        let listener_config = pg.clone();
        let with_options = |extra: &str| {
            let mut config = pg.clone();
            match pg.get_options() {
                Some(given) if !given.trim().is_empty() => {
                    config.options(format!("{given} {extra}"))
                }
                _ => config.options(extra),
            };
            config
        };
        let queue_config = with_options("-c plan_cache_mode=force_custom_plan");
        let reader_config = with_options(events::READER_OPTIONS);
        let queue_size = QUEUE_CONNECTIONS.max(config.pool_size / 4);
        let queue = pool_of(queue_config, queue_size, config.connect_timeout)?;
        let readers = pool_of(
            reader_config,
            READER_CONNECTIONS.max(config.pool_size / 4),
            config.connect_timeout,
        )?;
        let pool = pool_of(pg, config.pool_size.max(1), config.connect_timeout)?;
        let signals = Signals::new();
        let listener = spawn_listener(listener_config, Arc::downgrade(&signals));
        let notifier = spawn_notifier(pool.clone(), Arc::clone(&signals));
        let accepts = accept::start(pool.clone(), Arc::clone(&signals), config.writers);
        let store = PgStore {
            pool,
            queue,
            readers,
            signals,
            accepts,
            _tasks: Arc::new([listener, notifier]),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Signals a commit that wrote events, here and to other replicas.
    fn bump(&self) {
        self.signals.bump(false);
    }

    /// Signals a commit that made jobs due (and wrote events).
    fn bump_jobs(&self) {
        self.signals.bump(true);
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// A connection that plans each statement for its parameters and the
    /// tables' current sizes (for the job queue, see `dispatch.rs`).
    async fn queue_client(&self) -> Result<deadpool_postgres::Object> {
        self.queue.get().await.map_err(pool_error)
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(db)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(db)?;
        let applied: Vec<i32> = tx
            .query("SELECT version FROM schema_migrations", &[])
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (version, sql) in MIGRATIONS {
            if !applied.contains(version) {
                tx.batch_execute(sql).await.map_err(db)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)",
                    &[version],
                )
                .await
                .map_err(db)?;
                tracing::info!(version, "applied postgres migration");
            }
        }
        tx.commit().await.map_err(db)
    }
}

#[async_trait]
impl Store for PgStore {
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

    async fn get_preferences(&self, tenant: &str, id: Uuid) -> Result<Preferences> {
        let client = self.client().await?;
        let (id, _) = resolve(&client, tenant, id).await?;
        read_preferences(&client, tenant, id).await
    }

    async fn update_preferences(
        &self,
        tenant: &str,
        id: Uuid,
        patch: PreferencesPatch,
    ) -> Result<Preferences> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        let id = lock_active(&tx, tenant, id).await?;
        let current = read_preferences(&tx, tenant, id).await?;
        let mut channels = current.channels;
        let (time_zone, locale) = patch.apply(&mut channels);
        let channels = serde_json::to_value(&channels).map_err(StoreError::backend)?;
        tx.execute(
            "UPDATE contacts SET preferences = $3, time_zone = $4, locale = $5,
                    preferences_update_time = $6, update_time = $6
             WHERE tenant = $1 AND id = $2",
            &[
                &tenant,
                &id,
                &channels,
                &time_zone.unwrap_or(current.time_zone),
                &locale.unwrap_or(current.locale),
                &now(),
            ],
        )
        .await
        .map_err(db)?;
        let preferences = read_preferences(&tx, tenant, id).await?;
        tx.commit().await.map_err(db)?;
        Ok(preferences)
    }

    async fn record_consent(
        &self,
        tenant: &str,
        id: Uuid,
        consent: NewConsent,
    ) -> Result<ConsentRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        // The lock orders the append against a concurrent merge or erasure.
        let id = lock_active(&tx, tenant, id).await?;
        let record = consent.into_record(id, now());
        let stmt = tx
            .prepare_cached(
                "INSERT INTO consent_records (tenant, id, contact_id, channel, category, action,
                        source, legal_basis, evidence, record_time, create_time)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .await
            .map_err(db)?;
        let action: i16 = if record.action == ConsentAction::Grant {
            1
        } else {
            2
        };
        tx.execute(
            &stmt,
            &[
                &tenant,
                &record.id,
                &id,
                &record.channel.as_str(),
                &record.category.as_str(),
                &action,
                &record.source,
                &record.legal_basis.code(),
                &record.evidence,
                &record.record_time,
                &record.create_time,
            ],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(record)
    }

    async fn list_consents(
        &self,
        tenant: &str,
        id: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ConsentRecord>> {
        let client = self.client().await?;
        let (id, _) = resolve(&client, tenant, id).await?;
        read_consents(&client, tenant, id, after, limit).await
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

    async fn accept_messages(
        &self,
        tenant: &str,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Result<Accepted>>> {
        self.accept_many(tenant, messages).await
    }

    async fn messages_by_idempotency_keys(
        &self,
        tenant: &str,
        keys: &[String],
    ) -> Result<Vec<Option<(Message, String)>>> {
        let client = self.client().await?;
        messages::by_idempotency_keys(&client, tenant, keys).await
    }

    async fn routing_contacts(
        &self,
        tenant: &str,
        lookups: &[ContactLookup],
    ) -> Result<Vec<Option<RoutingContact>>> {
        let client = self.client().await?;
        routing_contacts(&client, tenant, lookups).await
    }

    async fn get_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        self.message(tenant, id).await
    }

    async fn list_messages(
        &self,
        tenant: &str,
        contact_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        self.messages_of(tenant, contact_id, before, limit).await
    }

    async fn cancel_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        self.cancel(tenant, id).await
    }

    async fn retry_message(&self, tenant: &str, id: Uuid) -> Result<Message> {
        self.retry(tenant, id).await
    }

    async fn claim_jobs(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedJob>> {
        self.claim(limit, lease).await
    }

    async fn complete_jobs(&self, completions: &[Completion]) -> Result<Vec<Option<Message>>> {
        self.complete(completions).await
    }

    async fn apply_provider_statuses(
        &self,
        statuses: Vec<ProviderStatus>,
    ) -> Result<Vec<Option<Reported>>> {
        self.provider_statuses(statuses).await
    }

    async fn record_inbound(&self, tenant: &str, inbound: NewInbound) -> Result<Received> {
        self.inbound(tenant, inbound).await
    }

    async fn get_inbound_media(&self, tenant: &str, id: Uuid) -> Result<Option<Vec<u8>>> {
        self.inbound_media(tenant, id).await
    }

    async fn record_call_progress(
        &self,
        channel: Channel,
        call_id: &str,
        answered_by: Option<&str>,
        bridged_seconds: Option<u32>,
    ) -> Result<bool> {
        self.record_progress(channel, call_id, answered_by, bridged_seconds)
            .await
    }

    async fn get_callback(&self, tenant: &str, id: Uuid) -> Result<Callback> {
        self.callback(tenant, id).await
    }

    async fn list_callbacks(
        &self,
        tenant: &str,
        filter: &CallbackFilter,
        after: Option<CallbackMark>,
        limit: usize,
    ) -> Result<Vec<Callback>> {
        self.callbacks(tenant, filter, after, limit).await
    }

    async fn cancel_callback(&self, tenant: &str, id: Uuid) -> Result<CanceledCallback> {
        PgStore::cancel_callback(self, tenant, id).await
    }

    async fn read_events(
        &self,
        tenant: &str,
        after: Cursor,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>> {
        self.events(tenant, after, filter, limit).await
    }

    async fn event_head(&self, tenant: &str) -> Result<Cursor> {
        self.head(tenant).await
    }

    async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(db)?;
        Ok(())
    }

    fn pool_use(&self) -> Vec<crate::PoolUse> {
        [
            ("main", &self.pool),
            ("queue", &self.queue),
            ("events", &self.readers),
        ]
        .into_iter()
        .map(|(name, pool)| {
            let status = pool.status();
            crate::PoolUse {
                name,
                in_use: status.size.saturating_sub(status.available),
                max: status.max_size,
            }
        })
        .collect()
    }

    async fn consume_quota(&self, tenant: &str, day: &str, wanted: u64, limit: u64) -> Result<u64> {
        self.consume(tenant, day, wanted, limit).await
    }

    async fn release_quota(&self, tenant: &str, day: &str, count: u64) -> Result<()> {
        self.release(tenant, day, count).await
    }

    async fn queue_stats(&self) -> Result<crate::QueueStats> {
        let client = self.client().await?;
        let jobs: i64 = client
            .query_one("SELECT count(*) FROM dispatch_jobs", &[])
            .await
            .map_err(db)?
            .get(0);
        let earliest_due: Option<SystemTime> = client
            .query_one(crate::EARLIEST_DUE, &[])
            .await
            .map_err(db)?
            .get(0);
        Ok(crate::QueueStats {
            jobs: u64::try_from(jobs).unwrap_or(0),
            earliest_due,
        })
    }

    async fn check_cursor(&self, tenant: &str, cursor: Cursor) -> Result<CursorCheck> {
        self.cursor_check(tenant, cursor).await
    }

    async fn prune_events(&self, before: SystemTime) -> Result<u64> {
        self.prune(before).await
    }

    async fn stale_sent(
        &self,
        after: SentMark,
        sent_before: SystemTime,
        limit: usize,
    ) -> Result<Vec<(SentMark, Message)>> {
        self.stale(after, sent_before, limit).await
    }

    async fn announce_closing_windows(
        &self,
        scope: &TenantScope,
        lead: Duration,
        limit: usize,
    ) -> Result<usize> {
        self.closing_windows(scope, lead, limit).await
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.signals.changes.subscribe()
    }

    fn job_changes(&self) -> watch::Receiver<u64> {
        self.signals.jobs.subscribe()
    }

    async fn create_tenant(&self, id: &str, display_name: &str) -> Result<Tenant> {
        self.new_tenant(id, display_name).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        self.tenants().await
    }

    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>> {
        self.tenant(id).await
    }

    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey> {
        self.new_api_key(key).await
    }

    async fn find_api_key(&self, prefix: &str) -> Result<Option<ApiKey>> {
        self.api_key(prefix).await
    }

    async fn list_api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>> {
        self.api_keys(tenant).await
    }

    async fn revoke_api_key(&self, tenant: Option<&str>, id: Uuid) -> Result<ApiKey> {
        self.revoke_key(tenant, id).await
    }
}
