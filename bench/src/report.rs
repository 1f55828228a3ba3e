//! The Markdown report: every figure next to its ceiling and the ratio, and
//! how the figures move with the number of clients.

use std::fmt::Write as _;
use std::time::Duration;

use omniroute::Settings;

use crate::cli::{Options, StoreKind};
use crate::db::DbInfo;
use crate::dispatch::Dispatch;
use crate::stats::Stats;
use crate::sys::{self, CpuUse, Machine, RssSampler};

/// One measured phase (one client count).
#[derive(Debug, Clone)]
pub struct PhaseResult {
    /// What was measured.
    pub stats: Stats,
    /// Concurrent clients (0 for the open loop).
    pub clients: usize,
    /// HTTP/2 connections (or database connections).
    pub connections: usize,
    /// Measured seconds.
    pub secs: f64,
    /// Highest process RSS sampled while measuring, in bytes.
    pub rss_max: u64,
    /// Open loop: the offered rate.
    pub offered: Option<f64>,
    /// Open loop: calls not started because too many were in flight.
    pub dropped: u64,
    /// How long the dispatcher took to catch up afterwards: `Some(None)`
    /// when it did not within the settle timeout.
    pub settle: Option<Option<Duration>>,
    /// Where the CPU went while measuring.
    pub cpu: Option<CpuUse>,
}

impl PhaseResult {
    /// A closed-loop result.
    pub fn new(
        stats: Stats,
        clients: usize,
        connections: usize,
        duration: Duration,
        rss_max: u64,
    ) -> PhaseResult {
        PhaseResult {
            stats,
            clients,
            connections,
            secs: duration.as_secs_f64(),
            rss_max,
            offered: None,
            dropped: 0,
            settle: None,
            cpu: None,
        }
    }

    /// Items accepted per second.
    pub fn rate(&self) -> f64 {
        self.stats.items as f64 / self.secs
    }

    /// Calls per second.
    pub fn call_rate(&self) -> f64 {
        self.stats.calls as f64 / self.secs
    }

    /// A progress line.
    pub fn line(&self, unit: &str) -> String {
        format!(
            "{} clients: {} {unit}/s, p50 {} p99 {} ms, errors {}",
            self.clients,
            thousands(self.rate()),
            ms(self.stats.quantile_ms(0.5)),
            ms(self.stats.quantile_ms(0.99)),
            self.stats.errors_text()
        )
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The options of the run.
    pub opts: Options,
    /// The machine.
    pub machine: Machine,
    /// PostgreSQL, when used.
    pub db: Option<DbInfo>,
    /// The server's settings.
    pub server_settings: Option<Settings>,
    /// Load average at the start.
    pub load_before: String,
    /// Load average at the end.
    pub load_after: String,
    /// Seconds seeding the contacts took.
    pub seed_secs: f64,
    /// The no-op gRPC ceiling, per client count.
    pub grpc: Vec<PhaseResult>,
    /// SendMessage closed loop, per client count.
    pub unary: Vec<PhaseResult>,
    /// SendMessage open loop.
    pub open: Option<PhaseResult>,
    /// BatchSendMessages, per client count.
    pub batch: Vec<PhaseResult>,
    /// The database ceiling, one transaction per message, per connection count.
    pub db_single: Vec<PhaseResult>,
    /// The database ceiling with more of what `accept()` writes (the event
    /// row, then NOTIFY), at the best connection count of `db_single`.
    pub db_variants: Vec<(String, PhaseResult)>,
    /// The database ceiling, one transaction per batch.
    pub db_batched: Vec<PhaseResult>,
    /// Dispatch throughput, the RSS high-water mark and CPU use during it.
    pub dispatch: Option<(Dispatch, u64, CpuUse)>,
    /// Webhook deliveries.
    pub webhooks: Option<crate::webhooks::Webhooks>,
    /// Highest RSS sampled over the run.
    pub rss_peak: u64,
    /// The kernel's high-water mark of the process RSS (VmHWM).
    pub vm_hwm: u64,
    /// Seconds the run took.
    pub total_secs: f64,
    started: std::time::Instant,
}

impl Report {
    /// An empty report; probes the machine.
    pub fn new(opts: Options) -> Report {
        Report {
            opts,
            machine: Machine::probe(),
            db: None,
            server_settings: None,
            load_before: sys::load_average(),
            load_after: String::new(),
            seed_secs: 0.0,
            grpc: Vec::new(),
            unary: Vec::new(),
            open: None,
            batch: Vec::new(),
            db_single: Vec::new(),
            db_variants: Vec::new(),
            db_batched: Vec::new(),
            dispatch: None,
            webhooks: None,
            rss_peak: 0,
            vm_hwm: 0,
            total_secs: 0.0,
            started: std::time::Instant::now(),
        }
    }

    /// Records the end of the run.
    pub fn finish(&mut self, rss: &RssSampler) {
        self.load_after = sys::load_average();
        self.rss_peak = rss.max();
        self.vm_hwm = sys::status_bytes("VmHWM");
        self.total_secs = self.started.elapsed().as_secs_f64();
    }

    fn best(results: &[PhaseResult]) -> Option<&PhaseResult> {
        results.iter().max_by(|a, b| a.rate().total_cmp(&b.rate()))
    }

    /// What the smoke mode requires: every phase ran and counted something.
    pub fn smoke_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, what: &str| {
            if !ok {
                problems.push(what.to_owned());
            }
        };
        let all_counted = |results: &[PhaseResult], n: usize| {
            results.len() == n && results.iter().all(|r| r.stats.items > 0)
        };
        let n = self.opts.clients.len();
        check(
            all_counted(&self.grpc, n),
            "the gRPC ceiling did not run or counted no call",
        );
        check(
            all_counted(&self.unary, n),
            "SendMessage (closed loop) did not run or accepted nothing",
        );
        check(
            self.open.as_ref().is_some_and(|o| o.stats.items > 0),
            "SendMessage (open loop) did not run or accepted nothing",
        );
        check(
            all_counted(&self.batch, self.opts.batch_clients.len()),
            "BatchSendMessages did not run or accepted nothing",
        );
        match &self.dispatch {
            Some((d, _, _)) => {
                check(d.queued.total > 1, "the dispatch phase queued nothing");
                check(d.sent > 0, "the dispatch phase saw nothing sent");
                check(d.delivered > 0, "the dispatch phase saw nothing delivered");
                check(
                    d.complete,
                    "the dispatch backlog was not all delivered in time",
                );
            }
            None => check(false, "the dispatch phase did not run"),
        }
        match &self.webhooks {
            Some(w) => {
                check(w.streamed > 0, "the webhooks phase streamed nothing");
                check(
                    w.complete,
                    "the webhooks phase did not deliver the whole log",
                );
                check(
                    w.sends_with_dead.items > 0,
                    "no sends while an endpoint was down",
                );
            }
            None => check(false, "the webhooks phase did not run"),
        }
        check(self.rss_peak > 0, "no RSS sample was taken");
        problems
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let o = &self.opts;
        let postgres = o.store == StoreKind::Postgres;
        let _ = writeln!(out, "## {} store\n", o.store.as_str());
        let _ = writeln!(out, "```sh\n{}\n```\n", o.command_line);
        let m = &self.machine;
        let _ = writeln!(
            out,
            "- Machine: {} CPUs ({}), {} memory, Linux {}; {}; commit {}.",
            m.cpus, m.cpu_model, m.memory, m.kernel, m.rustc, m.commit
        );
        if let Some(db) = &self.db {
            let _ = writeln!(
                out,
                "- PostgreSQL {} on 127.0.0.1 (synchronous_commit = {}, fsync = {}, autovacuum = {}), a fresh database.{}",
                db.version,
                db.synchronous_commit,
                db.fsync,
                db.autovacuum,
                if db.autovacuum == "on" {
                    ""
                } else {
                    " With autovacuum off, the benchmark runs ANALYZE after seeding, after every \
                     phase and after queueing the dispatch backlog (outside the measured windows), \
                     as autovacuum would."
                }
            );
        } else {
            let _ = writeln!(
                out,
                "- Embedded store: a fresh SQLite file (WAL, synchronous=FULL) in a temporary folder."
            );
        }
        let _ = writeln!(
            out,
            "- Load average (1/5/15 min) before: {}; after: {}. Run time {:.0} s.",
            self.load_before, self.load_after, self.total_secs
        );
        let _ = writeln!(
            out,
            "- Server in this process on its own tokio runtime ({} workers); load generator on \
             another ({} workers); {} clients per HTTP/2 connection; warm-up {:.1} s, measured {:.1} s per phase.",
            o.server_threads,
            o.client_threads,
            o.per_connection,
            o.warmup.as_secs_f64(),
            o.duration.as_secs_f64()
        );
        if let Some(s) = &self.server_settings {
            let _ = writeln!(
                out,
                "- Server settings: defaults, except sandbox delivery {} ms and read {} ms, no send \
                 recording{}{}; dispatcher {} (concurrency {}, batch {}, poll {} ms).",
                s.sandbox.delivery_delay_ms,
                s.sandbox.read_delay_ms,
                if postgres {
                    format!(", PostgreSQL pool {}", s.store.pool_size)
                } else {
                    String::new()
                },
                if s.quotas.per_day > 0 {
                    format!(", a daily send quota of {}", s.quotas.per_day)
                } else {
                    String::new()
                },
                if s.dispatch.enabled {
                    "on"
                } else {
                    "OFF during the load phases (diagnostic)"
                },
                s.dispatch.concurrency,
                s.dispatch.batch_size,
                s.dispatch.poll_interval_ms
            );
        }
        let _ = writeln!(
            out,
            "- {} contacts (email + WhatsApp each), seeded with CreateContact in {:.1} s{}{}.\n",
            o.contacts,
            self.seed_secs,
            if o.prefill_contacts > 0 {
                format!(
                    "; {} more added by SQL, all of them targets of the loads",
                    thousands(o.prefill_contacts as f64)
                )
            } else {
                String::new()
            },
            if o.prefill_messages > 0 {
                format!(
                    "; {} old messages added to the messages table before the loads",
                    thousands(o.prefill_messages as f64)
                )
            } else {
                String::new()
            }
        );

        self.summary(&mut out, postgres);
        self.closed_loop_table(&mut out);
        self.open_loop_table(&mut out);
        self.batch_table(&mut out);
        self.db_table(&mut out);
        self.dispatch_table(&mut out);
        self.webhooks_table(&mut out);
        self.cpu_table(&mut out);
        let _ = writeln!(
            out,
            "Process RSS (server and load generator together): highest sample {} MiB; \
             kernel high-water mark (VmHWM) {} MiB.\n",
            mib(self.rss_peak),
            mib(self.vm_hwm)
        );
        out
    }

    fn summary(&self, out: &mut String, postgres: bool) {
        let _ = writeln!(out, "### Summary\n");
        let _ = writeln!(
            out,
            "| figure | measured | ceiling | ratio | issue-5 target | verdict |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---|---|");
        let grpc = Self::best(&self.grpc);
        let unary = Self::best(&self.unary);
        let db = Self::best(&self.db_single);
        if let Some(u) = unary {
            let (ceiling, ratio, judged) = match grpc {
                Some(g) => {
                    let ratio = u.rate() / g.rate();
                    let target = if postgres { 0.5 } else { 0.3 };
                    (
                        format!(
                            "{}/s (no-op gRPC, {} clients)",
                            thousands(g.rate()),
                            g.clients
                        ),
                        percent(ratio),
                        verdict(ratio, target, percent),
                    )
                }
                None => ("—".into(), "—".into(), "—".into()),
            };
            let _ = writeln!(
                out,
                "| SendMessage, closed loop, best ({} clients) | {}/s | {ceiling} | {ratio} | ≥ {} of the gRPC ceiling | {judged} |",
                u.clients,
                thousands(u.rate()),
                if postgres { "50%" } else { "30%" }
            );
            if let Some(d) = db {
                let ratio = u.rate() / d.rate();
                let _ = writeln!(
                    out,
                    "| SendMessage vs the database | {}/s | {}/s (message + job, 1 transaction each, {} connections) | {:.2}× | > 2× | {} |",
                    thousands(u.rate()),
                    thousands(d.rate()),
                    d.clients,
                    ratio,
                    verdict(ratio, 2.0, |x| format!("{x:.2}×"))
                );
            }
        }
        if let (Some(u), Some((what, d))) = (unary, self.db_variants.first()) {
            let _ = writeln!(
                out,
                "| SendMessage vs the rows a send writes | {}/s | {}/s ({what}, 1 transaction each, {} connections) | {} | — | — |",
                thousands(u.rate()),
                thousands(d.rate()),
                d.clients,
                percent(u.rate() / d.rate())
            );
        }
        if let Some(b) = Self::best(&self.batch) {
            let (ceiling, ratio) = match Self::best(&self.db_batched) {
                Some(d) => (
                    format!(
                        "{}/s (database, {} per transaction, {} connections)",
                        thousands(d.rate()),
                        self.opts.batch_size,
                        d.clients
                    ),
                    percent(b.rate() / d.rate()),
                ),
                None => ("—".into(), "—".into()),
            };
            let _ = writeln!(
                out,
                "| BatchSendMessages ({} per call), best ({} clients) | {}/s | {ceiling} | {ratio} | ≥ 40,000/s{} | {} |",
                self.opts.batch_size,
                b.clients,
                thousands(b.rate()),
                stated_for_pg(postgres),
                verdict(b.rate() / 40_000.0, 1.0, percent)
            );
        }
        if let Some(open) = &self.open {
            let p99 = open.stats.quantile_ms(0.99);
            let _ = writeln!(
                out,
                "| p99 accept latency, open loop at {}/s | {} ms | — | — | ≤ 25 ms{} | {} |",
                thousands(open.offered.unwrap_or_default()),
                ms(p99),
                stated_for_pg(postgres),
                if p99 <= 25.0 {
                    "met".to_owned()
                } else {
                    format!("missed: {:.1}× the target", p99 / 25.0)
                }
            );
        }
        if let Some((d, _, _)) = &self.dispatch {
            let rate = d.sent_per_sec();
            let _ = writeln!(
                out,
                "| dispatched to the sandbox provider | {}/s | — | — | ≥ 10,000/s{} | {} |",
                thousands(rate),
                stated_for_pg(postgres),
                verdict(rate / 10_000.0, 1.0, percent)
            );
        }
        let under_load = self
            .grpc
            .iter()
            .chain(&self.unary)
            .chain(&self.batch)
            .chain(&self.open)
            .map(|r| r.rss_max)
            .chain(self.dispatch.as_ref().map(|(_, rss, _)| *rss))
            .max()
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "| process RSS under load (server + load generator) | {} MiB | — | — | ≤ 200 MiB (server){} | {} |",
            mib(under_load),
            stated_for_pg(postgres),
            if under_load <= 200 * 1024 * 1024 {
                "met (upper bound)"
            } else {
                "missed (upper bound)"
            }
        );
        let _ = writeln!(out);
    }

    fn closed_loop_table(&self, out: &mut String) {
        if self.grpc.is_empty() && self.unary.is_empty() {
            return;
        }
        let _ = writeln!(out, "### SendMessage and the gRPC ceiling, closed loop\n");
        let _ = writeln!(
            out,
            "| clients | conns | no-op gRPC/s | p50 | p99 | SendMessage/s | p50 | p95 | p99 | max | errors | send/gRPC | dispatcher caught up | RSS MiB |"
        );
        let _ = writeln!(
            out,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
        );
        for &clients in &self.opts.clients {
            let g = self.grpc.iter().find(|r| r.clients == clients);
            let u = self.unary.iter().find(|r| r.clients == clients);
            let conns = g.or(u).map_or(0, |r| r.connections);
            let none = || ("—".to_owned(), "—".to_owned(), "—".to_owned());
            let (gr, gp50, gp99) = g.map_or_else(none, |g| {
                (
                    thousands(g.rate()),
                    ms(g.stats.quantile_ms(0.5)),
                    ms(g.stats.quantile_ms(0.99)),
                )
            });
            let send = u.map_or_else(
                || "— | — | — | — | — | —".to_owned(),
                |u| {
                    format!(
                        "{} | {} | {} | {} | {} | {}",
                        thousands(u.rate()),
                        ms(u.stats.quantile_ms(0.5)),
                        ms(u.stats.quantile_ms(0.95)),
                        ms(u.stats.quantile_ms(0.99)),
                        ms(u.stats.max_ms()),
                        errors(&u.stats)
                    )
                },
            );
            let ratio = match (g, u) {
                (Some(g), Some(u)) => percent(u.rate() / g.rate()),
                _ => "—".into(),
            };
            let rss = g
                .iter()
                .chain(u.iter())
                .map(|r| r.rss_max)
                .max()
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "| {clients} | {conns} | {gr} | {gp50} | {gp99} | {send} | {ratio} | {} | {} |",
                u.map_or("—".into(), settle_text),
                mib(rss)
            );
        }
        let _ = writeln!(
            out,
            "\nLatencies in ms. \"dispatcher caught up\": seconds after the phase until the last \
             message it accepted was sent (the next phase starts after that).\n"
        );
    }

    fn open_loop_table(&self, out: &mut String) {
        let Some(r) = &self.open else { return };
        let _ = writeln!(out, "### SendMessage, open loop\n");
        let _ = writeln!(
            out,
            "| offered/s | accepted/s | conns | p50 | p95 | p99 | max | errors | not started | RSS MiB |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(r.offered.unwrap_or_default()),
            thousands(r.rate()),
            r.connections,
            ms(r.stats.quantile_ms(0.5)),
            ms(r.stats.quantile_ms(0.95)),
            ms(r.stats.quantile_ms(0.99)),
            ms(r.stats.max_ms()),
            errors(&r.stats),
            r.dropped,
            mib(r.rss_max)
        );
        let _ = writeln!(
            out,
            "\nRequests start on a fixed schedule, round-robin over the connections; latency \
             counts from the scheduled start (no coordinated omission).\n"
        );
    }

    fn batch_table(&self, out: &mut String) {
        if self.batch.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### BatchSendMessages, {} sends per call, closed loop\n",
            self.opts.batch_size
        );
        let _ = writeln!(
            out,
            "| clients | conns | calls/s | messages/s | p50 | p95 | p99 | max | errors | dispatcher caught up | RSS MiB |"
        );
        let _ = writeln!(
            out,
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"
        );
        for r in &self.batch {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.clients,
                r.connections,
                thousands(r.call_rate()),
                thousands(r.rate()),
                ms(r.stats.quantile_ms(0.5)),
                ms(r.stats.quantile_ms(0.95)),
                ms(r.stats.quantile_ms(0.99)),
                ms(r.stats.max_ms()),
                errors(&r.stats),
                settle_text(r),
                mib(r.rss_max)
            );
        }
        let _ = writeln!(out, "\nLatency per call (100 messages), in ms.\n");
    }

    fn db_table(&self, out: &mut String) {
        if self.db_single.is_empty() && self.db_batched.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### Database ceiling: plain tokio-postgres, same rows, scratch tables\n"
        );
        let _ = writeln!(
            out,
            "| rows per transaction | connections | messages/s | transactions/s | p50 | p95 | p99 | max | errors |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
        let rows = self
            .db_single
            .iter()
            .map(|r| ("1 message + 1 job".to_owned(), r))
            .chain(
                self.db_variants
                    .iter()
                    .map(|(what, r)| (format!("1 {}", what.replace(" + ", " + 1 ")), r)),
            )
            .chain(self.db_batched.iter().map(|r| {
                (
                    format!(
                        "{n} messages + {n} jobs (multi-row)",
                        n = self.opts.batch_size
                    ),
                    r,
                )
            }));
        for (shape, r) in rows {
            let _ = writeln!(
                out,
                "| {shape} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.clients,
                thousands(r.rate()),
                thousands(r.call_rate()),
                ms(r.stats.quantile_ms(0.5)),
                ms(r.stats.quantile_ms(0.95)),
                ms(r.stats.quantile_ms(0.99)),
                ms(r.stats.max_ms()),
                errors(&r.stats)
            );
        }
        let _ = writeln!(out, "\nLatency per transaction, in ms.\n");
    }

    fn webhooks_table(&self, out: &mut String) {
        let Some(w) = &self.webhooks else {
            return;
        };
        let _ = writeln!(out, "### Webhook deliveries\n");
        let _ = writeln!(
            out,
            "| events in the log | event stream, events/s | delivered to the receiver, events/s | all delivered after the replay | complete | SendMessage/s at 8 clients: no endpoint | with an endpoint that is down |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---|---:|---:|");
        let (alone, with_dead) = w.send_rates();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} s | {} | {} | {} |",
            w.streamed,
            thousands(w.stream_per_sec()),
            thousands(w.deliver_per_sec()),
            w.all_delivered_after,
            if w.complete {
                "yes".to_owned()
            } else {
                format!("no: {} of {}", w.delivered, w.streamed)
            },
            thousands(alone),
            thousands(with_dead),
        );
        let _ = writeln!(
            out,
            "\nOn a server with the dispatcher off, over the log the earlier phases left: the \
             stream read from the beginning (first to last event), then an endpoint on a local \
             receiver (HTTP/1.1 on loopback, 204 at once) replayed from the beginning: each \
             event signed, posted and acknowledged, first arrival to last. Then SendMessage \
             closed loop at 8 clients without an endpoint and with one whose port refuses \
             connections, in the order without, with, with, without (each figure: both runs \
             together; the runs in order: {}).\n",
            w.runs
                .iter()
                .map(|(down, rate)| format!(
                    "{} {}",
                    thousands(*rate),
                    if *down { "down" } else { "alone" }
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    fn dispatch_table(&self, out: &mut String) {
        let Some((d, rss, _)) = &self.dispatch else {
            return;
        };
        let q = &d.queued;
        let _ = writeln!(out, "### Dispatch: draining a backlog\n");
        let _ = writeln!(
            out,
            "| backlog | queued at (dispatcher off) | sent/s | delivered/s | all sent after | all delivered after | failed | drained | RSS MiB |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---|---:|");
        let _ = writeln!(
            out,
            "| {} | {}/s | {} | {} | {:.1} s | {:.1} s | {} | {} | {} |",
            q.total,
            thousands(q.stats.items as f64 / q.secs.max(f64::EPSILON)),
            thousands(d.sent_per_sec()),
            thousands(d.delivered_per_sec()),
            d.all_sent_after,
            d.all_delivered_after,
            d.failed,
            if d.complete {
                "yes".to_owned()
            } else {
                format!(
                    "no: {} sent, {} delivered of {}",
                    d.sent, d.delivered, q.total
                )
            },
            mib(*rss)
        );
        let _ = writeln!(
            out,
            "\nThe backlog was queued with BatchSendMessages ({} per call, 8 clients) on a server \
             with the dispatcher off; then a server with the dispatcher on started on the same \
             store and drained it alone. Counted from the event stream (Subscribe after the \
             backlog's last event), paced by the events' own times from the first to the last; \
             \"after\" counts from the draining server's start.\n",
            self.opts.batch_size
        );
    }
}

impl Report {
    fn cpu_table(&self, out: &mut String) {
        let mut rows: Vec<(String, CpuUse)> = Vec::new();
        let mut add = |what: String, cpu: Option<CpuUse>| {
            if let Some(cpu) = cpu {
                rows.push((what, cpu));
            }
        };
        for r in &self.db_single {
            add(
                format!("database ceiling, {} connections", r.clients),
                r.cpu,
            );
        }
        for (what, r) in &self.db_variants {
            add(
                format!("database ceiling ({what}), {} connections", r.clients),
                r.cpu,
            );
        }
        for r in &self.db_batched {
            add(
                format!("database ceiling, batched, {} connections", r.clients),
                r.cpu,
            );
        }
        for r in &self.grpc {
            add(format!("no-op gRPC, {} clients", r.clients), r.cpu);
        }
        for r in &self.unary {
            add(format!("SendMessage, {} clients", r.clients), r.cpu);
        }
        if let Some(r) = &self.open {
            add(
                format!(
                    "SendMessage, open loop at {}/s",
                    thousands(r.offered.unwrap_or_default())
                ),
                r.cpu,
            );
        }
        for r in &self.batch {
            add(format!("BatchSendMessages, {} clients", r.clients), r.cpu);
        }
        if let Some((_, _, cpu)) = &self.dispatch {
            add("dispatch phase".to_owned(), Some(*cpu));
        }
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "### Where the CPU went
"
        );
        let _ = writeln!(
            out,
            "| phase | this process (cores) | PostgreSQL (cores) | anything else (cores) | machine busy | machine iowait |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        let cpus = self.machine.cpus as f64;
        for (what, c) in rows {
            let _ = writeln!(
                out,
                "| {what} | {:.2} | {:.2} | {:.2} | {} | {} |",
                c.process,
                c.postgres,
                (c.busy * cpus - c.process - c.postgres).max(0.0),
                percent(c.busy),
                percent(c.iowait)
            );
        }
        let _ = writeln!(
            out,
            "\nFrom /proc over each measured window: this process is the server and the load \
             generator together; PostgreSQL is every `postgres` process on the machine (other \
             users' included; backends that exited during the window are missed); anything \
             else is the rest of the machine's busy time (other programs, the kernel); machine \
             busy counts all {} CPUs (100% = all of them).\n",
            self.machine.cpus
        );
    }
}

fn stated_for_pg(postgres: bool) -> &'static str {
    if postgres {
        ""
    } else {
        " (stated for PostgreSQL)"
    }
}

fn verdict(value: f64, target: f64, show: impl Fn(f64) -> String) -> String {
    if value >= target {
        "met".to_owned()
    } else {
        format!(
            "missed: {} of the target ({})",
            percent(value / target),
            show(target)
        )
    }
}

fn settle_text(r: &PhaseResult) -> String {
    match r.settle {
        None => "—".to_owned(),
        Some(Some(d)) => format!("{:.1} s", d.as_secs_f64()),
        Some(None) => "no (timeout)".to_owned(),
    }
}

fn errors(stats: &Stats) -> String {
    stats.errors_text()
}

/// A rate with thousands separators: 12,345.
pub fn thousands(value: f64) -> String {
    let n = value.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds: 0.42, 3.1, 120.
pub fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else if value < 100.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

fn percent(ratio: f64) -> String {
    format!("{:.0}%", ratio * 100.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / 1024.0 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(ms(0.4213), "0.42");
        assert_eq!(ms(31.26), "31.3");
        assert_eq!(ms(250.2), "250");
        assert_eq!(verdict(0.6, 0.5, percent), "met");
        assert_eq!(
            verdict(0.1, 0.5, percent),
            "missed: 20% of the target (50%)"
        );
    }
}
