"""Many worker processes on one PostgreSQL: exactly-once drains, crashes, outages, NOTIFY."""

from __future__ import annotations

import asyncio
import collections
import signal
import socket
import statistics
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ecosign_orchestrator.core import (
    JobContext,
    JobQueue,
    JobStatus,
    Registry,
    Worker,
    WorkerSettings,
)
from ecosign_orchestrator.core.job import NewJob
from ecosign_orchestrator.core.repository import sql
from ecosign_orchestrator.core.repository.postgres import PostgresRepository
from ecosign_orchestrator.service.wiring import document_migrations
from tests.support import kinds
from tests.support.pgcluster import PostgresCluster
from tests.support.procs import cli, cli_env, eventually, start_worker, stop
from tests.support.waiting import wait_status

pytestmark = pytest.mark.postgres


@pytest.fixture
def env(pg_cluster: PostgresCluster, pg_schema: str, tmp_path: Path) -> dict[str, str]:
    return cli_env(
        pg_cluster.url(),
        {
            "ECOSIGN_ORCH_DATABASE_SCHEMA": pg_schema,
            "TEST_EFFECTS_DIR": str(tmp_path),
            "ECOSIGN_ORCH_POLL_SECONDS": "0.2",
            "ECOSIGN_ORCH_MAX_POLL_SECONDS": "1",
        },
    )


@pytest.fixture
async def repo(
    pg_cluster: PostgresCluster, pg_schema: str, env: dict[str, str]
) -> AsyncIterator[PostgresRepository]:
    migrated = cli("db", "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    repository = PostgresRepository(pg_cluster.url(), schema=pg_schema)
    async with repository:
        assert await repository.schema_ready()
        yield repository


def effects(tmp_path: Path) -> list[tuple[str, int, int]]:
    return kinds.read_effects(tmp_path)


async def enqueue(
    repo: PostgresRepository, kind: str, n: int, payload: dict[str, Any] | None = None
) -> list[str]:
    queue = JobQueue(repo, kinds.registry)
    ids: list[str] = []
    for start in range(0, n, 1000):
        batch = [NewJob(kind=kind, payload=payload or {}) for _ in range(min(1000, n - start))]
        ids.extend(r.job.id for r in await queue.submit_many(batch))
    return ids


async def completed(repo: PostgresRepository) -> int:
    return sum(n for (_, s), n in (await repo.counts()).items() if s is JobStatus.COMPLETED)


async def completions_per_job(repo: PostgresRepository) -> dict[str, int]:
    counts: dict[str, int] = {}
    after = 0
    while batch := await repo.events(after_id=after, limit=10_000):
        for event in batch:
            if event.type.value == "job_completed":
                counts[event.job_id] = counts.get(event.job_id, 0) + 1
        after = batch[-1].id
    return counts


def test_concurrent_migrations_are_serialised(
    env: dict[str, str], pg_cluster: PostgresCluster, pg_schema: str
) -> None:
    import subprocess
    import sys

    from tests.support.procs import ROOT

    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ecosign_orchestrator", "db", "migrate"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], results
    with psycopg.connect(pg_cluster.url()) as conn:
        rows = conn.execute(f'SELECT version FROM "{pg_schema}".schema_migrations').fetchall()
    expected = [*sql.migrations("postgres"), *document_migrations()]
    assert rows == [(version,) for version, _ in expected]


@pytest.mark.load
async def test_four_worker_processes_drain_20000_jobs_exactly_once(
    repo: PostgresRepository, env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **env,
        "ECOSIGN_ORCH_LOG_LEVEL": "WARNING",
    }  # 40,000 INFO lines would cost more than the jobs
    ids = await enqueue(repo, "test.effect", 20_000)
    workers = [
        start_worker(env, "--concurrency", "16", log=tmp_path / f"w{i}.log") for i in range(4)
    ]
    try:
        await eventually(
            lambda: _equals(completed(repo), 20_000),
            timeout=240,
            interval=0.5,
            what="20000 completed",
        )
    finally:
        codes = [stop(w) for w in workers]
    assert codes == [0, 0, 0, 0]
    rows = effects(tmp_path)
    per_job: dict[str, int] = {}
    for job_id, _, _ in rows:
        per_job[job_id] = per_job.get(job_id, 0) + 1
    assert set(per_job) == set(ids) and set(per_job.values()) == {1}
    assert len({pid for _, _, pid in rows}) == 4, "all four processes took work"
    assert set((await completions_per_job(repo)).values()) == {1}


async def _holds_leases(repo: PostgresRepository, pid: int) -> bool:
    """Whether the worker process ``pid`` holds a running job's lease (its id is host-pid-...)."""
    owner = f"{socket.gethostname()}-{pid}-"
    running = await repo.list_jobs(statuses=[JobStatus.RUNNING], limit=500)
    return any((job.lease_owner or "").startswith(owner) for job in running)


async def _equals(value: Any, expected: int) -> bool:
    return await value == expected


async def test_a_sigkilled_worker_jobs_are_recovered_by_the_others(
    repo: PostgresRepository, env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "ECOSIGN_ORCH_LEASE_SECONDS": "2", "ECOSIGN_ORCH_RECOVERY_SECONDS": "0.3"}
    # The victim must die holding leases, whatever the machine's speed: it starts alone (8 slots
    # at 50 ms a job drain 160 jobs/s, so 1,500 jobs keep it busy for 9 s), the others join once
    # it runs jobs, and it is killed as soon as they run jobs too, with most of the queue left.
    ids = await enqueue(repo, "test.slow_effect", 1500, {"seconds": 0.05})
    victim = start_worker(env, "--concurrency", "8", log=tmp_path / "w0.log")
    workers = [victim]
    try:
        await eventually(
            lambda: _holds_leases(repo, victim.pid), timeout=60, what="the victim runs jobs"
        )
        workers += [
            start_worker(env, "--concurrency", "8", log=tmp_path / f"w{i}.log") for i in (1, 2, 3)
        ]
        await eventually(
            lambda: _all_hold_leases(repo, [w.pid for w in workers]),
            timeout=60,
            what="all four workers run jobs",
        )
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(10) == -signal.SIGKILL
        assert await _holds_leases(repo, victim.pid), "the victim held no lease when it died"
        await eventually(
            lambda: _equals(completed(repo), 1500), timeout=120, interval=0.3, what="all completed"
        )
    finally:
        codes = [stop(w) for w in workers[1:]]
        stop(victim)
    assert codes == [0, 0, 0]
    completions = await completions_per_job(repo)
    assert set(completions) == set(ids) and set(completions.values()) == {
        1
    }  # nothing lost or doubled
    events = await repo.events(limit=10_000)
    recovered = {e.job_id for e in events if e.data.get("reason") == "lease_expired"}
    assert recovered, "the dead worker's jobs were recovered"
    # Exactly-once completion; at-least-once effects only where the dead worker died between
    # doing the effect and recording it, and never more than its in-flight jobs.
    rows = effects(tmp_path)
    extra = len(rows) - len(ids)
    assert 0 <= extra <= 8
    assert len({r[0] for r in rows}) == len(ids)
    pids = {r[2] for r in rows}
    assert victim.pid in pids or extra == 0


async def _all_hold_leases(repo: PostgresRepository, pids: list[int]) -> bool:
    return all([await _holds_leases(repo, pid) for pid in pids])


async def _at_least(value: Any, n: int) -> bool:
    return await value >= n


async def test_a_database_restart_loses_and_doubles_nothing_and_workers_survive(
    repo: PostgresRepository, env: dict[str, str], tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    env = {**env, "ECOSIGN_ORCH_LEASE_SECONDS": "20"}
    ids = await enqueue(repo, "test.slow_effect", 1200, {"seconds": 0.02})
    workers = [
        start_worker(env, "--concurrency", "8", log=tmp_path / f"w{i}.log") for i in range(2)
    ]
    try:
        await eventually(lambda: _at_least(completed(repo), 200), timeout=60, what="200 completed")
        await repo.close()
        pg_cluster.stop("fast")
        await asyncio.sleep(3)  # the outage itself, not synchronisation
        pg_cluster.start()
        await repo.open()
        await eventually(
            lambda: _equals(completed(repo), 1200), timeout=120, interval=0.3, what="all completed"
        )
        assert [w.poll() for w in workers] == [None, None], "workers must not exit"
    finally:
        codes = [stop(w) for w in workers]
    assert codes == [0, 0]
    rows = effects(tmp_path)
    per_job: dict[str, int] = {}
    for job_id, _, _ in rows:
        per_job[job_id] = per_job.get(job_id, 0) + 1
    assert set(per_job) == set(ids) and set(per_job.values()) == {1}
    assert set((await completions_per_job(repo)).values()) == {1}
    logs = "".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
    assert "claim failed" in logs or "unreachable" in logs, "the outage was noticed and logged"


async def test_notify_wakes_an_idle_worker_well_under_a_second(
    repo: PostgresRepository, env: dict[str, str], tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    env = {**env, "ECOSIGN_ORCH_POLL_SECONDS": "10", "ECOSIGN_ORCH_MAX_POLL_SECONDS": "10"}
    worker = start_worker(env, "--kind", "test.effect", log=tmp_path / "w.log")
    try:

        async def listening() -> bool:
            async with await psycopg.AsyncConnection.connect(pg_cluster.url()) as conn:
                cursor = await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN %%'"
                )
                row = await cursor.fetchone()
                return bool(row and row[0] >= 1)

        await eventually(listening, timeout=30, what="worker listening")
        latencies = []
        for _ in range(5):
            [job_id] = await enqueue(repo, "test.effect", 1)
            job = await _wait_completed(repo, job_id)
            started = next(
                e for e in await repo.events(job_id=job_id) if e.type.value == "job_started"
            )
            latencies.append((started.at - job.created_at).total_seconds())
    finally:
        stop(worker)
    assert max(latencies) < 1.0, latencies
    assert statistics.median(latencies) < 0.5, latencies


async def _logged(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


async def _wait_completed(repo: PostgresRepository, job_id: str) -> Any:
    async def done() -> bool:
        return (await repo.get(job_id)).status is JobStatus.COMPLETED  # type: ignore[arg-type]

    await eventually(done, timeout=15, interval=0.01, what="job completed")
    return await repo.get(job_id)  # type: ignore[arg-type]


async def test_delayed_jobs_start_on_time_even_with_a_long_poll(
    repo: PostgresRepository, env: dict[str, str], tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    env = {**env, "ECOSIGN_ORCH_POLL_SECONDS": "10", "ECOSIGN_ORCH_MAX_POLL_SECONDS": "10"}
    log = tmp_path / "w.log"
    worker = start_worker(env, "--kind", "test.effect", log=log)
    try:
        # The case under test: a worker already idle in a long poll when the job is enqueued.
        await eventually(
            lambda: _logged(log, "worker_started"), timeout=30, what="the worker is polling"
        )
        queue = JobQueue(repo, kinds.registry)
        job = (await queue.enqueue("test.effect", {}, delay=1.5)).job
        done = await _wait_completed(repo, job.id)
    finally:
        stop(worker)
    started = next(e for e in await repo.events(job_id=job.id) if e.type.value == "job_started")
    late = (started.at - job.run_at).total_seconds()
    assert -0.05 <= late < 1.0, late
    assert done.status is JobStatus.COMPLETED


async def test_leases_hold_with_many_jobs_in_flight_on_a_small_busy_pool(
    pg_cluster: PostgresCluster, pg_schema: str
) -> None:
    registry = Registry()

    @registry.processor("busy")
    async def busy(ctx: JobContext) -> int:
        writes, until = 0, time.monotonic() + 2.5  # longer than the lease, writing all along
        while time.monotonic() < until:
            await ctx.progress(None, f"write {writes}")  # each one through the pool
            writes += 1
        return writes

    repo = PostgresRepository(pg_cluster.url(), schema=pg_schema, max_size=2)
    async with repo:
        await repo.migrate()
        queue = JobQueue(repo, registry)
        ids = [(await queue.enqueue("busy")).job.id for _ in range(150)]
        settings = WorkerSettings(
            concurrency=150,
            lease_seconds=1.0,
            heartbeat_seconds=0.25,
            progress_seconds=0,
            recovery_seconds=0.2,
            poll_seconds=0.05,
        )
        worker = Worker(repo, registry, settings=settings)
        task = asyncio.create_task(worker.run())
        try:
            for job_id in ids:
                await wait_status(repo, job_id, JobStatus.COMPLETED, timeout=60)
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)
        events = await repo.events(limit=10_000)
    starts = collections.Counter(e.job_id for e in events if e.type.value == "job_started")
    assert set(starts) == set(ids)
    assert max(starts.values()) == 1, starts.most_common(3)  # no lease expired under a live run


async def test_a_worker_cut_off_from_the_database_fences_itself_and_another_finishes_once(
    pg_cluster: PostgresCluster, pg_schema: str
) -> None:
    """A partition longer than a lease: the cut-off worker stops its own run before its lease
    expires, another worker takes the job over, the effect happens once."""
    from tests.support.proxy import Proxy

    registry = Registry()
    effects_by: list[str] = []
    release = asyncio.Event()

    @registry.processor("guarded")
    async def guarded(ctx: JobContext) -> str:
        await release.wait()  # the effect happens only after the partition
        effects_by.append(ctx.worker_id)
        return ctx.worker_id

    proxy = await Proxy(pg_cluster.port).start()
    cut_url = pg_cluster.url().replace(f":{pg_cluster.port}/", f":{proxy.port}/")
    settings = WorkerSettings(
        lease_seconds=2.0, recovery_seconds=0.2, poll_seconds=0.05, shutdown_grace_seconds=0
    )
    direct = PostgresRepository(pg_cluster.url(), schema=pg_schema)
    cut = PostgresRepository(cut_url, schema=pg_schema, connect_timeout=1)
    async with direct, cut:
        await direct.migrate()
        job_id = (await JobQueue(direct, registry).enqueue("guarded")).job.id
        a = Worker(cut, registry, settings=settings, worker_id="cut-off")
        a_task = asyncio.create_task(a.run())
        await wait_job_started(direct, job_id, "cut-off")
        proxy.partition()
        b = Worker(direct, registry, settings=settings, worker_id="connected")
        b_task = asyncio.create_task(b.run())
        try:
            await wait_job_started(direct, job_id, "connected", timeout=20)
            release.set()
            done = await wait_status(direct, job_id, JobStatus.COMPLETED, timeout=20)
            proxy.heal()
        finally:
            b.stop()
            a.stop()
            await asyncio.wait_for(b_task, 30)
            proxy.heal()
            await asyncio.wait_for(a_task, 60)
            await proxy.close()
        events = await direct.events(job_id=job_id)
    assert effects_by == ["connected"], "the cut-off worker stopped its run in time"
    assert done.result == "connected"
    starts = [e.data["worker"] for e in events if e.type.value == "job_started"]
    assert starts == ["cut-off", "connected"]
    requeued = [e.data for e in events if e.data.get("reason") == "lease_expired"]
    assert [r["worker"] for r in requeued] == ["cut-off"]


async def wait_job_started(
    repo: PostgresRepository, job_id: str, worker: str, timeout: float = 10
) -> None:
    async def started() -> bool:
        events = await repo.events(job_id=job_id)  # type: ignore[arg-type]
        return any(e.type.value == "job_started" and e.data.get("worker") == worker for e in events)

    await eventually(started, timeout=timeout, what=f"{worker} starting {job_id}")
