-- Routing's durable state.
--
-- Watches: a sent step with a next step behind it keeps its dispatch job as
-- a watch (kind 1), due at the step's delivery deadline; a delivered or read
-- report deletes it, a failure report makes it due at once, and a message
-- from the customer marks it replied (kind 2: the fallback is canceled). The
-- contact is kept on watches only, so that a reply finds its contact's
-- watches by index instead of reading the contact's messages.
ALTER TABLE dispatch_jobs ADD COLUMN kind SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE dispatch_jobs ADD COLUMN contact_id UUID;
CREATE INDEX dispatch_jobs_watches ON dispatch_jobs (tenant, contact_id) WHERE kind = 1;

-- Customer service windows, per contact, channel and business line (the
-- WhatsApp number, mailbox or phone line the customer wrote to or called):
-- open until a time after the customer's last message or call.
-- notified_until is the window end a `window closing` event was logged for;
-- a window that moves is announced again (its notified_until is cleared), so
-- only windows not yet announced are indexed for the announcer.
CREATE TABLE service_windows (
    tenant         TEXT        NOT NULL,
    contact_id     UUID        NOT NULL,
    channel        TEXT        NOT NULL,
    line           TEXT        NOT NULL,
    open_until     TIMESTAMPTZ NOT NULL,
    notified_until TIMESTAMPTZ,
    PRIMARY KEY (tenant, contact_id, channel, line)
);
-- Windows about to close and not yet announced, for `window closing` events.
CREATE INDEX service_windows_closing ON service_windows (open_until) WHERE notified_until IS NULL;

INSERT INTO service_windows (tenant, contact_id, channel, line, open_until)
    SELECT tenant, id, 'whatsapp', '', whatsapp_window_until FROM contacts
    WHERE whatsapp_window_until IS NOT NULL;
ALTER TABLE contacts DROP COLUMN whatsapp_window_until;

-- A window opening or moving changes what routing decides: it bumps the
-- contact's version like identities and consent records do (0004); marking
-- a window notified does not.
CREATE TRIGGER service_windows_touch_contact
    AFTER INSERT OR DELETE OR UPDATE OF open_until, contact_id ON service_windows
    FOR EACH ROW EXECUTE FUNCTION omniroute_contact_touched();
