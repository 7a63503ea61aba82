"""Step records are written in batches, and a change made while a batch is being written is not
lost."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from ecosign_orchestrator.core import context
from ecosign_orchestrator.core.context import JobContext
from ecosign_orchestrator.core.job import NewJob, StepStatus
from ecosign_orchestrator.core.repository import MemoryRepository


async def _running_context(repo: MemoryRepository) -> JobContext:
    await repo.enqueue(NewJob(kind="k"), max_attempts=3)
    (job,) = await repo.claim(worker_id="w", kinds=["k"], limit=1, lease_seconds=30)
    return JobContext(job, repo)


def _counting(repo: MemoryRepository) -> asyncio.Event:
    """Count ``save_steps`` calls on ``repo.writes``; the event is set at each one."""
    written = asyncio.Event()
    save = repo.save_steps
    repo.writes = 0  # type: ignore[attr-defined]

    async def counting(*args: Any, **kwargs: Any) -> Any:
        repo.writes += 1  # type: ignore[attr-defined]
        result = await save(*args, **kwargs)
        written.set()
        return result

    repo.save_steps = counting  # type: ignore[method-assign]
    return written


async def test_steps_recorded_together_share_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "DEFER_SECONDS", 60.0)  # the window never ends by itself here
    async with MemoryRepository() as repo:
        ctx = await _running_context(repo)
        _counting(repo)
        await ctx.plan_steps(["a", "b", "c"])
        for name in ("a", "b"):
            await ctx.step_started(name)
            await ctx.step_succeeded(name)
        assert repo.writes == 0  # type: ignore[attr-defined]
        await ctx.flush()  # what the run's outcome does
        assert repo.writes == 1  # type: ignore[attr-defined]
        stored = await repo.get(ctx.job.id)
        assert [s.status for s in stored.steps] == [
            StepStatus.SUCCEEDED,
            StepStatus.SUCCEEDED,
            StepStatus.PENDING,
        ]
        events = [e.type.value for e in await repo.events(job_id=ctx.job.id)]
        assert events[-4:] == ["step_started", "step_succeeded", "step_started", "step_succeeded"]
        ctx.close()


async def test_the_window_writes_by_itself_when_no_other_write_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(context, "DEFER_SECONDS", 0.01)
    async with MemoryRepository() as repo:
        ctx = await _running_context(repo)
        written = _counting(repo)
        await ctx.step_started("a")
        await asyncio.wait_for(written.wait(), 10)
        assert [s.status for s in (await repo.get(ctx.job.id)).steps] == [StepStatus.RUNNING]
        ctx.close()


async def test_a_change_made_while_steps_are_being_written_is_written_next() -> None:
    async with MemoryRepository() as repo:
        ctx = await _running_context(repo)
        entered, release = asyncio.Event(), asyncio.Event()
        save = repo.save_steps

        async def slow(job_id: Any, token: Any, steps: Sequence[Any], *rest: Any) -> Any:
            entered.set()
            await release.wait()
            return await save(job_id, token, steps, *rest)

        repo.save_steps = slow  # type: ignore[method-assign]
        await ctx.step_started("a")
        flushing = asyncio.create_task(ctx.flush())
        await entered.wait()
        # A change with no event (a planned step) lands while the first write is in flight.
        await ctx.plan_steps(["a", "b"])
        release.set()
        await flushing
        await ctx.flush()
        stored = await repo.get(ctx.job.id)
        assert [(s.name, s.status) for s in stored.steps] == [
            ("a", StepStatus.RUNNING),
            ("b", StepStatus.PENDING),
        ]
        ctx.close()


async def test_a_step_event_recorded_while_steps_are_being_written_is_not_lost() -> None:
    async with MemoryRepository() as repo:
        ctx = await _running_context(repo)
        entered, release = asyncio.Event(), asyncio.Event()
        save = repo.save_steps

        async def slow(
            job_id: Any, token: Any, steps: Sequence[Any], events: Sequence[Any], calls: Any
        ) -> Any:
            # A real store turns its arguments into statement parameters before it waits on
            # the database: what is appended later is not in this write.
            taken = list(events)
            entered.set()
            await release.wait()
            return await save(job_id, token, steps, taken, calls)

        repo.save_steps = slow  # type: ignore[method-assign]
        await ctx.step_started("a")
        flushing = asyncio.create_task(ctx.flush())
        await entered.wait()
        await ctx.step_succeeded("a")  # its event lands while the first write is in flight
        release.set()
        await flushing
        await ctx.flush()
        events = [e.type.value for e in await repo.events(job_id=ctx.job.id)]
        assert events[-2:] == ["step_started", "step_succeeded"]
        ctx.close()
