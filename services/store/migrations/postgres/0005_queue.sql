-- dispatch_jobs is a queue: every message inserts a row, leases it and
-- deletes it within seconds, so dead rows pile up far faster than the
-- default autovacuum thresholds (20% of the table) notice. Vacuum and
-- analyze it after a fixed number of changes instead, so claims never wade
-- through dead rows and plans follow the queue's size.
ALTER TABLE dispatch_jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 10000
);
