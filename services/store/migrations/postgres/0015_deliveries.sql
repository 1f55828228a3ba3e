-- Deliveries of the event log to webhook endpoints (see
-- omniroute_domain::deliveries). Each endpoint has a cursor over its
-- tenant's log, leased by one deliverer at a time like a dispatch job;
-- every attempt is logged. No copy of the events is kept here.
CREATE TABLE endpoint_cursors (
    tenant        TEXT        NOT NULL,
    endpoint_id   UUID        NOT NULL,
    -- Every event up to (xid, seq) was delivered or is not for the endpoint.
    xid           xid8        NOT NULL,
    seq           BIGINT      NOT NULL,
    -- Counts replays; attempts of earlier epochs are not deliveries of this one.
    epoch         BIGINT      NOT NULL DEFAULT 0,
    next_time     TIMESTAMPTZ NOT NULL,
    lease_until   TIMESTAMPTZ,
    lease_token   UUID,
    failures      INTEGER     NOT NULL DEFAULT 0,
    failing_since TIMESTAMPTZ,
    PRIMARY KEY (tenant, endpoint_id)
);

-- Due endpoints, soonest first.
CREATE INDEX endpoint_cursors_due ON endpoint_cursors (next_time);

-- Endpoints registered before deliveries existed start at the log's head.
INSERT INTO endpoint_cursors (tenant, endpoint_id, xid, seq, next_time)
SELECT e.tenant, e.id,
       COALESCE((SELECT max(xid) FROM events WHERE events.tenant = e.tenant), '0'::xid8),
       COALESCE((SELECT max(seq) FROM events WHERE events.tenant = e.tenant), 0),
       now()
FROM endpoints e;

CREATE TABLE endpoint_attempts (
    tenant        TEXT        NOT NULL,
    endpoint_id   UUID        NOT NULL,
    -- UUIDv7: attempts in time order.
    id            UUID        NOT NULL,
    event_xid     xid8        NOT NULL,
    event_seq     BIGINT      NOT NULL,
    event_type    SMALLINT    NOT NULL,
    epoch         BIGINT      NOT NULL,
    time          TIMESTAMPTZ NOT NULL,
    -- omniroute_domain::DeliveryOutcome: 1 delivered, 2 failed.
    outcome       SMALLINT    NOT NULL,
    status_code   INTEGER,
    latency_ms    INTEGER     NOT NULL,
    error         TEXT        NOT NULL DEFAULT '',
    next_try_time TIMESTAMPTZ,
    PRIMARY KEY (tenant, endpoint_id, id)
);

-- Which events of a page were delivered already (after a partial round):
-- one probe per event. The event leads: one endpoint has every attempt of
-- its own, so a plan must not start from the endpoint.
CREATE INDEX endpoint_attempts_delivered ON endpoint_attempts (event_seq, endpoint_id)
    WHERE outcome = 1;

-- Pruning with the events they deliver.
CREATE INDEX endpoint_attempts_time ON endpoint_attempts USING brin (time);
