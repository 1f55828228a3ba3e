-- Tenants and their API keys; mirrors migrations/postgres/0011_auth.sql.
-- The tenant `default` is created here: single-tenant installs kept all
-- their data under it. Times are microseconds since the Unix epoch (this
-- one to the millisecond, all julianday gives).
CREATE TABLE tenants (
    id           TEXT    NOT NULL PRIMARY KEY,
    display_name TEXT    NOT NULL DEFAULT '',
    create_time  INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO tenants (id, display_name, create_time)
VALUES ('default', 'Default',
        CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) * 1000);

-- An API key: a public prefix, unique across all tenants (the lookup of
-- authentication), and the SHA-256 of its secret. Scopes are a JSON array
-- of strings. Keys are revoked, never deleted.
CREATE TABLE api_keys (
    id          TEXT    NOT NULL PRIMARY KEY,
    tenant      TEXT    NOT NULL REFERENCES tenants (id),
    name        TEXT    NOT NULL DEFAULT '',
    prefix      TEXT    NOT NULL,
    secret_hash BLOB    NOT NULL,
    scopes      TEXT    NOT NULL DEFAULT '[]',
    create_time INTEGER NOT NULL,
    expire_time INTEGER,
    revoke_time INTEGER
) WITHOUT ROWID;

CREATE UNIQUE INDEX api_keys_prefix ON api_keys (prefix);
CREATE INDEX api_keys_tenant_created ON api_keys (tenant, create_time, id);
