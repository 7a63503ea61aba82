"""Schedules: each tick becomes one job fleet-wide, ticks are not missed while a worker lives,
and after downtime only the latest missed tick runs."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecosign_orchestrator.core import JobContext, Registry, Worker, WorkerSettings, errors
from ecosign_orchestrator.core.job import utcnow
from ecosign_orchestrator.core.repository import SqliteRepository
from ecosign_orchestrator.core.schedules import Schedule
from ecosign_orchestrator.core.types import JSONValue

PERIOD = 0.25


async def _ticks(repo: SqliteRepository) -> list[datetime]:
    jobs = await repo.list_jobs(kinds=["beat"], limit=1000)
    keys = [j.idempotency_key or "" for j in jobs]
    return sorted(datetime.fromisoformat(k.removeprefix("schedule:beat:")) for k in keys)


async def test_two_workers_submit_every_tick_once_and_one_dying_misses_none(
    tmp_path: Path,
) -> None:
    registry = Registry()

    @registry.processor("beat")
    async def beat(ctx: JobContext) -> JSONValue:
        return None

    registry.schedule(Schedule(name="beat", kind="beat", every_seconds=PERIOD))
    repos = [SqliteRepository(tmp_path / "jobs.db") for _ in range(2)]
    for repo in repos:
        await repo.open()
    await repos[0].migrate()
    settings = WorkerSettings(poll_seconds=0.05, max_poll_seconds=0.1, shutdown_grace_seconds=1)
    workers = [
        Worker(r, registry, settings=settings, worker_id=f"w{i}") for i, r in enumerate(repos)
    ]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        async with asyncio.timeout(20):
            while len(await _ticks(repos[1])) < 6:
                await asyncio.sleep(0.05)  # a condition wait: ticks are time
            tasks[0].cancel()  # worker 0 dies mid-run: no graceful stop
            with pytest.raises(asyncio.CancelledError):
                await tasks[0]
            while len(await _ticks(repos[1])) < 12:
                await asyncio.sleep(0.05)
    finally:
        workers[1].stop()
        await asyncio.wait_for(tasks[1], 10)
        ticks = await _ticks(repos[1])
        for repo in repos:
            await repo.close()
    gaps = {b - a for a, b in itertools.pairwise(ticks)}
    assert gaps == {timedelta(seconds=PERIOD)}, "one job per tick, none missed, none doubled"


def test_the_latest_due_tick_only_and_cron_in_utc() -> None:
    now = datetime(2026, 11, 27, 7, 59, 30, tzinfo=UTC)
    nightly = Schedule(name="nightly", kind="k", cron="0 3 * * *")
    assert nightly.due(now) == datetime(2026, 11, 27, 3, 0, tzinfo=UTC), "after downtime: once"
    assert nightly.next_after(now) == datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
    on_time = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert nightly.due(on_time) == on_time
    fast = Schedule(name="fast", kind="k", every_seconds=60)
    assert fast.due(now) == datetime(2026, 11, 27, 7, 59, tzinfo=UTC)
    assert fast.job_for(fast.due(now)).idempotency_key == "schedule:fast:2026-11-27T07:59:00+00:00"
    with pytest.raises(errors.InvalidJob, match="cron"):
        Schedule(name="bad", kind="k", cron="61 * * * *")
    with pytest.raises(errors.InvalidJob, match="exactly one"):
        Schedule(name="both", kind="k", cron="* * * * *", every_seconds=5)
    assert utcnow() >= Schedule(name="x", kind="k", every_seconds=1).due(utcnow())
