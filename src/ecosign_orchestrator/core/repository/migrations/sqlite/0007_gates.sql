-- Fleet-wide gates in front of outside services (see core/gates.py).
-- A slot counts while its job runs under the lease that took it.
CREATE TABLE slots (
    key TEXT NOT NULL,
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    lease_token TEXT NOT NULL,
    acquired_at REAL NOT NULL,
    PRIMARY KEY (key, job_id)
);

-- One circuit per key; times are epoch seconds.
CREATE TABLE circuits (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    open_until REAL,
    probe_until REAL,
    updated_at REAL NOT NULL
);
