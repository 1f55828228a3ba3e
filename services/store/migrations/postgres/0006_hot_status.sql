-- Status reports rewrite a message row two or three times after it is sent.
-- While a changing column (status, update_time) sat in an index, every one
-- of those writes inserted into all of the table's indexes. Now no index
-- names a column that a report changes, and pages keep room for new row
-- versions, so PostgreSQL updates in place on the page (HOT) and prunes old
-- versions there, without vacuum.
--
-- Sent messages still waiting for a report, for reconciliation, move to a
-- table of their own: a row when the message is sent, gone with its first
-- report.
CREATE TABLE awaiting_status (
    message_id UUID        PRIMARY KEY,
    sent_time  TIMESTAMPTZ NOT NULL
);
CREATE INDEX awaiting_status_since ON awaiting_status (sent_time);
-- A row per message for a second or so: vacuumed like the queue (0005).
ALTER TABLE awaiting_status SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 10000
);
INSERT INTO awaiting_status (message_id, sent_time)
    SELECT id, update_time FROM messages WHERE status = 3;
DROP INDEX messages_stale_sent;
ALTER TABLE messages SET (fillfactor = 60);

-- Pruning reads events by time; the log is appended in time order, so a
-- block range index answers that at a fraction of a B-tree's upkeep.
CREATE INDEX events_time_range ON events USING brin (time);
DROP INDEX events_time;
