-- load_job --
-- One job by id.
SELECT * FROM jobs WHERE id = :id

-- find_active --
-- The active job holding a dedupe key.
SELECT * FROM jobs
WHERE dedupe_key = :dedupe_key AND status IN ('queued', 'running', 'retrying')

-- find_idempotent --
-- The job created with an idempotency key, whatever its status.
SELECT * FROM jobs WHERE idempotency_key = :key

-- insert_job --
-- A new job row.
INSERT INTO jobs (
    id, kind, queue, payload, status, priority, attempts, max_attempts, run_at, dedupe_key,
    lease_owner, lease_token, lease_expires_at, cancel_requested, progress_fraction,
    progress_message, steps, result, last_error, retry, timeout, created_at, updated_at,
    started_at, finished_at, idempotency_key, fingerprint
) VALUES (
    :id, :kind, :queue, :payload, :status, :priority, :attempts, :max_attempts, :run_at,
    :dedupe_key, :lease_owner, :lease_token, :lease_expires_at, :cancel_requested,
    :progress_fraction, :progress_message, :steps, :result, :last_error, :retry, :timeout,
    :created_at, :updated_at, :started_at, :finished_at, :idempotency_key, :fingerprint
)

-- update_job --
-- Write back every mutable column of a job.
UPDATE jobs SET
    status = :status, priority = :priority, attempts = :attempts, max_attempts = :max_attempts,
    run_at = :run_at, lease_owner = :lease_owner, lease_token = :lease_token,
    lease_expires_at = :lease_expires_at, cancel_requested = :cancel_requested,
    progress_fraction = :progress_fraction, progress_message = :progress_message,
    steps = :steps, result = :result, last_error = :last_error, updated_at = :updated_at,
    started_at = :started_at, finished_at = :finished_at
WHERE id = :id

-- insert_event --
-- Append one event; the returned id is the stream cursor.
INSERT INTO events (job_id, type, at, attempt, data)
VALUES (:job_id, :type, :at, :attempt, :data)
RETURNING id

-- claimable --
-- Ready jobs of the given kinds (JSON arrays), highest priority first, then oldest due.
SELECT * FROM jobs
WHERE status IN ('queued', 'retrying')
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
WHERE status IN ('queued', 'retrying') AND run_at > :now
