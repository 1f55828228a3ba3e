-- Contact versions; mirrors migrations/postgres/0004_contact_versions.sql.
-- Every change to a contact, its identities or its consent records bumps
-- contacts.version, enforced by these triggers; a send is committed only
-- while its contact still has the version its route was decided on.
ALTER TABLE contacts ADD COLUMN version INTEGER NOT NULL DEFAULT 1;

CREATE TRIGGER contacts_version AFTER UPDATE ON contacts
    FOR EACH ROW WHEN NEW.version = OLD.version
BEGIN
    UPDATE contacts SET version = OLD.version + 1 WHERE tenant = NEW.tenant AND id = NEW.id;
END;

CREATE TRIGGER identities_inserted AFTER INSERT ON identities
BEGIN
    UPDATE contacts SET version = version + 1 WHERE tenant = NEW.tenant AND id = NEW.contact_id;
END;
CREATE TRIGGER identities_updated AFTER UPDATE ON identities
BEGIN
    UPDATE contacts SET version = version + 1
    WHERE tenant = OLD.tenant AND id IN (OLD.contact_id, NEW.contact_id);
END;
CREATE TRIGGER identities_deleted AFTER DELETE ON identities
BEGIN
    UPDATE contacts SET version = version + 1 WHERE tenant = OLD.tenant AND id = OLD.contact_id;
END;

CREATE TRIGGER consent_records_inserted AFTER INSERT ON consent_records
BEGIN
    UPDATE contacts SET version = version + 1 WHERE tenant = NEW.tenant AND id = NEW.contact_id;
END;
CREATE TRIGGER consent_records_updated AFTER UPDATE ON consent_records
BEGIN
    UPDATE contacts SET version = version + 1
    WHERE tenant = OLD.tenant AND id IN (OLD.contact_id, NEW.contact_id);
END;
CREATE TRIGGER consent_records_deleted AFTER DELETE ON consent_records
BEGIN
    UPDATE contacts SET version = version + 1 WHERE tenant = OLD.tenant AND id = OLD.contact_id;
END;
