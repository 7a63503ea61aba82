-- (SQLite commits one write transaction at a time, so event ids are already in commit order.)

-- Retention deletes finished jobs oldest first, in small batches.
CREATE INDEX jobs_finished ON jobs (finished_at)
    WHERE status IN ('completed', 'failed', 'cancelled');

-- Readiness proves the store can commit a write: each probe rewrites this one row.
CREATE TABLE readiness (id INTEGER PRIMARY KEY, probed_at REAL NOT NULL);
