"""Bulk selection: what a failed job failed at, and acting on a selection safely."""

from __future__ import annotations

import dataclasses

import pytest

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import JobError, NewJob
from ecosign_orchestrator.core.repository import MemoryRepository
from ecosign_orchestrator.core.selection import JobFilter, act, failure_reason, failure_step
from ecosign_orchestrator.core.status import JobStatus


async def test_a_job_another_active_job_blocks_is_skipped_with_the_reason(
    memory_repository: MemoryRepository,
) -> None:
    first = (await memory_repository.enqueue(NewJob(kind="k", dedupe_key="d"), max_attempts=1)).job
    await memory_repository.cancel(first.id)
    holder = (await memory_repository.enqueue(NewJob(kind="k", dedupe_key="d"), max_attempts=1)).job
    other = (await memory_repository.enqueue(NewJob(kind="k"), max_attempts=1)).job
    await memory_repository.cancel(other.id)
    result = await act(
        memory_repository, JobFilter(statuses=[JobStatus.CANCELLED]), "retry", dry_run=False
    )
    assert {j.id for j in result.selected} == {first.id, other.id}
    assert [j.id for j in result.done] == [other.id]
    assert [job_id for job_id, _ in result.skipped] == [first.id]
    assert "dedupe key" in result.skipped[0][1]
    assert (await memory_repository.get(holder.id)).status is JobStatus.QUEUED


def test_the_step_and_reason_of_a_failure() -> None:
    from ecosign_orchestrator.core import ids
    from ecosign_orchestrator.core.job import Job, utcnow

    now = utcnow()
    job = Job(
        id=ids.new_job_id(),
        kind="k",
        queue="default",
        payload={},
        status=JobStatus.FAILED,
        priority=0,
        attempts=1,
        max_attempts=1,
        run_at=now,
        created_at=now,
        updated_at=now,
        last_error=JobError(
            type="FatalError",
            message="build_artifact: build-artifact -> 400:  bad   input",
            transient=False,
            details={"step": "build_artifact"},
        ),
    )
    assert failure_step(job) == "build_artifact"
    assert failure_reason(job) == "build-artifact -> 400: bad input"
    assert JobFilter(statuses=[JobStatus.FAILED], reason="BAD INPUT").matches(job)
    assert not JobFilter(statuses=[JobStatus.FAILED], step="append_tsa").matches(job)
    assert failure_step(dataclasses.replace(job, last_error=None)) == ""
    with pytest.raises(errors.InvalidJob, match="status"):
        JobFilter(statuses=[])
