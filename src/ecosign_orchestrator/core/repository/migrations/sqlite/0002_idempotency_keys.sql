-- Idempotency keys: a client's key returns the job it created, whatever its status.
ALTER TABLE jobs ADD COLUMN idempotency_key TEXT;

ALTER TABLE jobs ADD COLUMN fingerprint TEXT;

CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
