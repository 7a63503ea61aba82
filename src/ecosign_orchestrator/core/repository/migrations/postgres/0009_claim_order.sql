-- The claim's candidates, read in claim order from the jobs_ready index whatever the statistics
-- say. Statistics taken while nearly every job was finished estimate almost no ready jobs; with
-- that estimate the planner reads every ready job (a bitmap scan, or the kind/status index) and
-- sorts them, so each claim of a 10,000-job backlog cost 5-7 ms instead of 0.2. Without bitmap
-- scans and sorts the ordered walk of jobs_ready, which stops after `p_limit` rows, is the only
-- plan left. plpgsql keeps the plan for the session.
CREATE FUNCTION {schema}.ready_jobs(p_kinds text[], p_queues text[], p_limit integer)
RETURNS SETOF text
LANGUAGE plpgsql
SET enable_bitmapscan = off
SET enable_sort = off
AS $$
BEGIN
    RETURN QUERY
    SELECT j.id FROM {schema}.jobs AS j
    WHERE j.status IN ('queued', 'retrying')
      AND j.run_at <= now()
      AND j.kind = ANY(p_kinds)
      AND (p_queues IS NULL OR j.queue = ANY(p_queues))
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT p_limit
    FOR UPDATE OF j SKIP LOCKED;
END
$$;
