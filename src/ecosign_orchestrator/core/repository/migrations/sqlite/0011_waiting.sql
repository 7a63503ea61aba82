-- A job that waits for something outside it (an anchor's confirmation, a free slot, a circuit to
-- close, a step done elsewhere) is `waiting` until its next check at run_at, no longer shown as
-- `queued` (ready to run) with "0 attempts": `waiting` says what it waits for, since when and
-- until when. Waiting jobs are claimed like queued ones, so every index that finds active or
-- ready jobs includes them.
ALTER TABLE jobs ADD COLUMN waiting TEXT;

-- SQLite cannot alter a CHECK constraint. The new one accepts every row the old one did, so the
-- stored table text is edited in place, the procedure SQLite's documentation gives for changes
-- that leave the rows as they are ("Making Other Kinds Of Table Schema Changes"); RESET makes
-- this connection read the new text, and the index changes below make every other one do so.
PRAGMA writable_schema = ON;
UPDATE sqlite_master
SET sql = replace(
    sql,
    'CHECK (status IN (''queued'', ''running'', ''retrying'', ''completed'', ''failed'', ''cancelled''))',
    'CHECK (status IN (''queued'', ''running'', ''retrying'', ''waiting'', ''completed'', ''failed'', ''cancelled''))'
)
WHERE type = 'table' AND name = 'jobs';
PRAGMA writable_schema = RESET;

DROP INDEX jobs_dedupe_active;
CREATE UNIQUE INDEX jobs_dedupe_active ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running', 'retrying', 'waiting');

DROP INDEX jobs_ready;
CREATE INDEX jobs_ready ON jobs (priority DESC, run_at) WHERE status IN ('queued', 'retrying', 'waiting');

DROP INDEX jobs_active_age;
CREATE INDEX jobs_active_age ON jobs (created_at, id)
    WHERE status IN ('queued', 'running', 'retrying', 'waiting');
