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
//! This file opens the store and holds [`HealthStore`]; each other part is
//! implemented in the file holding its statements: [`crate::ContactStore`]
//! in `contacts.rs` (merge and erasure in `lifecycle.rs`, executing
//! `crate::plans`), [`crate::PreferenceStore`] in `preferences.rs`,
//! [`crate::MessageStore`] in `messages.rs`, [`crate::DispatchStore`] in
//! `dispatch.rs`, [`crate::CallbackStore`] in `callbacks.rs`,
//! [`crate::EventStore`] in `events.rs`, [`crate::TenantStore`] in
//! `auth.rs`, [`crate::QuotaStore`] in `quotas.rs`.

mod auth;
mod callbacks;
mod contacts;
mod deliveries;
mod dispatch;
mod endpoints;
mod events;
mod lifecycle;
mod messages;
mod preferences;
mod quotas;
mod sinks;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::watch;
use uuid::Uuid;

use crate::model::*;
use crate::parts::HealthStore;
use crate::{Result, StoreError};
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
    include_str!("../../migrations/sqlite/0012_endpoints.sql"),
    include_str!("../../migrations/sqlite/0013_deliveries.sql"),
    include_str!("../../migrations/sqlite/0014_sinks.sql"),
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
    /// [`crate::EventStore::changes`]); one process holds the file, so no cross-process
    /// signal is needed.
    changes: Arc<watch::Sender<u64>>,
    /// Bumped after commits that made jobs due (see [`crate::DispatchStore::job_changes`]).
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

/// A duration in microseconds, as times are stored (saturating).
fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
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

/// The plan SQLite picks for `sql` (with `args` parameters, all NULL) on a
/// freshly migrated store file: the statements' plan tests read it.

#[async_trait]
impl HealthStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.read(|tx| {
            tx.query_row("SELECT 1", [], |_| Ok(())).map_err(db)?;
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
}

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
