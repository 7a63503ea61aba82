"""Real worker processes on one SQLite file: exactly-once effects, crash recovery, graceful stop."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ecosign_orchestrator.core import JobQueue, JobStatus
from ecosign_orchestrator.core.repository import SqliteRepository
from tests.support import kinds
from tests.support.procs import cli_env, eventually, start_worker, stop


@pytest.fixture
async def repo(tmp_path: Path) -> AsyncIterator[SqliteRepository]:
    repository = SqliteRepository(tmp_path / "jobs.db")
    async with repository:
        await repository.migrate()
        yield repository


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    folder = tmp_path / "effects"
    folder.mkdir()
    return folder


def queue_for(repo: SqliteRepository) -> JobQueue:
    return JobQueue(repo, kinds.registry)


def effect_counts(folder: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job_id, _, _ in kinds.read_effects(folder):
        counts[job_id] = counts.get(job_id, 0) + 1
    return counts


def env_for(tmp_path: Path, effects: Path, **settings: str) -> dict[str, str]:
    extra = {"TEST_EFFECTS_DIR": str(effects), "ECOSIGN_ORCH_POLL_SECONDS": "0.05"}
    extra.update({f"ECOSIGN_ORCH_{k.upper()}": v for k, v in settings.items()})
    return cli_env(f"sqlite:///{tmp_path}/jobs.db", extra)


async def count(repo: SqliteRepository, status: JobStatus) -> int:
    return sum(n for (_, s), n in (await repo.counts()).items() if s is status)


@pytest.mark.load
async def test_two_worker_processes_drain_2000_jobs_exactly_once(
    repo: SqliteRepository, effects: Path, tmp_path: Path
) -> None:
    queue = queue_for(repo)
    ids = [(await queue.enqueue("test.effect", {"i": i})).job.id for i in range(2000)]
    env = env_for(tmp_path, effects, worker_concurrency="8", log_level="WARNING")
    workers = [start_worker(env, log=tmp_path / f"w{i}.log") for i in range(2)]
    try:
        await eventually(
            lambda: _all_completed(repo, 2000), timeout=120, interval=0.2, what="2000 completed"
        )
    finally:
        codes = [stop(w) for w in workers]
    assert codes == [0, 0]
    counted = effect_counts(effects)
    assert set(counted) == set(ids)
    assert set(counted.values()) == {1}, "a job's side effect happened more than once"
    pids = {pid for _, _, pid in kinds.read_effects(effects)}
    assert len(pids) == 2, "both processes should have taken work"
    completions = [e for e in await repo.events(limit=10_000) if e.type.value == "job_completed"]
    assert len(completions) == 2000


async def _all_completed(repo: SqliteRepository, n: int) -> bool:
    return await count(repo, JobStatus.COMPLETED) == n


async def test_sigkilled_worker_job_is_recovered_by_another_after_lease_expiry(
    repo: SqliteRepository, effects: Path, tmp_path: Path
) -> None:
    queue = queue_for(repo)
    job_id = (await queue.enqueue("test.block_first")).job.id
    env = env_for(tmp_path, effects, lease_seconds="1.5", recovery_seconds="0.2")
    first = start_worker(env, log=tmp_path / "first.log")
    try:
        await eventually(
            lambda: _is(repo, job_id, JobStatus.RUNNING), timeout=30, what="job running"
        )
        dead_worker = (await repo.get(job_id)).lease_owner
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
        killed_at = time.monotonic()
        second = start_worker(env, log=tmp_path / "second.log")
        try:
            await eventually(
                lambda: _is(repo, job_id, JobStatus.COMPLETED), timeout=30, what="job completed"
            )
        finally:
            assert stop(second) == 0
    finally:
        stop(first)
    assert time.monotonic() - killed_at >= 0.5  # not before the lease could expire
    events = await repo.events(job_id=job_id)
    summary = [(e.type.value, e.attempt, e.data.get("worker")) for e in events]
    assert summary[0][0] == "job_queued"
    assert summary[1] == ("job_started", 1, dead_worker)
    assert summary[2] == ("job_queued", 1, dead_worker)  # lease_expired, from the dead worker
    assert events[2].data["reason"] == "lease_expired"
    assert summary[3][0:2] == ("job_started", 2) and summary[3][2] != dead_worker
    assert [s[0] for s in summary].count("job_completed") == 1
    assert summary[-1][0:2] == ("job_completed", 2)
    assert effect_counts(effects) == {job_id: 1}
    assert "job_completed" not in [s[0] for s in summary[:3]]


async def _is(repo: SqliteRepository, job_id: str, status: JobStatus) -> bool:
    return (await repo.get(job_id)).status is status  # type: ignore[arg-type]


async def test_sigterm_lets_jobs_finish_or_releases_them_within_the_grace_period(
    repo: SqliteRepository, effects: Path, tmp_path: Path
) -> None:
    queue = queue_for(repo)
    short = (await queue.enqueue("test.sleep", {"seconds": 0.5})).job.id
    endless = (await queue.enqueue("test.forever")).job.id
    env = env_for(tmp_path, effects, shutdown_grace_seconds="2")
    worker = start_worker(env, log=tmp_path / "w.log")
    try:
        await eventually(
            lambda: _both_running(repo, short, endless), timeout=30, what="both running"
        )
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0
        elapsed = time.monotonic() - started
    finally:
        stop(worker)
    assert elapsed < 2 + 5  # the grace period plus process teardown
    assert (await repo.get(short)).status is JobStatus.COMPLETED
    released = await repo.get(endless)
    assert released.status is JobStatus.QUEUED and released.attempts == 0
    assert released.lease_owner is None
    assert (await repo.events(job_id=endless))[-1].data["reason"] == "released"
    assert await count(repo, JobStatus.RUNNING) == 0
    assert effect_counts(effects) == {short: 1}


async def _both_running(repo: SqliteRepository, a: str, b: str) -> bool:
    return await _is(repo, a, JobStatus.RUNNING) and await _is(repo, b, JobStatus.RUNNING)


def test_support_kinds_are_importable() -> None:
    assert "test.effect" in kinds.registry


async def test_an_idle_worker_sees_another_processes_enqueue_without_polling(
    repo: SqliteRepository, effects: Path, tmp_path: Path
) -> None:
    # a poll period of an hour: only the file's commit counter can wake this worker in time
    env = env_for(tmp_path, effects, poll_seconds="3600", max_poll_seconds="3600")
    worker = start_worker(env, "--kind", "test.effect", log=tmp_path / "w.log")
    try:

        async def idle() -> bool:
            return "worker_started" in (tmp_path / "w.log").read_text()

        await eventually(idle, timeout=20, what="the worker to start")
        job = (await queue_for(repo).enqueue("test.effect", {"n": 1})).job

        async def finished() -> bool:
            return (await repo.get(job.id)).status is JobStatus.COMPLETED

        await eventually(finished, timeout=10, what="the job enqueued by another process")
    finally:
        stop(worker)
