-- Claims read due jobs in (priority, due time, id) order; with the id in the
-- index, the index alone gives that order (mirrors postgres/0005_queue.sql).
CREATE INDEX dispatch_jobs_order ON dispatch_jobs (priority, due_time, message_id);
DROP INDEX dispatch_jobs_due;
