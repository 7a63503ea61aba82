-- Idempotency keys: a client's key returns the job it created, whatever its status.
ALTER TABLE {schema}.jobs ADD COLUMN idempotency_key text;

ALTER TABLE {schema}.jobs ADD COLUMN fingerprint text;

CREATE UNIQUE INDEX jobs_idempotency_key ON {schema}.jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
