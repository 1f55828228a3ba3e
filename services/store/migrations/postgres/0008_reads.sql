-- One contact's events are read in log order by index, like the whole
-- log's (events_position): the ordered scan stops after one page instead
-- of sorting every event of the contact after the cursor. It also serves
-- erasure's (tenant, contact_id) lookups, so the old index goes.
CREATE INDEX events_contact_position ON events (tenant, contact_id, xid, seq);
DROP INDEX events_contact;

-- Reconciliation pages through the messages awaiting a report by
-- (sent_time, message_id), so that those that never hear anything do not
-- starve the others.
CREATE INDEX awaiting_status_position ON awaiting_status (sent_time, message_id);
DROP INDEX awaiting_status_since;
