"""Schedules: jobs enqueued on a cron expression or a fixed period, at most once per tick
across every worker.

Each worker that knows a schedule checks it often; for the latest tick that is due it submits
the job with the idempotency key ``schedule:<name>:<tick>``, so however many workers check, the
store keeps one job per tick (the others get that job back). The rule for missed ticks (every
worker down for a while): only the latest due tick runs, once; earlier missed ticks are skipped,
never run as a burst. Cron expressions are the standard five fields, parsed by ``cronsim``
(minute resolution, UTC); ``every_seconds`` covers shorter periods.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import Job, NewJob
from ecosign_orchestrator.core.jsonvalue import json_value_problem
from ecosign_orchestrator.core.types import JSONDict


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """Enqueue a job of ``kind`` on ``cron`` (five fields, UTC) or every ``every_seconds``."""

    name: str
    kind: str
    payload: JSONDict = dataclasses.field(default_factory=dict)
    cron: str | None = None
    every_seconds: float | None = None
    queue: str = "default"

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 100:
            raise errors.InvalidJob("schedule.name", "must be 1 to 100 characters")
        if (self.cron is None) == (self.every_seconds is None):
            raise errors.InvalidJob(f"schedule {self.name}", "give exactly one of cron, every")
        if self.cron is not None:
            try:
                CronSim(self.cron, datetime.now(UTC))
            except CronSimError as exc:
                raise errors.InvalidJob(f"schedule {self.name}.cron", str(exc)) from None
        if self.every_seconds is not None and not 0.1 <= self.every_seconds <= 366 * 86400:
            raise errors.InvalidJob(f"schedule {self.name}.every", "must be 0.1 s to a year")
        problem = json_value_problem(self.payload, f"schedule {self.name}.payload")
        if problem is not None:
            raise errors.InvalidJob(f"schedule {self.name}.payload", problem)

    def due(self, now: datetime) -> datetime:
        """The latest tick at or before ``now``."""
        if self.every_seconds is not None:
            seconds = math.floor(now.timestamp() / self.every_seconds) * self.every_seconds
            return datetime.fromtimestamp(seconds, UTC)
        assert self.cron is not None
        minute = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        return next(CronSim(self.cron, minute, reverse=True))  # strictly before: <= now

    def next_after(self, now: datetime) -> datetime:
        """The first tick after ``now``."""
        if self.every_seconds is not None:
            return self.due(now) + timedelta(seconds=self.every_seconds)
        assert self.cron is not None
        return next(CronSim(self.cron, now.astimezone(UTC)))

    def job_for(self, tick: datetime) -> NewJob:
        """The job of ``tick``: its idempotency key makes it one per tick fleet-wide."""
        key = f"schedule:{self.name}:{tick.isoformat()}"
        return NewJob(
            kind=self.kind, payload=dict(self.payload), queue=self.queue, idempotency_key=key
        )

    def describe(self) -> str:
        """``cron 0 3 * * *`` or ``every 30s``."""
        return f"cron {self.cron}" if self.cron is not None else f"every {self.every_seconds:g}s"


def check_unique(schedules: Sequence[Schedule]) -> None:
    """Schedule names are their identity: no two alike."""
    names = [s.name for s in schedules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise errors.ConfigurationError(f"schedules named twice: {', '.join(twice)}")


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleStatus:
    """A schedule as ``jobs schedules`` shows it."""

    schedule: Schedule
    next_tick: datetime
    last_tick: datetime
    #: The job of the latest due tick, if it was enqueued.
    last_job: Job | None

    def to_json(self) -> JSONDict:
        """JSON form for APIs and the CLI."""
        job = self.last_job
        return {
            "name": self.schedule.name,
            "kind": self.schedule.kind,
            "when": self.schedule.describe(),
            "next_tick": self.next_tick.isoformat(),
            "last_tick": self.last_tick.isoformat(),
            "last_job": None if job is None else job.id,
            "last_status": None if job is None else job.status.value,
        }
