-- Contact versions. Every change to a contact, its identities or its consent
-- records bumps contacts.version; the triggers below enforce it, so no code
-- path can forget. A send is committed only while its contact still has the
-- version its route was decided on (the accept statement in
-- postgres/messages.rs locks the contact row FOR KEY SHARE and compares), so
-- routing may work from a cache without ever committing a decision made on
-- stale data, and a merge or erasure (which lock the row FOR UPDATE) waits for
-- the sends in flight to the contact instead of missing them.
ALTER TABLE contacts ADD COLUMN version BIGINT NOT NULL DEFAULT 1;

CREATE FUNCTION omniroute_contact_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;

CREATE TRIGGER contacts_version BEFORE UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION omniroute_contact_version();

-- A change to a row that belongs to a contact (identity, consent record)
-- touches the contact, which bumps its version through the trigger above.
CREATE FUNCTION omniroute_contact_touched() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        UPDATE contacts SET version = version WHERE tenant = OLD.tenant AND id = OLD.contact_id;
    END IF;
    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.contact_id <> OLD.contact_id) THEN
        UPDATE contacts SET version = version WHERE tenant = NEW.tenant AND id = NEW.contact_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER identities_touch_contact AFTER INSERT OR UPDATE OR DELETE ON identities
    FOR EACH ROW EXECUTE FUNCTION omniroute_contact_touched();
CREATE TRIGGER consent_records_touch_contact AFTER INSERT OR UPDATE OR DELETE ON consent_records
    FOR EACH ROW EXECUTE FUNCTION omniroute_contact_touched();
