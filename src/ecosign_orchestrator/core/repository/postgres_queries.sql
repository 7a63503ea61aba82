-- load_job --
-- One job by id, locked until the transaction ends.
SELECT * FROM {schema}.jobs WHERE id = %(id)s FOR UPDATE

-- get_job --
-- One job by id, no lock.
SELECT * FROM {schema}.jobs WHERE id = %(id)s

-- find_holder --
-- The newest job a repeat of a dedupe key returns: an active one, or a completed one when the
-- request reuses completed work.
SELECT * FROM {schema}.jobs
WHERE dedupe_key = %(dedupe_key)s
  AND (status IN ('queued', 'running', 'retrying', 'waiting')
       OR (%(reuse_completed)s AND status = 'completed'))
ORDER BY id DESC
LIMIT 1

-- find_idempotent --
-- The job created with an idempotency key, whatever its status.
SELECT * FROM {schema}.jobs WHERE idempotency_key = %(key)s

-- insert_event --
-- Append one event; the returned id is the stream cursor.
INSERT INTO {schema}.events (job_id, type, at, attempt, data)
VALUES (%(job_id)s, %(type)s, %(at)s, %(attempt)s, %(data)s)
RETURNING id

-- insert_events --
-- Append many events in one statement (one JSON array of them); ids come back in input order.
WITH added AS (
    INSERT INTO {schema}.events (job_id, type, at, attempt, data)
    SELECT e.job_id, e.type, e.at, e.attempt, e.data
    FROM ROWS FROM (jsonb_to_recordset(%(events)s::jsonb)
        AS (job_id text, type text, at timestamptz, attempt int, data jsonb)) WITH ORDINALITY
        AS e(job_id, type, at, attempt, data, n)
    ORDER BY e.n
    RETURNING id
)
SELECT id FROM added ORDER BY id

-- enqueue_new --
-- New jobs holding no key (one JSON array of what each request set; the rest is a new job's
-- defaults, the time one parameter), their job_queued events and the workers' wake-up, in one
-- statement. Event ids come back in input order.
WITH input AS (
    SELECT * FROM ROWS FROM (jsonb_to_recordset(%(jobs)s::jsonb) AS (
        id text, kind text, queue text, payload jsonb, priority integer, max_attempts integer,
        retry jsonb, run_at text, timeout double precision, fingerprint text
    )) WITH ORDINALITY AS i(
        id, kind, queue, payload, priority, max_attempts, retry, run_at, timeout, fingerprint, n
    )
), job AS (
    INSERT INTO {schema}.jobs (
        id, kind, queue, payload, status, priority, attempts, max_attempts, run_at,
        cancel_requested, progress_message, steps, result, retry, timeout, created_at,
        updated_at, fingerprint
    )
    SELECT id, kind, queue, payload, 'queued', coalesce(priority, 0), 0, max_attempts,
           coalesce(run_at::timestamptz, %(now)s), false, '', '[]'::jsonb, 'null'::jsonb,
           coalesce(retry, '{}'::jsonb), timeout, %(now)s, %(now)s, fingerprint
    FROM input
), queued AS (
    INSERT INTO {schema}.events (job_id, type, at, attempt, data)
    SELECT id, 'job_queued', %(now)s, 0,
           jsonb_build_object('reason', 'enqueued', 'kind', kind, 'queue', queue)
           || CASE WHEN run_at IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('run_at', run_at) END
    FROM input ORDER BY n
    RETURNING id
), woken AS (SELECT pg_notify(%(channel)s, '') AS n)
SELECT queued.id FROM queued, woken ORDER BY queued.id

-- claim --
-- Take up to :limit ready jobs in one statement (the rules mirror transitions.claim, and the
-- contract suite holds both to the same behaviour). The clock is the database's, so workers on
-- machines with skewed clocks agree on leases.
WITH candidates AS (
    -- ready jobs of our kinds, best first, locked; rows other workers are claiming are skipped
    -- (migration 0009: read in index order whatever the statistics say)
    SELECT ready_jobs AS id
    FROM {schema}.ready_jobs(%(kinds)s::text[], %(queues)s::text[], %(limit)s::integer)
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
    -- by primary key, not a join: a join lets a cached generic plan (psycopg prepares a
    -- statement run 5 times) hash the whole table on every claim
    WHERE j.id = ANY(ARRAY(SELECT id FROM candidates))
    RETURNING j.*
), started AS (
    -- one job_started event per claimed job, in the same transaction; none for the check of a
    -- waiting job (its waiting column is still set: see transitions.claim)
    INSERT INTO {schema}.events (job_id, type, at, attempt, data)
    SELECT id, 'job_started', now(), attempts, jsonb_build_object('worker', %(worker_id)s::text)
    FROM claimed
    WHERE claimed.waiting IS NULL
    RETURNING id AS event_id, job_id
)
SELECT claimed.*, started.event_id
FROM claimed LEFT JOIN started ON started.job_id = claimed.id
ORDER BY claimed.priority DESC, claimed.run_at, claimed.id

-- renew_leases --
-- Renew every lease a worker still holds, by the database clock, in one statement. A job
-- missing from the answer lost its lease.
WITH locked AS (
    SELECT j.id FROM {schema}.jobs j
    JOIN unnest(%(ids)s::text[], %(tokens)s::text[]) AS l(id, token) ON j.id = l.id
    WHERE j.id = ANY(%(ids)s::text[]) AND j.lease_token = l.token AND j.status = 'running'
    ORDER BY j.id COLLATE "C"  -- byte order: the order step saves lock in, whatever the collation
    FOR UPDATE OF j
)
UPDATE {schema}.jobs AS j
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s), updated_at = now()
FROM locked WHERE j.id = locked.id
RETURNING j.id, j.cancel_requested

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
WHERE status IN ('queued', 'retrying', 'waiting') AND run_at > now()

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

-- job_events --
-- One job's events after a cursor, oldest first. They commit in id order: every transaction
-- that writes them holds the job's row lock.
SELECT * FROM {schema}.events
WHERE job_id = %(job_id)s AND id > %(after_id)s
ORDER BY id
LIMIT %(limit)s

-- events --
-- Every job's events after a cursor, in commit order (migrations 0004, 0010): ordered by (era,
-- writing transaction, id), and in the newest era only from transactions older than any still in
-- progress, so an event committed after a later-numbered one is never skipped. Eras before the
-- newest are complete. The cursor is an event id; its era and transaction are looked up (an id
-- no longer in the log, e.g. pruned, falls back to id order).
WITH cursor AS (
    SELECT coalesce((SELECT era FROM {schema}.events WHERE id = %(after_id)s), -1) AS era,
    coalesce((SELECT tx FROM {schema}.events WHERE id = %(after_id)s), '0'::xid8) AS tx,
    EXISTS (SELECT 1 FROM {schema}.events WHERE id = %(after_id)s) AS found
), newest AS (
    SELECT max(era) AS era FROM {schema}.stream_eras
)
SELECT e.* FROM {schema}.events AS e, cursor AS c, newest AS n
WHERE (e.era, e.tx, e.id) > (c.era, c.tx, %(after_id)s)
  AND (c.found OR e.id > %(after_id)s)
  AND (e.era < n.era OR e.tx < pg_snapshot_xmin(pg_current_snapshot()))
ORDER BY e.era, e.tx, e.id
LIMIT %(limit)s

-- counts --
-- Jobs per kind and status.
SELECT kind, status, count(*) AS n FROM {schema}.jobs GROUP BY kind, status

-- notify --
-- Wake idle workers (delivered at commit).
SELECT pg_notify(%(channel)s, %(kind)s)

-- complete_many --
-- running -> completed for many jobs in one statement (group commit: the completions that arrive
-- while one is being written share the next). Each row is fenced by its own lease token; rows
-- are locked in id order, as renewals lock them, so the two never deadlock. Only what the
-- completed events need comes back.
WITH input AS (
    SELECT * FROM jsonb_to_recordset(%(items)s::jsonb) AS i(id text, token text, result jsonb)
), locked AS (
    SELECT j.id, i.result FROM {schema}.jobs j JOIN input i ON j.id = i.id
    WHERE j.id = ANY(%(ids)s::text[])  -- by primary key, not by reading every running job
      AND j.lease_token = i.token AND j.status = 'running'
    ORDER BY j.id COLLATE "C"  -- byte order: the order step saves lock in, whatever the collation
    FOR UPDATE OF j
), done AS (
    UPDATE {schema}.jobs AS j SET
        status = 'completed',
        result = locked.result,
        last_error = NULL,
        progress_fraction = 1.0,
        cancel_requested = false,
        lease_owner = NULL,
        lease_token = NULL,
        lease_expires_at = NULL,
        waiting = NULL,
        finished_at = now(),
        updated_at = now()
    FROM locked WHERE j.id = locked.id
    RETURNING j.id, j.attempts, j.updated_at
), completed AS (
    INSERT INTO {schema}.events (job_id, type, at, attempt, data)
    SELECT id, 'job_completed', now(), attempts, '{}'::jsonb FROM done ORDER BY id
    RETURNING id AS event_id, job_id
)
SELECT done.*, completed.event_id FROM done JOIN completed ON completed.job_id = done.id

-- lock_running --
-- Lock the rows a group of completions will write, in byte order (the order renewals and step
-- saves lock in), before the step saves they carry touch only some of them.
SELECT id FROM {schema}.jobs WHERE id = ANY(%(ids)s::text[]) ORDER BY id COLLATE "C" FOR UPDATE

-- save_steps --
-- Record a running job's steps (that column only), fenced by its lease token, with the step
-- events and calls in the same statement (JSON arrays, in order). One row per stored event,
-- or one row with a null event_id when there were none; no row: the lease is lost.
WITH saved AS (
    UPDATE {schema}.jobs SET steps = %(steps)s, updated_at = now()
    WHERE id = %(id)s AND lease_token = %(token)s AND status = 'running'
    RETURNING id, attempts
), logged AS (
    -- the outside calls made since the last save (a JSON array of call-log rows)
    INSERT INTO {schema}.calls (
        job_id, job_attempt, step, attempt, target, idempotency_key, started_at, duration_ms,
        status, error, response_headers, response_body, truncated, request
    )
    SELECT saved.id, saved.attempts, c.step, c.attempt, c.target, c.idempotency_key,
           c.started_at, c.duration_ms, c.status, c.error, c.response_headers, c.response_body,
           c.truncated, c.request
    FROM saved, ROWS FROM (jsonb_to_recordset(%(calls)s::jsonb) AS (
        step text, attempt int, target text, idempotency_key text, started_at timestamptz,
        duration_ms double precision, status int, error text, response_headers jsonb,
        response_body text, truncated boolean, request jsonb
    )) WITH ORDINALITY AS c(
        step, attempt, target, idempotency_key, started_at, duration_ms, status, error,
        response_headers, response_body, truncated, request, n
    )
    ORDER BY c.n
), added AS (
    INSERT INTO {schema}.events (job_id, type, at, attempt, data)
    SELECT saved.id, e.type, e.at, e.attempt, e.data
    FROM saved, ROWS FROM (jsonb_to_recordset(%(events)s::jsonb) AS (
        type text, at timestamptz, attempt int, data jsonb
    )) WITH ORDINALITY AS e(type, at, attempt, data, n)
    ORDER BY e.n
    RETURNING id AS event_id, type, at, attempt, data
)
SELECT saved.id, added.* FROM saved LEFT JOIN added ON true ORDER BY added.event_id

-- save_progress --
-- Record a running job's progress (those columns only), fenced by its lease token.
UPDATE {schema}.jobs
SET progress_fraction = %(fraction)s, progress_message = %(message)s, updated_at = now()
WHERE id = %(id)s AND lease_token = %(token)s AND status = 'running'
RETURNING id

-- ids_matching --
-- Up to two job ids starting or ending with a short id (enough to tell unique from ambiguous).
SELECT id FROM {schema}.jobs WHERE id LIKE %(prefix)s OR id LIKE %(suffix)s ORDER BY id LIMIT 2

-- last_event_id --
-- Where a "from now on" tail starts: the last event in commit order that every reader can
-- already see (0 when there is none).
SELECT coalesce((
    SELECT e.id FROM {schema}.events AS e
    WHERE e.era < (SELECT max(era) FROM {schema}.stream_eras)
       OR e.tx < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY e.era DESC, e.tx DESC, e.id DESC
    LIMIT 1
), 0) AS id

-- prune --
-- Delete one retention batch: finished jobs in one status finished before a cutoff, oldest
-- first, with their events. Rows another pruner holds are skipped, not waited for. The repeated
-- finished-status list lets any plan use the partial index jobs_finished; `= ANY(ARRAY(...))`
-- reaches the other tables by index whatever the plan's row estimates.
WITH doomed AS (
    SELECT id FROM {schema}.jobs
    WHERE status = %(status)s AND status IN ('completed', 'failed', 'cancelled')
      AND finished_at < %(before)s
    ORDER BY finished_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), events_gone AS (
    DELETE FROM {schema}.events WHERE job_id = ANY(ARRAY(SELECT id FROM doomed))
), calls_gone AS (
    DELETE FROM {schema}.calls WHERE job_id = ANY(ARRAY(SELECT id FROM doomed))
)
DELETE FROM {schema}.jobs WHERE id = ANY(ARRAY(SELECT id FROM doomed))
RETURNING id

-- count_prunable --
-- How many jobs a retention pass would delete.
SELECT count(*) AS n FROM {schema}.jobs
WHERE status = %(status)s AND status IN ('completed', 'failed', 'cancelled')
  AND finished_at < %(before)s

-- probe_write --
-- Readiness: rewrite the one probe row (fails on a read-only or full server).
INSERT INTO {schema}.readiness (id, probed_at) VALUES (1, now())
ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at

-- job_calls --
-- A job's call log, oldest first.
SELECT * FROM {schema}.calls WHERE job_id = %(job_id)s ORDER BY id LIMIT %(limit)s

-- oldest_active --
-- The oldest active jobs (queued, running, retrying, waiting), for age metrics.
SELECT * FROM {schema}.jobs
WHERE status IN ('queued', 'running', 'retrying', 'waiting')
ORDER BY created_at, id
LIMIT %(limit)s

-- slot_lock --
-- Serialise slot takers of one key for the rest of the transaction.
SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))

-- slots_held --
-- Slots of a key held by other jobs still running under the lease that took them.
SELECT count(*) AS n FROM {schema}.slots AS s JOIN {schema}.jobs AS j ON j.id = s.job_id
WHERE s.key = %(key)s AND s.job_id <> %(job_id)s AND j.status = 'running'
  AND j.lease_token = s.lease_token

-- slot_take --
-- Take (or renew) a job's slot of a key.
INSERT INTO {schema}.slots (key, job_id, lease_token, acquired_at)
VALUES (%(key)s, %(job_id)s, %(token)s, now())
ON CONFLICT (key, job_id) DO UPDATE
SET lease_token = excluded.lease_token, acquired_at = excluded.acquired_at

-- slot_release --
-- Give a job's slot of a key back.
DELETE FROM {schema}.slots WHERE key = %(key)s AND job_id = %(job_id)s

-- slots_in_use --
-- Slots held per key by running jobs (metrics).
SELECT s.key, count(*) AS n FROM {schema}.slots AS s JOIN {schema}.jobs AS j ON j.id = s.job_id
WHERE j.status = 'running' AND j.lease_token = s.lease_token
GROUP BY s.key

-- circuit_get --
-- One key's circuit (null columns when it has none), with the database clock.
SELECT c.failures, c.open_until, c.probe_until, extract(epoch FROM now())::float8 AS db_now
FROM (SELECT 1) AS one
LEFT JOIN {schema}.circuits AS c ON c.key = %(key)s

-- circuit_lock --
-- Serialise the writers of one key's circuit for the rest of the transaction.
SELECT pg_advisory_xact_lock(hashtextextended('circuit:' || %(key)s, 0))

-- circuit_put --
-- Store one key's circuit.
INSERT INTO {schema}.circuits (key, failures, open_until, probe_until, updated_at)
VALUES (%(key)s, %(failures)s, %(open_until)s, %(probe_until)s, now())
ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, open_until = excluded.open_until,
    probe_until = excluded.probe_until, updated_at = excluded.updated_at

-- circuits_all --
-- Every circuit (metrics), with the database clock.
SELECT key, failures, open_until, probe_until, extract(epoch FROM now())::float8 AS db_now
FROM {schema}.circuits

-- circuit_close --
-- A call succeeded: forget the key's circuit (closed is the default).
DELETE FROM {schema}.circuits WHERE key = %(key)s

-- rate_lock --
-- Serialise one key's rate takers for the rest of the transaction; the database clock.
SELECT pg_advisory_xact_lock(hashtextextended('rate:' || %(key)s, 0)),
       extract(epoch FROM clock_timestamp())::float8 AS db_now

-- rate_forget --
-- Hits that left a key's window.
DELETE FROM {schema}.rate_hits WHERE key = %(key)s AND at <= %(since)s

-- rate_window --
-- A key's hits in its window (and the oldest).
SELECT count(*) AS n, min(at) AS oldest FROM {schema}.rate_hits
WHERE key = %(key)s AND at > %(since)s

-- rate_hit --
-- One more call let through.
INSERT INTO {schema}.rate_hits (key, at) VALUES (%(key)s, %(now)s)
