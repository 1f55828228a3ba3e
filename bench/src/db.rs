//! The database ceiling: the rows an accepted message costs, written by a
//! plain tokio-postgres loop with nothing else in the way (no gRPC, no
//! validation, no contact or preference reads).
//!
//! The rows go into scratch copies of the server's tables in the same fresh
//! database (`CREATE TABLE … (LIKE messages INCLUDING ALL)`: the same
//! columns, defaults and indexes), with column values copied from messages
//! the server itself accepted, so every row has the shape and size of the
//! real ones. Statements are prepared once per connection; each connection
//! is one client task; `synchronous_commit` stays as the server has it (on).
//!
//! Three shapes:
//! - [`DbMode::Single`]: one transaction per message: the message row and its
//!   `dispatch_jobs` row (BEGIN, INSERT, INSERT, COMMIT: four round trips),
//!   the ceiling the issue names;
//! - [`DbMode::SingleWithEvent`]: the same plus the `MessageAccepted` event
//!   row;
//! - [`DbMode::SingleWithNotify`]: the same plus `pg_notify`: everything
//!   `accept()` writes today. PostgreSQL serializes the commits of
//!   transactions that NOTIFY (one cluster-wide lock held through commit),
//!   which this shape shows;
//! - [`DbMode::Batched`]: one transaction per batch, each table written by a
//!   single multi-row `INSERT … SELECT FROM unnest(…)`: the ceiling for
//!   batched sends (group commit).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use anyhow::{Context, anyhow};
use serde_json::Value;
use tokio_postgres::{Client, NoTls, Statement};
use uuid::Uuid;

use crate::stats::Outcome;

/// The tenant every message of the benchmark belongs to.
const TENANT: &str = "default";

/// The column values of one accepted message, as the server stored them.
#[derive(Debug, Clone)]
pub struct Sample {
    contact_id: Uuid,
    category: String,
    channel: Option<String>,
    priority: i16,
    status: i16,
    content: Value,
    overrides: Value,
    metadata: Value,
    history: Value,
    route: Value,
    request_hash: String,
    event_payload: Value,
}

/// What the database says about itself.
#[derive(Debug, Clone, Default)]
pub struct DbInfo {
    /// `SHOW server_version`.
    pub version: String,
    /// `SHOW synchronous_commit`.
    pub synchronous_commit: String,
    /// `SHOW fsync`.
    pub fsync: String,
    /// `SHOW autovacuum`.
    pub autovacuum: String,
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connect to the benchmark database")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// What the server's database runs with.
pub async fn info(url: &str) -> anyhow::Result<DbInfo> {
    let client = connect(url).await?;
    let show = |name: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .map(|r| r.get::<_, String>(0))
        }
    };
    Ok(DbInfo {
        version: show("server_version").await?,
        synchronous_commit: show("synchronous_commit").await?,
        fsync: show("fsync").await?,
        autovacuum: show("autovacuum").await?,
    })
}

/// Adds `n` contacts, each with an email and a WhatsApp identity, by SQL in
/// statements of 100,000 (seeding a million through CreateContact would take
/// a quarter of an hour); returns their names. WhatsApp numbers end in 7, as
/// the seeded ones do: never one of the sandbox's failing magic endings. Rows are what the server
/// writes, with random v4 ids; the contact triggers are off meanwhile (a new
/// contact has no version to keep).
pub async fn prefill_contacts(url: &str, n: u64) -> anyhow::Result<Vec<String>> {
    let client = connect(url).await?;
    client
        .batch_execute("SET session_replication_role = replica")
        .await
        .context("prefill contacts without triggers")?;
    let chunk = 100_000u64;
    let mut names = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut done = 0;
    while done < n {
        let rows = chunk.min(n - done);
        let ids = client
            .query(
                "WITH c AS (
                     INSERT INTO contacts (tenant, id, state, display_name, locale, time_zone,
                                           external_ref, create_time, update_time)
                     SELECT 'default', gen_random_uuid(), 1, 'Kunde ' || g, 'de-DE',
                            'Europe/Berlin', 'prefill-' || g, now(), now()
                     FROM generate_series($1::bigint, $2::bigint) AS g
                     RETURNING id, substr(external_ref, 9) AS g
                 ),
                 i AS (
                     INSERT INTO identities (tenant, channel, key, address, wa_id, contact_id,
                                             create_time)
                     SELECT 'default', 'email', 'kunde.' || g || '@example.de',
                            'kunde.' || g || '@example.de', NULL, id, now() FROM c
                     UNION ALL
                     SELECT 'default', 'whatsapp', '4916' || lpad(g, 8, '0') || '7',
                            '4916' || lpad(g, 8, '0') || '7', '4916' || lpad(g, 8, '0') || '7',
                            id, now()
                     FROM c
                 )
                 SELECT id FROM c",
                &[&(done as i64), &((done + rows - 1) as i64)],
            )
            .await
            .context("prefill contacts")?;
        names.extend(
            ids.iter()
                .map(|r| format!("contacts/{}", r.get::<_, uuid::Uuid>(0))),
        );
        done += rows;
    }
    Ok(names)
}

/// Adds `n` old, finished messages (status read, no job) to the server's
/// `messages` table, in statements of 100,000 rows: a history for the
/// data-size runs. Each copies the columns of an accepted message (random
/// v4 ids, contacts taken in turn); no events are added.
pub async fn prefill_messages(url: &str, n: u64) -> anyhow::Result<()> {
    let client = connect(url).await?;
    let chunk = 100_000u64;
    let mut done = 0;
    while done < n {
        let rows = chunk.min(n - done);
        client
            .execute(
                "INSERT INTO messages (tenant, id, contact_id, direction, category, channel,
                        priority, status, content, overrides, correlation_ref, metadata, history,
                        attempts, route, request_hash, create_time, update_time)
                 SELECT m.tenant, gen_random_uuid(), c.ids[1 + (g % cardinality(c.ids))], 1,
                        m.category, m.channel, m.priority, 5, m.content, m.overrides,
                        'history-' || g, m.metadata, m.history, m.attempts, m.route,
                        m.request_hash, now() - interval '1 day', now() - interval '1 day'
                 FROM generate_series($1::bigint, $2::bigint) AS g,
                      (SELECT array_agg(id) AS ids FROM contacts WHERE state = 1) AS c,
                      (SELECT * FROM messages WHERE direction = 1 ORDER BY create_time LIMIT 1) AS m",
                &[&(done as i64), &((done + rows - 1) as i64)],
            )
            .await
            .context("prefill messages")?;
        done += rows;
    }
    Ok(())
}

/// `ANALYZE` on the whole database, standing in for autovacuum where it is
/// off: without statistics PostgreSQL keeps the generic plans it made for
/// empty tables, which scan a whole tenant once the tables have grown.
/// Committing fresh statistics also invalidates cached plans, so the
/// server's pooled connections plan again.
pub async fn analyze(url: &str) -> anyhow::Result<()> {
    connect(url)
        .await?
        .batch_execute("ANALYZE")
        .await
        .context("ANALYZE the benchmark database")
}

/// Creates the scratch tables and reads the column values of the messages
/// the server accepted so far (at least one).
pub async fn prepare(url: &str) -> anyhow::Result<Arc<Vec<Sample>>> {
    let client = connect(url).await?;
    client
        .batch_execute(
            "CREATE TABLE bench_messages (LIKE messages INCLUDING ALL);
             CREATE TABLE bench_dispatch_jobs (LIKE dispatch_jobs INCLUDING ALL);
             CREATE TABLE bench_events (LIKE events INCLUDING ALL);",
        )
        .await
        .context("create the scratch tables")?;
    let rows = client
        .query(
            "SELECT m.contact_id, m.category, m.channel, m.priority, m.status, m.content,
                    m.overrides, m.metadata, m.history, m.route, m.request_hash, e.payload
             FROM messages m JOIN events e ON e.message_id = m.id AND e.type = 1
             WHERE m.direction = 1
             ORDER BY m.create_time LIMIT 16",
            &[],
        )
        .await
        .context("read sample messages")?;
    let samples: Vec<Sample> = rows
        .iter()
        .map(|r| Sample {
            contact_id: r.get(0),
            category: r.get(1),
            channel: r.get(2),
            priority: r.get(3),
            status: r.get(4),
            content: r.get(5),
            overrides: r.get(6),
            metadata: r.get(7),
            history: r.get(8),
            route: r.get(9),
            request_hash: r.get(10),
            event_payload: r.get(11),
        })
        .collect();
    if samples.is_empty() {
        return Err(anyhow!(
            "no accepted message to copy the row shape from (send some first)"
        ));
    }
    Ok(Arc::new(samples))
}

/// Removes the scratch tables' rows between runs (so each starts empty).
pub async fn truncate(url: &str) -> anyhow::Result<()> {
    connect(url)
        .await?
        .batch_execute("TRUNCATE bench_messages, bench_dispatch_jobs, bench_events")
        .await
        .context("truncate the scratch tables")
}

/// Which rows one call writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbMode {
    /// A message and its job, one transaction per message.
    Single,
    /// A message, its job and its event, one transaction.
    SingleWithEvent,
    /// A message, its job, its event and a NOTIFY, one transaction.
    SingleWithNotify,
    /// This many messages and jobs in one transaction.
    Batched(usize),
}

/// One connection writing in a loop.
pub struct DbWriter {
    client: Client,
    samples: Arc<Vec<Sample>>,
    counter: Arc<AtomicU64>,
    mode: DbMode,
    message: Statement,
    job: Statement,
    event: Statement,
    notify: Statement,
}

impl std::fmt::Debug for DbWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbWriter")
            .field("mode", &self.mode)
            .finish()
    }
}

impl DbWriter {
    /// Connects and prepares the statements.
    pub async fn connect(
        url: &str,
        samples: Arc<Vec<Sample>>,
        counter: Arc<AtomicU64>,
        mode: DbMode,
    ) -> anyhow::Result<DbWriter> {
        let client = connect(url).await?;
        let (message, job) = match mode {
            DbMode::Single | DbMode::SingleWithEvent | DbMode::SingleWithNotify => (
                // The server's statement (`accept()`), on the scratch table.
                "INSERT INTO bench_messages (tenant, id, contact_id, direction, category, channel,
                        priority, status, content, overrides, correlation_ref, metadata, send_time,
                        expire_time, reply_to, history, attempts, route, idempotency_key,
                        request_hash, create_time, update_time)
                 VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, NULL, $12,
                         '[]', $13, NULL, $14, $15, $15)
                 ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
                "INSERT INTO bench_dispatch_jobs (message_id, tenant, priority, due_time)
                 VALUES ($1, $2, $3, $4)",
            ),
            DbMode::Batched(_) => (
                "INSERT INTO bench_messages (tenant, id, contact_id, direction, category, channel,
                        priority, status, content, overrides, correlation_ref, metadata, history,
                        attempts, route, request_hash, create_time, update_time)
                 SELECT $1, i, c, 1, cat, ch, p, st, co, ov, r, md, h, '[]', ro, rh, $2, $2
                 FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::int2[],
                             $8::int2[], $9::jsonb[], $10::jsonb[], $11::text[], $12::jsonb[],
                             $13::jsonb[], $14::jsonb[], $15::text[])
                      AS t(i, c, cat, ch, p, st, co, ov, r, md, h, ro, rh)",
                "INSERT INTO bench_dispatch_jobs (message_id, tenant, priority, due_time)
                 SELECT i, $1, p, $2 FROM unnest($3::uuid[], $4::int2[]) AS t(i, p)",
            ),
        };
        let message = client.prepare(message).await?;
        let job = client.prepare(job).await?;
        let event = client
            .prepare(
                "INSERT INTO bench_events (tenant, type, time, contact_id, message_id,
                        correlation_ref, metadata, payload)
                 VALUES ($1, 1, $2, $3, $4, $5, $6, $7)",
            )
            .await?;
        let notify = client
            .prepare("SELECT pg_notify('omniroute_bench', '')")
            .await?;
        Ok(DbWriter {
            client,
            samples,
            counter,
            mode,
            message,
            job,
            event,
            notify,
        })
    }

    /// One transaction.
    pub async fn call(&mut self) -> Outcome {
        let result = match self.mode {
            DbMode::Single => self.single(false, false).await,
            DbMode::SingleWithEvent => self.single(true, false).await,
            DbMode::SingleWithNotify => self.single(true, true).await,
            DbMode::Batched(n) => self.batched(n).await,
        };
        match result {
            Ok(items) => Outcome {
                items,
                ..Outcome::default()
            },
            Err(e) => Outcome::error(e.code().map_or_else(
                || "connection".to_owned(),
                |c| format!("SQLSTATE {}", c.code()),
            )),
        }
    }

    async fn single(
        &mut self,
        with_event: bool,
        with_notify: bool,
    ) -> Result<u64, tokio_postgres::Error> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let s = &self.samples[(n % self.samples.len() as u64) as usize];
        let id = Uuid::now_v7();
        let now = SystemTime::now();
        let reference = format!("order-{}", 100_000 + n);
        let tx = self.client.transaction().await?;
        tx.execute(
            &self.message,
            &[
                &TENANT,
                &id,
                &s.contact_id,
                &s.category,
                &s.channel,
                &s.priority,
                &s.status,
                &s.content,
                &s.overrides,
                &reference,
                &s.metadata,
                &s.history,
                &s.route,
                &s.request_hash,
                &now,
            ],
        )
        .await?;
        tx.execute(&self.job, &[&id, &TENANT, &s.priority, &now])
            .await?;
        if with_event {
            tx.execute(
                &self.event,
                &[
                    &TENANT,
                    &now,
                    &s.contact_id,
                    &id,
                    &reference,
                    &s.metadata,
                    &s.event_payload,
                ],
            )
            .await?;
        }
        if with_notify {
            tx.execute(&self.notify, &[]).await?;
        }
        tx.commit().await?;
        Ok(1)
    }

    async fn batched(&mut self, size: usize) -> Result<u64, tokio_postgres::Error> {
        let first = self.counter.fetch_add(size as u64, Ordering::Relaxed);
        let now = SystemTime::now();
        let samples: Vec<&Sample> = (0..size as u64)
            .map(|k| &self.samples[((first + k) % self.samples.len() as u64) as usize])
            .collect();
        let ids: Vec<Uuid> = samples.iter().map(|_| Uuid::now_v7()).collect();
        let contacts: Vec<Uuid> = samples.iter().map(|s| s.contact_id).collect();
        let categories: Vec<&str> = samples.iter().map(|s| s.category.as_str()).collect();
        let channels: Vec<Option<&str>> = samples.iter().map(|s| s.channel.as_deref()).collect();
        let priorities: Vec<i16> = samples.iter().map(|s| s.priority).collect();
        let statuses: Vec<i16> = samples.iter().map(|s| s.status).collect();
        let contents: Vec<&Value> = samples.iter().map(|s| &s.content).collect();
        let overrides: Vec<&Value> = samples.iter().map(|s| &s.overrides).collect();
        let references: Vec<String> = (0..size as u64)
            .map(|k| format!("order-{}", 100_000 + first + k))
            .collect();
        let metadata: Vec<&Value> = samples.iter().map(|s| &s.metadata).collect();
        let histories: Vec<&Value> = samples.iter().map(|s| &s.history).collect();
        let routes: Vec<&Value> = samples.iter().map(|s| &s.route).collect();
        let hashes: Vec<&str> = samples.iter().map(|s| s.request_hash.as_str()).collect();
        let tx = self.client.transaction().await?;
        tx.execute(
            &self.message,
            &[
                &TENANT,
                &now,
                &ids,
                &contacts,
                &categories,
                &channels,
                &priorities,
                &statuses,
                &contents,
                &overrides,
                &references,
                &metadata,
                &histories,
                &routes,
                &hashes,
            ],
        )
        .await?;
        tx.execute(&self.job, &[&TENANT, &now, &ids, &priorities])
            .await?;
        tx.commit().await?;
        Ok(size as u64)
    }
}
