-- Where each sink stands in each tenant's event log; mirrors
-- migrations/postgres/0016_sinks.sql (times in microseconds).
CREATE TABLE sink_cursors (
    sink        TEXT    NOT NULL,
    tenant      TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    lease_token TEXT    NOT NULL,
    PRIMARY KEY (sink, tenant)
) WITHOUT ROWID;
