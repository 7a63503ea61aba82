-- The call log: each request a job made to an outside service, one row per attempt, written with
-- the job's step record; deleted with the job by retention.
CREATE TABLE {schema}.calls (
    id bigserial PRIMARY KEY,
    job_id text NOT NULL REFERENCES {schema}.jobs (id),
    job_attempt integer NOT NULL,
    step text NOT NULL,
    attempt integer NOT NULL,
    target text NOT NULL,
    idempotency_key text,
    started_at timestamptz NOT NULL,
    duration_ms double precision NOT NULL,
    status integer,
    error text NOT NULL,
    response_headers jsonb NOT NULL,
    response_body text NOT NULL,
    truncated boolean NOT NULL,
    request jsonb NOT NULL
);

CREATE INDEX calls_job ON {schema}.calls (job_id, id);
