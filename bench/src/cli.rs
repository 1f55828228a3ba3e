//! The command line: `omniroute-bench run [options]`, `omniroute-bench smoke`.

use std::path::PathBuf;
use std::time::Duration;

/// Usage text.
pub const USAGE: &str = "usage: omniroute-bench <run|smoke> [options]

  run      the full benchmark: server in-process, ceilings, loads, report
  smoke    a few seconds on the embedded store (1 and 4 clients, batches of
           10, the gRPC ceiling only); fails unless every phase ran and
           counted something

options (run):
  --store embedded|postgres   store under test (default embedded)
  --contacts N                contacts seeded before the loads (default 1000)
  --duration SECS             measured time per phase (default 10)
  --warmup SECS               unmeasured time before each phase (default 2)
  --clients LIST              closed-loop clients, gRPC ceiling and SendMessage
                              (default 1,8,32,128)
  --batch-clients LIST        BatchSendMessages clients (default 1,8,32)
  --batch-size N              sends per BatchSendMessages call (default 100)
  --per-connection N          clients sharing one HTTP/2 connection (default 8)
  --rate N                    open-loop SendMessage rate per second (default:
                              half the best closed-loop SendMessage rate)
  --db-concurrency LIST       database ceiling connections, one transaction
                              per message (default 8,32,64; postgres only)
  --db-batch-concurrency LIST database ceiling connections, one transaction
                              per batch of --batch-size (default 4,16)
  --backlog N                 messages queued (dispatcher off) and then drained
                              (dispatcher on) in the dispatch phase (default 10000)
  --drain-timeout SECS        longest wait for the backlog to drain (default 180)
  --dispatcher-off            run the load phases without the dispatcher (a
                              diagnostic: the accept path alone)
  --settle-timeout SECS       longest wait after a phase for the dispatcher to
                              catch up before the next one (default 300; 0: none)
  --delivery-delay-ms N       sandbox delay before `delivered` (default 200)
  --read-delay-ms N           sandbox delay before `read` (default 800)
  --pool-size N               server's PostgreSQL pool (default 16)
  --quota-per-day N           the tenant's daily send quota (default 0: none;
                              the cost of counting it)
  --server-threads N          server runtime workers (default: CPUs)
  --client-threads N          load generator runtime workers (default: CPUs)
  --skip LIST                 phases to leave out: grpc,unary,open,batch,
                              dispatch,db,webhooks
  --prefill-contacts N        add N contacts (email + WhatsApp each) by SQL
                              after seeding, as targets of the loads too
                              (postgres only; data-size runs)
  --prefill-messages N        add N old messages to the messages table before
                              the loads (postgres only; data-size runs)
  --keep-db                   keep the fresh PostgreSQL database afterwards
  --log FILTER                server logs to stderr (for example `info`)
  --out FILE                  also write the Markdown report to FILE

PostgreSQL: a fresh database on OMNIROUTE_TEST_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/postgres), dropped afterwards.";

/// Which store the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The embedded SQLite store, a fresh file in a temporary folder.
    Embedded,
    /// PostgreSQL, a fresh database.
    Postgres,
}

impl StoreKind {
    /// As on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Embedded => "embedded",
            StoreKind::Postgres => "postgres",
        }
    }
}

/// A phase that can be skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The no-op gRPC ceiling.
    Grpc,
    /// Closed-loop SendMessage.
    Unary,
    /// Open-loop SendMessage.
    Open,
    /// BatchSendMessages.
    Batch,
    /// Dispatch throughput.
    Dispatch,
    /// The database ceiling.
    Db,
    /// Webhook deliveries.
    Webhooks,
}

impl Phase {
    fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "grpc" => Phase::Grpc,
            "unary" => Phase::Unary,
            "open" => Phase::Open,
            "batch" => Phase::Batch,
            "dispatch" => Phase::Dispatch,
            "db" => Phase::Db,
            "webhooks" => Phase::Webhooks,
            _ => return None,
        })
    }
}

/// What `run` does.
#[derive(Debug, Clone)]
pub struct Options {
    /// The store under test.
    pub store: StoreKind,
    /// Contacts seeded.
    pub contacts: usize,
    /// Measured time per phase.
    pub duration: Duration,
    /// Unmeasured time before each phase.
    pub warmup: Duration,
    /// Closed-loop client counts.
    pub clients: Vec<usize>,
    /// BatchSendMessages client counts.
    pub batch_clients: Vec<usize>,
    /// Sends per batch.
    pub batch_size: usize,
    /// Clients per HTTP/2 connection.
    pub per_connection: usize,
    /// Open-loop rate; `None`: half the best closed-loop rate.
    pub rate: Option<f64>,
    /// Database ceiling connection counts (one transaction per message).
    pub db_concurrency: Vec<usize>,
    /// Database ceiling connection counts (one transaction per batch).
    pub db_batch_concurrency: Vec<usize>,
    /// Messages queued for the dispatch phase.
    pub backlog: usize,
    /// Whether the dispatcher runs during the load phases.
    pub dispatcher: bool,
    /// Longest wait for the dispatch backlog.
    pub drain_timeout: Duration,
    /// Longest wait for the dispatcher between phases (zero: none).
    pub settle_timeout: Duration,
    /// Sandbox delay before `delivered`.
    pub delivery_delay_ms: u64,
    /// Sandbox delay before `read`.
    pub read_delay_ms: u64,
    /// Server PostgreSQL pool size.
    pub pool_size: usize,
    /// The tenant's daily send quota (0: none).
    pub quota_per_day: u64,
    /// Server runtime workers.
    pub server_threads: usize,
    /// Load generator runtime workers.
    pub client_threads: usize,
    /// Phases left out.
    pub skip: Vec<Phase>,
    /// Contacts added by SQL after seeding (PostgreSQL).
    pub prefill_contacts: u64,
    /// Old messages added before the loads (PostgreSQL).
    pub prefill_messages: u64,
    /// Keep the PostgreSQL database.
    pub keep_db: bool,
    /// Server log filter.
    pub log: Option<String>,
    /// Where to write the report.
    pub out: Option<PathBuf>,
    /// The smoke mode (a few seconds, checks only that everything ran).
    pub smoke: bool,
    /// The command line, for the report.
    pub command_line: String,
}

impl Default for Options {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Options {
            store: StoreKind::Embedded,
            contacts: 1000,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            clients: vec![1, 8, 32, 128],
            batch_clients: vec![1, 8, 32],
            batch_size: 100,
            per_connection: 8,
            rate: None,
            db_concurrency: vec![8, 32, 64],
            db_batch_concurrency: vec![4, 16],
            backlog: 10_000,
            dispatcher: true,
            drain_timeout: Duration::from_secs(180),
            settle_timeout: Duration::from_secs(300),
            delivery_delay_ms: 200,
            read_delay_ms: 800,
            pool_size: 16,
            quota_per_day: 0,
            server_threads: cpus,
            client_threads: cpus,
            skip: Vec::new(),
            prefill_contacts: 0,
            prefill_messages: 0,
            keep_db: false,
            log: None,
            out: None,
            smoke: false,
            command_line: "omniroute-bench run".to_owned(),
        }
    }
}

impl Options {
    /// The smoke mode's options: seconds, not minutes.
    pub fn smoke() -> Options {
        Options {
            store: StoreKind::Embedded,
            contacts: 20,
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(300),
            clients: vec![1, 4],
            batch_clients: vec![1, 4],
            // Small batches: on a slow disk 4 × 100 sends, one fsync each,
            // may outlast a one-second phase.
            batch_size: 10,
            backlog: 400,
            drain_timeout: Duration::from_secs(60),
            settle_timeout: Duration::from_secs(30),
            delivery_delay_ms: 20,
            read_delay_ms: 20,
            skip: vec![Phase::Db],
            smoke: true,
            command_line: "omniroute-bench smoke".to_owned(),
            ..Options::default()
        }
    }

    /// Whether `phase` runs.
    pub fn runs(&self, phase: Phase) -> bool {
        if phase == Phase::Db && self.store != StoreKind::Postgres {
            return false;
        }
        !self.skip.contains(&phase)
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let args: Vec<String> = args.into_iter().collect();
    let command_line = std::iter::once("omniroute-bench".to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let mut it = args.into_iter();
    let mut opts = match it.next().as_deref() {
        Some("run") => Options::default(),
        Some("smoke") => Options::smoke(),
        Some("-h" | "--help" | "help") | None => return Err(USAGE.to_owned()),
        Some(other) => return Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    opts.command_line = command_line;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--store" => {
                opts.store = match value()?.as_str() {
                    "embedded" => StoreKind::Embedded,
                    "postgres" => StoreKind::Postgres,
                    other => return Err(format!("--store: {other:?} is not embedded or postgres")),
                }
            }
            "--contacts" => opts.contacts = number(&flag, &value()?)?,
            "--duration" => opts.duration = seconds(&flag, &value()?)?,
            "--warmup" => opts.warmup = seconds(&flag, &value()?)?,
            "--clients" => opts.clients = list(&flag, &value()?)?,
            "--batch-clients" => opts.batch_clients = list(&flag, &value()?)?,
            "--batch-size" => opts.batch_size = number(&flag, &value()?)?,
            "--per-connection" => opts.per_connection = number(&flag, &value()?)?,
            "--rate" => opts.rate = Some(number::<u64>(&flag, &value()?)? as f64),
            "--db-concurrency" => opts.db_concurrency = list(&flag, &value()?)?,
            "--db-batch-concurrency" => opts.db_batch_concurrency = list(&flag, &value()?)?,
            "--backlog" => opts.backlog = number(&flag, &value()?)?,
            "--drain-timeout" => opts.drain_timeout = seconds(&flag, &value()?)?,
            "--settle-timeout" => opts.settle_timeout = seconds(&flag, &value()?)?,
            "--delivery-delay-ms" => opts.delivery_delay_ms = number(&flag, &value()?)?,
            "--read-delay-ms" => opts.read_delay_ms = number(&flag, &value()?)?,
            "--pool-size" => opts.pool_size = number(&flag, &value()?)?,
            "--quota-per-day" => opts.quota_per_day = number(&flag, &value()?)?,
            "--server-threads" => opts.server_threads = number(&flag, &value()?)?,
            "--client-threads" => opts.client_threads = number(&flag, &value()?)?,
            "--skip" => {
                for name in value()?.split(',').filter(|s| !s.is_empty()) {
                    let phase = Phase::parse(name.trim())
                        .ok_or_else(|| format!("--skip: unknown phase {name:?}"))?;
                    opts.skip.push(phase);
                }
            }
            "--keep-db" => opts.keep_db = true,
            "--prefill-contacts" => opts.prefill_contacts = number(&flag, &value()?)?,
            "--prefill-messages" => opts.prefill_messages = number(&flag, &value()?)?,
            "--dispatcher-off" => opts.dispatcher = false,
            "--log" => opts.log = Some(value()?),
            "--out" => opts.out = Some(PathBuf::from(value()?)),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    for (flag, zero) in [
        (
            "--batch-size",
            opts.batch_size == 0 || opts.batch_size > 500,
        ),
        ("--per-connection", opts.per_connection == 0),
        ("--pool-size", opts.pool_size == 0),
        ("--server-threads", opts.server_threads == 0),
        ("--client-threads", opts.client_threads == 0),
        ("--duration", opts.duration.is_zero()),
    ] {
        if zero {
            return Err(format!("{flag}: out of range"));
        }
    }
    if opts.prefill_messages > 0 && opts.store != StoreKind::Postgres {
        return Err("--prefill-messages: only with --store postgres".to_owned());
    }
    if opts.prefill_contacts > 0 && opts.store != StoreKind::Postgres {
        return Err("--prefill-contacts: only with --store postgres".to_owned());
    }
    if opts.rate.is_some_and(|r| r <= 0.0) {
        return Err("--rate: must be positive".to_owned());
    }
    Ok(opts)
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("{flag}: {value:?} is not a whole number"))
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{flag}: {value:?} is not a number of seconds"))
}

fn list(flag: &str, value: &str) -> Result<Vec<usize>, String> {
    let items = value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| number::<usize>(flag, s))
        .collect::<Result<Vec<_>, _>>()?;
    if items.is_empty() || items.contains(&0) {
        return Err(format!(
            "{flag}: a comma-separated list of positive numbers"
        ));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_a_full_command_line() {
        let o = parse(args(
            "run --store postgres --contacts 500 --duration 2.5 --clients 1,8 --rate 900 \
             --skip open,db --out r.md",
        ))
        .unwrap();
        assert_eq!(o.store, StoreKind::Postgres);
        assert_eq!(o.contacts, 500);
        assert_eq!(o.duration, Duration::from_millis(2500));
        assert_eq!(o.clients, vec![1, 8]);
        assert_eq!(o.rate, Some(900.0));
        assert!(!o.runs(Phase::Open) && !o.runs(Phase::Db) && o.runs(Phase::Batch));
        assert_eq!(o.out, Some(PathBuf::from("r.md")));
        assert!(
            o.command_line
                .starts_with("omniroute-bench run --store postgres")
        );
    }

    #[test]
    fn the_database_ceiling_needs_postgres() {
        let o = parse(args("run")).unwrap();
        assert!(!o.runs(Phase::Db));
        assert!(parse(args("smoke")).unwrap().smoke);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "walk",
            "run --store mysql",
            "run --clients 0,1",
            "run --clients",
            "run --duration x",
            "run --skip nothing",
            "run --batch-size 501",
            "run --frobnicate",
        ] {
            assert!(parse(args(bad)).is_err(), "{bad:?} was accepted");
        }
    }
}
