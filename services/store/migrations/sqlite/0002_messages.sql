-- The messaging pipeline: messages, their dispatch jobs, and the event log.
-- Mirrors migrations/postgres/0002_messages.sql: ids are UUIDv7 text, times
-- microseconds since the Unix epoch, JSON is text.

CREATE TABLE messages (
    tenant              TEXT    NOT NULL,
    id                  TEXT    NOT NULL,
    contact_id          TEXT    NOT NULL,
    direction           INTEGER NOT NULL,              -- 1 outbound, 2 inbound
    category            TEXT    NOT NULL,
    channel             TEXT,
    priority            INTEGER NOT NULL,              -- 1 high, 2 normal, 3 low
    status              INTEGER NOT NULL,              -- MessageStatus::code
    content             TEXT    NOT NULL,              -- JSON Content
    overrides           TEXT    NOT NULL DEFAULT '[]', -- JSON array
    correlation_ref     TEXT    NOT NULL DEFAULT '',
    metadata            TEXT    NOT NULL DEFAULT '{}', -- JSON object
    send_time           INTEGER,
    expire_time         INTEGER,
    reply_to            TEXT,
    history             TEXT    NOT NULL DEFAULT '[]', -- JSON array
    attempts            TEXT    NOT NULL DEFAULT '[]', -- JSON array
    route               TEXT,                          -- JSON RouteDecision
    provider_message_id TEXT,
    idempotency_key     TEXT,
    request_hash        TEXT    NOT NULL DEFAULT '',
    create_time         INTEGER NOT NULL,
    update_time         INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

-- Provider statuses name a message by our id (or the provider's) without a tenant.
CREATE UNIQUE INDEX messages_id ON messages (id);
CREATE UNIQUE INDEX messages_idempotency ON messages (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_contact ON messages (tenant, contact_id, id DESC);
-- Sent messages that heard nothing for a while, for status reconciliation.
CREATE INDEX messages_stale_sent ON messages (update_time) WHERE status = 3;
CREATE INDEX messages_provider_id ON messages (channel, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- One row per message waiting for an attempt; deleted when it is sent, fails
-- or is canceled. A worker leases rows with a claim token.
CREATE TABLE dispatch_jobs (
    message_id      TEXT    PRIMARY KEY,
    tenant          TEXT    NOT NULL,
    priority        INTEGER NOT NULL,
    due_time        INTEGER NOT NULL,
    plan_index      INTEGER NOT NULL DEFAULT 0,
    channel_attempt INTEGER NOT NULL DEFAULT 0,
    lease_until     INTEGER,
    claim_token     TEXT
) WITHOUT ROWID;

CREATE INDEX dispatch_jobs_due ON dispatch_jobs (priority, due_time);

-- The event log. SQLite commits one transaction at a time, so the rowid alone
-- is the log order (a cursor's transaction part is always 0). AUTOINCREMENT
-- keeps pruned positions from being handed out again, which would let a
-- reader's cursor skip new events.
CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT    NOT NULL,
    type            INTEGER NOT NULL,
    time            INTEGER NOT NULL,
    contact_id      TEXT,
    message_id      TEXT,
    correlation_ref TEXT    NOT NULL DEFAULT '',
    metadata        TEXT    NOT NULL DEFAULT '{}', -- JSON object
    payload         TEXT    NOT NULL               -- JSON EventPayload
);

CREATE INDEX events_position ON events (tenant, seq);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_contact ON events (tenant, contact_id);
