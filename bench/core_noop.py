"""No-op job throughput of the core engine: memory vs SQLite, concurrency 1 and 16.

Run: ``make bench`` (or ``.venv/bin/python bench/core_noop.py [--jobs N]``). Prints jobs/s and, as
the comparable figure, each run's ratio to the in-memory backend at the same concurrency, all
measured in this one process on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from ecosign_orchestrator.core import JobContext, JobQueue, JobStatus, Registry, RetryPolicy, Worker
from ecosign_orchestrator.core.job import NewJob
from ecosign_orchestrator.core.repository import JobRepository, MemoryRepository, SqliteRepository
from ecosign_orchestrator.core.types import JSONValue
from ecosign_orchestrator.core.worker import WorkerSettings


async def noop(ctx: JobContext) -> JSONValue:
    return None


async def run_one(repo: JobRepository, jobs: int, concurrency: int) -> float:
    """Seconds to drain ``jobs`` no-op jobs (enqueue excluded)."""
    registry = Registry()
    registry.register("noop", noop, retry=RetryPolicy(max_attempts=1))
    queue = JobQueue(repo, registry)
    for _ in range(jobs):
        await queue.submit(NewJob(kind="noop"))
    done = asyncio.Event()
    remaining = jobs

    async def watch() -> None:
        nonlocal remaining
        async with repo.bus.subscribe() as events:
            async for event in events:
                if event.type.value == "job_completed":
                    remaining -= 1
                    if remaining == 0:
                        done.set()
                        return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    worker = Worker(
        repo,
        registry,
        settings=WorkerSettings(concurrency=concurrency, poll_seconds=0.001, max_poll_seconds=0.01),
    )
    started = time.perf_counter()
    task = asyncio.create_task(worker.run())
    await done.wait()
    elapsed = time.perf_counter() - started
    worker.stop()
    await task
    await watcher
    counts = await repo.counts()
    assert counts.get(("noop", JobStatus.COMPLETED)) == jobs
    return elapsed


async def main(jobs: int) -> None:
    print(f"core no-op throughput, {jobs} jobs per run")
    print(f"{'backend':<8} {'conc':>4} {'jobs/s':>10} {'vs memory':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency in (1, 16):
            baseline = 0.0
            for backend in ("memory", "sqlite"):
                repo: JobRepository = (
                    MemoryRepository()
                    if backend == "memory"
                    else SqliteRepository(Path(tmp) / f"bench-{concurrency}.db")
                )
                async with repo:
                    await repo.migrate()
                    elapsed = await run_one(repo, jobs, concurrency)
                rate = jobs / elapsed
                baseline = baseline or rate
                print(f"{backend:<8} {concurrency:>4} {rate:>10.0f} {rate / baseline:>9.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    asyncio.run(main(parser.parse_args().jobs))
