-- Contacts, identities and the consent ledger. Times are microseconds since
-- the Unix epoch; ids are UUIDv7 text, so ORDER BY id is creation order.
CREATE TABLE contacts (
    tenant                  TEXT    NOT NULL,
    id                      TEXT    NOT NULL,
    state                   INTEGER NOT NULL,            -- 1 active, 2 erased, 3 merged
    display_name            TEXT    NOT NULL DEFAULT '',
    locale                  TEXT    NOT NULL DEFAULT '',
    time_zone               TEXT    NOT NULL DEFAULT '',
    external_ref            TEXT,
    labels                  TEXT    NOT NULL DEFAULT '[]', -- JSON array
    attributes              TEXT    NOT NULL DEFAULT '{}', -- JSON object
    preferences             TEXT    NOT NULL DEFAULT '{}', -- JSON ChannelPreferences
    preferences_update_time INTEGER,
    merged_into             TEXT,
    create_time             INTEGER NOT NULL,
    update_time             INTEGER NOT NULL,
    erase_time              INTEGER,
    erasure                 TEXT,                         -- JSON ErasureSummary
    PRIMARY KEY (tenant, id)
) WITHOUT ROWID;

CREATE UNIQUE INDEX contacts_external_ref ON contacts (tenant, external_ref)
    WHERE external_ref IS NOT NULL;
CREATE INDEX contacts_merged_into ON contacts (tenant, merged_into)
    WHERE merged_into IS NOT NULL;

-- One row per identity; the primary key is the uniqueness guarantee.
CREATE TABLE identities (
    tenant      TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    address     TEXT    NOT NULL,
    wa_id       TEXT,
    contact_id  TEXT    NOT NULL,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (tenant, channel, key),
    FOREIGN KEY (tenant, contact_id) REFERENCES contacts (tenant, id)
) WITHOUT ROWID;

CREATE INDEX identities_contact ON identities (tenant, contact_id);

-- Append-only consent ledger.
CREATE TABLE consent_records (
    tenant      TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    contact_id  TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    category    TEXT    NOT NULL,
    action      INTEGER NOT NULL,                        -- 1 grant, 2 revoke
    source      TEXT    NOT NULL,
    legal_basis INTEGER NOT NULL,
    evidence    TEXT    NOT NULL DEFAULT '',
    record_time INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, contact_id) REFERENCES contacts (tenant, id)
) WITHOUT ROWID;

CREATE INDEX consent_records_contact ON consent_records (tenant, contact_id, id);
