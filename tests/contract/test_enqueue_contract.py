"""Jobs holding no key (PostgreSQL writes them, their events and the wake-up in one statement)
store exactly the job the caller got back, alone or in a batch, on every backend."""

from __future__ import annotations

from ecosign_orchestrator.core.events import EventType
from ecosign_orchestrator.core.job import NewJob, RetryOverride
from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.core.status import JobStatus

EVERY_FIELD = NewJob(
    kind="k",
    payload={"text": 'ñandú ✓ \\ "q"', "n": 1.5, "nested": {"list": [1, None, True]}},
    queue="q1",
    priority=-3,
    delay=2.5,
    retry=RetryOverride(max_attempts=4, base_seconds=0.5, cap_seconds=9.0),
    timeout=12.5,
)


async def test_a_keyless_job_is_stored_as_returned_with_its_queued_event(
    repository: JobRepository,
) -> None:
    async with repository.bus.subscribe() as bus:
        result = await repository.enqueue(EVERY_FIELD, max_attempts=4)
        published = await bus.next(timeout=5)
    assert result.created
    job = await repository.get(result.job.id)
    assert job == result.job
    assert (job.status, job.attempts, job.max_attempts, job.priority) == (
        JobStatus.QUEUED,
        0,
        4,
        -3,
    )
    assert (job.run_at - job.created_at).total_seconds() == 2.5
    [queued] = await repository.events(job_id=job.id)
    assert queued == published
    assert (queued.type, queued.attempt, queued.at) == (EventType.JOB_QUEUED, 0, job.created_at)
    assert queued.data == {
        "reason": "enqueued",
        "kind": "k",
        "queue": "q1",
        "run_at": job.run_at.isoformat(),
    }


async def test_a_keyless_batch_is_stored_as_returned_with_events_in_order(
    repository: JobRepository,
) -> None:
    batch = [(NewJob(kind="k", payload={"i": i}), 3) for i in range(5)] + [(EVERY_FIELD, 2)]
    results = await repository.enqueue_many(batch)
    assert [r.created for r in results] == [True] * 6
    for result in results:
        assert await repository.get(result.job.id) == result.job
    events = [e for e in await repository.events() if e.type is EventType.JOB_QUEUED]
    assert [e.job_id for e in events] == [r.job.id for r in results]
    assert events[0].data == {"reason": "enqueued", "kind": "k", "queue": "default"}
    assert await repository.enqueue_many([]) == []
