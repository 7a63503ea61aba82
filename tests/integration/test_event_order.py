"""The whole event log reads gap-free on PostgreSQL although commits land out of id order.

Ids come from a sequence at insert; transactions commit in any order. A reader whose cursor has
passed id N must still get an event N-1 whose transaction commits later.
"""

from __future__ import annotations

import asyncio

import pytest

from ecosign_orchestrator.core.events import EventType
from ecosign_orchestrator.core.job import NewJob, utcnow
from ecosign_orchestrator.core.repository.postgres import PostgresRepository
from ecosign_orchestrator.core.tail import tail
from ecosign_orchestrator.core.transitions import EventDraft
from ecosign_orchestrator.core.types import JobId

pytestmark = pytest.mark.postgres


async def _enqueue(repo: PostgresRepository) -> JobId:
    return (await repo.enqueue(NewJob(kind="k"), max_attempts=1)).job.id


async def _read_all(repo: PostgresRepository, after: int) -> tuple[list[int], int]:
    """Page through the whole log from ``after`` the way every tail does."""
    got: list[int] = []
    while page := await repo.events(after_id=after, limit=2):
        got += [e.id for e in page]
        after = page[-1].id
    return got, after


async def test_an_event_committed_after_a_later_numbered_one_is_not_skipped(
    pg_repository: PostgresRepository,
) -> None:
    repo = pg_repository
    slow_job, fast_job = await _enqueue(repo), await _enqueue(repo)
    seen, cursor = await _read_all(repo, 0)
    async with repo._transaction() as slow:
        draft = EventDraft(
            job_id=slow_job, type=EventType.JOB_RETRYING, at=utcnow(), attempt=0, data={}
        )
        early = await slow.add_event(draft)
        await repo.cancel(fast_job)  # commits on another connection
        late_ids = [e.id for e in await repo.events(job_id=fast_job)]
        assert max(late_ids) > early.id, "the later id committed first"
        during, cursor = await _read_all(repo, cursor)
        assert early.id not in during and max(late_ids) not in during, "held back, not skipped"
    after, cursor = await _read_all(repo, cursor)
    everything = seen + during + after
    assert sorted(everything) == sorted({e.id for e in await repo.events(limit=1000)})
    assert len(everything) == len(set(everything))
    assert early.id in after and max(late_ids) in after


async def test_a_follower_gets_every_event_of_concurrent_writers_exactly_once(
    pg_repository: PostgresRepository,
) -> None:
    repo = pg_repository
    writers, jobs_each = 4, 60
    expected = writers * jobs_each
    got: list[int] = []

    async def follow() -> None:
        async for event in tail(repo, poll_seconds=0.02):
            assert event is not None
            got.append(event.id)
            if len(got) >= expected:
                return

    async def write() -> None:
        for _ in range(jobs_each):
            await _enqueue(repo)

    follower = asyncio.create_task(follow())
    await asyncio.gather(*(write() for _ in range(writers)))
    await asyncio.wait_for(follower, timeout=30)
    stored = [e.id for e in await repo.events(limit=1000)]
    assert len(got) == len(set(got)) == expected
    assert sorted(got) == sorted(stored)
