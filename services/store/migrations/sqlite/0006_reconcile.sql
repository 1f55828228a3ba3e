-- Reconciliation pages through sent messages by (update_time, id).
DROP INDEX messages_stale_sent;
CREATE INDEX messages_stale_sent ON messages (update_time, id) WHERE status = 3;
