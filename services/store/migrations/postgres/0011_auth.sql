-- Tenants and their API keys, which authentication reads.
--
-- Every other table names its tenant by id in a `tenant` column without a
-- foreign key (those rows predate this table). The tenant `default` is
-- created here: single-tenant installs kept all their data under it.
CREATE TABLE tenants (
    id           TEXT        PRIMARY KEY,
    display_name TEXT        NOT NULL DEFAULT '',
    create_time  TIMESTAMPTZ NOT NULL
);

INSERT INTO tenants (id, display_name, create_time)
VALUES ('default', 'Default', now());

-- An API key: a public prefix, unique across all tenants, so that a key
-- presented on a call is found by one lookup of api_keys_prefix before its
-- tenant is known, and the SHA-256 of its secret (never the secret).
-- Keys are revoked, never deleted: a revoked key is still found, and
-- refused.
CREATE TABLE api_keys (
    id          UUID        PRIMARY KEY,
    tenant      TEXT        NOT NULL REFERENCES tenants (id),
    name        TEXT        NOT NULL DEFAULT '',
    prefix      TEXT        NOT NULL,
    secret_hash BYTEA       NOT NULL,
    scopes      TEXT[]      NOT NULL DEFAULT '{}',
    create_time TIMESTAMPTZ NOT NULL,
    expire_time TIMESTAMPTZ,
    revoke_time TIMESTAMPTZ
);

-- The uniqueness guarantee, and the lookup of authentication (its name is
-- how a duplicate prefix is told from other errors, postgres/auth.rs).
CREATE UNIQUE INDEX api_keys_prefix ON api_keys (prefix);
-- A tenant's keys in list order (and the foreign key's index).
CREATE INDEX api_keys_tenant_created ON api_keys (tenant, create_time, id);
