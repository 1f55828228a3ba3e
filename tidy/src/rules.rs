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

/// The server's sources, whose modules the layer table covers.
pub const SERVER_SRC: &str = "services/server/src";

/// The server's layers, top to bottom:
///
/// - the composition root: builds everything and runs it (`lib.rs`,
///   `main.rs`, `app.rs`, `cli.rs`);
/// - faces: translate a protocol and call what is below (`api/` gRPC,
///   `auth.rs` its key check, `webhooks.rs`, `providers/` with their pages
///   and listeners, `health.rs`);
/// - application: use cases (`customer_callbacks.rs`; `app/` to come);
/// - the pipeline: dispatch, status ingestion, reconciliation;
/// - routing: every channel decision;
/// - the server's base: settings and what every layer uses (`telemetry.rs`,
///   `tls.rs`, the `metrics.rs` registry);
/// - below the server: the domain, the store, the adapters (crates, checked
///   by `CRATES`).
///
/// Each row is a module (a path below `crate`; `""` is the crate root alone)
/// and the modules it may import besides its own. A row covers its
/// submodules unless one has a row of its own (the most specific row wins),
/// and an entry allows its submodules too: `"pipeline"` allows
/// `crate::pipeline::dispatcher::Adapters`. Every module needs a row. When
/// `app/` holds use cases, its composition root moves to a row of its own
/// and faces list the use cases (`"app::send"`, …).
pub const LAYERS: &[(&str, &[&str])] = &[
    // The composition root.
    ("", &["*"]),
    ("app", &["*"]),
    ("cli", &["*"]),
    // Faces.
    ("api", FACE_MAY),
    ("auth", FACE_MAY),
    ("health", FACE_MAY),
    ("providers", FACE_MAY),
    ("webhooks", FACE_MAY),
    // Application.
    (
        "customer_callbacks",
        &[
            "pipeline",
            "routing",
            "settings",
            "telemetry",
            "tls",
            "metrics",
        ],
    ),
    // The pipeline.
    (
        "pipeline",
        &["routing", "settings", "telemetry", "tls", "metrics"],
    ),
    // Routing.
    ("routing", BASE),
    // The server's base.
    ("settings", BASE),
    ("telemetry", BASE),
    ("tls", BASE),
    ("metrics", BASE),
];

const FACE_MAY: &[&str] = &[
    "api",
    "auth",
    "health",
    "providers",
    "webhooks",
    "customer_callbacks",
    "pipeline",
    "routing",
    "settings",
    "telemetry",
    "tls",
    "metrics",
];

const BASE: &[&str] = &["settings", "telemetry", "tls", "metrics"];

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

pub const KNOWN: &[Known] = &[
    // Proto outside api/.
    Known {
        rule: Rule::Proto,
        file: "services/server/src/app.rs",
        what: "omniroute_proto",
        why: "the gRPC server is assembled here, wrapping each service in its generated server",
    },
    Known {
        rule: Rule::Proto,
        file: "services/server/src/health.rs",
        what: "",
        why: "gRPC health names each service by its generated server's NAME",
    },
    Known {
        rule: Rule::Proto,
        file: "services/server/src/customer_callbacks.rs",
        what: "",
        why: "a tap or a missed call builds a CreateCallbackRequest to reach CallbackService's path",
    },
    // Arrows running up the server's layers.
    Known {
        rule: Rule::Layers,
        file: "services/server/src/customer_callbacks.rs",
        what: "api",
        why: "the use case calls CallbackApi, the gRPC face, and maps its ApiError",
    },
    Known {
        rule: Rule::Layers,
        file: "services/server/src/providers/email/mod.rs",
        what: "app::listen",
        why: "the SMTP listener binds its address through the composition root's helper",
    },
    Known {
        rule: Rule::Layers,
        file: "services/server/src/pipeline/mod.rs",
        what: "providers",
        why: "the pipeline asks the providers' registrations for adapters and accounts",
    },
    Known {
        rule: Rule::Layers,
        file: "services/server/src/routing/mod.rs",
        what: "pipeline::dispatcher::Adapters",
        why: "the Router holds the dispatcher's adapter set to read capabilities",
    },
    Known {
        rule: Rule::Layers,
        file: "services/server/src/settings.rs",
        what: "providers::validate",
        why: "settings validation asks each provider's registration to validate its section",
    },
    Known {
        rule: Rule::Layers,
        file: "services/server/src/settings/routing.rs",
        what: "routing",
        why: "the routing section parses into routing's own types (hours, policies, deadlines)",
    },
    Known {
        rule: Rule::Layers,
        file: "services/server/src/metrics.rs",
        what: "routing::breaker::Breakers",
        why: "the /metrics route, a face in a file of the base, reads the breakers",
    },
    // tonic::Status made outside api/error.rs.
    Known {
        rule: Rule::Status,
        file: "services/server/src/auth.rs",
        what: "",
        why: "the auth layer answers UNAUTHENTICATED, PERMISSION_DENIED and UNAVAILABLE itself",
    },
    Known {
        rule: Rule::Status,
        file: "services/server/src/api/events.rs",
        what: "Status::unavailable",
        why: "a subscription whose store fails mid-stream sends UNAVAILABLE down the stream",
    },
];
