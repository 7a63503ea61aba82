"""Job events: the append-only log every transition writes, and an in-process subscription bus."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
from collections.abc import AsyncIterator
from datetime import datetime

from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.types import JobId, JSONDict


class EventType(enum.StrEnum):
    """Kinds of job event. The values are the stored strings."""

    #: Enqueued, or back in the queue (lease expired, released, manual retry):
    #: ``data.reason`` says which.
    JOB_QUEUED = "job_queued"
    #: Claimed by a worker; an attempt starts.
    JOB_STARTED = "job_started"
    #: Finished successfully.
    JOB_COMPLETED = "job_completed"
    #: Failed for good.
    JOB_FAILED = "job_failed"
    #: Failed transiently; will run again at ``data.run_at``.
    JOB_RETRYING = "job_retrying"
    #: Cancelled.
    JOB_CANCELLED = "job_cancelled"
    #: Waits for something outside it (``data.reason``, ``data.run_at``: the next check,
    #: ``data.deadline``). Written when a wait begins or what it waits for changes; a check
    #: that finds nothing new writes none.
    JOB_WAITING = "job_waiting"
    #: A user asked a running job to stop (``data.actor``: who, when known); its worker stops
    #: it at its next heartbeat (then ``job_cancelled``).
    JOB_CANCEL_REQUESTED = "job_cancel_requested"
    # A job's named steps (reported through JobContext), written with the step record in the
    # same transaction; ``data.step`` names the step, ``data.attempt`` counts its attempts.
    #: A step's attempt begins.
    STEP_STARTED = "step_started"
    #: A step is done.
    STEP_SUCCEEDED = "step_succeeded"
    #: A step is not needed (``data.message`` says why, e.g. already done per the state).
    STEP_SKIPPED = "step_skipped"
    #: A step failed transiently and will be tried again (``data.error``).
    STEP_RETRYING = "step_retrying"
    #: A step failed for good (``data.error``).
    STEP_FAILED = "step_failed"
    #: A step waits for an asynchronous confirmation (``data.data``: the step's own data, e.g.
    #: when it is checked next).
    STEP_WAITING = "step_waiting"


#: The events that end a job's run (a manual retry may start it again later).
TERMINAL_EVENTS = frozenset(
    {EventType.JOB_COMPLETED, EventType.JOB_FAILED, EventType.JOB_CANCELLED}
)

#: The event each target status emits.
EVENT_FOR_STATUS: dict[JobStatus, EventType] = {
    JobStatus.QUEUED: EventType.JOB_QUEUED,
    JobStatus.RUNNING: EventType.JOB_STARTED,
    JobStatus.COMPLETED: EventType.JOB_COMPLETED,
    JobStatus.FAILED: EventType.JOB_FAILED,
    JobStatus.RETRYING: EventType.JOB_RETRYING,
    JobStatus.CANCELLED: EventType.JOB_CANCELLED,
    JobStatus.WAITING: EventType.JOB_WAITING,
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One row of the event log. Resume a stream from the last id seen (see ``events()``)."""

    id: int
    job_id: JobId
    type: EventType
    at: datetime
    attempt: int
    data: JSONDict

    def to_json(self) -> JSONDict:
        """JSON form for APIs and the CLI."""
        return {
            "id": self.id,
            "job_id": self.job_id,
            "type": self.type.value,
            "at": self.at.isoformat(),
            "attempt": self.attempt,
            "data": self.data,
        }


class EventBus:
    """Fan-out of committed events to in-process listeners.

    Repositories publish after each commit; other processes read the log with ``events_since``.
    A slow subscriber does not block publishers: past ``maxsize`` queued events it is dropped
    and its iterator ends (it can resume from the log with the last id it saw).
    """

    def __init__(self, maxsize: int = 10_000) -> None:
        self._maxsize = maxsize
        self._subscribers: set[asyncio.Queue[Event | None]] = set()

    @property
    def listened(self) -> bool:
        """Whether anyone subscribes (a publisher may skip building events nobody reads)."""
        return bool(self._subscribers)

    def publish(self, events: list[Event]) -> None:
        """Deliver ``events`` to every subscriber (non-blocking)."""
        for queue in list(self._subscribers):
            for event in events:
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    self._subscribers.discard(queue)
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.put_nowait(None)
                    break

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """``async with bus.subscribe() as events: async for event in events: ...``"""
        queue: asyncio.Queue[Event | None] = asyncio.Queue(self._maxsize)
        self._subscribers.add(queue)
        try:
            yield Subscription(queue)
        finally:
            self._subscribers.discard(queue)


class Subscription:
    """Events delivered to one subscriber. Safe to wait on with a timeout (not a generator, so a
    cancelled wait does not close it)."""

    def __init__(self, queue: asyncio.Queue[Event | None]) -> None:
        self._queue = queue
        #: True once the bus dropped this subscriber for falling behind (read the log instead).
        self.dropped = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is None:  # dropped for falling behind: resume from the log
            raise StopAsyncIteration
        return event

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after ``timeout`` seconds (a dropped subscription just waits
        out the timeout, so a polling caller never spins)."""
        if self.dropped:
            await asyncio.sleep(timeout or 0)
            return None
        try:
            async with asyncio.timeout(timeout):
                return await anext(self)
        except TimeoutError:
            return None
        except StopAsyncIteration:
            self.dropped = True
            return None
