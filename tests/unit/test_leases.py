"""Lease keeping: one renewal for all leases, and a lease given up before it can expire."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from datetime import datetime

import pytest

from ecosign_orchestrator.core import (
    JobContext,
    JobQueue,
    JobStatus,
    Registry,
    Worker,
    WorkerSettings,
    errors,
)
from ecosign_orchestrator.core.job import utcnow
from ecosign_orchestrator.core.repository import MemoryRepository
from ecosign_orchestrator.core.types import JobId, LeaseToken


class CountingStore(MemoryRepository):
    """Counts renewal calls; ``down`` makes them fail like an unreachable store."""

    def __init__(self, *, wanted: int = 0) -> None:
        super().__init__()
        self.renewals: list[int] = []
        self.down = False
        self.wanted = wanted
        #: Set once three renewals carried ``wanted`` leases each.
        self.renewed = asyncio.Event()

    async def renew_leases(
        self, leases: Sequence[tuple[JobId, LeaseToken]], lease_seconds: float
    ) -> dict[JobId, bool]:
        if self.down:
            raise errors.RepositoryError("store unreachable (simulated)")
        self.renewals.append(len(leases))
        if self.renewals.count(self.wanted) >= 3:
            self.renewed.set()
        return await super().renew_leases(leases, lease_seconds)


async def test_one_call_renews_every_running_job() -> None:
    registry = Registry()
    release = asyncio.Event()
    started = 0

    @registry.processor("hold")
    async def hold(ctx: JobContext) -> None:
        nonlocal started
        started += 1
        await release.wait()

    async with CountingStore(wanted=20) as store:
        queue = JobQueue(store, registry)
        ids = [(await queue.enqueue("hold")).job.id for _ in range(20)]
        settings = WorkerSettings(concurrency=20, lease_seconds=1.0, heartbeat_seconds=0.1)
        worker = Worker(store, registry, settings=settings)
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(store.renewed.wait(), 10)
        release.set()
        worker.stop()
        await asyncio.wait_for(task, 10)
        statuses = {(await store.get(i)).status for i in ids}
    assert started == 20 and statuses == {JobStatus.COMPLETED}
    assert max(store.renewals) == 20  # all twenty leases in one call, not twenty calls


async def test_a_lease_that_cannot_be_renewed_is_given_up_before_it_expires() -> None:
    registry = Registry()
    running, stopped = asyncio.Event(), asyncio.Event()
    stopped_at: list[datetime] = []

    @registry.processor("forever")
    async def forever(ctx: JobContext) -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped_at.append(utcnow())
            stopped.set()
            raise

    async with CountingStore() as store:
        job_id = (await JobQueue(store, registry).enqueue("forever")).job.id
        settings = WorkerSettings(
            concurrency=1, lease_seconds=1.0, heartbeat_seconds=0.1, lease_margin_seconds=0.3
        )
        worker = Worker(store, registry, settings=settings)
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(running.wait(), 5)
        store.down = True  # from now on no renewal gets through
        await asyncio.wait_for(stopped.wait(), 5)
        job = await store.get(job_id)
        worker.stop()
        await asyncio.wait_for(task, 10)
    assert job.lease_expires_at is not None
    assert stopped_at[0] < job.lease_expires_at  # it let go before anyone could take over
    assert job.status is JobStatus.RUNNING  # and recorded nothing: the lease may be lost


class SlowToRecord(MemoryRepository):
    """``complete`` waits for ``gate``, then finds the lease gone; renewals find nothing held."""

    def __init__(self) -> None:
        super().__init__()
        self.recording = asyncio.Event()
        self.gate = asyncio.Event()

    async def renew_leases(
        self, leases: Sequence[tuple[JobId, LeaseToken]], lease_seconds: float
    ) -> dict[JobId, bool]:
        return {}  # as if another worker had taken every lease over

    async def complete(
        self, job_id: JobId, token: LeaseToken, result: object, *, steps: object = None
    ) -> None:
        self.recording.set()
        await self.gate.wait()
        raise errors.LeaseLost(job_id)


async def test_a_lease_lost_while_recording_is_a_warning_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = Registry()

    @registry.processor("quick")
    async def quick(ctx: JobContext) -> int:
        return 1

    caplog.set_level(logging.DEBUG)
    async with SlowToRecord() as store:
        await JobQueue(store, registry).enqueue("quick")
        settings = WorkerSettings(concurrency=1, lease_seconds=1.0, heartbeat_seconds=0.05)
        worker = Worker(store, registry, settings=settings)
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(store.recording.wait(), 5)
        # The renewal that finds the lease gone comes while the outcome is being recorded: it
        # is not a warning yet (usually that write succeeds: the renewal raced with it)...
        async with asyncio.timeout(5):
            while not any("while recording its outcome" in r.message for r in caplog.records):
                await asyncio.sleep(0.01)
        store.gate.set()
        # ...the refused write is, once, with its reason.
        await asyncio.wait_for(_logged(caplog, "lease_lost"), 5)
        assert not [r for r in caplog.records if getattr(r, "action", None) == "lease_given_up"]
        worker.stop()
        await asyncio.wait_for(task, 10)
    gc.collect()  # an exception nobody retrieved would be reported now, as an ERROR
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def _logged(caplog: pytest.LogCaptureFixture, action: str) -> None:
    while not any(getattr(r, "action", None) == action for r in caplog.records):
        await asyncio.sleep(0.01)
