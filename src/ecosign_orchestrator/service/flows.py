"""Submitting jobs the way CTAs and the API do: one core job per DocumentJob, deduplicated by
document + intent, and by the client's ``Idempotency-Key`` when one is given."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from ecosign_orchestrator import ecosign
from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import EnqueueResult, Job, NewJob
from ecosign_orchestrator.core.queue import JobQueue
from ecosign_orchestrator.core.status import JobStatus

#: A repeat of these returns the existing flow; a failed or cancelled one is submitted anew.
REUSABLE = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.COMPLETED)


def fingerprint(kind: str, payload: Any) -> str:
    """A digest of a normalised request (same kind and payload, same fingerprint)."""
    canonical = json.dumps([kind, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def find_flow(queue: JobQueue, intent: ecosign.DocumentJob) -> Job | None:
    """The newest flow for the same document and intent that a repeat should return."""
    jobs = await queue.repository.list_jobs(
        kinds=[ecosign.KIND], dedupe_key=intent.intent_key(), limit=1
    )
    return jobs[0] if jobs and jobs[0].status in REUSABLE else None


async def keyed(queue: JobQueue, new: NewJob, key: str | None) -> tuple[NewJob, Job | None]:
    """Attach an idempotency key; return the job it already created, if any.

    The same key with a different request raises ``IdempotencyConflict``.
    """
    if key is None:
        return new, None
    new = dataclasses.replace(
        new, idempotency_key=key, fingerprint=fingerprint(new.kind, new.payload)
    )
    previous = await queue.repository.get_by_idempotency_key(key)
    if previous is not None and previous.fingerprint != new.fingerprint:
        raise errors.IdempotencyConflict(key, previous.id)
    return new, previous


async def submit(
    queue: JobQueue,
    intent: ecosign.DocumentJob,
    *,
    priority: int = 0,
    idempotency_key: str | None = None,
) -> EnqueueResult:
    """Enqueue a document flow, or return the existing one (same key and body, or same document
    and intent)."""
    payload = intent.model_dump(mode="json", exclude_none=True)
    new = queue.build(ecosign.KIND, payload, dedupe_key=intent.intent_key(), priority=priority)
    new, previous = await keyed(queue, new, idempotency_key)
    if previous is not None:
        return EnqueueResult(job=previous, created=False)
    existing = await find_flow(queue, intent)
    if existing is not None:
        return EnqueueResult(job=existing, created=False)
    return await queue.submit(new)
