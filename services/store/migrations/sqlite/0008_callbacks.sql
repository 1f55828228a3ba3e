-- Callbacks; mirrors migrations/postgres/0010_callbacks.sql. Callbacks are
-- listed in the order they are due (the send time, else the creation time;
-- then the id) from these partial indexes, which hold callbacks only; the
-- list statement (sqlite/callbacks.rs) repeats these exact expressions, or
-- SQLite could not use them.
CREATE INDEX messages_callbacks_due
    ON messages (tenant, COALESCE(send_time, create_time), id)
    WHERE direction = 1 AND json_extract(content, '$.type') = 'callback_request';
CREATE INDEX messages_callbacks_contact_due
    ON messages (tenant, contact_id, COALESCE(send_time, create_time), id)
    WHERE direction = 1 AND json_extract(content, '$.type') = 'callback_request';

-- What the telephony provider reported of the call currently placed for a
-- callback, a row per callback message. Erasure deletes the contact's rows.
CREATE TABLE call_progress (
    tenant          TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    call_id         TEXT    NOT NULL,
    answered_by     TEXT    NOT NULL DEFAULT '',
    bridged_seconds INTEGER,
    update_time     INTEGER NOT NULL,
    PRIMARY KEY (tenant, message_id)
) WITHOUT ROWID;
