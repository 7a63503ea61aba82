"""SQLite: every acknowledged commit is synced to disk, and concurrent writes share commits."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import NewJob
from ecosign_orchestrator.core.repository import SqliteRepository
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.types import LeaseToken


async def test_every_commit_syncs_the_wal(tmp_path: Path) -> None:
    async with SqliteRepository(tmp_path / "jobs.db") as repo:
        # 2 = FULL: the WAL is synced at each commit (NORMAL, 1, may lose the last ones)
        mode = await repo._call(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
    assert mode == 2


async def test_concurrent_outcomes_share_commits_and_a_refused_one_undoes_nothing_else(
    tmp_path: Path,
) -> None:
    async with SqliteRepository(tmp_path / "jobs.db") as repo:
        await repo.migrate()
        for _ in range(40):
            await repo.enqueue(NewJob(kind="k"), max_attempts=1)
        jobs = await repo.claim(worker_id="w", kinds=["k"], limit=40, lease_seconds=60)
        assert len(jobs) == 40
        commits: list[str] = []
        await repo._call(
            lambda c: c.set_trace_callback(
                lambda sql: commits.append(sql) if sql.strip() == "COMMIT" else None
            )
        )
        victim, *others = jobs
        outcomes = await asyncio.gather(
            repo.complete(victim.id, LeaseToken("not-the-token"), None),
            *(repo.complete(j.id, j.lease_token or LeaseToken(""), {"n": 1}) for j in others),
            return_exceptions=True,
        )
        await repo._call(lambda c: c.set_trace_callback(None))
        assert isinstance(outcomes[0], errors.LeaseLost)
        assert all(not isinstance(o, BaseException) for o in outcomes[1:])
        assert len(commits) <= 3, f"{len(commits)} commits for 40 concurrent outcomes"
        assert (await repo.get(victim.id)).status is JobStatus.RUNNING
        done = await repo.list_jobs(statuses=[JobStatus.COMPLETED], limit=100)
        assert {j.id for j in done} == {j.id for j in others}


@pytest.mark.parametrize("count", [1, 300])
async def test_group_commit_applies_every_write_past_its_batch_limit(
    tmp_path: Path, count: int
) -> None:
    async with SqliteRepository(tmp_path / "jobs.db") as repo:
        await repo.migrate()
        for _ in range(count):
            await repo.enqueue(NewJob(kind="k"), max_attempts=1)
        jobs = await repo.claim(worker_id="w", kinds=["k"], limit=count, lease_seconds=60)
        await asyncio.gather(
            *(repo.complete(j.id, j.lease_token or LeaseToken(""), 1) for j in jobs)
        )
    async with SqliteRepository(tmp_path / "jobs.db") as reopened:
        done = await reopened.list_jobs(statuses=[JobStatus.COMPLETED], limit=1000)
    assert len(done) == count


async def test_a_caller_cancelled_while_waiting_for_the_write_lock_leaves_no_transaction_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.db"
    async with SqliteRepository(path, busy_timeout=30) as repo:
        await repo.migrate()
        waiting = threading.Event()
        await repo._call(
            lambda c: c.set_trace_callback(
                lambda statement: waiting.set() if statement == "BEGIN IMMEDIATE" else None
            )
        )
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        new = NewJob(kind="k", idempotency_key="once")
        submit = asyncio.create_task(repo.enqueue(new, max_attempts=1))
        await asyncio.get_running_loop().run_in_executor(None, waiting.wait, 10)
        submit.cancel()  # cancelled while its BEGIN waits for the lock
        other.execute("COMMIT")  # the lock is free: the waiting BEGIN now succeeds
        with pytest.raises(asyncio.CancelledError):
            await submit
        other.execute("PRAGMA busy_timeout = 5000")
        other.execute("BEGIN IMMEDIATE")  # nobody may still hold the lock
        other.execute("COMMIT")
        other.close()
        assert (await repo.enqueue(new, max_attempts=1)).created
