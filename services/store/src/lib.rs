//! Storage for omniroute.
//!
//! [`Store`] is the one interface the server uses to keep contacts, identities,
//! preferences and the consent ledger, messages, the dispatch queue, the event
//! log, tenants and quotas. It has two implementations that pass one
//! conformance suite (`tests/conformance.rs`):
//!
//! - [`PgStore`], PostgreSQL through deadpool-postgres, for production: many
//!   stateless replicas share one database and coordinate only through it;
//! - [`SqliteStore`], the embedded default for one machine: a single SQLite file
//!   in WAL mode with `synchronous=FULL`, so a committed write survives a crash
//!   or power loss just as it does on PostgreSQL.
//!
//! The code map:
//! - `parts.rs`: the interface, split by concern into [`ContactStore`],
//!   [`PreferenceStore`], [`MessageStore`], [`DispatchStore`],
//!   [`CallbackStore`], [`EventStore`], [`TenantStore`], [`QuotaStore`] and
//!   [`HealthStore`]. [`Store`] is all of them together, implemented for every
//!   type that implements each; callers of a `dyn Store` bring the parts into
//!   scope with `use omniroute_store::prelude::*;`.
//! - [`plans`]: the multi-statement operations (merge, erasure, recording an
//!   inbound message), decided once for both backends by pure functions over
//!   the domain's records: a backend reads, asks the plan, and executes its
//!   writes.
//! - `postgres/` and `sqlite/`: each implements each part in the file that
//!   holds its statements (`contacts.rs`, `preferences.rs`, `messages.rs`,
//!   `dispatch.rs`, `callbacks.rs`, `events.rs`, `auth.rs`, `quotas.rs`,
//!   `endpoints.rs`; merge
//!   and erasure in `lifecycle.rs`); `mod.rs` opens the store and answers
//!   [`HealthStore`]. The records and rules (statuses, events, consent) are
//!   the domain crate's; a contact's state is stored as its
//!   `ContactState::code()`, bound or formatted into the statements.
//! - `refusals.rs`: the refusals both backends answer alike (replays,
//!   leases).
//!
//! Guarantees every implementation keeps:
//! - every read and write is scoped to one tenant; nothing crosses tenants
//!   (but the tenants and their API keys themselves: authentication finds a
//!   key by its prefix, unique across tenants, before it knows the tenant);
//! - an identity (channel + normalized key) belongs to at most one contact per
//!   tenant, enforced by a unique index, not by a read-then-write race;
//! - an external reference belongs to at most one contact per tenant;
//! - merge and erase are single transactions: they happen whole or not at all;
//! - the id of a merged contact resolves to its survivor, also after chains of
//!   merges (ids are re-pointed on every merge, so resolution is one step);
//! - schema migrations are versioned and applied at start-up, once, even when
//!   several replicas start together.

mod parts;
pub mod plans;
mod postgres;
mod refusals;
mod sqlite;
pub mod testing;

// The domain's modules under their names here too, so that both backends
// read `crate::messages::…` as they did when the store defined them; the
// records and rules are the domain crate's.
use omniroute_domain::*;
use omniroute_domain::{auth, callbacks, deliveries, endpoints, events, jobs, messages, model};

use omniroute_channel::{Address, Channel};
use uuid::Uuid;

pub use parts::{
    CallbackStore, ContactStore, DeliveryStore, DispatchStore, EndpointStore, EventStore,
    HealthStore, MessageStore, PreferenceStore, QuotaStore, SinkStore, Store, TenantStore,
};
pub use postgres::{PgStore, PgStoreConfig};
pub use refusals::replay;
pub use sqlite::SqliteStore;

/// The earliest due time: the least of each priority's, each read from the
/// due index's start (`dispatch_jobs_due` is on (priority, due_time)).
pub(crate) const EARLIEST_DUE: &str = "SELECT min(d) FROM (
       SELECT (SELECT min(due_time) FROM dispatch_jobs WHERE priority = 1) AS d
       UNION ALL SELECT (SELECT min(due_time) FROM dispatch_jobs WHERE priority = 2)
       UNION ALL SELECT (SELECT min(due_time) FROM dispatch_jobs WHERE priority = 3)) AS p";

/// An error and its sources, "outer: inner: ...", for a log line or a
/// panic message.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such contact (or consent record) in this tenant.
    #[error("{resource} {id} not found")]
    NotFound {
        /// The kind of resource.
        resource: &'static str,
        id: String,
    },
    /// The identity already belongs to another contact.
    #[error("the {channel} identity is already linked to contacts/{owner}")]
    IdentityTaken {
        /// The identity's channel.
        channel: Channel,
        /// The contact that owns it.
        owner: Uuid,
    },
    /// The external reference already belongs to another contact.
    #[error("the external reference is already used by contacts/{owner}")]
    ExternalRefTaken {
        /// The contact that owns it.
        owner: Uuid,
    },
    /// The contact is erased and cannot change.
    #[error("contacts/{0} is erased")]
    Erased(Uuid),
    /// A merge that cannot be done (a contact merged with itself, an erased
    /// contact, ...).
    #[error("cannot merge: {0}")]
    InvalidMerge(String),
    /// The identity to unlink is not linked to the contact.
    #[error("the identity is not linked to contacts/{0}")]
    IdentityNotLinked(Uuid),
    /// The idempotency key was used before for a different request.
    #[error("the idempotency key was used for a different request (messages/{existing})")]
    IdempotencyConflict {
        /// The message created under the key.
        existing: Uuid,
    },
    /// The message is past the point where it can be canceled.
    #[error("messages/{id} is {status:?} and can no longer be canceled")]
    NotCancelable {
        /// The message.
        id: Uuid,
        /// Why not: the status it reached.
        status: MessageStatus,
    },
    /// The message is being handed to the provider right now.
    #[error("messages/{0} is being sent right now")]
    Sending(Uuid),
    /// The contact changed (or was merged) after the send was routed: route
    /// it again on fresh data.
    #[error("contacts/{0} changed while the message was routed")]
    ContactChanged(Uuid),
    /// Only failed messages can be retried.
    #[error("messages/{id} is {status:?}; only failed messages can be retried")]
    NotRetryable {
        /// The message.
        id: Uuid,
        /// Why not: the status it has.
        status: MessageStatus,
    },
    /// A tenant with this id exists already.
    #[error("tenants/{0} already exists")]
    TenantExists(String),
    /// Another API key has this prefix (prefixes are unique across all
    /// tenants): nothing was stored; a key with another prefix may be.
    #[error("an API key with the prefix {0:?} exists already")]
    ApiKeyPrefixTaken(String),
    /// The resource changed since the caller read it (its etag differs):
    /// nothing was changed.
    #[error("{resource}/{id} changed since it was read")]
    Stale {
        /// The kind of resource.
        resource: &'static str,
        id: String,
    },
    /// The database cannot be reached now (connection refused or lost, the
    /// server shutting down, no pooled connection within the wait timeout,
    /// the embedded file locked): nothing was changed, and the same call
    /// may succeed when retried later.
    #[error("the database is unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A concurrent transaction conflicted (serialization failure,
    /// deadlock): nothing was changed; retrying at once is safe.
    #[error("the transaction conflicted with a concurrent one")]
    Conflict(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database failed; the cause is kept for logs, never sent to callers.
    #[error("storage backend error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether the same call may succeed when retried (the database was
    /// unreachable, or a concurrent transaction conflicted); nothing was
    /// changed.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Conflict(_))
    }

    /// A new error of this one's kind (unavailable, conflict, or a backend
    /// failure) described by `what`: one failure answered to many callers,
    /// each with its own error and the right retry advice.
    pub fn like(&self, what: impl Into<String>) -> StoreError {
        let cause = Box::new(std::io::Error::other(what.into()));
        match self {
            StoreError::Unavailable(_) => StoreError::Unavailable(cause),
            StoreError::Conflict(_) => StoreError::Conflict(cause),
            _ => StoreError::Backend(cause),
        }
    }
}

impl StoreError {
    pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend(Box::new(e))
    }

    pub(crate) fn contact_not_found(id: Uuid) -> StoreError {
        StoreError::NotFound {
            resource: "contacts",
            id: id.to_string(),
        }
    }
}

/// The store's parts and [`Store`], for callers of the parts' methods on a
/// `dyn Store`: `use omniroute_store::prelude::*;`.
pub mod prelude {
    pub use crate::parts::{
        CallbackStore, ContactStore, DeliveryStore, DispatchStore, EndpointStore, EventStore,
        HealthStore, MessageStore, PreferenceStore, QuotaStore, SinkStore, Store, TenantStore,
    };
}

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Deduplicates addresses by (channel, key), keeping the first.
pub(crate) fn dedup_addresses(addresses: Vec<Address>) -> Vec<Address> {
    let mut seen = std::collections::HashSet::new();
    addresses
        .into_iter()
        .filter(|a| seen.insert((a.channel(), a.key().to_owned())))
        .collect()
}

/// How many columns a comma-separated SQL column list names, at compile
/// time: where the columns a query reads after such a list start.
pub(crate) const fn column_count(columns: &str) -> usize {
    let bytes = columns.as_bytes();
    let mut count = 1;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b',' {
            count += 1;
        }
        i += 1;
    }
    count
}

/// The domain's stored codes that the SQL of both backends writes as
/// literals (partial indexes match only literal predicates, and a literal
/// keeps a statement's plan the same for every call): a code changed in
/// the domain fails here, not in production.
#[cfg(test)]
mod literal_codes {
    use omniroute_domain::events::EventType;
    use omniroute_domain::jobs::JobKind;
    use omniroute_domain::messages::{Direction, MessageStatus};

    #[test]
    fn the_codes_the_sql_spells_out_are_the_domains() {
        // `direction = 1` (callbacks, accept), `direction = 2` (inbound and
        // its partial unique index).
        assert_eq!(Direction::Outbound.code(), 1);
        assert_eq!(Direction::Inbound.code(), 2);
        // `kind = 0` (a callback's next call), `kind = 1` (watches),
        // `kind = 2` (replied watches).
        assert_eq!(JobKind::Send.code(), 0);
        assert_eq!(JobKind::Watch.code(), 1);
        assert_eq!(JobKind::Replied.code(), 2);
        // `status = 3`: sent messages that heard nothing (reconciliation).
        assert_eq!(MessageStatus::Sent.code(), 3);
        // The events the accept statement writes: 1, 8 and 9.
        assert_eq!(EventType::MessageAccepted.code(), 1);
        assert_eq!(EventType::CallbackChanged.code(), 8);
        assert_eq!(EventType::MessageDeferred.code(), 9);
    }

    #[test]
    fn directions_read_back_as_written() {
        for direction in [Direction::Outbound, Direction::Inbound] {
            assert_eq!(Direction::from_code(direction.code()), direction);
        }
    }
}
