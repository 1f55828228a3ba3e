//! Storage for omniroute.
//!
//! [`Store`] is the one interface the server uses to keep contacts, identities,
//! preferences and the consent ledger. It has two implementations that pass one
//! conformance suite (`tests/conformance.rs`):
//!
//! - [`PgStore`], PostgreSQL through deadpool-postgres, for production: many
//!   stateless replicas share one database and coordinate only through it;
//! - [`SqliteStore`], the embedded default for one machine: a single SQLite file
//!   in WAL mode with `synchronous=FULL`, so a committed write survives a crash
//!   or power loss just as it does on PostgreSQL.
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

pub mod plans;
mod postgres;
mod refusals;
mod sqlite;
pub mod testing;

// The domain's modules under their names here too, so that both backends
// read `crate::messages::…` as they did when the store defined them; the
// records and rules are the domain crate's.
use omniroute_domain::*;
use omniroute_domain::{auth, callbacks, events, jobs, messages, model};

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use omniroute_channel::{Address, Channel};
use uuid::Uuid;

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

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Contacts, identities, preferences and consents of every tenant.
///
/// Ids passed in may be ids of merged contacts: every method resolves them to
/// the survivor first.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Creates a contact with its first identities, atomically.
    async fn create_contact(&self, tenant: &str, contact: NewContact) -> Result<Contact>;

    /// Reads a contact (the survivor for a merged id; the tombstone for an
    /// erased one).
    async fn get_contact(&self, tenant: &str, id: Uuid) -> Result<Contact>;

    /// Lists contacts in creation order.
    async fn list_contacts(&self, tenant: &str, query: ContactQuery) -> Result<Vec<Contact>>;

    /// Changes profile fields.
    async fn update_contact(&self, tenant: &str, id: Uuid, patch: ProfilePatch) -> Result<Contact>;

    /// Links an identity; linking one the contact already has only refreshes
    /// its last-seen WhatsApp form.
    async fn link_identity(&self, tenant: &str, id: Uuid, address: Address) -> Result<Contact>;

    /// Unlinks an identity; one the contact does not have is
    /// [`StoreError::IdentityNotLinked`].
    async fn unlink_identity(&self, tenant: &str, id: Uuid, address: Address) -> Result<Contact>;

    /// Finds the contact owning any of these (channel, key) pairs, in order.
    async fn find_by_keys(
        &self,
        tenant: &str,
        keys: &[(Channel, String)],
    ) -> Result<Option<Contact>>;

    /// Finds the contact with an external reference.
    async fn find_by_external_ref(
        &self,
        tenant: &str,
        external_ref: &str,
    ) -> Result<Option<Contact>>;

    /// Merges `sources` into `survivor` in one transaction.
    async fn merge_contacts(
        &self,
        tenant: &str,
        survivor: Uuid,
        sources: &[Uuid],
    ) -> Result<Contact>;

    /// Erases a contact's personal data in one transaction, leaving a
    /// tombstone. Erasing an erased contact returns the tombstone.
    async fn erase_contact(&self, tenant: &str, id: Uuid) -> Result<Contact>;

    /// Reads a contact's preferences and derived consent state.
    async fn get_preferences(&self, tenant: &str, id: Uuid) -> Result<Preferences>;

    /// Changes preference fields.
    async fn update_preferences(
        &self,
        tenant: &str,
        id: Uuid,
        patch: PreferencesPatch,
    ) -> Result<Preferences>;

    /// Appends a consent record.
    async fn record_consent(
        &self,
        tenant: &str,
        id: Uuid,
        consent: NewConsent,
    ) -> Result<ConsentRecord>;

    /// Lists a contact's consent records oldest first, after a record id.
    async fn list_consents(
        &self,
        tenant: &str,
        id: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ConsentRecord>>;

    /// Everything held about a contact.
    async fn export_contact(&self, tenant: &str, id: Uuid) -> Result<ContactExport>;

    // ---- messaging pipeline ------------------------------------------------

    /// Stores outbound messages, each with its dispatch job and a
    /// `MessageAccepted` event (a callback also its `CallbackChanged`
    /// event, scheduled), and answers each on its own: one refused
    /// message changes nothing and refuses no other. Nothing is answered
    /// before it is durable.
    ///
    /// - Status: `Queued` with reason "scheduled" when `send_time` lies in the
    ///   future (the job is due then), else `Accepted` (due now). History
    ///   starts with that status.
    /// - `channel` is the first channel of the plan.
    /// - The contact must still be at `contact_version` (the version its
    ///   route was decided on), else [`StoreError::ContactChanged`]: route it
    ///   again on fresh data. An erased contact is [`StoreError::Erased`].
    /// - With an idempotency key already used in the tenant: the same
    ///   `request_hash` returns [`Accepted::Replayed`] with the stored message
    ///   and writes nothing; another hash is [`StoreError::IdempotencyConflict`].
    ///   The same holds between messages of one call.
    ///
    /// Implementations commit concurrent calls together (group commit): a
    /// call waits at most for the commit in flight plus its own.
    async fn accept_messages(
        &self,
        tenant: &str,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Result<Accepted>>>;

    /// The message each idempotency key names in the tenant, with the hash
    /// of the request it was accepted for ([`replay`] answers a send with
    /// it); `None` for a key not used. In the order given.
    async fn messages_by_idempotency_keys(
        &self,
        tenant: &str,
        keys: &[String],
    ) -> Result<Vec<Option<(Message, String)>>>;

    /// [`Store::accept_messages`] for one message.
    async fn accept_message(&self, tenant: &str, message: NewMessage) -> Result<Accepted> {
        self.accept_messages(tenant, vec![message])
            .await?
            .pop()
            .unwrap_or_else(|| Err(StoreError::backend(std::io::Error::other("no answer"))))
    }

    /// What routing needs to know of the contacts these lookups find (each
    /// resolved to its survivor when merged), in the order asked; `None`
    /// where no contact matches. Read together, in as few round trips as
    /// the backend allows.
    async fn routing_contacts(
        &self,
        tenant: &str,
        lookups: &[ContactLookup],
    ) -> Result<Vec<Option<RoutingContact>>>;

    /// Reads a message.
    async fn get_message(&self, tenant: &str, id: Uuid) -> Result<Message>;

    /// A contact's messages (after resolving a merged id), newest first
    /// (descending id), strictly older than `before`.
    async fn list_messages(
        &self,
        tenant: &str,
        contact_id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Message>>;

    /// Cancels a pending message: its job is deleted, the status becomes
    /// `Canceled`, a `MessageStatusChanged` event is written.
    /// [`StoreError::Sending`] while a worker holds an unexpired lease on it;
    /// [`StoreError::NotCancelable`] once it is past pending.
    async fn cancel_message(&self, tenant: &str, id: Uuid) -> Result<Message>;

    /// Requeues a failed message from the first channel of its plan, due now:
    /// status `Queued` (reason "retried by operator"), a new job, an event.
    /// [`StoreError::NotRetryable`] unless the message failed.
    async fn retry_message(&self, tenant: &str, id: Uuid) -> Result<Message>;

    /// Claims up to `limit` due jobs of any tenant, in (priority, due time)
    /// order, leasing each for `lease` under a fresh claim token. A job is due
    /// when its due time has come and it has no unexpired lease (an expired
    /// lease means its worker died). Jobs leased by others are skipped, not
    /// waited for.
    async fn claim_jobs(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedJob>>;

    /// Records the outcomes of claimed jobs in one transaction, each only if
    /// its job still carries `job.claim_token` (else `None` in its place: the
    /// lease was lost and a newer attempt owns the job). Answers in the
    /// order given.
    ///
    /// For each: appends `attempt` (when given) to the message, then:
    /// - `Sent`: deletes the job, sets the provider id, status `Sent`;
    /// - `RetryAt(t)`: releases the job due at `t`, status `Queued` with the
    ///   attempt's error as reason;
    /// - `NextChannel(i)`: releases the job due now on plan index `i` (its
    ///   channel attempts restart), status `Queued`, `channel` = plan\[i\];
    /// - `Fail`: deletes the job, status `Failed` with the reason.
    ///
    /// Each status change is applied with [`apply_status`] and written as an
    /// event (`MessageFailed` for failures, else `MessageStatusChanged`); a
    /// callback whose state moved gets its `CallbackChanged` event too.
    async fn complete_jobs(&self, completions: &[Completion]) -> Result<Vec<Option<Message>>>;

    /// [`Store::complete_jobs`] for one job.
    async fn complete_job(
        &self,
        job: &ClaimedJob,
        attempt: Option<Attempt>,
        next: NextStep,
    ) -> Result<Option<Message>> {
        let completion = Completion {
            job: job.clone(),
            attempt,
            next,
        };
        Ok(self
            .complete_jobs(std::slice::from_ref(&completion))
            .await?
            .pop()
            .flatten())
    }

    /// Applies providers' status reports in one transaction, in the order
    /// given, each to the message it names (by our id when given, else by
    /// channel and provider id, in any tenant) with [`apply_status`]; writes
    /// a `MessageStatusChanged` event for each that changed anything
    /// (`MessageFailed` when it failed), and a `CallbackChanged` event for a
    /// callback whose state moved. `None` in the place of a report that
    /// matches no message. Several reports for one message apply in turn.
    async fn apply_provider_statuses(
        &self,
        statuses: Vec<ProviderStatus>,
    ) -> Result<Vec<Option<Reported>>>;

    /// [`Store::apply_provider_statuses`] for one report.
    async fn apply_provider_status(&self, status: ProviderStatus) -> Result<Option<Reported>> {
        Ok(self
            .apply_provider_statuses(vec![status])
            .await?
            .pop()
            .flatten())
    }

    /// Records a customer's message in one transaction: resolves the sender
    /// to the contact owning the address, or creates one (named after the
    /// profile, with a `ContactCreated` event); refreshes the WhatsApp form
    /// the customer was last seen with; opens or extends the WhatsApp
    /// service window to 24 hours after the message; links a reply to our
    /// message it quotes; writes a `MessageReceived` event.
    /// [`Received::Duplicate`] (writing nothing) when the provider message id
    /// was recorded before.
    async fn record_inbound(&self, tenant: &str, inbound: NewInbound) -> Result<Received>;

    /// The media bytes an inbound message of `tenant` carried itself
    /// ([`NewInbound::media_bytes`]); `None` when it carried none (or its
    /// contact was erased).
    async fn get_inbound_media(&self, tenant: &str, message_id: Uuid) -> Result<Option<Vec<u8>>>;

    // ---- callbacks ---------------------------------------------------------

    /// Records what a telephony provider reported of a call, on the
    /// callback (an outbound message, see [`is_callback`]) of any tenant
    /// whose provider id on `channel` is `call_id` (provider call ids are
    /// unique).
    ///
    /// The callback keeps one [`CallProgress`], for its current call. When
    /// it has none yet, or one of another call (a new attempt placed a new
    /// call), it becomes this call's: `answered_by` (empty when not said),
    /// `bridged_seconds`. For the same call a value given overwrites and
    /// one not given (`None`) keeps what an earlier report said. The
    /// update time is now, either way.
    ///
    /// When the callback's state moves with it (the customer answered),
    /// its `CallbackChanged` event is written in the same transaction.
    ///
    /// `false`, writing nothing, when no callback has this provider id
    /// (also once its contact was erased: erasure redacts the content, so
    /// a late report cannot bring progress back).
    async fn record_call_progress(
        &self,
        channel: Channel,
        call_id: &str,
        answered_by: Option<&str>,
        bridged_seconds: Option<u32>,
    ) -> Result<bool>;

    /// Reads a callback with the progress of its current call and, while
    /// it waits for a call, that call's due time.
    /// [`StoreError::NotFound`] (resource `callbacks`) when the tenant has
    /// no such message or the message is not a callback ([`is_callback`]).
    async fn get_callback(&self, tenant: &str, id: Uuid) -> Result<Callback>;

    /// A tenant's callbacks that `filter` selects, each as
    /// [`Store::get_callback`] reads it, in the order they are due (by
    /// [`callback_due`], then id), strictly after `after`, at most `limit`.
    /// One statement, read by index whichever filters are given.
    async fn list_callbacks(
        &self,
        tenant: &str,
        filter: &CallbackFilter,
        after: Option<CallbackMark>,
        limit: usize,
    ) -> Result<Vec<Callback>>;

    /// Cancels a callback that waits for a call (its first, or the next
    /// after one that did not reach the customer) or whose call rings, in
    /// one transaction: its job (a send job or the call's watch) is
    /// deleted, its message becomes `Canceled`, and the status and
    /// `CallbackChanged` events are written. The call that rang is
    /// answered for the caller to end ([`CanceledCallback::ringing`]).
    /// [`StoreError::NotFound`] as [`Store::get_callback`];
    /// [`StoreError::NotCancelable`] once the customer answered or it
    /// ended; [`StoreError::Sending`] while a worker holds its job's lease
    /// (placing the call, or deciding what follows one).
    async fn cancel_callback(&self, tenant: &str, id: Uuid) -> Result<CanceledCallback>;

    /// Events of a tenant after `after`, in log order, at most `limit`.
    async fn read_events(
        &self,
        tenant: &str,
        after: Cursor,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<Vec<Event>>;

    /// The position of the newest event a reader can see now ("from now").
    async fn event_head(&self, tenant: &str) -> Result<Cursor>;

    /// Checks that the database answers (a trivial query on a pooled
    /// connection), for health checks.
    async fn ping(&self) -> Result<()>;

    /// The dispatch queue's size and earliest due time (every replica's),
    /// for metrics.
    async fn queue_stats(&self) -> Result<QueueStats>;

    /// The store's connection pools and their use now, for metrics (none
    /// for a store without pools).
    fn pool_use(&self) -> Vec<PoolUse> {
        Vec::new()
    }

    /// Takes up to `wanted` of `tenant`'s daily quota of `limit` messages on
    /// `day` (`YYYY-MM-DD`, UTC), atomically across replicas; how many were
    /// granted ([`granted`]).
    async fn consume_quota(&self, tenant: &str, day: &str, wanted: u64, limit: u64) -> Result<u64>;

    /// Gives back `count` of what [`Store::consume_quota`] granted on `day`
    /// and was not used (the sends were replays, or were not accepted).
    async fn release_quota(&self, tenant: &str, day: &str, count: u64) -> Result<()>;

    /// Whether `cursor` is the position of an event of this tenant's log
    /// (a subscriber resuming from a cursor the log never issued would skip
    /// events silently).
    async fn check_cursor(&self, tenant: &str, cursor: Cursor) -> Result<CursorCheck>;

    /// The position before the oldest retained event ("from the beginning").
    fn event_origin(&self) -> Cursor {
        Cursor::default()
    }

    /// Deletes events older than `before`; returns how many.
    async fn prune_events(&self, before: SystemTime) -> Result<u64>;

    /// Logs a `WindowClosing` event for each customer service window of the
    /// tenants `scope` selects that closes within `lead` from now and had
    /// none for its current end (at most `limit` windows, soonest first;
    /// replicas share the work without announcing one twice). Returns how
    /// many were announced.
    async fn announce_closing_windows(
        &self,
        scope: &TenantScope,
        lead: Duration,
        limit: usize,
    ) -> Result<usize>;

    /// Messages of any tenant that were sent before `sent_before` and heard
    /// nothing since, in the order they were sent, after the position
    /// `after` (at most `limit`, each with its position), for
    /// reconciliation with the provider when its status reports were lost.
    /// Paging by position lets reconciliation sweep all of them in turn,
    /// so messages that will never hear anything do not starve the others.
    async fn stale_sent(
        &self,
        after: SentMark,
        sent_before: SystemTime,
        limit: usize,
    ) -> Result<Vec<(SentMark, Message)>>;

    /// A signal bumped after every commit that wrote events or jobs, in this
    /// process and (PostgreSQL, through LISTEN/NOTIFY) in other replicas. A
    /// hint to look again, never the only trigger: readers also poll.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;

    /// A signal bumped after every commit that made jobs due (new messages,
    /// operator retries, released jobs), here and in other replicas: what
    /// dispatchers wait for. A hint too: dispatchers also poll.
    fn job_changes(&self) -> tokio::sync::watch::Receiver<u64>;

    // ---- tenants and API keys ----------------------------------------------

    /// Creates a tenant, created now. [`StoreError::TenantExists`] when the
    /// id is taken. The id is stored as given: callers refuse ids that are
    /// not [`valid_tenant_id`].
    async fn create_tenant(&self, id: &str, display_name: &str) -> Result<Tenant>;

    /// Every tenant, ordered by id.
    async fn list_tenants(&self) -> Result<Vec<Tenant>>;

    /// Reads a tenant (by primary key); `None` when there is none.
    async fn get_tenant(&self, id: &str) -> Result<Option<Tenant>>;

    /// Stores an API key, created now and not revoked.
    /// [`StoreError::NotFound`] (resource `tenants`) when its tenant does
    /// not exist; [`StoreError::ApiKeyPrefixTaken`] when another key (of
    /// any tenant) has its prefix.
    async fn create_api_key(&self, key: NewApiKey) -> Result<ApiKey>;

    /// The key with this prefix, of any tenant, by one lookup of the
    /// unique prefix index (authentication runs it on every call); `None`
    /// when there is none. Revoked and expired keys are found too: see
    /// [`ApiKey::is_usable`].
    async fn find_api_key(&self, prefix: &str) -> Result<Option<ApiKey>>;

    /// The keys of one tenant, or of all when `tenant` is `None`, ordered
    /// by (create time, id).
    async fn list_api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>>;

    /// Revokes a key: its revoke time becomes now, unless it was revoked
    /// before (then it keeps the first time, and this succeeds).
    /// [`StoreError::NotFound`] (resource `api_keys`) when there is no such
    /// key, or `tenant` is given and the key is another tenant's.
    async fn revoke_api_key(&self, tenant: Option<&str>, id: Uuid) -> Result<ApiKey>;
}

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
