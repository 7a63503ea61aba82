"""Following the event log: one tail for every reader (CLI ``--follow``/``--wait``, the SSE
stream, the live flow view, progress bars).

Events committed by this process arrive at once through the in-process bus; events of other
processes (other workers, other machines) are found by reading the log every ``poll_seconds``.
The log is the source of truth and the cursor is the event id, so a reader never misses or
repeats an event and can resume anywhere.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from ecosign_orchestrator.core.events import TERMINAL_EVENTS, Event
from ecosign_orchestrator.core.repository.protocol import EventLog
from ecosign_orchestrator.core.types import JobId

#: Events read from the log per query.
BATCH = 500


async def tail(
    log: EventLog,
    *,
    job_id: JobId | None = None,
    after: int = 0,
    until_end: bool = False,
    idle_seconds: float | None = None,
    poll_seconds: float = 0.5,
) -> AsyncIterator[Event | None]:
    """Events with id above ``after`` (one job's, or all), oldest first, as they happen.

    ``until_end``: stop after the job's terminal event (``job_completed``, ``job_failed``,
    ``job_cancelled``). ``idle_seconds``: yield ``None`` after that long without an event, so a
    caller can send a keep-alive, redraw a countdown or re-read progress.
    """
    wait = poll_seconds if idle_seconds is None else min(poll_seconds, idle_seconds)
    async with log.bus.subscribe() as local:
        quiet_since = time.monotonic()
        while True:
            events = await log.events(after_id=after, job_id=job_id, limit=BATCH)
            for event in events:
                after = event.id
                yield event
                if until_end and event.type in TERMINAL_EVENTS:
                    return
            if events:
                quiet_since = time.monotonic()
                continue
            await local.next(timeout=wait)
            if idle_seconds is not None and time.monotonic() - quiet_since >= idle_seconds:
                quiet_since = time.monotonic()
                yield None
