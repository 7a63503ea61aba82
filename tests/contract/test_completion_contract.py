"""The completion that carries a run's last step save, on every backend (conftest parametrises
``repository``): written with the completion, fenced by the same token, events in order."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import EventType
from ecosign_orchestrator.core.job import Job, NewJob, StepRecord, StepStatus, utcnow
from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.core.repository.protocol import StepSave
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.transitions import EventDraft
from ecosign_orchestrator.core.types import LeaseToken


async def _claimed(repo: JobRepository, n: int) -> list[Job]:
    for _ in range(n):
        await repo.enqueue(NewJob(kind="k"), max_attempts=3)
    jobs = await repo.claim(worker_id="w", kinds=["k"], limit=n, lease_seconds=30)
    assert len(jobs) == n
    return jobs


def _last_save(job: Job) -> StepSave:
    step = StepRecord(name="notify", status=StepStatus.SUCCEEDED, attempts=1)
    drafts = [
        EventDraft(job_id=job.id, type=t, at=utcnow(), attempt=1, data={"step": "notify"})
        for t in (EventType.STEP_STARTED, EventType.STEP_SUCCEEDED)
    ]
    call = CallRecord(
        target="notify-document-certified",
        step="notify",
        attempt=1,
        idempotency_key=f"{job.id}:notify",
        started_at=utcnow() - timedelta(seconds=1),
        duration_ms=3.0,
        status=200,
        error="",
        response_headers={},
        response_body='{"ok":true}',
        truncated=False,
        request={},
    )
    return StepSave([step], drafts, [call])


async def test_a_completion_writes_the_last_step_save_before_it(repository: JobRepository) -> None:
    # Three at once: on PostgreSQL the first goes alone and the other two share a commit, one
    # carrying a save and one not (the rows are locked in one order for both).
    plain, first, carrying = await _claimed(repository, 3)
    assert plain.lease_token and first.lease_token and carrying.lease_token
    save = _last_save(carrying)
    async with repository.bus.subscribe() as bus:
        await asyncio.gather(
            repository.complete(first.id, first.lease_token, {"n": 1}),
            repository.complete(carrying.id, carrying.lease_token, {"n": 2}, steps=save),
            repository.complete(plain.id, plain.lease_token, None),
        )
        published = [await bus.next(timeout=5) for _ in range(5)]
    done = await repository.get(carrying.id)
    assert done.status is JobStatus.COMPLETED and done.result == {"n": 2}
    assert done.steps == tuple(save.steps)
    stored = await repository.events(job_id=carrying.id)
    assert [e.type.value for e in stored] == [
        "job_queued",
        "job_started",
        "step_started",
        "step_succeeded",
        "job_completed",
    ]
    assert [e for e in published if e.job_id == carrying.id] == stored[2:]
    assert [(c.step, c.status) for c in await repository.calls(carrying.id)] == [("notify", 200)]
    for other in (first, plain):
        assert (await repository.get(other.id)).status is JobStatus.COMPLETED


async def test_a_refused_completion_writes_none_of_its_step_save(
    repository: JobRepository,
) -> None:
    (job,) = await _claimed(repository, 1)
    with pytest.raises(errors.LeaseLost):
        await repository.complete(job.id, LeaseToken("not-the-token"), None, steps=_last_save(job))
    kept = await repository.get(job.id)
    assert kept.status is JobStatus.RUNNING and kept.steps == ()
    assert [e.type.value for e in await repository.events(job_id=job.id)] == [
        "job_queued",
        "job_started",
    ]
    assert await repository.calls(job.id) == []
