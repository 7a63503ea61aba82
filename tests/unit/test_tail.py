"""The one event tail: order, resume point, end at the terminal event, idle ticks."""

from __future__ import annotations

import asyncio

from ecosign_orchestrator.core.events import Event
from ecosign_orchestrator.core.job import NewJob
from ecosign_orchestrator.core.repository import MemoryRepository
from ecosign_orchestrator.core.tail import tail


async def _run_one(repo: MemoryRepository) -> str:
    job = (await repo.enqueue(NewJob(kind="k"), max_attempts=1)).job
    claimed = (await repo.claim(worker_id="w", kinds=["k"], limit=1, lease_seconds=30))[0]
    assert claimed.lease_token is not None
    await repo.complete(job.id, claimed.lease_token, None)
    return job.id


async def test_a_job_tail_yields_its_events_in_order_and_ends_at_the_terminal_one() -> None:
    async with MemoryRepository() as repo:
        first = await _run_one(repo)
        second = await _run_one(repo)
        seen = [e async for e in tail(repo, job_id=first, until_end=True) if e is not None]
        assert [e.type.value for e in seen] == ["job_queued", "job_started", "job_completed"]
        assert {e.job_id for e in seen} == {first}
        after = [e async for e in tail(repo, job_id=second, after=seen[-1].id, until_end=True)]
        assert [e.type.value for e in after if e is not None][-1] == "job_completed"


async def test_a_tail_sees_events_committed_while_it_waits_and_ticks_when_idle() -> None:
    async with MemoryRepository() as repo:
        start = await repo.last_event_id()
        received: list[Event | None] = []
        first_tick = asyncio.Event()

        async def follow() -> None:
            async for item in tail(repo, after=start, idle_seconds=0.05):
                received.append(item)
                first_tick.set()
                if item is not None and item.type.value == "job_completed":
                    return

        follower = asyncio.create_task(follow())
        await asyncio.wait_for(first_tick.wait(), timeout=5)  # the tail is waiting, idle
        assert received == [None]
        job_id = await _run_one(repo)
        await asyncio.wait_for(follower, timeout=5)
        events = [e for e in received if e is not None]
        assert [e.type.value for e in events] == ["job_queued", "job_started", "job_completed"]
        assert all(e.job_id == job_id for e in events)
        assert [e.id for e in events] == sorted(e.id for e in events)
