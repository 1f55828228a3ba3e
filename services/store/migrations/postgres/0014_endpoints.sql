-- Outbound webhook endpoints (EndpointService). A secret is stored sealed
-- by the application (AES-256-GCM under endpoints.secret_key, nonce
-- first, bound to tenant and id): never in clear. The previous secret
-- stays until its expiry after a rotation. Event types are
-- omniroute_domain::EventType codes; none means every type.
CREATE TABLE endpoints (
    tenant                      TEXT        NOT NULL,
    id                          UUID        NOT NULL,
    url                         TEXT        NOT NULL,
    description                 TEXT        NOT NULL DEFAULT '',
    event_types                 SMALLINT[]  NOT NULL DEFAULT '{}',
    contact_id                  UUID,
    disabled                    BOOLEAN     NOT NULL DEFAULT false,
    disabled_reason             TEXT        NOT NULL DEFAULT '',
    secret                      BYTEA       NOT NULL,
    previous_secret             BYTEA,
    previous_secret_expire_time TIMESTAMPTZ,
    create_time                 TIMESTAMPTZ NOT NULL,
    update_time                 TIMESTAMPTZ NOT NULL,
    version                     BIGINT      NOT NULL,
    -- Ids are UUIDv7: a tenant's endpoints in creation order, for lists.
    PRIMARY KEY (tenant, id)
);
