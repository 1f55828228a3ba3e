-- Deliveries of the event log to webhook endpoints; mirrors
-- migrations/postgres/0015_deliveries.sql. The transaction part of a
-- cursor is 0 here (one writer commits in log order); times are
-- microseconds since the Unix epoch.
CREATE TABLE endpoint_cursors (
    tenant        TEXT    NOT NULL,
    endpoint_id   TEXT    NOT NULL,
    seq           INTEGER NOT NULL,
    epoch         INTEGER NOT NULL DEFAULT 0,
    next_time     INTEGER NOT NULL,
    lease_until   INTEGER,
    lease_token   TEXT,
    failures      INTEGER NOT NULL DEFAULT 0,
    failing_since INTEGER,
    PRIMARY KEY (tenant, endpoint_id)
) WITHOUT ROWID;

CREATE INDEX endpoint_cursors_due ON endpoint_cursors (next_time);

-- Endpoints registered before deliveries existed start at the log's head.
INSERT INTO endpoint_cursors (tenant, endpoint_id, seq, next_time)
SELECT e.tenant, e.id,
       COALESCE((SELECT max(seq) FROM events WHERE events.tenant = e.tenant), 0), 0
FROM endpoints e;

CREATE TABLE endpoint_attempts (
    tenant        TEXT    NOT NULL,
    endpoint_id   TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    event_seq     INTEGER NOT NULL,
    event_type    INTEGER NOT NULL,
    epoch         INTEGER NOT NULL,
    time          INTEGER NOT NULL,
    outcome       INTEGER NOT NULL,
    status_code   INTEGER,
    latency_ms    INTEGER NOT NULL,
    error         TEXT    NOT NULL DEFAULT '',
    next_try_time INTEGER,
    PRIMARY KEY (tenant, endpoint_id, id)
) WITHOUT ROWID;

CREATE INDEX endpoint_attempts_delivered ON endpoint_attempts (event_seq, endpoint_id)
    WHERE outcome = 1;
CREATE INDEX endpoint_attempts_time ON endpoint_attempts (time);
