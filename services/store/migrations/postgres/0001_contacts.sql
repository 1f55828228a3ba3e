-- Contacts, identities and the consent ledger. Ids are UUIDv7, so ORDER BY id
-- is creation order.
CREATE TABLE contacts (
    tenant                  TEXT        NOT NULL,
    id                      UUID        NOT NULL,
    state                   SMALLINT    NOT NULL,            -- 1 active, 2 erased, 3 merged
    display_name            TEXT        NOT NULL DEFAULT '',
    locale                  TEXT        NOT NULL DEFAULT '',
    time_zone               TEXT        NOT NULL DEFAULT '',
    external_ref            TEXT,
    labels                  TEXT[]      NOT NULL DEFAULT '{}',
    attributes              JSONB       NOT NULL DEFAULT '{}',
    preferences             JSONB       NOT NULL DEFAULT '{}',
    preferences_update_time TIMESTAMPTZ,
    merged_into             UUID,
    create_time             TIMESTAMPTZ NOT NULL,
    update_time             TIMESTAMPTZ NOT NULL,
    erase_time              TIMESTAMPTZ,
    erasure                 JSONB,
    PRIMARY KEY (tenant, id)
);

CREATE UNIQUE INDEX contacts_external_ref ON contacts (tenant, external_ref)
    WHERE external_ref IS NOT NULL;
CREATE INDEX contacts_merged_into ON contacts (tenant, merged_into)
    WHERE merged_into IS NOT NULL;
CREATE INDEX contacts_labels ON contacts USING GIN (labels);

-- One row per identity; the primary key is the uniqueness guarantee.
CREATE TABLE identities (
    tenant      TEXT        NOT NULL,
    channel     TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    address     TEXT        NOT NULL,
    wa_id       TEXT,
    contact_id  UUID        NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, channel, key),
    FOREIGN KEY (tenant, contact_id) REFERENCES contacts (tenant, id)
);

CREATE INDEX identities_contact ON identities (tenant, contact_id);

-- Append-only consent ledger.
CREATE TABLE consent_records (
    tenant      TEXT        NOT NULL,
    id          UUID        NOT NULL,
    contact_id  UUID        NOT NULL,
    channel     TEXT        NOT NULL,
    category    TEXT        NOT NULL,
    action      SMALLINT    NOT NULL,                        -- 1 grant, 2 revoke
    source      TEXT        NOT NULL,
    legal_basis SMALLINT    NOT NULL,
    evidence    TEXT        NOT NULL DEFAULT '',
    record_time TIMESTAMPTZ NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, contact_id) REFERENCES contacts (tenant, id)
);

CREATE INDEX consent_records_contact ON consent_records (tenant, contact_id, id);
