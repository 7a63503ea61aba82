"""In-memory backend: a real implementation of every operation, for unit tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from ecosign_orchestrator.core import errors, gates, transitions
from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import Event
from ecosign_orchestrator.core.gates import CircuitPolicy, GateVerdict
from ecosign_orchestrator.core.job import Job, StepRecord, utcnow
from ecosign_orchestrator.core.repository.base import TransactionalRepository, claim_jobs
from ecosign_orchestrator.core.repository.checks import check_limit, check_short_id, check_terminal
from ecosign_orchestrator.core.status import ACTIVE, CLAIMABLE, JobStatus
from ecosign_orchestrator.core.transitions import EventDraft
from ecosign_orchestrator.core.types import JobId, LeaseToken


class _MemoryTx:
    """Stages writes; :class:`MemoryRepository` applies them only if the block succeeds."""

    def __init__(self, repo: MemoryRepository) -> None:
        self._repo = repo
        self.jobs: dict[JobId, Job] = {}
        self.events: list[Event] = []

    async def load(self, job_id: JobId) -> Job:
        job = self.jobs.get(job_id) or self._repo.jobs.get(job_id)
        if job is None:
            raise errors.JobNotFound(job_id)
        return job

    async def fetch(self, job_id: JobId) -> Job:
        return await self.load(job_id)

    async def find_holder(self, dedupe_key: str, *, reuse_completed: bool) -> Job | None:
        reusable = ACTIVE | {JobStatus.COMPLETED} if reuse_completed else ACTIVE
        holders = [
            j
            for j in {**self._repo.jobs, **self.jobs}.values()
            if j.dedupe_key == dedupe_key and j.status in reusable
        ]
        return max(holders, key=lambda j: j.id, default=None)

    async def find_idempotent(self, key: str) -> Job | None:
        staged = [j for j in self.jobs.values() if j.idempotency_key == key]
        stored = [j for j in self._repo.jobs.values() if j.idempotency_key == key]
        return next(iter(staged + stored), None)

    async def insert(self, job: Job) -> None:
        self.jobs[job.id] = job

    async def update(self, job: Job) -> None:
        self.jobs[job.id] = job

    async def insert_many(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            await self.insert(job)

    async def add_events(self, drafts: Sequence[EventDraft]) -> list[Event]:
        return [await self.add_event(draft) for draft in drafts]

    async def add_event(self, draft: EventDraft) -> Event:
        event = draft.stored(self._repo.last_event_id_sync + len(self.events) + 1)
        self.events.append(event)
        return event

    async def claimable(
        self, *, kinds: Sequence[str], queues: Sequence[str] | None, limit: int, now: datetime
    ) -> list[Job]:
        ready = [
            j
            for j in self._repo.jobs.values()
            if j.kind in kinds
            and (queues is None or j.queue in queues)
            and transitions.is_claimable(j, now)
        ]
        ready.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        return ready[:limit]

    async def expired(self, *, limit: int, now: datetime) -> list[Job]:
        stale = [j for j in self._repo.jobs.values() if transitions.lease_expired(j, now)]
        return sorted(stale, key=lambda j: j.id)[:limit]

    async def ready(self) -> None:
        """Nothing to do: in-process waiters are woken after commit."""


class MemoryRepository(TransactionalRepository):
    """Jobs and events in memory; ``jobs``, ``event_log`` and :meth:`reset` help tests inspect."""

    backend = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.jobs: dict[JobId, Job] = {}
        self.event_log: list[Event] = []
        self.call_log: list[CallRecord] = []
        self.slots: dict[tuple[str, JobId], LeaseToken] = {}
        self.circuit_log: dict[str, gates.Circuit] = {}
        self.rate_hits: dict[str, list[float]] = {}
        self._call_seq = 0
        self._lock = asyncio.Lock()

    @property
    def last_event_id_sync(self) -> int:
        """Id of the newest event (0 when none)."""
        return self.event_log[-1].id if self.event_log else 0

    def reset(self) -> None:
        """Forget every job and event."""
        self.jobs.clear()
        self.event_log.clear()

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_MemoryTx]:
        async with self._lock:
            tx = _MemoryTx(self)
            yield tx
            self.jobs.update(tx.jobs)
            self.event_log.extend(tx.events)

    async def _next_run_at(self) -> datetime | None:
        now = utcnow()
        future = [j.run_at for j in self.jobs.values() if j.status in CLAIMABLE and j.run_at > now]
        return min(future, default=None)

    async def _claim(
        self,
        *,
        worker_id: str,
        kinds: Sequence[str],
        limit: int,
        lease_seconds: float,
        queues: Sequence[str] | None,
    ) -> list[Job]:
        claimed: list[Job] = []
        async with self._writing() as (tx, published):
            assert isinstance(tx, _MemoryTx)
            now = utcnow()
            ready = await tx.claimable(kinds=kinds, queues=queues, limit=limit, now=now)
            for new, draft in claim_jobs(
                ready, now=now, worker_id=worker_id, lease_seconds=lease_seconds
            ):
                await tx.update(new)
                if draft is not None:
                    published.append(await tx.add_event(draft))
                claimed.append(new)
        return claimed

    async def migrate(self) -> list[str]:
        """Nothing to migrate."""
        return []

    async def schema_ready(self) -> bool:
        """Always ready."""
        return True

    async def list_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] | None = None,
        kinds: Sequence[str] | None = None,
        dedupe_key: str | None = None,
        dedupe_prefix: str | None = None,
        before: JobId | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Jobs newest first."""
        check_limit(limit)
        rows = [
            j
            for j in self.jobs.values()
            if (statuses is None or j.status in statuses)
            and (kinds is None or j.kind in kinds)
            and (dedupe_key is None or j.dedupe_key == dedupe_key)
            and (dedupe_prefix is None or (j.dedupe_key or "").startswith(dedupe_prefix))
            and (before is None or j.id < before)
        ]
        rows.sort(key=lambda j: j.id, reverse=True)
        return rows[:limit]

    async def events(
        self, *, after_id: int = 0, job_id: JobId | None = None, limit: int = 1000
    ) -> list[Event]:
        """Events after ``after_id``, oldest first."""
        check_limit(limit)
        rows = [
            e for e in self.event_log if e.id > after_id and (job_id is None or e.job_id == job_id)
        ]
        return rows[:limit]

    async def ids_matching(self, short_id: str) -> list[JobId]:
        """Up to two ids starting or ending with ``short_id``."""
        value = check_short_id(short_id)
        return sorted(i for i in self.jobs if i.startswith(value) or i.endswith(value))[:2]

    async def last_event_id(self) -> int:
        """The newest event id (0 when none)."""
        return self.last_event_id_sync

    async def save_steps(
        self,
        job_id: JobId,
        token: LeaseToken,
        steps: Sequence[StepRecord],
        events: Sequence[EventDraft] = (),
        calls: Sequence[CallRecord] = (),
    ) -> list[Event]:
        """Record steps and events, then keep the calls (only once the write was accepted)."""
        stored = await super().save_steps(job_id, token, steps, events)
        attempt = self.jobs[job_id].attempts
        for call in calls:
            self._call_seq += 1
            kept = dataclasses.replace(
                call.storable(), id=self._call_seq, job_id=job_id, job_attempt=attempt
            )
            self.call_log.append(kept)
        return stored

    async def calls(self, job_id: JobId, *, limit: int = 1000) -> list[CallRecord]:
        """A job's call log, oldest first."""
        return [c for c in self.call_log if c.job_id == job_id][: check_limit(limit)]

    def _prunable(self, status: JobStatus, finished_before: datetime) -> list[Job]:
        check_terminal(status)
        rows = [
            j
            for j in self.jobs.values()
            if j.status is status and j.finished_at is not None and j.finished_at < finished_before
        ]
        return sorted(rows, key=lambda j: (j.finished_at or finished_before, j.id))

    async def prune(self, *, status: JobStatus, finished_before: datetime, limit: int) -> int:
        """Delete the oldest finished jobs in ``status`` and their events."""
        doomed = {j.id for j in self._prunable(status, finished_before)[: check_limit(limit)]}
        for job_id in doomed:
            del self.jobs[job_id]
        self.event_log[:] = [e for e in self.event_log if e.job_id not in doomed]
        self.call_log[:] = [c for c in self.call_log if c.job_id not in doomed]
        return len(doomed)

    async def count_prunable(self, *, status: JobStatus, finished_before: datetime) -> int:
        """How many jobs :meth:`prune` would delete."""
        return len(self._prunable(status, finished_before))

    async def probe_write(self) -> None:
        """Memory always accepts writes."""

    async def oldest_active(self, *, limit: int = 1000) -> list[Job]:
        """The oldest active jobs, oldest first."""
        active = [j for j in self.jobs.values() if j.status in ACTIVE]
        return sorted(active, key=lambda j: (j.created_at, j.id))[: check_limit(limit)]

    # -- gates ---------------------------------------------------------------------------------

    async def acquire_slot(self, key: str, job_id: JobId, token: LeaseToken, limit: int) -> bool:
        """Take a slot if fewer than ``limit`` other running jobs hold one."""
        held = sum(
            1
            for (k, other), held_token in self.slots.items()
            if k == key
            and other != job_id
            and (job := self.jobs.get(other)) is not None
            and job.status is JobStatus.RUNNING
            and job.lease_token == held_token
        )
        if held >= limit:
            return False
        self.slots[(key, job_id)] = token
        return True

    async def release_slot(self, key: str, job_id: JobId) -> None:
        """Give the slot back."""
        self.slots.pop((key, job_id), None)

    async def slots_in_use(self) -> dict[str, int]:
        """Slots held per key by running jobs."""
        used: dict[str, int] = {}
        for (key, job_id), token in self.slots.items():
            job = self.jobs.get(job_id)
            if job is not None and job.status is JobStatus.RUNNING and job.lease_token == token:
                used[key] = used.get(key, 0) + 1
        return used

    async def take_rate(self, key: str, per: int, seconds: float) -> float:
        """The sliding-window rule on this process's hits."""
        now = time.time()
        hits = [at for at in self.rate_hits.get(key, []) if at > now - seconds]
        wait = gates.rate_wait(len(hits), min(hits, default=None), now, per, seconds)
        if wait == 0:
            hits.append(now)
        self.rate_hits[key] = hits
        return wait

    async def circuit_gate(self, key: str, policy: CircuitPolicy) -> GateVerdict:
        """The gate rule on this process's circuit."""
        now = time.time()
        verdict = gates.gate(self.circuit_log.get(key), now, policy)
        if verdict.probe:
            circuit = self.circuit_log[key]
            probing = dataclasses.replace(circuit, probe_until=now + policy.probe_seconds)
            self.circuit_log[key] = probing
        return verdict

    async def circuit_failure(
        self, key: str, policy: CircuitPolicy, retry_after: float | None
    ) -> float:
        """Count a failure; seconds the circuit is open."""
        now = time.time()
        circuit = gates.after_failure(self.circuit_log.get(key), now, policy, retry_after)
        self.circuit_log[key] = circuit
        return gates.open_for(circuit, now)

    async def circuit_success(self, key: str) -> None:
        """Close the circuit."""
        self.circuit_log.pop(key, None)

    async def circuits(self) -> dict[str, tuple[int, float]]:
        """Failures and open seconds per key."""
        now = time.time()
        return {k: (c.failures, gates.open_for(c, now)) for k, c in self.circuit_log.items()}

    async def counts(self) -> dict[tuple[str, JobStatus], int]:
        """Jobs per (kind, status)."""
        result: dict[tuple[str, JobStatus], int] = {}
        for job in self.jobs.values():
            result[(job.kind, job.status)] = result.get((job.kind, job.status), 0) + 1
        return result
