-- An event's job is no longer checked by a foreign key. Every event is written by the statement
-- (or transaction) that writes its job's row, and retention deletes a job's events, calls and
-- row together; the check repeated that on every insert, as an index probe into jobs: 12 µs of
-- the server's 47 µs per job in a batch enqueue, and it runs for three events of every job.
-- Delete jobs by hand only with their events (`jobs prune` does).
ALTER TABLE {schema}.events DROP CONSTRAINT IF EXISTS events_job_id_fkey;
