-- Jobs: one row per job; status transitions are decided in Python (core/transitions.py).
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    queue TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('queued', 'running', 'retrying', 'completed', 'failed', 'cancelled')),
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at REAL NOT NULL,
    dedupe_key TEXT,
    lease_owner TEXT,
    lease_token TEXT,
    lease_expires_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress_fraction REAL,
    progress_message TEXT NOT NULL DEFAULT '',
    steps TEXT NOT NULL DEFAULT '[]',
    result TEXT NOT NULL DEFAULT 'null',
    last_error TEXT,
    retry TEXT NOT NULL DEFAULT '{}',
    timeout REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
);

-- At most one active job per dedupe key; terminal jobs release the key.
CREATE UNIQUE INDEX jobs_dedupe_active ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running', 'retrying');

-- The claim scan: ready jobs by priority then due time.
CREATE INDEX jobs_ready ON jobs (priority DESC, run_at) WHERE status IN ('queued', 'retrying');

-- Lease recovery scan.
CREATE INDEX jobs_leases ON jobs (lease_expires_at) WHERE status = 'running';

CREATE INDEX jobs_kind_status ON jobs (kind, status);

-- Append-only event log; the autoincrement id is the resume cursor.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    type TEXT NOT NULL,
    at REAL NOT NULL,
    attempt INTEGER NOT NULL,
    data TEXT NOT NULL
);

CREATE INDEX events_job ON events (job_id, id);
