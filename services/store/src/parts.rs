//! The store's interface, split by concern.
//!
//! [`Store`] is every part together; the server holds an `Arc<dyn Store>`.
//! Each backend implements each part in the file that holds its
//! statements (`postgres/contacts.rs` implements [`ContactStore`] for
//! [`crate::PgStore`], and so on). Bring the parts into scope with
//! `use omniroute_store::prelude::*;` to call them on a `dyn Store`.
//!
//! Ids of contacts passed in may be ids of merged contacts: every method
//! resolves them to the survivor first.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use omniroute_channel::{Address, Channel};
use uuid::Uuid;

use crate::*;

/// Contacts and their identities: create, read, list, change, link, merge, erase, export, and the routing read.
#[async_trait]
pub trait ContactStore: Send + Sync {
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

    /// Everything held about a contact.
    async fn export_contact(&self, tenant: &str, id: Uuid) -> Result<ContactExport>;

    /// What routing needs to know of the contacts these lookups find (each
    /// resolved to its survivor when merged), in the order asked; `None`
    /// where no contact matches. Read together, in as few round trips as
    /// the backend allows.
    async fn routing_contacts(
        &self,
        tenant: &str,
        lookups: &[ContactLookup],
    ) -> Result<Vec<Option<RoutingContact>>>;
}

/// A contact's channel preferences and its consent ledger.
#[async_trait]
pub trait PreferenceStore: Send + Sync {
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
}

/// Messages: accepting outbound ones, reading, listing, canceling and retrying them, and recording inbound ones with their media.
#[async_trait]
pub trait MessageStore: Send + Sync {
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

    /// [`MessageStore::accept_messages`] for one message.
    async fn accept_message(&self, tenant: &str, message: NewMessage) -> Result<Accepted> {
        self.accept_messages(tenant, vec![message])
            .await?
            .pop()
            .unwrap_or_else(|| Err(StoreError::backend(std::io::Error::other("no answer"))))
    }

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
}

/// The dispatch queue: claiming due jobs, recording their outcomes, providers' status reports, reconciliation of messages that heard nothing, closing windows.
#[async_trait]
pub trait DispatchStore: Send + Sync {
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

    /// [`DispatchStore::complete_jobs`] for one job.
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

    /// [`DispatchStore::apply_provider_statuses`] for one report.
    async fn apply_provider_status(&self, status: ProviderStatus) -> Result<Option<Reported>> {
        Ok(self
            .apply_provider_statuses(vec![status])
            .await?
            .pop()
            .flatten())
    }

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

    /// A signal bumped after every commit that made jobs due (new messages,
    /// operator retries, released jobs), here and in other replicas: what
    /// dispatchers wait for. A hint too: dispatchers also poll.
    fn job_changes(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// Callbacks (outbound call requests): their calls' progress, reads, listings and cancellation.
#[async_trait]
pub trait CallbackStore: Send + Sync {
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
    /// [`CallbackStore::get_callback`] reads it, in the order they are due (by
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
    /// [`StoreError::NotFound`] as [`CallbackStore::get_callback`];
    /// [`StoreError::NotCancelable`] once the customer answered or it
    /// ended; [`StoreError::Sending`] while a worker holds its job's lease
    /// (placing the call, or deciding what follows one).
    async fn cancel_callback(&self, tenant: &str, id: Uuid) -> Result<CanceledCallback>;
}

/// The event log: reading, positions, pruning, and the change signal.
#[async_trait]
pub trait EventStore: Send + Sync {
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

    /// The position just before the tenant's first event at or after
    /// `time`, in log order (reading after it reads every event from
    /// `time` on); the head when there is none. For replays, an operator's
    /// occasional call: it may read the events after `time`.
    async fn cursor_before(&self, tenant: &str, time: SystemTime) -> Result<Cursor>;

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

    /// A signal bumped after every commit that wrote events or jobs, in this
    /// process and (PostgreSQL, through LISTEN/NOTIFY) in other replicas. A
    /// hint to look again, never the only trigger: readers also poll.
    fn changes(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// Tenants and their API keys.
#[async_trait]
pub trait TenantStore: Send + Sync {
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

/// Tenants' daily sending quotas.
#[async_trait]
pub trait QuotaStore: Send + Sync {
    /// Takes up to `wanted` of `tenant`'s daily quota of `limit` messages on
    /// `day` (`YYYY-MM-DD`, UTC), atomically across replicas; how many were
    /// granted ([`granted`]).
    async fn consume_quota(&self, tenant: &str, day: &str, wanted: u64, limit: u64) -> Result<u64>;

    /// Gives back `count` of what [`QuotaStore::consume_quota`] granted on `day`
    /// and was not used (the sends were replays, or were not accepted).
    async fn release_quota(&self, tenant: &str, day: &str, count: u64) -> Result<()>;
}

/// Outbound webhook endpoints. Secrets come and go sealed: a store never
/// sees one in clear. Every call is within one tenant; another tenant's
/// endpoint is [`StoreError::NotFound`] (resource `endpoints`), as is a
/// missing one.
#[async_trait]
pub trait EndpointStore: Send + Sync {
    /// Registers an endpoint, created now, version 1.
    async fn create_endpoint(&self, tenant: &str, endpoint: NewEndpoint) -> Result<Endpoint>;

    /// Reads an endpoint.
    async fn get_endpoint(&self, tenant: &str, id: Uuid) -> Result<Endpoint>;

    /// Up to `limit` endpoints with ids after `after`, in id (creation)
    /// order.
    async fn list_endpoints(
        &self,
        tenant: &str,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Endpoint>>;

    /// Changes an endpoint ([`EndpointPatch::apply`]); [`StoreError::Stale`]
    /// when the patch names another version than the stored one.
    async fn update_endpoint(
        &self,
        tenant: &str,
        id: Uuid,
        patch: EndpointPatch,
    ) -> Result<Endpoint>;

    /// Deletes an endpoint with its secrets.
    async fn delete_endpoint(&self, tenant: &str, id: Uuid) -> Result<()>;

    /// Replaces the secret; the current one becomes the previous
    /// ([`SecretRotation::apply`]).
    async fn rotate_endpoint_secret(
        &self,
        tenant: &str,
        id: Uuid,
        rotation: SecretRotation,
    ) -> Result<Endpoint>;
}

/// Deliveries of the event log to webhook endpoints (see
/// `omniroute_domain::deliveries`): each endpoint's cursor, leased by one
/// deliverer at a time, and the log of attempts. An endpoint's cursor is
/// created with it (at [`NewEndpoint::start`]) and deleted with it.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Claims up to `limit` enabled endpoints, of any tenant, that are due
    /// and not leased (or whose lease ended), each for `lease` from now
    /// with a new token.
    async fn claim_endpoints(&self, limit: usize, lease: Duration) -> Result<Vec<EndpointLease>>;

    /// Extends a lease its holder still holds to `lease` from now; `false`
    /// when the token no longer holds it (it expired and was claimed
    /// again, or a replay moved the cursor).
    async fn renew_endpoint_lease(
        &self,
        tenant: &str,
        id: Uuid,
        token: Uuid,
        lease: Duration,
    ) -> Result<bool>;

    /// Which of `events` were delivered to the endpoint in `epoch`.
    async fn delivered_events(
        &self,
        tenant: &str,
        id: Uuid,
        epoch: i64,
        events: &[Cursor],
    ) -> Result<Vec<Cursor>>;

    /// Writes a round in one transaction: logs its attempts and, while
    /// `round.token` holds the lease, moves the cursor, sets the schedule,
    /// releases the lease and, when the round says so, disables the
    /// endpoint with an `EndpointDisabled` event. `false` when the lease
    /// was lost (the attempts are logged all the same).
    async fn finish_delivery_round(
        &self,
        tenant: &str,
        id: Uuid,
        round: DeliveryRound,
    ) -> Result<bool>;

    /// Attempts logged for an endpoint, newest first, with ids before
    /// `before`; [`StoreError::NotFound`] for an unknown endpoint.
    async fn list_delivery_attempts(
        &self,
        tenant: &str,
        id: Uuid,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DeliveryAttempt>>;

    /// Moves the endpoint's cursor to `cursor` in a new epoch, due now,
    /// its failures forgotten and its lease ended: every event after
    /// `cursor` is delivered again.
    async fn replay_endpoint(&self, tenant: &str, id: Uuid, cursor: Cursor) -> Result<()>;
}

/// Where each sink (a bus the whole log is published to, like NATS
/// JetStream) stands in each tenant's event log, leased to one replica at
/// a time.
#[async_trait]
pub trait SinkStore: Send + Sync {
    /// Claims `sink`'s position in `tenant`'s log for `lease` with a new
    /// token, made at the log's beginning when it has none (a new sink
    /// gets every retained event); `None` while another replica's lease
    /// lasts.
    async fn claim_sink(
        &self,
        sink: &str,
        tenant: &str,
        lease: Duration,
    ) -> Result<Option<SinkLease>>;

    /// Moves the position to `cursor` and extends the lease to `lease` from
    /// now (zero releases it); `false` when `token` no longer holds it.
    async fn advance_sink(
        &self,
        sink: &str,
        tenant: &str,
        token: Uuid,
        cursor: Cursor,
        lease: Duration,
    ) -> Result<bool>;
}

/// What health checks and metrics read of the store itself.
#[async_trait]
pub trait HealthStore: Send + Sync {
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
}

/// Everything the store keeps: every part together, as the server holds
/// it (`Arc<dyn Store>`). Implemented for every type that implements each
/// part.
pub trait Store:
    ContactStore
    + PreferenceStore
    + MessageStore
    + DispatchStore
    + CallbackStore
    + EndpointStore
    + DeliveryStore
    + SinkStore
    + EventStore
    + TenantStore
    + QuotaStore
    + HealthStore
    + std::fmt::Debug
    + 'static
{
}

impl<T> Store for T where
    T: ContactStore
        + PreferenceStore
        + MessageStore
        + DispatchStore
        + CallbackStore
        + EndpointStore
        + DeliveryStore
        + SinkStore
        + EventStore
        + TenantStore
        + QuotaStore
        + HealthStore
        + std::fmt::Debug
        + 'static
{
}
