"""The ``JobRepository`` port: domain operations every backend implements.

Operations taking a ``token`` are fenced: they raise ``LeaseLost``
unless the caller still holds the job's lease. Every state change writes its event in the same
transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import Event, EventBus
from ecosign_orchestrator.core.gates import CircuitPolicy, GateVerdict
from ecosign_orchestrator.core.job import EnqueueResult, Job, JobError, NewJob, Progress, StepRecord
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.transitions import EventDraft
from ecosign_orchestrator.core.types import JobId, JSONValue, LeaseToken


@dataclasses.dataclass(frozen=True, slots=True)
class StepSave:
    """A running job's unsaved step records, step events and outside calls, handed to the
    write that ends the run so they share its transaction (see ``complete``)."""

    steps: Sequence[StepRecord]
    events: Sequence[EventDraft] = ()
    calls: Sequence[CallRecord] = ()


class JobStore(Protocol):
    """Job operations: enqueue, claim, fenced updates by the lease holder, user actions."""

    async def enqueue(self, new: NewJob, *, max_attempts: int) -> EnqueueResult:
        """Insert a job, or return the active job holding ``new.dedupe_key``."""

    async def enqueue_many(self, batch: Sequence[tuple[NewJob, int]]) -> list[EnqueueResult]:
        """Enqueue ``(job, max_attempts)`` pairs in one transaction."""

    async def get(self, job_id: JobId) -> Job:
        """The job with this id, or :class:`JobNotFound`."""

    async def get_by_idempotency_key(self, key: str) -> Job | None:
        """The job created with idempotency ``key``, whatever its status."""

    async def ids_matching(self, short_id: str) -> list[JobId]:
        """Up to two ids starting or ending with ``short_id`` (8+ characters; else
        ``InvalidJob``): one means it names a job, two that it is ambiguous."""

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
        """Jobs newest first; ``before`` is a cursor (the last id of the previous page).

        ``dedupe_prefix`` selects jobs whose dedupe key starts with it (e.g. one document's flows).
        """

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

    async def renew_leases(
        self, leases: Sequence[tuple[JobId, LeaseToken]], lease_seconds: float
    ) -> dict[JobId, bool]:
        """Renew many leases at once (one statement where the backend allows): for each job
        whose lease ``token`` still holds, whether a cancel was requested. A job missing from
        the answer lost its lease."""

    async def heartbeat(self, job_id: JobId, token: LeaseToken, lease_seconds: float) -> bool:
        """Renew one lease; returns whether a cancel was requested (``LeaseLost`` if it is
        gone)."""

    async def save_progress(self, job_id: JobId, token: LeaseToken, progress: Progress) -> None:
        """Record progress (only the progress columns are written)."""

    async def save_steps(
        self,
        job_id: JobId,
        token: LeaseToken,
        steps: Sequence[StepRecord],
        events: Sequence[EventDraft] = (),
        calls: Sequence[CallRecord] = (),
    ) -> list[Event]:
        """Record the job's steps, their ``events`` and the outside ``calls`` made since the
        last save, in one transaction (fenced); the events as stored, in order."""

    async def complete(
        self,
        job_id: JobId,
        token: LeaseToken,
        result: JSONValue,
        *,
        steps: StepSave | None = None,
    ) -> None:
        """running -> completed. The hot path of every job: it writes and reads nothing back
        (``get`` reads the job); returning means the completion is committed. ``steps``: the
        run's last step save, written before the completion and fenced by the same token (in
        the same transaction where the backend can)."""

    async def fail(self, job_id: JobId, token: LeaseToken, error: JobError) -> Job:
        """running -> failed."""

    async def schedule_retry(
        self, job_id: JobId, token: LeaseToken, error: JobError, delay: float
    ) -> Job:
        """running -> retrying until ``now + delay``."""

    async def requeue(
        self, job_id: JobId, token: LeaseToken, *, delay: float, reason: str, message: str = ""
    ) -> Job:
        """running -> queued, refunding the attempt (a graceful release)."""

    async def wait(
        self,
        job_id: JobId,
        token: LeaseToken,
        *,
        delay: float,
        reason: str,
        deadline: datetime | None = None,
    ) -> Job:
        """running -> waiting for something outside the job until its next check, refunding
        the attempt (a snooze); ``job_waiting`` only when the wait begins or changes."""

    async def acknowledge_cancel(self, job_id: JobId, token: LeaseToken) -> Job:
        """running -> cancelled, after a cancel request."""

    async def cancel(self, job_id: JobId, *, actor: str | None = None) -> Job:
        """User cancel: waiting jobs end now; running ones get a request their worker obeys.
        ``actor`` (a token's name, ``cli:<user>``) is recorded in the event."""

    async def retry(self, job_id: JobId, *, actor: str | None = None) -> Job:
        """User retry of a failed or cancelled job: back to queued with attempts reset.
        ``actor`` is recorded in the event."""

    async def recover_expired(self, *, limit: int = 100) -> list[JobId]:
        """Return jobs whose lease expired to the queue (or fail them if attempts are spent)."""

    async def counts(self) -> dict[tuple[str, JobStatus], int]:
        """Number of jobs per (kind, status)."""

    async def oldest_active(self, *, limit: int = 1000) -> list[Job]:
        """The oldest active jobs (queued, running, retrying), oldest first."""


class EventLog(Protocol):
    """Reading the event log, and the in-process bus."""

    bus: EventBus

    async def events(
        self, *, after_id: int = 0, job_id: JobId | None = None, limit: int = 1000
    ) -> list[Event]:
        """Events after the event ``after_id`` (0: from the start), in commit order.

        A reader that passes back the id of the last event it got sees every event exactly
        once. One job's events are in id order; the whole log may come out of id order where
        transactions commit out of it (PostgreSQL), never with a gap.
        """

    async def last_event_id(self) -> int:
        """Where a "from now on" reader starts: the last event in commit order (0: none)."""

    async def calls(self, job_id: JobId, *, limit: int = 1000) -> list[CallRecord]:
        """A job's call log, oldest first."""


class SchemaManager(Protocol):
    """Schema versioning."""

    async def migrate(self) -> list[str]:
        """Apply pending migrations (idempotent, callers serialised); returns applied names."""

    async def schema_ready(self) -> bool:
        """Whether every known migration is applied."""


class Lifecycle(Protocol):
    """Open/close and the wake-up hook."""

    async def open(self) -> None:
        """Acquire connections."""

    async def close(self) -> None:
        """Release connections."""

    async def wait_for_jobs(self, timeout: float) -> None:
        """Return when new work may be ready, or after ``timeout`` seconds.

        Polling backends just sleep (and wake on in-process enqueues); PostgreSQL waits on NOTIFY.
        """

    async def __aenter__(self) -> Self:
        """Open."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close."""


class Maintenance(Protocol):
    """Retention and health checks."""

    async def prune(self, *, status: JobStatus, finished_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` jobs in ``status`` (terminal) finished before the cutoff, with
        their events, oldest first, in one transaction; returns how many."""

    async def count_prunable(self, *, status: JobStatus, finished_before: datetime) -> int:
        """How many jobs :meth:`prune` would delete, all batches together."""

    async def probe_write(self) -> None:
        """Commit a tiny write, or raise ``RepositoryError``: proves the store accepts writes
        (not only reads) for readiness checks."""


class Gates(Protocol):
    """Fleet-wide concurrency slots and circuit breakers (see ``core/gates.py``)."""

    async def acquire_slot(self, key: str, job_id: JobId, token: LeaseToken, limit: int) -> bool:
        """Take one of ``limit`` slots of ``key`` for this running job (False: none free)."""

    async def release_slot(self, key: str, job_id: JobId) -> None:
        """Give the job's slot of ``key`` back."""

    async def slots_in_use(self) -> dict[str, int]:
        """Slots held per key by running jobs."""

    async def take_rate(self, key: str, per: int, seconds: float) -> float:
        """Let one call to ``key`` through if fewer than ``per`` went in the last ``seconds``
        (0), else how long until one may (nothing recorded)."""

    async def circuit_gate(self, key: str, policy: CircuitPolicy) -> GateVerdict:
        """May a call to ``key`` go now (closed, or this caller takes the half-open probe)?"""

    async def circuit_failure(
        self, key: str, policy: CircuitPolicy, retry_after: float | None
    ) -> float:
        """Count one transient failure of ``key``; seconds its circuit is now open (0: closed)."""

    async def circuit_success(self, key: str) -> None:
        """A call to ``key`` succeeded: its circuit closes and its failures reset."""

    async def circuits(self) -> dict[str, tuple[int, float]]:
        """Per key: consecutive failures, and seconds its circuit stays open (0: not open)."""


@runtime_checkable
class JobRepository(JobStore, EventLog, SchemaManager, Lifecycle, Maintenance, Gates, Protocol):
    """Everything the engine needs from a backend."""

    #: Human-readable backend name (``memory``, ``sqlite``, ``postgresql``).
    backend: str
