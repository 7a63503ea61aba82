"""The domain operations written once over a small transactional interface.

A backend supplies :class:`Tx` (load/insert/update a job row, append an event, select candidate
rows) inside one database transaction; :class:`TransactionalRepository` implements every
``JobRepository`` operation on top of it with the pure rules of :mod:`..transitions`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from ecosign_orchestrator.core import errors, ids, transitions
from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import Event, EventBus
from ecosign_orchestrator.core.job import (
    EnqueueResult,
    Job,
    JobError,
    NewJob,
    Progress,
    StepRecord,
    utcnow,
)
from ecosign_orchestrator.core.repository.protocol import StepSave
from ecosign_orchestrator.core.repository.repeats import repeated_job
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.transitions import EventDraft
from ecosign_orchestrator.core.types import JobId, JSONValue, LeaseToken

logger = logging.getLogger(__name__)


class Tx(Protocol):
    """What a backend does inside one transaction."""

    async def load(self, job_id: JobId) -> Job:
        """The job row, locked for update where the backend has row locks."""

    async def fetch(self, job_id: JobId) -> Job:
        """The job row without a lock (reads must never make a claim skip the row)."""

    async def find_holder(self, dedupe_key: str, *, reuse_completed: bool) -> Job | None:
        """The newest job holding ``dedupe_key`` that a repeat returns: an active one, or (with
        ``reuse_completed``) a completed one."""

    async def find_idempotent(self, key: str) -> Job | None:
        """The job created with idempotency ``key``, whatever its status."""

    async def insert(self, job: Job) -> None:
        """Insert a new job row."""

    async def update(self, job: Job) -> None:
        """Write a job row back."""

    async def add_event(self, draft: EventDraft) -> Event:
        """Append an event row."""

    async def insert_many(self, jobs: Sequence[Job]) -> None:
        """Insert new job rows (none holding a key: they cannot conflict)."""

    async def add_events(self, drafts: Sequence[EventDraft]) -> list[Event]:
        """Append event rows, in order."""

    async def expired(self, *, limit: int, now: datetime) -> list[Job]:
        """Running jobs whose lease expired, locked (skipping locked rows)."""

    async def ready(self) -> None:
        """Jobs became ready: tell other processes (PostgreSQL: NOTIFY, delivered at commit)."""


class TransactionalRepository(abc.ABC):
    """Implements the ``JobRepository`` operations over :meth:`_transaction`."""

    backend = "abstract"

    def __init__(self) -> None:
        self.bus = EventBus()
        self._wakeup = asyncio.Event()

    # -- backend hooks -------------------------------------------------------------------------

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractAsyncContextManager[Tx]:
        """One database transaction: commit on success, roll back on error."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire connections."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _next_run_at(self) -> datetime | None:
        """When the next delayed job becomes due (None: none is waiting)."""
        return None

    async def wait_for_jobs(self, timeout: float) -> None:
        """Sleep until work may be ready: a wake-up, the next due time, or ``timeout``.

        In-process enqueues wake at once; other processes are seen by polling (PostgreSQL adds
        LISTEN/NOTIFY, SQLite watches the file's commit counter). Capping the sleep at the next
        ``run_at`` makes delayed jobs start on time.
        """
        await self._woken(await self._capped(timeout))

    async def _capped(self, timeout: float) -> float:
        """``timeout``, shortened to the next delayed job's due time."""
        try:
            # Shielded: a waiter cancelled because a slot freed must not cancel the query
            # (psycopg would open a connection to the server just to send the cancel request).
            next_run_at = await asyncio.shield(self._next_run_at())
        except errors.RepositoryError:
            next_run_at = None
        if next_run_at is not None:
            due_in = (next_run_at - utcnow()).total_seconds()
            timeout = min(timeout, max(due_in, 0.0) + 0.005)
        logger.debug("waiting up to %.3fs for work", timeout, extra={"action": "idle_wait"})
        return timeout

    async def _woken(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for an in-process wake-up; whether one came."""
        woken = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wakeup.wait()
                woken = True
        self._wakeup.clear()
        return woken

    def _notify_ready(self) -> None:
        """Wake idle workers in this process (PostgreSQL adds NOTIFY for the others)."""
        self._wakeup.set()

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[tuple[Tx, list[Event]]]:
        """A transaction whose events are published to the bus after commit."""
        published: list[Event] = []
        async with self._transaction() as tx:
            yield tx, published
        if published:
            self.bus.publish(published)

    async def _apply(self, job_id: JobId, change: Change, *, ready: bool = False) -> Job:
        async with self._writing() as (tx, published):
            job = await tx.load(job_id)
            new, draft = change(job, utcnow())
            await tx.update(new)
            if draft is not None:
                published.append(await tx.add_event(draft))
            if ready:
                await tx.ready()
        if ready:
            self._notify_ready()
        return new

    # -- operations ----------------------------------------------------------------------------

    async def enqueue(self, new: NewJob, *, max_attempts: int) -> EnqueueResult:
        """Insert a job, or return the active job holding ``new.dedupe_key``."""
        try:
            async with self._writing() as (tx, published):
                existing = await repeated_job(tx, new)
                if existing is not None:
                    return EnqueueResult(job=existing, created=False)
                job, draft = transitions.new_job(
                    new, job_id=ids.new_job_id(), now=utcnow(), max_attempts=max_attempts
                )
                await tx.insert(job)
                published.append(await tx.add_event(draft))
                # Delayed jobs too: an idle worker wakes, finds nothing due yet, and caps its
                # next sleep at this job's run_at (else it sleeps out its whole poll interval).
                await tx.ready()
        except errors.DuplicateJob:
            # A concurrent enqueue with the same key committed first: return its job.
            async with self._transaction() as tx:
                winner = await repeated_job(tx, new)
            if winner is None:  # it already finished: enqueue again
                return await self.enqueue(new, max_attempts=max_attempts)
            return EnqueueResult(job=winner, created=False)
        self._notify_ready()
        return EnqueueResult(job=job, created=True)

    async def enqueue_many(self, batch: Sequence[tuple[NewJob, int]]) -> list[EnqueueResult]:
        """Enqueue ``(job, max_attempts)`` pairs in one transaction (dedupe keys honoured)."""
        try:
            results: list[EnqueueResult] = []
            async with self._writing() as (tx, published):
                now = utcnow()
                # Jobs holding no key cannot collide: written in bulk (one round trip on
                # PostgreSQL); keyed ones are looked up and written one by one.
                fresh: list[tuple[Job, EventDraft]] = []
                for new, max_attempts in batch:
                    existing = None if new.keyless else await repeated_job(tx, new)
                    if existing is not None:
                        results.append(EnqueueResult(job=existing, created=False))
                        continue
                    job, draft = transitions.new_job(
                        new, job_id=ids.new_job_id(), now=now, max_attempts=max_attempts
                    )
                    if new.keyless:
                        fresh.append((job, draft))
                    else:
                        await tx.insert(job)
                        published.append(await tx.add_event(draft))
                    results.append(EnqueueResult(job=job, created=True))
                await tx.insert_many([job for job, _ in fresh])
                published.extend(await tx.add_events([draft for _, draft in fresh]))
                await tx.ready()
        except errors.DuplicateJob:
            # A concurrent enqueue took one of the keys: fall back to one at a time.
            return [await self.enqueue(new, max_attempts=m) for new, m in batch]
        self._notify_ready()
        return results

    async def get(self, job_id: JobId) -> Job:
        """The job with this id, or :class:`JobNotFound`."""
        async with self._transaction() as tx:
            return await tx.fetch(job_id)

    async def get_by_idempotency_key(self, key: str) -> Job | None:
        """The job created with idempotency ``key``, whatever its status."""
        async with self._transaction() as tx:
            return await tx.find_idempotent(key)

    async def claim(
        self,
        *,
        worker_id: str,
        kinds: Sequence[str],
        limit: int,
        lease_seconds: float,
        queues: Sequence[str] | None = None,
    ) -> list[Job]:
        """Atomically take up to ``limit`` ready jobs (priority desc, then ``run_at``)."""
        if limit <= 0 or not kinds:
            return []
        return await self._claim(
            worker_id=worker_id,
            kinds=kinds,
            limit=limit,
            lease_seconds=lease_seconds,
            queues=queues,
        )

    @abc.abstractmethod
    async def _claim(
        self,
        *,
        worker_id: str,
        kinds: Sequence[str],
        limit: int,
        lease_seconds: float,
        queues: Sequence[str] | None,
    ) -> list[Job]:
        """Take up to ``limit`` (>= 1) ready jobs in one transaction; each backend locks its way
        and applies :func:`claim_jobs`."""

    async def _lease_lost(self, job_id: JobId) -> errors.OrchestratorError:
        """Why a fenced write matched no row: an unknown id, or a lost lease."""
        try:
            await self.get(job_id)
        except errors.JobNotFound as exc:
            return exc
        return errors.LeaseLost(job_id)

    # The three hot-path writes of a running job (heartbeat, progress, steps) touch only their
    # own columns; the SQL backends override them with one fenced statement each.

    async def heartbeat(self, job_id: JobId, token: LeaseToken, lease_seconds: float) -> bool:
        """Renew one lease (``renew_leases`` of one); ``LeaseLost`` if it is gone."""
        held = await self.renew_leases([(job_id, token)], lease_seconds)
        if job_id not in held:
            raise await self._lease_lost(job_id)
        return held[job_id]

    async def renew_leases(
        self, leases: Sequence[tuple[JobId, LeaseToken]], lease_seconds: float
    ) -> dict[JobId, bool]:
        """Renew many leases in one transaction (the SQL backends: one statement)."""
        held: dict[JobId, bool] = {}
        if not leases:
            return held
        async with self._transaction() as tx:
            now = utcnow()
            for job_id, token in leases:
                try:
                    job = await tx.load(job_id)
                    renewed = transitions.renew(
                        job, token=token, now=now, lease_seconds=lease_seconds
                    )
                except (errors.LeaseLost, errors.JobNotFound):
                    continue
                await tx.update(renewed)
                held[job_id] = renewed.cancel_requested
        return held

    async def save_progress(self, job_id: JobId, token: LeaseToken, progress: Progress) -> None:
        """Record progress."""
        await self._apply(
            job_id,
            lambda job, now: (
                transitions.with_progress(job, token=token, now=now, progress=progress),
                None,
            ),
        )

    async def save_steps(
        self,
        job_id: JobId,
        token: LeaseToken,
        steps: Sequence[StepRecord],
        events: Sequence[EventDraft] = (),
        calls: Sequence[CallRecord] = (),
    ) -> list[Event]:
        """Record the job's steps and their events (a backend with a call log overrides this to
        keep ``calls`` too)."""
        if calls:
            raise NotImplementedError(f"{type(self).__name__} keeps no call log")
        async with self._writing() as (tx, published):
            job = await tx.load(job_id)
            now = utcnow()
            await tx.update(transitions.with_steps(job, token=token, now=now, steps=tuple(steps)))
            for draft in events:
                published.append(await tx.add_event(draft))
        return published

    async def complete(
        self,
        job_id: JobId,
        token: LeaseToken,
        result: JSONValue,
        *,
        steps: StepSave | None = None,
    ) -> None:
        """running -> completed (after the run's last step save, when there is one)."""
        if steps is not None:
            await self.save_steps(job_id, token, steps.steps, steps.events, steps.calls)
        await self._apply(
            job_id, lambda job, now: transitions.complete(job, token=token, now=now, result=result)
        )

    async def fail(self, job_id: JobId, token: LeaseToken, error: JobError) -> Job:
        """running -> failed."""
        return await self._apply(
            job_id, lambda job, now: transitions.fail(job, token=token, now=now, error=error)
        )

    async def schedule_retry(
        self, job_id: JobId, token: LeaseToken, error: JobError, delay: float
    ) -> Job:
        """running -> retrying until ``now + delay``."""
        return await self._apply(
            job_id,
            lambda job, now: transitions.schedule_retry(
                job, token=token, now=now, error=error, delay=delay
            ),
        )

    async def requeue(
        self, job_id: JobId, token: LeaseToken, *, delay: float, reason: str, message: str = ""
    ) -> Job:
        """running -> queued, refunding the attempt."""
        return await self._apply(
            job_id,
            lambda job, now: transitions.requeue(
                job, token=token, now=now, delay=delay, reason=reason, message=message
            ),
            ready=delay <= 0,
        )

    async def wait(
        self,
        job_id: JobId,
        token: LeaseToken,
        *,
        delay: float,
        reason: str,
        deadline: datetime | None = None,
    ) -> Job:
        """running -> waiting until ``now + delay``, refunding the attempt (a snooze)."""
        return await self._apply(
            job_id,
            lambda job, now: transitions.wait(
                job, token=token, now=now, delay=delay, reason=reason, deadline=deadline
            ),
            ready=delay <= 0,
        )

    async def acknowledge_cancel(self, job_id: JobId, token: LeaseToken) -> Job:
        """running -> cancelled."""
        return await self._apply(
            job_id, lambda job, now: transitions.acknowledge_cancel(job, token=token, now=now)
        )

    async def cancel(self, job_id: JobId, *, actor: str | None = None) -> Job:
        """User cancel (``actor``: who, recorded in the event)."""
        return await self._apply(
            job_id, lambda job, now: transitions.cancel(job, now=now, actor=actor)
        )

    async def retry(self, job_id: JobId, *, actor: str | None = None) -> Job:
        """User retry of a failed or cancelled job.

        Refused with ``DuplicateJob`` while another active job holds the same dedupe key (for a
        document flow: a newer flow for the same document and intent is running).
        """
        async with self._writing() as (tx, published):
            job = await tx.load(job_id)
            if job.dedupe_key is not None:
                holder = await tx.find_holder(job.dedupe_key, reuse_completed=False)
                if holder is not None and holder.id != job.id:
                    raise errors.DuplicateJob(job.dedupe_key, holder.id)
            new, draft = transitions.manual_retry(job, now=utcnow(), actor=actor)
            await tx.update(new)
            published.append(await tx.add_event(draft))
            await tx.ready()
        self._notify_ready()
        return new

    async def recover_expired(self, *, limit: int = 100) -> list[JobId]:
        """Return expired-lease jobs to the queue (or fail them when their attempts are spent)."""
        recovered: list[JobId] = []
        async with self._writing() as (tx, published):
            now = utcnow()
            for job in await tx.expired(limit=limit, now=now):
                # The backend judged the lease expired (PostgreSQL by its own clock): do not let
                # a few milliseconds of skew between clocks undo that judgement.
                new, draft = transitions.recover(job, now=max(now, job.lease_expires_at or now))
                await tx.update(new)
                published.append(await tx.add_event(draft))
                recovered.append(job.id)
                if new.status is JobStatus.QUEUED:
                    await tx.ready()
                logger.warning(
                    "lease of job %s (worker %s) expired: now %s",
                    job.id,
                    job.lease_owner,
                    new.status.value,
                    extra={"action": "lease_recovered", "job_id": job.id, "kind": job.kind},
                )
        if recovered:
            self._notify_ready()
        return recovered


class Change(Protocol):
    """A pure state change: ``(job, now) -> (new job, event or None)``."""

    def __call__(self, job: Job, now: datetime, /) -> tuple[Job, EventDraft | None]: ...


def claim_jobs(
    jobs: Sequence[Job], *, now: datetime, worker_id: str, lease_seconds: float
) -> list[tuple[Job, EventDraft | None]]:
    """Claim each ready job with its own fresh lease token (the rule is ``transitions.claim``)."""
    return [
        transitions.claim(
            job,
            now=now,
            worker_id=worker_id,
            token=ids.new_lease_token(),
            lease_seconds=lease_seconds,
        )
        for job in jobs
    ]
