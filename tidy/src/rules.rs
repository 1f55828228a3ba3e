//! The rules as data: which crate may use which, which module of the server
//! may import which, where proto and `tonic::Status` may appear, how long a
//! file may grow, and the known exceptions. This is the file to edit when
//! the architecture changes on purpose; the checks (`checks.rs`) only read
//! it.
//!
//! A known exception is a break that exists today and is meant to go: each
//! names its file, what it reaches for and why it is still there. One that
//! no longer happens fails the check too, so the list shrinks as the layers
//! are fixed and never keeps a stale permission.

use crate::Rule;

/// The crates of ours each crate may depend on (in any dependency section of
/// its Cargo.toml) and name in its sources (tests included); every crate of
/// ours needs a row. `"*"`: any.
pub const CRATES: &[(&str, &[&str])] = &[
    // The channel-neutral words: nothing of ours.
    ("omniroute-channel", &[]),
    // The product's records and rules: the channel's words only.
    ("omniroute-domain", &["omniroute-channel"]),
    // The generated API: nothing of ours.
    ("omniroute-proto", &[]),
    // Adapters see the channel-neutral model (and each other: the sandbox
    // keeps the real channels' rules); never the store, the server or proto.
    ("omniroute-whatsapp", ADAPTER_MAY),
    ("omniroute-email", ADAPTER_MAY),
    ("omniroute-voice", ADAPTER_MAY),
    ("omniroute-sandbox", ADAPTER_MAY),
    // The store persists the domain; it knows no server and no proto.
    (
        "omniroute-store",
        &["omniroute-channel", "omniroute-domain"],
    ),
    (
        "omniroute",
        &[
            "omniroute-channel",
            "omniroute-domain",
            "omniroute-proto",
            "omniroute-store",
            "omniroute-whatsapp",
            "omniroute-email",
            "omniroute-voice",
            "omniroute-sandbox",
        ],
    ),
    // Clients of everything.
    ("omniroute-e2e", &["*"]),
    ("omniroute-bench", &["*"]),
    ("omniroute-fuzz", &["*"]),
    ("omniroute-tidy", &[]),
];

const ADAPTER_MAY: &[&str] = &[
    "omniroute-channel",
    "omniroute-whatsapp",
    "omniroute-email",
    "omniroute-voice",
    "omniroute-sandbox",
];

/// The modules named, then the server's base (below every layer, written
/// once here).
macro_rules! over_base {
    [$($module:literal),* $(,)?] => {
        &[$($module,)* "channels", "net", "settings", "telemetry", "tls", "metrics"]
    };
}

/// The server's sources, whose modules the layer table covers.
pub const SERVER_SRC: &str = "services/server/src";

/// The server's layers, top to bottom:
///
/// - the composition root: builds everything and runs it (`lib.rs`,
///   `main.rs`, `server.rs`, `cli.rs`);
/// - faces: translate a protocol and call the use cases (`api/` gRPC with
///   its health, `auth.rs` its key check, `webhooks.rs`, `deliveries/`
///   events to endpoints (outward), `providers/` with
///   their pages and listeners, `scrape.rs` the metrics listener, `http.rs`
///   the one HTTP mapping of errors);
/// - application: the use cases (`app/`);
/// - the pipeline: dispatch, status ingestion, reconciliation;
/// - routing: every channel decision;
/// - the server's base: what every layer uses (`channels.rs` the adapters
///   and accounts, `settings`, `net.rs`, `telemetry.rs`, `tls.rs`, the
///   `metrics.rs` registry);
/// - below the server: the domain, the store, the adapters (crates, checked
///   by `CRATES`).
///
/// Each row is a module (a path below `crate`; `""` is the crate root alone)
/// and the modules it may import besides its own. A row covers its
/// submodules unless one has a row of its own (the most specific row wins),
/// and an entry allows its submodules too: `"pipeline"` allows
/// `crate::pipeline::statuses::StatusChannel`. Every module needs a row.
pub const LAYERS: &[(&str, &[&str])] = &[
    // The composition root.
    ("", &["*"]),
    ("server", &["*"]),
    ("cli", &["*"]),
    // Faces.
    ("api", FACE_MAY),
    ("auth", FACE_MAY),
    ("providers", FACE_MAY),
    ("webhooks", FACE_MAY),
    ("deliveries", FACE_MAY),
    ("scrape", FACE_MAY),
    ("http", FACE_MAY),
    // Application.
    ("app", over_base!["pipeline", "routing"]),
    // The pipeline.
    ("pipeline", over_base!["routing"]),
    // Routing.
    ("routing", BASE),
    // The server's base.
    ("channels", BASE),
    ("net", BASE),
    ("settings", BASE),
    ("telemetry", BASE),
    ("tls", BASE),
    ("metrics", BASE),
];

const FACE_MAY: &[&str] = over_base![
    "api",
    "auth",
    "providers",
    "webhooks",
    "deliveries",
    "scrape",
    "http",
    "app",
    "pipeline",
    "routing",
];

const BASE: &[&str] = over_base![];

/// The clients of the server: they speak proto and may make any status.
pub const CLIENTS: &[&str] = &["tests", "bench", "fuzz", "services/server/tests"];

/// Where proto types may be named in non-test code besides the clients: the
/// gRPC face and the proto crate itself.
pub const PROTO_HOMES: &[&str] = &["services/server/src/api", "proto"];

/// Where a `tonic::Status` may be made: the one mapping of errors, and the
/// codec, which answers a request that does not decode before any service
/// sees it.
pub const STATUS_HOMES: &[&str] = &["services/server/src/api/error.rs", "proto/src/codec.rs"];

/// A non-test source file longer than this is split along a seam.
pub const MAX_LINES: usize = 1000;

/// A break that exists today and is meant to go.
#[derive(Debug)]
pub struct Known {
    pub rule: Rule,
    pub file: &'static str,
    /// What the file reaches for: a path as the violation names it (a prefix
    /// of it covers the rest), or `""` for anything of this rule in the file.
    pub what: &'static str,
    pub why: &'static str,
}

/// None today: every invariant holds. A break that must land before its
/// fix is listed here, with why.
pub const KNOWN: &[Known] = &[];
