-- A job that waits for something outside it (an anchor's confirmation, a free slot, a circuit to
-- close, a step done elsewhere) is `waiting` until its next check at run_at, no longer shown as
-- `queued` (ready to run) with "0 attempts": `waiting` says what it waits for, since when and
-- until when. Waiting jobs are claimed like queued ones, so every index and function that finds
-- active or ready jobs includes them.
ALTER TABLE {schema}.jobs ADD COLUMN waiting jsonb;
ALTER TABLE {schema}.jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE {schema}.jobs ADD CONSTRAINT jobs_status_check CHECK (
    status IN ('queued', 'running', 'retrying', 'waiting', 'completed', 'failed', 'cancelled')
);

DROP INDEX {schema}.jobs_dedupe_active;
CREATE UNIQUE INDEX jobs_dedupe_active ON {schema}.jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running', 'retrying', 'waiting');

DROP INDEX {schema}.jobs_ready;
CREATE INDEX jobs_ready ON {schema}.jobs (priority DESC, run_at, id)
    WHERE status IN ('queued', 'retrying', 'waiting');

DROP INDEX {schema}.jobs_active_age;
CREATE INDEX jobs_active_age ON {schema}.jobs (created_at, id)
    WHERE status IN ('queued', 'running', 'retrying', 'waiting');

CREATE OR REPLACE FUNCTION {schema}.ready_jobs(p_kinds text[], p_queues text[], p_limit integer)
RETURNS SETOF text
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
BEGIN
    RETURN QUERY
    SELECT j.id FROM {schema}.jobs AS j
    WHERE j.status IN ('queued', 'retrying', 'waiting')
      AND j.run_at <= now()
      AND j.kind = ANY(p_kinds)
      AND (p_queues IS NULL OR j.queue = ANY(p_queues))
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT p_limit
    FOR UPDATE OF j SKIP LOCKED;
END
$$;
