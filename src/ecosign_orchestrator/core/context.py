"""``JobContext``: what a running job can do (read its job, report progress and steps, snooze,
see cancellation), every write fenced by the job's lease token."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import EventType
from ecosign_orchestrator.core.gates import CircuitPolicy, ClosedCircuits, GateVerdict
from ecosign_orchestrator.core.job import Job, JobError, Progress, StepRecord, StepStatus, utcnow
from ecosign_orchestrator.core.observe import Instruments, NullInstruments, NullTracer, Span, Tracer
from ecosign_orchestrator.core.repository.protocol import StepSave
from ecosign_orchestrator.core.transitions import EventDraft
from ecosign_orchestrator.core.types import JSONDict, LeaseToken

if TYPE_CHECKING:
    from ecosign_orchestrator.core.repository.protocol import JobRepository

logger = logging.getLogger(__name__)

_FINISHED = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED, StepStatus.FAILED})
#: Step records are written in batches: a change waits up to ``DEFER_SECONDS`` for the ones
#: that follow (a fast flow's seven steps share a write or two instead of fifteen), and the
#: run's outcome writes whatever is pending. Each record keeps the time it happened; readers see
#: it at most ``DEFER_SECONDS`` later. A run that crashes inside the window loses only records it
#: can see again: the next run re-plans from the state the steps changed, and their calls are
#: idempotent.
DEFER_SECONDS = 0.2
_ERRORED = frozenset({StepStatus.RETRYING, StepStatus.FAILED})

#: The event each step status emits (a planned, pending step emits none).
STEP_EVENTS: dict[StepStatus, EventType] = {
    StepStatus.RUNNING: EventType.STEP_STARTED,
    StepStatus.SUCCEEDED: EventType.STEP_SUCCEEDED,
    StepStatus.SKIPPED: EventType.STEP_SKIPPED,
    StepStatus.RETRYING: EventType.STEP_RETRYING,
    StepStatus.FAILED: EventType.STEP_FAILED,
    StepStatus.WAITING: EventType.STEP_WAITING,
}


class JobContext:
    """What a running job can do: read its job, report progress and steps, snooze, see cancellation.

    Writes are fenced by the lease token: if the lease was lost they raise ``LeaseLost``.
    """

    def __init__(
        self,
        job: Job,
        repository: JobRepository,
        *,
        worker_id: str = "",
        progress_interval: float = 0.5,
        instruments: Instruments | None = None,
        tracer: Tracer | None = None,
        circuits: ClosedCircuits | None = None,
        lease_trusted: Callable[[], bool] | None = None,
    ) -> None:
        if job.lease_token is None:
            raise errors.LeaseLost(job.id)
        #: Whether the worker still trusts this job's lease (None: run alone, always).
        self._lease_trusted = lease_trusted
        self.job = job
        self.worker_id = worker_id
        self._repository = repository
        self._token: LeaseToken = job.lease_token
        self._progress_interval = progress_interval
        self._last_progress_write = float("-inf")
        self._pending_progress: Progress | None = None
        self._steps: dict[str, StepRecord] = {s.name: s for s in job.steps}
        self._steps_dirty = False
        #: Step changes made so far (a save knows whether more came while it was written).
        self._changes = 0
        #: One save at a time (a deferred save and a direct one must not send the same events).
        self._save_lock = asyncio.Lock()
        self._deferred: asyncio.TimerHandle | None = None
        self._closed = False
        self._background: set[asyncio.Future[None]] = set()
        #: Step events and outside calls not stored yet (kept across a store outage, written
        #: with the next save).
        self._step_events: list[EventDraft] = []
        self._calls: list[CallRecord] = []
        self._instruments: Instruments = instruments or NullInstruments()
        self._tracer: Tracer = tracer or NullTracer()
        #: Shared by the worker's jobs (a fresh one per job when run alone).
        self._circuits = circuits or ClosedCircuits()
        self._step_clock: dict[str, float] = {}
        self._step_spans: dict[str, Span] = {}
        #: Set when a user asked to cancel this job; the worker also cancels the processor task.
        self.cancelled = asyncio.Event()
        self.log = logging.LoggerAdapter(
            logger, {"job_id": job.id, "kind": job.kind, "attempt": job.attempts}
        )

    @property
    def repository(self) -> JobRepository:
        """The job store, for processors that submit or inspect other jobs (schedulers,
        reconciliation scans). This job's own writes go through the methods here."""
        return self._repository

    @property
    def payload(self) -> JSONDict:
        """The job's payload."""
        return self.job.payload

    @property
    def attempt(self) -> int:
        """This run's attempt number (1-based)."""
        return self.job.attempts

    @property
    def steps(self) -> dict[str, StepRecord]:
        """The steps recorded so far, by name (including those of earlier runs)."""
        return dict(self._steps)

    # -- progress ------------------------------------------------------------------------------

    async def progress(self, fraction: float | None, message: str = "") -> None:
        """Report progress; storage writes are throttled to one per ``progress_interval``."""
        if fraction is not None and not 0.0 <= fraction <= 1.0:
            raise ValueError("progress fraction must be within [0, 1]")
        self._pending_progress = Progress(fraction=fraction, message=message)
        now = time.monotonic()
        if now - self._last_progress_write >= self._progress_interval:
            await self.flush_progress()

    async def flush_progress(self) -> None:
        """Write the latest progress now, if any is unwritten (a store outage only delays it)."""
        pending = self._pending_progress
        if pending is None:
            return
        self._last_progress_write = time.monotonic()
        try:
            await self._repository.save_progress(self.job.id, self._token, pending)
        except errors.RepositoryError as exc:
            self.log.warning(
                "progress not saved yet (%s)", exc, extra={"action": "progress_deferred"}
            )
            return
        if self._pending_progress is pending:
            self._pending_progress = None

    async def flush(self) -> None:
        """Write unsaved steps and progress; raises if the store is still unreachable."""
        await self._write_steps()
        await self.write_progress()

    async def write_progress(self) -> None:
        """Write unsaved progress; raises if the store is still unreachable."""
        pending = self._pending_progress
        if pending is not None:
            await self._repository.save_progress(self.job.id, self._token, pending)
            self._pending_progress = None

    # -- steps ---------------------------------------------------------------------------------

    async def plan_steps(self, names: Sequence[str]) -> None:
        """Declare the steps of this job in order (existing records are kept)."""
        ordered = {
            n: self._steps.get(n) or StepRecord(name=n, status=StepStatus.PENDING) for n in names
        }
        ordered.update({n: s for n, s in self._steps.items() if n not in ordered})
        self._steps = ordered
        self._defer_save()

    async def record_step(
        self,
        name: str,
        status: StepStatus,
        *,
        message: str = "",
        error: JobError | None = None,
        data: JSONDict | None = None,
        quiet: bool = False,
    ) -> StepRecord:
        """Record that step ``name`` moved to ``status``; RUNNING counts one more attempt.
        ``quiet``: update the record without an event (another check of a wait that found
        nothing new: a long wait must not bury the log)."""
        now = utcnow()
        previous = self._steps.get(name) or StepRecord(name=name, status=StepStatus.PENDING)
        running = status is StepStatus.RUNNING
        record = dataclasses.replace(
            previous,
            status=status,
            attempts=previous.attempts + 1 if running else previous.attempts,
            started_at=previous.started_at or (now if running else None),
            finished_at=now if status in _FINISHED else None,
            updated_at=now,
            message=message,
            error=error if error is not None else (None if running else previous.error),
            data={**previous.data, **(data or {})},
        )
        self._steps[name] = record
        self._observe_step(record)
        if status in STEP_EVENTS and not quiet:
            self._step_events.append(self._step_event(record, now))
        self._defer_save()
        return record

    def _step_event(self, record: StepRecord, at: datetime) -> EventDraft:
        data: JSONDict = {"step": record.name, "attempt": record.attempts}
        if record.message:
            data["message"] = record.message
        if record.error is not None and record.status in _ERRORED:
            data["error"] = record.error.to_json()
        if record.status is StepStatus.WAITING and record.data:
            data["data"] = record.data
        return EventDraft(
            job_id=self.job.id,
            type=STEP_EVENTS[record.status],
            at=at,
            attempt=self.job.attempts,
            data=data,
        )

    def _observe_step(self, record: StepRecord) -> None:
        """Time and trace each attempt of a step, from RUNNING to the status that ends it."""
        name, status = record.name, record.status
        if status is StepStatus.RUNNING:
            self._step_clock[name] = time.monotonic()
            self._step_spans[name] = self._tracer.step(
                self.job.id, self.job.kind, name, record.attempts
            )
        elif status is not StepStatus.PENDING and name in self._step_clock:
            seconds = time.monotonic() - self._step_clock.pop(name)
            self._instruments.step_finished(self.job.kind, name, status.value, seconds)
            span = self._step_spans.pop(name, None)
            if span is not None:
                span.end(status.value, record.error.message if record.error else "")

    def trace_headers(self) -> dict[str, str]:
        """Trace-context headers (W3C ``traceparent``) for an outside call made now: they name
        the step attempt in progress, so the called service's logs join this job's trace
        (empty when tracing is off)."""
        spans = list(self._step_spans.values())
        return spans[-1].headers() if spans else {}

    async def step_started(self, name: str, message: str = "") -> StepRecord:
        """Step ``name`` is being executed (one more attempt)."""
        return await self.record_step(name, StepStatus.RUNNING, message=message)

    async def step_skipped(self, name: str, reason: str) -> StepRecord:
        """Step ``name`` is not needed."""
        return await self.record_step(name, StepStatus.SKIPPED, message=reason)

    async def step_succeeded(
        self, name: str, message: str = "", data: JSONDict | None = None
    ) -> StepRecord:
        """Step ``name`` is done."""
        return await self.record_step(name, StepStatus.SUCCEEDED, message=message, data=data)

    async def step_failed(
        self, name: str, error: JobError, *, retrying: bool = False
    ) -> StepRecord:
        """Step ``name`` failed (for good, or ``retrying`` after a backoff)."""
        status = StepStatus.RETRYING if retrying else StepStatus.FAILED
        return await self.record_step(name, status, message=error.message, error=error)

    async def step_waiting(
        self, name: str, message: str, data: JSONDict | None = None
    ) -> StepRecord:
        """Step ``name`` waits for an asynchronous confirmation."""
        return await self.record_step(name, StepStatus.WAITING, message=message, data=data)

    async def _write_steps(self) -> None:
        """Write the steps, their events and calls if anything is unsaved (raises if the store
        refuses). The full list is written each time, so a save missed during a store outage is
        caught up by the next one, or by the worker's final flush."""
        self._cancel_deferred()
        async with self._save_lock:
            if not self._steps_dirty and not self._calls:
                return  # another save took it meanwhile
            # Snapshots: a step recorded while this save is in flight is appended to the
            # pending lists and must stay pending, not be counted as written.
            events, calls, changes = list(self._step_events), list(self._calls), self._changes
            await self._repository.save_steps(
                self.job.id, self._token, list(self._steps.values()), events, calls
            )
            # What this save wrote is no longer pending; changes made during it still are.
            self._steps_dirty = self._changes != changes
            self._step_events = self._step_events[len(events) :]
            self._calls = self._calls[len(calls) :]
        if self._steps_dirty and self._deferred is None and not self._closed:
            self._arm_deferred()  # a deferred save skipped while this one ran: it is due

    @contextlib.asynccontextmanager
    async def last_save(self) -> AsyncIterator[StepSave | None]:
        """The run is over: what its steps have unsaved (None: nothing), for the write that
        ends the job to carry in its transaction; counted as saved once that write returns."""
        # No deferred save from now on; one already being written finishes first (the lock).
        self._closed = True
        self._cancel_deferred()
        async with self._save_lock:
            if not self._steps_dirty and not self._calls:
                yield None
                return
            events, calls = list(self._step_events), list(self._calls)
            yield StepSave(list(self._steps.values()), events, calls)
            self._steps_dirty = False
            self._step_events = self._step_events[len(events) :]
            self._calls = self._calls[len(calls) :]

    def _defer_save(self) -> None:
        """Write the steps with the next write, or in ``DEFER_SECONDS`` at the latest."""
        self._steps_dirty = True
        self._changes += 1
        if self._deferred is None:
            self._arm_deferred()

    def _arm_deferred(self) -> None:
        loop = asyncio.get_running_loop()
        self._deferred = loop.call_later(DEFER_SECONDS, self._save_deferred)

    def _save_deferred(self) -> None:
        self._deferred = None
        if self._save_lock.locked():
            # A save is being written (waiting for the store, when it is busy): it takes what
            # is pending next, instead of one more task per interval queueing behind it.
            return
        task = asyncio.ensure_future(self._save_steps_quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _save_steps_quietly(self) -> None:
        """The deferred save: the job goes on whatever it meets (the worker learns of a lost
        lease from its own writes; an unreachable store is retried by the next save)."""
        try:
            await self._write_steps()
        except errors.LeaseLost:
            pass
        except errors.RepositoryError as exc:
            self.log.warning("steps not saved yet (%s)", exc, extra={"action": "steps_deferred"})

    def _cancel_deferred(self) -> None:
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None

    def close(self) -> None:
        """The run is over: no deferred save may start after this."""
        self._closed = True
        self._cancel_deferred()
        for task in self._background:
            task.cancel()

    # -- fleet-wide gates (core/gates.py) ------------------------------------------------------

    async def take_slot(self, key: str, limit: int) -> bool:
        """Take one of ``limit`` slots of ``key`` (False: all taken; snooze and look again)."""
        return await self._repository.acquire_slot(key, self.job.id, self._token, limit)

    async def give_slot(self, key: str) -> None:
        """Give the slot of ``key`` back."""
        await self._repository.release_slot(key, self.job.id)

    async def take_rate(self, key: str, per: int, seconds: float) -> float:
        """Let this job's call to ``key`` through under ``per`` calls per ``seconds`` (0), or
        how long to wait."""
        return await self._repository.take_rate(key, per, seconds)

    async def circuit_gate(self, key: str, policy: CircuitPolicy) -> GateVerdict:
        """May this job call ``key`` now (its circuit closed, or this job takes the probe)?"""
        if not policy.enabled:
            return GateVerdict(0.0)
        return await self._circuits.gate(
            key, policy.cache_seconds, lambda: self._repository.circuit_gate(key, policy)
        )

    async def circuit_failure(
        self, key: str, policy: CircuitPolicy, retry_after: float | None
    ) -> float:
        """Count a transient failure of ``key``: seconds its circuit is now open (0: closed)."""
        if not policy.enabled:
            return 0.0
        self._circuits.forget(key)
        return await self._repository.circuit_failure(key, policy, retry_after)

    async def circuit_success(self, key: str) -> None:
        """A call to ``key`` succeeded after failures: its circuit closes."""
        await self._repository.circuit_success(key)

    # -- outside calls -------------------------------------------------------------------------

    def ensure_lease(self) -> None:
        """Raise ``LeaseLost`` unless the job's lease is still this worker's, judged on the
        monotonic clock now. Processors call it right before every outside call (an Edge
        Function, a state read, a write-back, a subprocess): a worker that wakes after its lease
        is gone calls nothing."""
        if self._lease_trusted is not None and not self._lease_trusted():
            raise errors.LeaseLost(self.job.id)

    def record_call(self, call: CallRecord) -> None:
        """Add one outside call to the job's call log; it is written with the next step record
        (every call is followed by one: the step succeeded, waits, or failed)."""
        self._calls.append(call)

    # -- control -------------------------------------------------------------------------------

    def snooze(
        self, delay: float, reason: str = "", *, deadline: datetime | None = None
    ) -> NoReturn:
        """Wait ``delay`` seconds without spending an attempt, then run again: the job is
        ``waiting`` for ``reason`` (in an operator's words) meanwhile, until ``deadline`` at most
        (shown to operators; the processor enforces it)."""
        if delay < 0:
            raise ValueError("snooze delay must not be negative")
        raise errors.Snooze(delay, reason, deadline)

    @property
    def cancel_requested(self) -> bool:
        """Whether a user asked to cancel this job."""
        return self.cancelled.is_set()
