"""PostgreSQL: no-op jobs/s with 1 and 4 worker processes, and enqueue->start latency p50/p99.

Run: ``make bench`` (starts a throwaway PostgreSQL cluster on loopback with the server's default
durability: fsync, synchronous_commit and full_page_writes on, unlike the test clusters). Each
figure is also printed as a ratio to a peer measured in the same run on this machine: worker
scaling against one process, and PostgreSQL against the embedded SQLite backend.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.pgcluster import start_cluster  # noqa: E402

from ecosign_orchestrator.core import JobStatus  # noqa: E402
from ecosign_orchestrator.core.job import NewJob  # noqa: E402
from ecosign_orchestrator.core.repository import JobRepository, SqliteRepository  # noqa: E402
from ecosign_orchestrator.core.repository.postgres import PostgresRepository  # noqa: E402


def env_for(url: str, schema: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSIGN_ORCH_")}
    env.update(
        {
            "ECOSIGN_ORCH_DATABASE_URL": url,
            "ECOSIGN_ORCH_DATABASE_SCHEMA": schema,
            "ECOSIGN_ORCH_LOG_LEVEL": "WARNING",
            "ECOSIGN_ORCH_POLL_SECONDS": "0.05",
            "ECOSIGN_ORCH_MAX_POLL_SECONDS": "0.5",
            **extra,
        }
    )
    return env


def workers(env: dict[str, str], n: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "ecosign_orchestrator", "worker", "--kind", "demo.noop"]
    return [
        subprocess.Popen([*cmd, "--concurrency", str(concurrency)], env=env, cwd=ROOT)
        for _ in range(n)
    ]


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)


async def drained(repo: JobRepository, n: int) -> None:
    while (await repo.counts()).get(("demo.noop", JobStatus.COMPLETED), 0) < n:
        await asyncio.sleep(0.05)


async def throughput(repo: JobRepository, env: dict[str, str], procs: int, jobs: int) -> float:
    """Jobs/s to drain ``jobs`` no-op jobs with ``procs`` worker processes (enqueue excluded)."""
    batch = [(NewJob(kind="demo.noop"), 1) for _ in range(1000)]
    for _ in range(jobs // 1000):
        await repo.enqueue_many(batch)
    started = time.perf_counter()
    running = workers(env, procs, concurrency=16)
    try:
        await drained(repo, jobs)
    finally:
        stop_all(running)
    return jobs / (time.perf_counter() - started)


async def latency(repo: PostgresRepository, env: dict[str, str], samples: int) -> list[float]:
    """Seconds from enqueue commit to job start, one idle worker with a 10 s poll (NOTIFY)."""
    idle_env = {**env, "ECOSIGN_ORCH_POLL_SECONDS": "10", "ECOSIGN_ORCH_MAX_POLL_SECONDS": "10"}
    running = workers(idle_env, 1, concurrency=4)
    out: list[float] = []
    try:
        await asyncio.sleep(2)  # let the worker reach its idle LISTEN (this is a benchmark)
        for _ in range(samples):
            job = (await repo.enqueue(NewJob(kind="demo.noop"), max_attempts=1)).job
            while (await repo.get(job.id)).status is not JobStatus.COMPLETED:
                await asyncio.sleep(0.002)
            started = next(
                e for e in await repo.events(job_id=job.id) if e.type.value == "job_started"
            )
            out.append((started.at - job.created_at).total_seconds())
            await asyncio.sleep(0.05)
    finally:
        stop_all(running)
    return out


async def main(jobs: int, samples: int) -> None:
    cluster = start_cluster(durable=True)  # a benchmark keeps the server's default durability
    try:
        rates: dict[str, float] = {}
        for procs in (1, 4):
            schema = f"bench_{procs}"
            async with PostgresRepository(cluster.url(), schema=schema) as repo:
                await repo.migrate()
                rates[f"postgresql x{procs}"] = await throughput(
                    repo, env_for(cluster.url(), schema), procs, jobs
                )
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            async with SqliteRepository(Path(tmp) / "bench.db") as sqlite_repo:
                await sqlite_repo.migrate()
                rates["sqlite x1"] = await throughput(sqlite_repo, env_for(url, "x"), 1, jobs)
        async with PostgresRepository(cluster.url(), schema="bench_latency") as repo:
            await repo.migrate()
            lat = await latency(repo, env_for(cluster.url(), "bench_latency"), samples)
    finally:
        cluster.destroy()
    base = rates["postgresql x1"]
    print(f"no-op throughput, {jobs} jobs per run, worker processes with concurrency 16")
    for name, rate in rates.items():
        print(f"  {name:<14} {rate:>8.0f} jobs/s   {rate / base:>5.2f}x postgresql x1")
    quantiles = statistics.quantiles(lat, n=100)
    print(f"enqueue->start latency over {samples} jobs, idle worker polling every 10 s (NOTIFY):")
    p50, p99 = quantiles[49] * 1000, quantiles[98] * 1000
    print(f"  p50 {p50:.1f} ms   p99 {p99:.1f} ms   max {max(lat) * 1000:.1f} ms")
    print(f"  {10 / statistics.median(lat):.0f}x faster than the 10 s poll it replaces")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.samples))
