-- The messaging pipeline: messages, their dispatch jobs, and the event log.

CREATE TABLE messages (
    tenant              TEXT        NOT NULL,
    id                  UUID        NOT NULL,
    contact_id          UUID        NOT NULL,
    direction           SMALLINT    NOT NULL,              -- 1 outbound, 2 inbound
    category            TEXT        NOT NULL,
    channel             TEXT,
    priority            SMALLINT    NOT NULL,              -- 1 high, 2 normal, 3 low
    status              SMALLINT    NOT NULL,              -- MessageStatus::code
    content             JSONB       NOT NULL,
    overrides           JSONB       NOT NULL DEFAULT '[]',
    correlation_ref     TEXT        NOT NULL DEFAULT '',
    metadata            JSONB       NOT NULL DEFAULT '{}',
    send_time           TIMESTAMPTZ,
    expire_time         TIMESTAMPTZ,
    reply_to            UUID,
    history             JSONB       NOT NULL DEFAULT '[]',
    attempts            JSONB       NOT NULL DEFAULT '[]',
    route               JSONB,
    provider_message_id TEXT,
    idempotency_key     TEXT,
    request_hash        TEXT        NOT NULL DEFAULT '',
    create_time         TIMESTAMPTZ NOT NULL,
    update_time         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, id)
);

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
    message_id      UUID        PRIMARY KEY,
    tenant          TEXT        NOT NULL,
    priority        SMALLINT    NOT NULL,
    due_time        TIMESTAMPTZ NOT NULL,
    plan_index      INTEGER     NOT NULL DEFAULT 0,
    channel_attempt INTEGER     NOT NULL DEFAULT 0,
    lease_until     TIMESTAMPTZ,
    claim_token     UUID
);

CREATE INDEX dispatch_jobs_due ON dispatch_jobs (priority, due_time);

-- The event log. Readers order by (xid, seq) and read only transactions older
-- than every running one, so an event that commits late is never skipped.
CREATE TABLE events (
    seq             BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid             xid8        NOT NULL DEFAULT pg_current_xact_id(),
    tenant          TEXT        NOT NULL,
    type            SMALLINT    NOT NULL,
    time            TIMESTAMPTZ NOT NULL,
    contact_id      UUID,
    message_id      UUID,
    correlation_ref TEXT        NOT NULL DEFAULT '',
    metadata        JSONB       NOT NULL DEFAULT '{}',
    payload         JSONB       NOT NULL
);

CREATE INDEX events_position ON events (tenant, xid, seq);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_contact ON events (tenant, contact_id);
