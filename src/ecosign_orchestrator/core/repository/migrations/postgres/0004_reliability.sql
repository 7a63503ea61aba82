-- The whole event log is read in commit order. Ids are taken at insert and transactions commit in
-- any order, so a reader past id N could miss an event N-1 committed later. Each event records the
-- transaction that wrote it; readers order by (tx, id) and take only events of transactions older
-- than every transaction still in progress. Rows written before this migration keep tx 0.
ALTER TABLE {schema}.events ADD COLUMN tx xid8 NOT NULL DEFAULT '0';
ALTER TABLE {schema}.events ALTER COLUMN tx SET DEFAULT pg_current_xact_id();
CREATE INDEX events_commit_order ON {schema}.events (tx, id);

-- Retention deletes finished jobs oldest first, in small batches.
CREATE INDEX jobs_finished ON {schema}.jobs (finished_at)
    WHERE status IN ('completed', 'failed', 'cancelled');

-- Readiness proves the store can commit a write: each probe rewrites this one row.
CREATE TABLE {schema}.readiness (id integer PRIMARY KEY, probed_at timestamptz NOT NULL);
