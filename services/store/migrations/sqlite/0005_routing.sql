-- Routing's durable state; mirrors migrations/postgres/0007_routing.sql.
-- Watches: a sent step with a next step behind it keeps its dispatch job as
-- a watch (kind 1) due at its delivery deadline; a reply marks it replied
-- (kind 2). Customer service windows per contact, channel and business line.
ALTER TABLE dispatch_jobs ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;
ALTER TABLE dispatch_jobs ADD COLUMN contact_id TEXT;
CREATE INDEX dispatch_jobs_watches ON dispatch_jobs (tenant, contact_id) WHERE kind = 1;

CREATE TABLE service_windows (
    tenant         TEXT    NOT NULL,
    contact_id     TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    line           TEXT    NOT NULL,
    open_until     INTEGER NOT NULL,
    notified_until INTEGER,
    PRIMARY KEY (tenant, contact_id, channel, line)
) WITHOUT ROWID;
CREATE INDEX service_windows_closing ON service_windows (open_until) WHERE notified_until IS NULL;

INSERT INTO service_windows (tenant, contact_id, channel, line, open_until)
    SELECT tenant, id, 'whatsapp', '', whatsapp_window_until FROM contacts
    WHERE whatsapp_window_until IS NOT NULL;
ALTER TABLE contacts DROP COLUMN whatsapp_window_until;

CREATE TRIGGER service_windows_inserted AFTER INSERT ON service_windows
BEGIN
    UPDATE contacts SET version = version + 1 WHERE tenant = NEW.tenant AND id = NEW.contact_id;
END;
CREATE TRIGGER service_windows_updated AFTER UPDATE OF open_until, contact_id ON service_windows
BEGIN
    UPDATE contacts SET version = version + 1
    WHERE tenant = OLD.tenant AND id IN (OLD.contact_id, NEW.contact_id);
END;
CREATE TRIGGER service_windows_deleted AFTER DELETE ON service_windows
BEGIN
    UPDATE contacts SET version = version + 1 WHERE tenant = OLD.tenant AND id = OLD.contact_id;
END;
