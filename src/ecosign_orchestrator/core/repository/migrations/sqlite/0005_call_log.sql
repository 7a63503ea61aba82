-- The call log: each request a job made to an outside service, one row per attempt, written with
-- the job's step record; deleted with the job by retention.
CREATE TABLE calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    job_attempt INTEGER NOT NULL,
    step TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    target TEXT NOT NULL,
    idempotency_key TEXT,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    status INTEGER,
    error TEXT NOT NULL,
    response_headers TEXT NOT NULL,
    response_body TEXT NOT NULL,
    truncated INTEGER NOT NULL,
    request TEXT NOT NULL
);

CREATE INDEX calls_job ON calls (job_id, id);
