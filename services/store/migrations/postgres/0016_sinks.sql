-- Where each sink (a bus the whole log is published to: NATS JetStream)
-- stands in each tenant's event log, leased to one replica at a time.
CREATE TABLE sink_cursors (
    sink        TEXT        NOT NULL,
    tenant      TEXT        NOT NULL,
    xid         xid8        NOT NULL,
    seq         BIGINT      NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    lease_token UUID        NOT NULL,
    PRIMARY KEY (sink, tenant)
);
