"""Submitting document flows: one core job per DocumentJob, deduplicated by document + intent."""

from __future__ import annotations

from ecosign_orchestrator import ecosign
from ecosign_orchestrator.core.job import EnqueueResult, Job
from ecosign_orchestrator.core.queue import JobQueue
from ecosign_orchestrator.core.status import JobStatus

#: A repeat of these returns the existing flow; a failed or cancelled one is submitted anew.
REUSABLE = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.COMPLETED)


async def find_flow(queue: JobQueue, intent: ecosign.DocumentJob) -> Job | None:
    """The newest flow for the same document and intent that a repeat should return."""
    jobs = await queue.repository.list_jobs(
        kinds=[ecosign.KIND], dedupe_key=intent.intent_key(), limit=1
    )
    return jobs[0] if jobs and jobs[0].status in REUSABLE else None


async def submit(
    queue: JobQueue, intent: ecosign.DocumentJob, *, priority: int = 0
) -> EnqueueResult:
    """Enqueue a document flow, or return the existing one (same document + same intent)."""
    existing = await find_flow(queue, intent)
    if existing is not None:
        return EnqueueResult(job=existing, created=False)
    return await queue.enqueue(
        ecosign.KIND,
        intent.model_dump(mode="json", exclude_none=True),
        dedupe_key=intent.intent_key(),
        priority=priority,
    )
