"""``make demo``: a short run on the embedded SQLite default, with live status in the terminal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from rich.console import Console
from rich.live import Live

from ecosign_orchestrator.core.job import Job
from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.core.types import JobId
from ecosign_orchestrator.core.worker import WorkerSettings
from ecosign_orchestrator.service import render, wiring
from ecosign_orchestrator.service.settings import Settings

CORE_JOBS: list[tuple[str, dict[str, object]]] = [
    ("demo.sleep", {"seconds": 1.5, "steps": 6}),
    ("demo.sleep", {"seconds": 2.5, "steps": 10}),
    ("demo.flaky", {"failures": 2}),
    ("demo.fail", {"reason": "the input file is corrupt (simulated)"}),
    ("demo.noop", {}),
]


async def _snapshot(repository: JobRepository, ids: Sequence[JobId]) -> list[Job]:
    return [await repository.get(job_id) for job_id in ids]


async def run_core_demo(settings: Settings, *, live: bool, console: Console | None = None) -> int:
    """Enqueue a few core jobs, run a worker in-process, show them live until all are terminal."""
    console = console or Console()
    registry = wiring.build_registry(settings)
    async with wiring.open_repository(settings) as repository:
        queue = wiring.build_queue(repository, registry)
        ids = [(await queue.enqueue(kind, payload)).job.id for kind, payload in CORE_JOBS]
        worker = wiring.build_worker(settings, repository, registry, concurrency=4)
        worker.settings = WorkerSettings(
            concurrency=4, poll_seconds=0.05, max_poll_seconds=0.2, lease_seconds=10
        )
        task = asyncio.create_task(worker.run(), name="demo-worker")
        try:
            jobs = await _follow(repository, ids, live=live, console=console)
        finally:
            worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    console.print(render.jobs_table(jobs, title="Summary"))
    console.print(
        f"database: {settings.database_url_value}\n"
        "next: `ecosign-orchestrator jobs show <id>` and `ecosign-orchestrator jobs events <id>`"
    )
    return 0


async def _follow(
    repository: JobRepository, ids: Sequence[JobId], *, live: bool, console: Console
) -> list[Job]:
    async with repository.bus.subscribe() as events:
        jobs = await _snapshot(repository, ids)
        if live:
            with Live(
                render.jobs_table(jobs, "Demo"), console=console, refresh_per_second=8
            ) as view:
                while not all(j.status.is_terminal for j in jobs):
                    await _next_change(events)
                    jobs = await _snapshot(repository, ids)
                    view.update(render.jobs_table(jobs, "Demo"))
        else:
            seen: dict[JobId, str] = {}
            while True:
                for job in jobs:
                    if seen.get(job.id) != job.status.value:
                        seen[job.id] = job.status.value
                        console.print(f"{job.id} {job.kind:<12} {job.status.value}")
                if all(j.status.is_terminal for j in jobs):
                    break
                await _next_change(events)
                jobs = await _snapshot(repository, ids)
    return jobs


async def _next_change(events: object) -> None:
    """Wait for the next event (or a short tick, so progress updates show too)."""
    iterator = events.__aiter__()  # type: ignore[attr-defined]
    with contextlib.suppress(TimeoutError, StopAsyncIteration):
        async with asyncio.timeout(0.25):
            await iterator.__anext__()


async def run_demo(settings: Settings, *, live: bool) -> int:
    """The demo entry point."""
    return await run_core_demo(settings, live=live)
