-- Messages accepted per tenant and UTC day (YYYY-MM-DD), for daily send
-- quotas: one row per (tenant, day), read and updated by primary key.
CREATE TABLE tenant_usage (
    tenant TEXT    NOT NULL,
    day    TEXT    NOT NULL,
    sent   INTEGER NOT NULL,
    PRIMARY KEY (tenant, day)
);
