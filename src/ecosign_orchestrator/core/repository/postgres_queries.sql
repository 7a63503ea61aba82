-- load_job --
-- One job by id, locked until the transaction ends.
SELECT * FROM {schema}.jobs WHERE id = %(id)s FOR UPDATE

-- get_job --
-- One job by id, no lock.
SELECT * FROM {schema}.jobs WHERE id = %(id)s

-- find_active --
-- The active job holding a dedupe key.
SELECT * FROM {schema}.jobs
WHERE dedupe_key = %(dedupe_key)s AND status IN ('queued', 'running', 'retrying')

-- find_idempotent --
-- The job created with an idempotency key, whatever its status.
SELECT * FROM {schema}.jobs WHERE idempotency_key = %(key)s

-- insert_job --
-- A new job row; a concurrent insert holding the same active dedupe key wins (no row returned).
INSERT INTO {schema}.jobs (
    id, kind, queue, payload, status, priority, attempts, max_attempts, run_at, dedupe_key,
    lease_owner, lease_token, lease_expires_at, cancel_requested, progress_fraction,
    progress_message, steps, result, last_error, retry, timeout, created_at, updated_at,
    started_at, finished_at, idempotency_key, fingerprint
) VALUES (
    %(id)s, %(kind)s, %(queue)s, %(payload)s, %(status)s, %(priority)s, %(attempts)s,
    %(max_attempts)s, %(run_at)s, %(dedupe_key)s, %(lease_owner)s, %(lease_token)s,
    %(lease_expires_at)s, %(cancel_requested)s, %(progress_fraction)s, %(progress_message)s,
    %(steps)s, %(result)s, %(last_error)s, %(retry)s, %(timeout)s, %(created_at)s,
    %(updated_at)s, %(started_at)s, %(finished_at)s, %(idempotency_key)s, %(fingerprint)s
)
ON CONFLICT DO NOTHING
RETURNING id

-- update_job --
-- Write back every mutable column of a job.
UPDATE {schema}.jobs SET
    status = %(status)s, priority = %(priority)s, attempts = %(attempts)s,
    max_attempts = %(max_attempts)s, run_at = %(run_at)s, lease_owner = %(lease_owner)s,
    lease_token = %(lease_token)s, lease_expires_at = %(lease_expires_at)s,
    cancel_requested = %(cancel_requested)s, progress_fraction = %(progress_fraction)s,
    progress_message = %(progress_message)s, steps = %(steps)s, result = %(result)s,
    last_error = %(last_error)s, updated_at = %(updated_at)s, started_at = %(started_at)s,
    finished_at = %(finished_at)s
WHERE id = %(id)s

-- insert_event --
-- Append one event; the returned id is the stream cursor.
INSERT INTO {schema}.events (job_id, type, at, attempt, data)
VALUES (%(job_id)s, %(type)s, %(at)s, %(attempt)s, %(data)s)
RETURNING id

-- claim --
-- Take up to :limit ready jobs in one statement (the rules mirror transitions.claim, and the
-- contract suite holds both to the same behaviour). The clock is the database's, so workers on
-- machines with skewed clocks agree on leases.
WITH candidates AS (
    -- ready jobs of our kinds, best first; rows other workers are claiming are skipped
    SELECT id FROM {schema}.jobs
    WHERE status IN ('queued', 'retrying')
      AND run_at <= now()
      AND kind = ANY(%(kinds)s)
      AND (%(queues)s::text[] IS NULL OR queue = ANY(%(queues)s::text[]))
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    -- spend one attempt and take a fresh lease (its token fences every later write)
    UPDATE {schema}.jobs AS j SET
        status = 'running',
        attempts = j.attempts + 1,
        started_at = coalesce(j.started_at, now()),
        finished_at = NULL,
        lease_owner = %(worker_id)s,
        lease_token = replace(gen_random_uuid()::text, '-', ''),
        lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
        updated_at = now()
    FROM candidates AS c
    WHERE j.id = c.id
    RETURNING j.*
), started AS (
    -- one job_started event per claimed job, in the same transaction
    INSERT INTO {schema}.events (job_id, type, at, attempt, data)
    SELECT id, 'job_started', now(), attempts, jsonb_build_object('worker', %(worker_id)s::text)
    FROM claimed
    RETURNING id AS event_id, job_id
)
SELECT claimed.*, started.event_id
FROM claimed JOIN started ON started.job_id = claimed.id
ORDER BY claimed.priority DESC, claimed.run_at, claimed.id

-- heartbeat --
-- Renew a lease by the database clock; no row means the lease was lost.
UPDATE {schema}.jobs
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s), updated_at = now()
WHERE id = %(id)s AND lease_token = %(token)s AND status = 'running'
RETURNING cancel_requested

-- expired --
-- Running jobs whose lease expired (by the database clock), locked, skipping locked rows.
SELECT *, now() AS db_now FROM {schema}.jobs
WHERE status = 'running' AND lease_expires_at <= now()
ORDER BY lease_expires_at
LIMIT %(limit)s
FOR UPDATE SKIP LOCKED

-- next_run_at --
-- When the next delayed job becomes due.
SELECT min(run_at) AS next_run_at FROM {schema}.jobs
WHERE status IN ('queued', 'retrying') AND run_at > now()

-- list_jobs --
-- Jobs newest first with optional filters; :before is the pagination cursor.
SELECT * FROM {schema}.jobs
WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s::text[]))
  AND (%(dedupe_key)s::text IS NULL OR dedupe_key = %(dedupe_key)s::text)
  AND (%(dedupe_like)s::text IS NULL OR dedupe_key LIKE %(dedupe_like)s::text ESCAPE '\')
  AND (%(before)s::text IS NULL OR id < %(before)s::text)
ORDER BY id DESC
LIMIT %(limit)s

-- events --
-- Events after a cursor, optionally for one job, oldest first.
SELECT * FROM {schema}.events
WHERE id > %(after_id)s AND (%(job_id)s::text IS NULL OR job_id = %(job_id)s::text)
ORDER BY id
LIMIT %(limit)s

-- counts --
-- Jobs per kind and status.
SELECT kind, status, count(*) AS n FROM {schema}.jobs GROUP BY kind, status

-- notify --
-- Wake idle workers (delivered at commit).
SELECT pg_notify(%(channel)s, %(kind)s)

-- complete --
-- running -> completed by the lease holder, with its event, in one statement (the hot path;
-- mirrors transitions.complete, and the contract suite holds both to the same behaviour).
WITH done AS (
    UPDATE {schema}.jobs SET
        status = 'completed',
        result = %(result)s,
        progress_fraction = 1.0,
        cancel_requested = false,
        lease_owner = NULL,
        lease_token = NULL,
        lease_expires_at = NULL,
        finished_at = now(),
        updated_at = now()
    WHERE id = %(id)s AND lease_token = %(token)s AND status = 'running'
    RETURNING *
), completed AS (
    INSERT INTO {schema}.events (job_id, type, at, attempt, data)
    SELECT id, 'job_completed', now(), attempts, '{}'::jsonb FROM done
    RETURNING id AS event_id
)
SELECT done.*, completed.event_id FROM done, completed
