"""Waiting on job state through the event bus (no sleeps as synchronisation)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ecosign_orchestrator.core.job import Job
from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.types import JobId


async def wait_job(
    repo: JobRepository,
    job_id: JobId,
    predicate: Callable[[Job], bool],
    *,
    timeout: float = 10.0,
) -> Job:
    """Return the job once ``predicate`` holds, checked after each committed event."""
    async with asyncio.timeout(timeout), repo.bus.subscribe() as events:
        job = await repo.get(job_id)
        if predicate(job):
            return job
        async for event in events:
            if event.job_id == job_id:
                job = await repo.get(job_id)
                if predicate(job):
                    return job
    raise AssertionError("event stream ended")  # pragma: no cover


async def wait_status(
    repo: JobRepository, job_id: JobId, *statuses: JobStatus, timeout: float = 10.0
) -> Job:
    """Return the job once it is in one of ``statuses``."""
    return await wait_job(repo, job_id, lambda j: j.status in statuses, timeout=timeout)
