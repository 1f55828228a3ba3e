//! `omniroute-bench`: how many messages per second one omniroute server
//! accepts durably and dispatches, at what latency, next to what this machine
//! allows, measured side by side in one run.
//!
//! One run starts the server in this process (on its own tokio runtime, over
//! a fresh embedded store or a fresh PostgreSQL database), seeds contacts,
//! and measures, each phase after a warm-up:
//!
//! - the **gRPC ceiling**: `grpc.health.v1.Health/Check` through the same
//!   tonic client setup as the sends. It is the cheapest RPC the server has:
//!   no store, no validation, a constant answer; it bounds what any RPC can
//!   reach here;
//! - **SendMessage**, closed loop (each client sends its next request when
//!   the last one answered) at each client count, then open loop at a fixed
//!   rate (half the best closed-loop rate unless given) for the latency at
//!   half load;
//! - **BatchSendMessages** with 100 sends per call;
//! - the **database ceiling** (PostgreSQL only, see [`db`]);
//! - **dispatch throughput** (see [`dispatch`]);
//! - **webhook deliveries** (see [`webhooks`]): the log delivered to a
//!   local endpoint next to the event stream's rate, and sends while an
//!   endpoint is down;
//! - the process's **resident memory**, sampled throughout (see [`sys`]).
//!
//! Clients are tasks on the load generator's own runtime; every
//! `per_connection` (8) clients share one HTTP/2 connection (a tonic
//! `Channel`), so 128 clients use 16 connections. Everything talks to
//! 127.0.0.1 only.

pub mod cli;
pub mod db;
pub mod dispatch;
pub mod load;
pub mod report;
pub mod server;
pub mod stats;
pub mod sys;
pub mod webhooks;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow};
use omniroute_proto::v1::messaging_service_client::MessagingServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

use cli::{Options, Phase};
use db::{DbMode, DbWriter};
use load::{Op, Payloads};
use report::{PhaseResult, Report};
use server::{Server, StoreLocation};
use stats::Stats;
use sys::{CpuSnapshot, CpuUse, RssSampler};

/// Runs the benchmark: builds the two runtimes (server, load generator),
/// runs every phase, stops the server, and returns the report.
pub fn run_blocking(opts: Options) -> anyhow::Result<Report> {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.server_threads)
        .thread_name("server")
        .enable_all()
        .build()
        .context("build the server runtime")?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads)
        .thread_name("load")
        .enable_all()
        .build()
        .context("build the load generator runtime")?;
    let result = client_rt.block_on(run(opts, server_rt.handle().clone()));
    client_rt.shutdown_timeout(Duration::from_secs(5));
    server_rt.shutdown_timeout(Duration::from_secs(5));
    result
}

/// The smoke mode: a few seconds on the embedded store; an error unless
/// every phase ran and counted something.
pub fn smoke_blocking() -> anyhow::Result<Report> {
    let report = run_blocking(Options::smoke())?;
    let problems = report.smoke_problems();
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(anyhow!(
            "smoke run incomplete:\n  - {}\n\n{}",
            problems.join("\n  - "),
            report.markdown()
        ))
    }
}

/// Progress on stderr, with the time since the start.
struct Progress(Instant);

impl Progress {
    fn say(&self, text: impl AsRef<str>) {
        eprintln!(
            "[{:6.1}s] {}",
            self.0.elapsed().as_secs_f64(),
            text.as_ref()
        );
    }
}

fn connections_for(clients: usize, per_connection: usize) -> usize {
    clients.div_ceil(per_connection).max(1)
}

async fn run(opts: Options, server_rt: tokio::runtime::Handle) -> anyhow::Result<Report> {
    let progress = Progress(Instant::now());
    let mut report = Report::new(opts.clone());
    let rss = RssSampler::start();
    let location = StoreLocation::create(opts.store).await?;
    if let Some(url) = &location.pg_url {
        report.db = Some(db::info(url).await?);
    }
    let result = run_on(&opts, &server_rt, &location, &rss, &mut report, &progress).await;
    if opts.keep_db {
        if let Some(url) = &location.pg_url {
            progress.say(format!("kept the database: {url}"));
        }
    } else {
        location
            .remove()
            .await
            .context("drop the benchmark database")?;
    }
    rss.stop();
    report.finish(&rss);
    result?;
    progress.say("done");
    Ok(report)
}

async fn run_on(
    opts: &Options,
    runtime: &tokio::runtime::Handle,
    location: &StoreLocation,
    rss: &RssSampler,
    report: &mut Report,
    progress: &Progress,
) -> anyhow::Result<()> {
    progress.say(format!(
        "starting the server on the {} store",
        opts.store.as_str()
    ));
    let server = Server::start(opts, runtime, location, opts.dispatcher).await?;
    report.server_settings = Some(server.settings.clone());
    let result = phases(opts, &server, location, rss, report, progress).await;
    progress.say("stopping the server");
    let stopped = server.stop().await;
    let (contacts, counter) = result?;
    stopped?;
    if opts.runs(Phase::Dispatch) {
        dispatch_phase(
            opts,
            runtime,
            location,
            Arc::clone(&contacts),
            Arc::clone(&counter),
            rss,
            report,
            progress,
        )
        .await?;
    }
    if opts.runs(Phase::Webhooks) {
        progress.say("webhooks: the log to a local endpoint, and sends while one is down");
        let server = Server::start_delivering(opts, runtime, location).await?;
        let pool = server
            .connect(connections_for(8, opts.per_connection))
            .await?;
        let payloads = Payloads::new(contacts, counter, "hook-");
        let result = webhooks::run(
            &pool,
            &payloads,
            opts.warmup,
            opts.duration,
            opts.drain_timeout,
        )
        .await;
        drop(pool);
        server.stop().await?;
        let w = result?;
        let (alone, with_dead) = w.send_rates();
        progress.say(format!(
            "webhooks: stream {:.0}/s, delivered {:.0}/s ({} of {}); sends {:.0}/s alone, {:.0}/s with an endpoint down",
            w.stream_per_sec(),
            w.deliver_per_sec(),
            w.delivered,
            w.streamed,
            alone,
            with_dead
        ));
        progress.say(format!("webhooks: send runs in order {:?}", w.runs));
        report.webhooks = Some(w);
    }
    Ok(())
}

/// Queues the backlog on a server without dispatcher, then drains it on one
/// with.
#[allow(clippy::too_many_arguments)]
async fn dispatch_phase(
    opts: &Options,
    runtime: &tokio::runtime::Handle,
    location: &StoreLocation,
    contacts: Arc<Vec<String>>,
    counter: Arc<AtomicU64>,
    rss: &RssSampler,
    report: &mut Report,
    progress: &Progress,
) -> anyhow::Result<()> {
    progress.say(format!(
        "dispatch: queueing {} messages with the dispatcher off",
        opts.backlog
    ));
    let queuer = Server::start(opts, runtime, location, false).await?;
    let clients = 8;
    let pool = queuer
        .connect(connections_for(clients, opts.per_connection))
        .await?;
    let queued = dispatch::queue(
        &pool,
        contacts,
        counter,
        opts.backlog,
        opts.batch_size,
        clients,
    )
    .await;
    drop(pool);
    queuer.stop().await?;
    let queued = queued?;
    analyze(report, location).await?;
    progress.say(format!(
        "dispatch: queued {} in {:.1} s; draining with the dispatcher on",
        queued.total, queued.secs
    ));
    let started = SystemTime::now();
    let since = Instant::now();
    let cpu = CpuSnapshot::take();
    let drainer = Server::start(opts, runtime, location, true).await?;
    let pool = drainer.connect(1).await?;
    let result = dispatch::drain(&pool[0], queued, started, opts.drain_timeout).await;
    let cpu = cpu.until(&CpuSnapshot::take());
    let rss_max = rss.max_between(since, Instant::now());
    drop(pool);
    drainer.stop().await?;
    let result = result?;
    progress.say(format!(
        "dispatch: {:.0} sent/s, {:.0} delivered/s{}",
        result.sent_per_sec(),
        result.delivered_per_sec(),
        if result.complete { "" } else { " (incomplete)" }
    ));
    report.dispatch = Some((result, rss_max, cpu));
    Ok(())
}

/// The phases on the main server; returns the contacts and the message
/// counter for the dispatch phase.
async fn phases(
    opts: &Options,
    server: &Server,
    location: &StoreLocation,
    rss: &RssSampler,
    report: &mut Report,
    progress: &Progress,
) -> anyhow::Result<(Arc<Vec<String>>, Arc<AtomicU64>)> {
    let max_clients = opts
        .clients
        .iter()
        .chain(&opts.batch_clients)
        .copied()
        .max()
        .unwrap_or(1);
    let pool = server
        .connect(connections_for(max_clients, opts.per_connection))
        .await?;
    // Contacts.
    let seeded = Instant::now();
    // In rounds that double the table, with ANALYZE in between where
    // autovacuum is off (as autovacuum would as the table grows).
    let mut contacts = Vec::with_capacity(opts.contacts);
    while contacts.len() < opts.contacts {
        let to = (contacts.len() * 2).max(1000).min(opts.contacts);
        let from = contacts.len();
        contacts.extend(server::seed_contacts(&pool, from, to, 16).await?);
        analyze(report, location).await?;
    }
    report.seed_secs = seeded.elapsed().as_secs_f64();
    progress.say(format!(
        "seeded {} contacts in {:.1} s",
        contacts.len(),
        report.seed_secs
    ));
    if opts.prefill_contacts > 0
        && let Some(url) = &location.pg_url
    {
        let started = Instant::now();
        contacts.extend(db::prefill_contacts(url, opts.prefill_contacts).await?);
        progress.say(format!(
            "added {} contacts by SQL in {:.1} s",
            opts.prefill_contacts,
            started.elapsed().as_secs_f64()
        ));
        analyze(report, location).await?;
    }
    let contacts = Arc::new(contacts);
    let counter = Arc::new(AtomicU64::new(0));
    let payloads = Payloads::new(Arc::clone(&contacts), Arc::clone(&counter), "order-");

    // A few sends first: they check the payloads are accepted, and give the
    // database ceiling real rows to copy.
    let mut client = MessagingServiceClient::new(pool[0].clone());
    let mut last = None;
    for _ in 0..16 {
        let outcome = load::send(&mut client, payloads.next()).await;
        if outcome.items != 1 {
            return Err(anyhow!(
                "a sample SendMessage failed: {:?}; the payloads are wrong",
                outcome.errors
            ));
        }
        last = outcome.accepted;
    }
    if let Some(last) = last
        && opts.dispatcher
    {
        load::wait_sent(&mut client, &last, Duration::from_secs(30)).await;
    }
    if opts.prefill_messages > 0
        && let Some(url) = &location.pg_url
    {
        let started = Instant::now();
        db::prefill_messages(url, opts.prefill_messages).await?;
        progress.say(format!(
            "added {} old messages in {:.1} s",
            opts.prefill_messages,
            started.elapsed().as_secs_f64()
        ));
    }
    analyze(report, location).await?;

    if opts.runs(Phase::Db)
        && let Some(url) = &location.pg_url
    {
        database_ceiling(opts, url, rss, report, progress).await?;
    }

    for &clients in &opts.clients {
        let connections = connections_for(clients, opts.per_connection);
        let channels = &pool[..connections];
        if opts.runs(Phase::Grpc) {
            let ops = (0..clients)
                .map(|i| Op::Health(HealthClient::new(channels[i % connections].clone())))
                .collect();
            let result = measure(ops, clients, connections, opts, rss).await;
            progress.say(format!("no-op gRPC, {}", result.line("calls")));
            report.grpc.push(result);
        }
        if opts.runs(Phase::Unary) {
            let ops = (0..clients)
                .map(|i| {
                    Op::Send(
                        MessagingServiceClient::new(channels[i % connections].clone()),
                        payloads.clone(),
                    )
                })
                .collect();
            let mut result = measure(ops, clients, connections, opts, rss).await;
            progress.say(format!("SendMessage, {}", result.line("messages")));
            result.settle = settle(&pool, &result.stats, opts).await;
            report.unary.push(result);
            analyze(report, location).await?;
        }
    }

    if opts.runs(Phase::Open) {
        let rate = opts.rate.or_else(|| {
            report
                .unary
                .iter()
                .map(PhaseResult::rate)
                .max_by(f64::total_cmp)
                .map(|best| (best / 2.0).max(1.0))
        });
        if let Some(rate) = rate {
            let clients: Vec<_> = pool
                .iter()
                .map(|c| MessagingServiceClient::new(c.clone()))
                .collect();
            let connections = clients.len();
            let cpu = cpu_during(opts.warmup, opts.duration);
            let (open, window) = load::open_loop(
                clients,
                payloads.clone(),
                rate,
                opts.warmup,
                opts.duration,
                10_000,
            )
            .await;
            let mut result = PhaseResult::new(
                open.stats,
                0,
                connections,
                opts.duration,
                rss.max_between(window.from, window.to),
            );
            result.offered = Some(rate);
            result.cpu = cpu.await.ok();
            result.dropped = open.dropped;
            progress.say(format!(
                "SendMessage open loop at {rate:.0}/s: {}",
                result.line("messages")
            ));
            result.settle = settle(&pool, &result.stats, opts).await;
            report.open = Some(result);
            analyze(report, location).await?;
        } else {
            progress.say("open loop skipped: no closed-loop rate to halve and no --rate");
        }
    }

    if opts.runs(Phase::Batch) {
        for &clients in &opts.batch_clients {
            let connections = connections_for(clients, opts.per_connection);
            let ops = (0..clients)
                .map(|i| {
                    Op::Batch(
                        MessagingServiceClient::new(pool[i % connections].clone()),
                        payloads.clone(),
                        opts.batch_size,
                    )
                })
                .collect();
            let mut result = measure(ops, clients, connections, opts, rss).await;
            progress.say(format!(
                "BatchSendMessages x{}, {}",
                opts.batch_size,
                result.line("messages")
            ));
            result.settle = settle(&pool, &result.stats, opts).await;
            report.batch.push(result);
            analyze(report, location).await?;
        }
    }

    Ok((contacts, counter))
}

/// Between phases: ANALYZE the PostgreSQL database when autovacuum is off
/// (see [`db::analyze`]); nothing otherwise.
async fn analyze(report: &Report, location: &StoreLocation) -> anyhow::Result<()> {
    match (&location.pg_url, &report.db) {
        (Some(url), Some(info)) if info.autovacuum != "on" => db::analyze(url).await,
        _ => Ok(()),
    }
}

/// Runs `ops` closed loop and collects the result.
async fn measure(
    ops: Vec<Op>,
    clients: usize,
    connections: usize,
    opts: &Options,
    rss: &RssSampler,
) -> PhaseResult {
    let cpu = cpu_during(opts.warmup, opts.duration);
    let (stats, window) = load::closed_loop(ops, opts.warmup, opts.duration).await;
    let mut result = PhaseResult::new(
        stats,
        clients,
        connections,
        opts.duration,
        rss.max_between(window.from, window.to),
    );
    result.cpu = cpu.await.ok();
    result
}

/// CPU use from `warmup` from now for `duration`, measured on the side.
fn cpu_during(warmup: Duration, duration: Duration) -> tokio::task::JoinHandle<CpuUse> {
    let from = tokio::time::Instant::now() + warmup;
    tokio::spawn(async move {
        tokio::time::sleep_until(from).await;
        let start = CpuSnapshot::take();
        tokio::time::sleep_until(from + duration).await;
        start.until(&CpuSnapshot::take())
    })
}

/// Waits for the dispatcher to catch up with a phase's sends, so that the
/// next phase starts without a backlog: `Some(Some(time))` when it did,
/// `Some(None)` on timeout, `None` when there was nothing to wait for.
async fn settle(pool: &[Channel], stats: &Stats, opts: &Options) -> Option<Option<Duration>> {
    if opts.settle_timeout.is_zero() || !opts.dispatcher {
        return None;
    }
    let (_, last) = stats.last_accepted.as_ref()?;
    let mut client = MessagingServiceClient::new(pool[0].clone());
    Some(load::wait_sent(&mut client, last, opts.settle_timeout).await)
}

async fn database_ceiling(
    opts: &Options,
    url: &str,
    rss: &RssSampler,
    report: &mut Report,
    progress: &Progress,
) -> anyhow::Result<()> {
    let samples = db::prepare(url).await?;
    let counter = Arc::new(AtomicU64::new(0));
    let writers = |n: usize, mode: DbMode| {
        let samples = Arc::clone(&samples);
        let counter = Arc::clone(&counter);
        async move {
            let mut ops = Vec::with_capacity(n);
            for _ in 0..n {
                let writer =
                    DbWriter::connect(url, Arc::clone(&samples), Arc::clone(&counter), mode)
                        .await?;
                ops.push(Op::Db(Box::new(writer)));
            }
            anyhow::Ok(ops)
        }
    };
    for &n in &opts.db_concurrency {
        db::truncate(url).await?;
        let result = measure(writers(n, DbMode::Single).await?, n, n, opts, rss).await;
        progress.say(format!(
            "database ceiling, message + job per transaction, {}",
            result.line("messages")
        ));
        report.db_single.push(result);
    }
    if let Some(best) = report
        .db_single
        .iter()
        .max_by(|a, b| a.rate().total_cmp(&b.rate()))
        .map(|r| r.clients)
    {
        for (mode, what) in [
            (DbMode::SingleWithEvent, "message + job + event"),
            (DbMode::SingleWithNotify, "message + job + event + NOTIFY"),
        ] {
            db::truncate(url).await?;
            let result = measure(writers(best, mode).await?, best, best, opts, rss).await;
            progress.say(format!(
                "database ceiling, {what} per transaction, {}",
                result.line("messages")
            ));
            report.db_variants.push((what.to_owned(), result));
        }
    }
    for &n in &opts.db_batch_concurrency {
        db::truncate(url).await?;
        let result = measure(
            writers(n, DbMode::Batched(opts.batch_size)).await?,
            n,
            n,
            opts,
            rss,
        )
        .await;
        progress.say(format!(
            "database ceiling, {} messages + jobs per transaction, {}",
            opts.batch_size,
            result.line("messages")
        ));
        report.db_batched.push(result);
    }
    db::truncate(url).await?;
    Ok(())
}
