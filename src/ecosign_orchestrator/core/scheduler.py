"""Running schedules: a worker's side task submits each schedule's latest due tick (the store
keeps one job per tick, whoever submits it), and what ``jobs schedules`` shows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import utcnow
from ecosign_orchestrator.core.queue import JobQueue
from ecosign_orchestrator.core.schedules import Schedule, ScheduleStatus

logger = logging.getLogger(__name__)


async def run_schedules(
    queue: JobQueue, schedules: Sequence[Schedule], *, max_wait: float = 5.0
) -> None:
    """Submit each schedule's latest due tick, forever (a worker's side task).

    Between checks it waits for the next tick of any schedule (at most ``max_wait``). The store
    keeps one job per tick whoever submits it; this process skips ticks it already submitted.
    """
    submitted: dict[str, datetime] = {}
    while True:
        now = utcnow()
        for schedule in schedules:
            tick = schedule.due(now)
            if submitted.get(schedule.name) == tick:
                continue
            try:
                result = await queue.submit(schedule.job_for(tick))
            except errors.RepositoryError as exc:
                logger.warning(
                    "schedule %s: could not submit its %s tick (%s)",
                    schedule.name,
                    tick.isoformat(),
                    exc,
                    extra={"action": "schedule_failed", "schedule": schedule.name},
                )
                continue
            submitted[schedule.name] = tick
            if result.created:
                logger.info(
                    "schedule %s: tick %s submitted job %s",
                    schedule.name,
                    tick.isoformat(),
                    result.job.id,
                    extra={"action": "schedule_tick", "schedule": schedule.name},
                )
        upcoming = min(s.next_after(now) for s in schedules)
        wait = (upcoming - utcnow()).total_seconds()
        await asyncio.sleep(min(max(wait, 0.01), max_wait))


async def statuses(queue: JobQueue, schedules: Sequence[Schedule]) -> list[ScheduleStatus]:
    """Each schedule's next tick, latest due tick and the job of that tick (if submitted)."""
    now = utcnow()
    found = []
    for schedule in schedules:
        tick = schedule.due(now)
        key = schedule.job_for(tick).idempotency_key
        assert key is not None
        job = await queue.repository.get_by_idempotency_key(key)
        found.append(ScheduleStatus(schedule, schedule.next_after(now), tick, job))
    return found
