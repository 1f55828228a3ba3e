-- dispatch_jobs is a queue: every message inserts a row, leases it and
-- deletes it within seconds, so dead rows pile up far faster than the
-- default autovacuum thresholds (20% of the table) notice. Vacuum it after
-- a fixed number of changes instead, so claims never wade through dead rows.
ALTER TABLE dispatch_jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 10000
);

-- Claims read due jobs in (priority, due time, id) order: with the id in the
-- index too, the index alone gives that order, so a claim reads as many rows
-- as it takes, never sorting the backlog, whatever the planner estimates.
CREATE INDEX dispatch_jobs_order ON dispatch_jobs (priority, due_time, message_id);
DROP INDEX dispatch_jobs_due;
