-- Jobs: one row per job; status transitions are decided in Python (core/transitions.py).
CREATE TABLE {schema}.jobs (
    id text PRIMARY KEY,
    kind text NOT NULL,
    queue text NOT NULL,
    payload jsonb NOT NULL,
    status text NOT NULL
        CHECK (status IN ('queued', 'running', 'retrying', 'completed', 'failed', 'cancelled')),
    priority integer NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    run_at timestamptz NOT NULL,
    dedupe_key text,
    lease_owner text,
    lease_token text,
    lease_expires_at timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    progress_fraction double precision,
    progress_message text NOT NULL DEFAULT '',
    steps jsonb NOT NULL DEFAULT '[]',
    result jsonb,
    last_error jsonb,
    retry jsonb NOT NULL DEFAULT '{}',
    timeout double precision,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz
);

-- At most one active job per dedupe key; terminal jobs release the key.
CREATE UNIQUE INDEX jobs_dedupe_active ON {schema}.jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running', 'retrying');

-- The claim scan: ready jobs by priority then due time.
CREATE INDEX jobs_ready ON {schema}.jobs (priority DESC, run_at, id)
    WHERE status IN ('queued', 'retrying');

-- Lease recovery scan.
CREATE INDEX jobs_leases ON {schema}.jobs (lease_expires_at) WHERE status = 'running';

CREATE INDEX jobs_kind_status ON {schema}.jobs (kind, status);

-- Append-only event log; the bigserial id is the resume cursor.
CREATE TABLE {schema}.events (
    id bigserial PRIMARY KEY,
    job_id text NOT NULL REFERENCES {schema}.jobs (id),
    type text NOT NULL,
    at timestamptz NOT NULL,
    attempt integer NOT NULL,
    data jsonb NOT NULL
);

CREATE INDEX events_job ON {schema}.events (job_id, id);
