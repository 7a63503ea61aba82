-- Fleet-wide gates in front of outside services (see core/gates.py).
-- A slot counts while its job runs under the lease that took it.
CREATE TABLE {schema}.slots (
    key text NOT NULL,
    job_id text NOT NULL REFERENCES {schema}.jobs (id) ON DELETE CASCADE,
    lease_token text NOT NULL,
    acquired_at timestamptz NOT NULL,
    PRIMARY KEY (key, job_id)
);

-- One circuit per key; times are epoch seconds on the database clock.
CREATE TABLE {schema}.circuits (
    key text PRIMARY KEY,
    failures integer NOT NULL,
    open_until double precision,
    probe_until double precision,
    updated_at timestamptz NOT NULL
);
