-- Callbacks: outbound messages whose content asks that an agent call the
-- customer back (content type `callback_request`).
--
-- They are listed per tenant, or per contact, in the order they are due
-- (the send time, else the creation time; then the id). These partial
-- indexes hold callbacks only, in that order, so a page is one ordered
-- range scan that stops after the page, however many other messages the
-- tenant has. The list statement (postgres/callbacks.rs) repeats these
-- exact expressions, or the planner could not use them. Every column they
-- name is fixed once a message is stored (only erasure rewrites content),
-- so status reports still update message rows in place (HOT, see 0006).
CREATE INDEX messages_callbacks_due
    ON messages (tenant, (COALESCE(send_time, create_time)), id)
    WHERE direction = 1 AND content->>'type' = 'callback_request';
CREATE INDEX messages_callbacks_contact_due
    ON messages (tenant, contact_id, (COALESCE(send_time, create_time)), id)
    WHERE direction = 1 AND content->>'type' = 'callback_request';

-- What the telephony provider reported of the call currently placed for a
-- callback: a row per callback message, replaced when a new attempt places
-- a new call (another call_id). Erasure deletes the contact's rows.
CREATE TABLE call_progress (
    tenant          TEXT        NOT NULL,
    message_id      UUID        NOT NULL,
    call_id         TEXT        NOT NULL,
    answered_by     TEXT        NOT NULL DEFAULT '',
    bridged_seconds BIGINT,
    update_time     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, message_id)
);
