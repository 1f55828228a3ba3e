-- Outbound webhook endpoints; mirrors migrations/postgres/0014_endpoints.sql.
-- Event types are a JSON array of codes; times are microseconds since the
-- Unix epoch. Secrets are sealed by the application, never in clear.
CREATE TABLE endpoints (
    tenant                      TEXT    NOT NULL,
    id                          TEXT    NOT NULL,
    url                         TEXT    NOT NULL,
    description                 TEXT    NOT NULL DEFAULT '',
    event_types                 TEXT    NOT NULL DEFAULT '[]',
    contact_id                  TEXT,
    disabled                    INTEGER NOT NULL DEFAULT 0,
    disabled_reason             TEXT    NOT NULL DEFAULT '',
    secret                      BLOB    NOT NULL,
    previous_secret             BLOB,
    previous_secret_expire_time INTEGER,
    create_time                 INTEGER NOT NULL,
    update_time                 INTEGER NOT NULL,
    version                     INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;
