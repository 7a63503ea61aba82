-- load_job --
-- One job by id.
SELECT * FROM jobs WHERE id = :id

-- find_holder --
-- The newest job a repeat of a dedupe key returns: an active one, or a completed one when the
-- request reuses completed work.
SELECT * FROM jobs
WHERE dedupe_key = :dedupe_key
  AND (status IN ('queued', 'running', 'retrying', 'waiting')
       OR (:reuse_completed AND status = 'completed'))
ORDER BY id DESC
LIMIT 1

-- find_idempotent --
-- The job created with an idempotency key, whatever its status.
SELECT * FROM jobs WHERE idempotency_key = :key

-- insert_event --
-- Append one event; the returned id is the stream cursor.
INSERT INTO events (job_id, type, at, attempt, data)
VALUES (:job_id, :type, :at, :attempt, :data)
RETURNING id

-- claimable --
-- Ready jobs of the given kinds (JSON arrays), highest priority first, then oldest due.
SELECT * FROM jobs
WHERE status IN ('queued', 'retrying', 'waiting')
  AND run_at <= :now
  AND kind IN (SELECT value FROM json_each(:kinds))
  AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
ORDER BY priority DESC, run_at, id
LIMIT :limit

-- expired --
-- Running jobs whose lease has expired.
SELECT * FROM jobs
WHERE status = 'running' AND lease_expires_at <= :now
ORDER BY lease_expires_at
LIMIT :limit

-- list_jobs --
-- Jobs newest first with optional filters; :before is the pagination cursor.
SELECT * FROM jobs
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:kinds IS NULL OR kind IN (SELECT value FROM json_each(:kinds)))
  AND (:dedupe_key IS NULL OR dedupe_key = :dedupe_key)
  AND (:dedupe_like IS NULL OR dedupe_key LIKE :dedupe_like ESCAPE '\')
  AND (:before IS NULL OR id < :before)
ORDER BY id DESC
LIMIT :limit

-- events --
-- Events after a cursor, optionally for one job, oldest first.
SELECT * FROM events
WHERE id > :after_id AND (:job_id IS NULL OR job_id = :job_id)
ORDER BY id
LIMIT :limit

-- counts --
-- Jobs per kind and status.
SELECT kind, status, count(*) AS n FROM jobs GROUP BY kind, status

-- next_run_at --
-- When the next delayed job becomes due.
SELECT min(run_at) AS next_run_at FROM jobs
WHERE status IN ('queued', 'retrying', 'waiting') AND run_at > :now

-- renew_leases --
-- Renew every lease a worker still holds, in one statement; :leases is a JSON array of
-- [id, token] pairs. A job missing from the answer lost its lease.
UPDATE jobs SET lease_expires_at = :now + :lease_seconds, updated_at = :now
WHERE status = 'running'
  AND (id, lease_token) IN (
      SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:leases)
  )
RETURNING id, cancel_requested

-- save_steps --
-- Record a running job's steps (that column only), fenced by its lease token.
UPDATE jobs SET steps = :steps, updated_at = :now
WHERE id = :id AND lease_token = :token AND status = 'running'
RETURNING id, attempts

-- save_progress --
-- Record a running job's progress (those columns only), fenced by its lease token.
UPDATE jobs SET progress_fraction = :fraction, progress_message = :message, updated_at = :now
WHERE id = :id AND lease_token = :token AND status = 'running'
RETURNING id

-- ids_matching --
-- Up to two job ids starting or ending with a short id (enough to tell unique from ambiguous).
SELECT id FROM jobs WHERE id LIKE :prefix OR id LIKE :suffix ORDER BY id LIMIT 2

-- last_event_id --
-- The newest event id (0 when the log is empty): where a "from now on" tail starts.
SELECT coalesce(max(id), 0) AS id FROM events

-- prunable --
-- Finished jobs in one status finished before a cutoff, oldest first (a retention batch).
SELECT id FROM jobs
WHERE status = :status AND finished_at < :before
ORDER BY finished_at, id
LIMIT :limit

-- count_prunable --
-- How many jobs a retention pass would delete.
SELECT count(*) AS n FROM jobs WHERE status = :status AND finished_at < :before

-- prune_events --
-- The events of the jobs being pruned (:ids is a JSON array).
DELETE FROM events WHERE job_id IN (SELECT value FROM json_each(:ids))

-- prune_jobs --
-- The jobs being pruned (the status check is belt and braces: the batch is one transaction).
DELETE FROM jobs
WHERE id IN (SELECT value FROM json_each(:ids))
  AND status IN ('completed', 'failed', 'cancelled')

-- probe_write --
-- Readiness: rewrite the one probe row.
INSERT INTO readiness (id, probed_at) VALUES (1, :now)
ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at

-- prune_calls --
-- The call log of the jobs being pruned (:ids is a JSON array).
DELETE FROM calls WHERE job_id IN (SELECT value FROM json_each(:ids))

-- job_calls --
-- A job's call log, oldest first.
SELECT * FROM calls WHERE job_id = :job_id ORDER BY id LIMIT :limit

-- oldest_active --
-- The oldest active jobs (queued, running, retrying, waiting), for age metrics.
SELECT * FROM jobs
WHERE status IN ('queued', 'running', 'retrying', 'waiting')
ORDER BY created_at, id
LIMIT :limit

-- slots_held --
-- Slots of a key held by other jobs still running under the lease that took them.
SELECT count(*) AS n FROM slots AS s JOIN jobs AS j ON j.id = s.job_id
WHERE s.key = :key AND s.job_id <> :job_id AND j.status = 'running' AND j.lease_token = s.lease_token

-- slot_take --
-- Take (or renew) a job's slot of a key.
INSERT INTO slots (key, job_id, lease_token, acquired_at) VALUES (:key, :job_id, :token, :now)
ON CONFLICT (key, job_id) DO UPDATE SET lease_token = excluded.lease_token, acquired_at = excluded.acquired_at

-- slot_release --
-- Give a job's slot of a key back.
DELETE FROM slots WHERE key = :key AND job_id = :job_id

-- slots_in_use --
-- Slots held per key by running jobs (metrics).
SELECT s.key, count(*) AS n FROM slots AS s JOIN jobs AS j ON j.id = s.job_id
WHERE j.status = 'running' AND j.lease_token = s.lease_token
GROUP BY s.key

-- circuit_get --
-- One key's circuit.
SELECT failures, open_until, probe_until FROM circuits WHERE key = :key

-- circuit_put --
-- Store one key's circuit.
INSERT INTO circuits (key, failures, open_until, probe_until, updated_at)
VALUES (:key, :failures, :open_until, :probe_until, :now)
ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, open_until = excluded.open_until,
    probe_until = excluded.probe_until, updated_at = excluded.updated_at

-- circuits_all --
-- Every circuit (metrics).
SELECT key, failures, open_until, probe_until FROM circuits

-- circuit_close --
-- A call succeeded: forget the key's circuit (closed is the default).
DELETE FROM circuits WHERE key = :key

-- rate_window --
-- Forget a key's hits older than its window, then count what is left (and the oldest).
SELECT count(*) AS n, min(at) AS oldest FROM rate_hits WHERE key = :key AND at > :since

-- rate_forget --
-- Hits that left a key's window.
DELETE FROM rate_hits WHERE key = :key AND at <= :since

-- rate_hit --
-- One more call let through.
INSERT INTO rate_hits (key, at) VALUES (:key, :now)

-- has_ready --
-- Whether any job is ready to run (an idle worker's check after another process committed).
SELECT 1 AS ready FROM jobs
WHERE status IN ('queued', 'retrying', 'waiting') AND run_at <= :now
LIMIT 1
