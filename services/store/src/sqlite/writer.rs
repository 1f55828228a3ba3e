//! The embedded store's connections: one writer thread with group commit,
//! and a pool of read connections.
//!
//! SQLite has one writer at a time, and in WAL mode with `synchronous=FULL`
//! each commit waits for an fsync. So every write goes to one thread that
//! owns the write connection; it takes whatever writes have queued while its
//! last commit was on its way to disk (up to [`MAX_GROUP`]) and runs them in
//! one transaction, **each inside its own savepoint**: a write that fails
//! is rolled back alone and answered with its error, the others commit
//! together, with one fsync. Nobody is answered before that commit
//! returned, so durability is exactly that of one transaction per write.
//!
//! Reads never wait for writes: they run on read connections (WAL readers
//! see the last commit and block no one), on tokio's blocking pool.
//!
//! Checkpoints (copying committed pages from the WAL into the database
//! file) run on a thread of their own, so the writer's commits never wait
//! for them; durability does not depend on them (every commit is in the
//! fsynced WAL).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// Most writes committed together.
const MAX_GROUP: usize = 512;

/// Reads at once (each on its own connection, kept open while idle).
const READERS: usize = 4;

/// How often the checkpointer looks at the WAL.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL size past which the checkpointer also asks to start the WAL over
/// (which needs a moment without readers).
const WAL_LIMIT: u64 = 64 * 1024 * 1024;

/// How long such a restart may hold up the writer while it waits for
/// readers; it is tried again next round when they do not finish in time.
const RESTART_WAIT_MS: u32 = 20;

fn backend(text: impl Into<String>) -> StoreError {
    StoreError::backend(std::io::Error::other(text.into()))
}

/// How long a shredding checkpoint (after an erasure) waits for readers to
/// finish before it gives up.
const SHRED_WAIT: Duration = Duration::from_secs(5);

/// One queued write: runs inside the group's transaction, answers after the
/// group's commit.
trait Write: Send {
    /// Runs the write; whether it succeeded (else its savepoint is rolled
    /// back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the group's commit has, or has not, happened.
    fn finish(self: Box<Self>, committed: std::result::Result<(), String>);
}

struct Job<T, F> {
    f: Option<F>,
    outcome: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Write for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| f(conn)))
            .unwrap_or_else(|_| Err(backend("a store write panicked")));
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, committed: std::result::Result<(), String>) {
        let answer = match (self.outcome, committed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(reason)) => Err(backend(reason)),
            (None, Ok(())) => Err(backend("a store write was not run")),
        };
        let _ = self.reply.send(answer);
    }
}

/// Runs `f` inside a savepoint: its changes are kept only if it succeeds.
pub(super) fn in_savepoint<T>(conn: &Connection, f: impl FnOnce() -> Result<T>) -> Result<T> {
    conn.execute_batch("SAVEPOINT write")
        .map_err(StoreError::backend)?;
    match f() {
        Ok(value) => {
            conn.execute_batch("RELEASE write")
                .map_err(StoreError::backend)?;
            Ok(value)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO write; RELEASE write")
                .map_err(StoreError::backend)?;
            Err(e)
        }
    }
}

/// The handle to the writer thread; the thread (and the checkpointer) end
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Box<dyn Write>>,
    /// Asks the checkpointer for a TRUNCATE checkpoint (see [`Writer::shred`]).
    shred: mpsc::Sender<oneshot::Sender<Result<()>>>,
    /// The checkpointer runs while this lives.
    _alive: Arc<()>,
}

impl Writer {
    /// Starts the writer thread on `conn` (the store file at `path`), and the
    /// checkpointer.
    pub(super) fn start(conn: Connection, path: &Path) -> Result<Writer> {
        let (tx, rx) = mpsc::channel::<Box<dyn Write>>();
        std::thread::Builder::new()
            .name("omniroute-sqlite-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(StoreError::backend)?;
        let alive = Arc::new(());
        let checkpoints = Connection::open(path).map_err(StoreError::backend)?;
        checkpoints
            .execute_batch(&format!("PRAGMA busy_timeout = {RESTART_WAIT_MS};"))
            .map_err(StoreError::backend)?;
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        let watched = Arc::downgrade(&alive);
        let (shred, shreds) = mpsc::channel();
        std::thread::Builder::new()
            .name("omniroute-sqlite-checkpoint".into())
            .spawn(move || checkpoint(&checkpoints, &wal, &watched, &shreds))
            .map_err(StoreError::backend)?;
        Ok(Writer {
            queue: tx,
            shred,
            _alive: alive,
        })
    }

    /// Copies every committed page into the database file and empties the
    /// WAL (`wal_checkpoint(TRUNCATE)`), waiting for readers up to
    /// [`SHRED_WAIT`]: after an erasure, the WAL's older frames still hold
    /// the erased data; the database file then has only the overwritten
    /// pages (the writer runs with `secure_delete`).
    pub(super) async fn shred(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.shred
            .send(reply)
            .map_err(|_| backend("the store is closed"))?;
        answer
            .await
            .map_err(|_| backend("the checkpointer stopped"))?
    }

    /// Runs `f` in the next group's transaction; answers after its commit.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            f: Some(f),
            outcome: None,
            reply,
        };
        self.queue
            .send(Box::new(job))
            .map_err(|_| backend("the store is closed"))?;
        answer
            .await
            .map_err(|_| backend("the store writer stopped"))?
    }
}

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`] while the store lives:
/// passively (never blocking the writer), and once the WAL file passes
/// [`WAL_LIMIT`] asking for a restart of the WAL, which waits at most
/// [`RESTART_WAIT_MS`] for readers (blocking the writer that long) and
/// otherwise gives up until the next round.
fn checkpoint(
    conn: &Connection,
    wal: &Path,
    alive: &Weak<()>,
    shreds: &mpsc::Receiver<oneshot::Sender<Result<()>>>,
) {
    while alive.strong_count() > 0 {
        match shreds.recv_timeout(CHECKPOINT_EVERY) {
            Ok(reply) => {
                let _ = reply.send(truncate_wal(conn));
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let large = std::fs::metadata(wal).is_ok_and(|m| m.len() > WAL_LIMIT);
        let mode = if large { "TRUNCATE" } else { "PASSIVE" };
        match conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
            Ok(()) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy => {}
            Err(e) => {
                tracing::warn!(error = %e, "checkpointing the embedded store failed; retrying")
            }
        }
    }
}

/// A TRUNCATE checkpoint that completes: retried while readers hold it
/// back, for at most [`SHRED_WAIT`].
fn truncate_wal(conn: &Connection) -> Result<()> {
    let deadline = std::time::Instant::now() + SHRED_WAIT;
    loop {
        // (busy, WAL frames, frames checkpointed); busy = 1 when readers
        // kept it from finishing.
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .or_else(|e| match e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::DatabaseBusy =>
                {
                    Ok(1)
                }
                e => Err(e),
            })
            .map_err(StoreError::backend)?;
        if busy == 0 {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(StoreError::Unavailable(Box::new(std::io::Error::other(
                "readers kept the WAL from being emptied after an erasure",
            ))));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(mut conn: Connection, queue: mpsc::Receiver<Box<dyn Write>>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let committed = commit_group(&mut conn, &mut group);
        for job in group {
            job.finish(committed.clone());
        }
    }
}

/// Runs a group in one transaction, each write in its own savepoint.
fn commit_group(
    conn: &mut Connection,
    group: &mut [Box<dyn Write>],
) -> std::result::Result<(), String> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| format!("cannot begin a write: {e}"))?;
    for job in group.iter_mut() {
        tx.execute_batch("SAVEPOINT job")
            .map_err(|e| format!("cannot open a savepoint: {e}"))?;
        let ok = job.run(&tx);
        let end = if ok {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        tx.execute_batch(end)
            .map_err(|e| format!("cannot close a savepoint: {e}"))?;
    }
    tx.commit().map_err(|e| format!("commit failed: {e}"))
}

/// Read connections to the store file, [`READERS`] at most.
#[derive(Debug, Clone)]
pub(super) struct Readers {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
    /// Bounds the reads (and so the connections and their page caches) at
    /// once.
    turns: Arc<tokio::sync::Semaphore>,
}

impl Readers {
    pub(super) fn new(path: &Path) -> Readers {
        Readers {
            path: path.to_path_buf(),
            idle: Arc::new(Mutex::new(Vec::new())),
            turns: Arc::new(tokio::sync::Semaphore::new(READERS)),
        }
    }

    fn open(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(StoreError::backend)?;
        conn.execute_batch("PRAGMA busy_timeout = 5000; PRAGMA cache_size = -4096;")
            .map_err(StoreError::backend)?;
        Ok(conn)
    }

    /// Runs `f` in one read transaction (one snapshot) on a read connection.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let turn = Arc::clone(&self.turns)
            .acquire_owned()
            .await
            .map_err(StoreError::backend)?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let taken = this
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop();
            let mut conn = match taken {
                Some(conn) => conn,
                None => this.open()?,
            };
            let result = (|| {
                let tx = conn.transaction().map_err(StoreError::backend)?;
                let value = f(&tx)?;
                tx.finish().map_err(StoreError::backend)?;
                Ok(value)
            })();
            let mut idle = this
                .idle
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if idle.len() < READERS {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(StoreError::backend)?
    }
}
