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
//!
//! This file connects, migrates and holds [`HealthStore`]; each other part
//! is implemented in the file holding its statements: [`crate::ContactStore`]
//! in `contacts.rs` (merge and erasure in `lifecycle.rs`, executing
//! `crate::plans`), [`crate::PreferenceStore`] in `preferences.rs`,
//! [`crate::MessageStore`] in `messages.rs` (accepting in `accept.rs`),
//! [`crate::DispatchStore`] in `dispatch.rs`, [`crate::CallbackStore`] in
//! `callbacks.rs`, [`crate::EndpointStore`] in `endpoints.rs`,
//! [`crate::DeliveryStore`] in `deliveries.rs`, [`crate::SinkStore`] in `sinks.rs`, [`crate::EventStore`] in `events.rs`,
//! [`crate::TenantStore`] in `auth.rs`, [`crate::QuotaStore`] in `quotas.rs`.

mod accept;
mod auth;
mod callbacks;
mod contacts;
mod deliveries;
mod dispatch;
mod endpoints;
mod errors;
mod events;
mod json;
mod lifecycle;
mod messages;
mod preferences;
mod quotas;
mod signals;
mod sinks;

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
    statements.extend(deliveries::hot_statements());
    statements
}

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::parts::HealthStore;
use crate::{Result, StoreError};
use contacts::*;
use errors::{db, pool_error};
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
    (
        14,
        include_str!("../../migrations/postgres/0014_endpoints.sql"),
    ),
    (
        15,
        include_str!("../../migrations/postgres/0015_deliveries.sql"),
    ),
    (16, include_str!("../../migrations/postgres/0016_sinks.sql")),
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
impl HealthStore for PgStore {
    async fn ping(&self) -> Result<()> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(db)?;
        Ok(())
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
}
