-- Messages accepted per tenant and UTC day, for daily send quotas: one row
-- per (tenant, day), read and updated by primary key.
CREATE TABLE tenant_usage (
    tenant TEXT   NOT NULL,
    day    DATE   NOT NULL,
    sent   BIGINT NOT NULL,
    PRIMARY KEY (tenant, day)
);
