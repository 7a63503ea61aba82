-- Metrics read the oldest active jobs at every scrape: this index keeps that read small.
CREATE INDEX jobs_active_age ON jobs (created_at, id)
    WHERE status IN ('queued', 'running', 'retrying');
