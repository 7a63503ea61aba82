"""What an operator sees first: jobs by status, the queue, throughput and what fails.

Every figure is computed from the job store at the time of asking, from bounded reads (the
counts query, the oldest active jobs, the newest finished jobs, failure groups), so the overview
costs the same on a store of a thousand jobs and of ten million.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

from ecosign_orchestrator.core.job import Job, utcnow
from ecosign_orchestrator.core.repository.protocol import JobRepository
from ecosign_orchestrator.core.selection import FailureGroup, failures
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.types import JSONDict

#: Minutes of throughput shown (one bucket per minute, the current minute last).
MINUTES = 15
#: Finished jobs read to count throughput (the newest ones).
FINISHED_SAMPLE = 2000
#: Active jobs read to find the oldest waiting one.
ACTIVE_SAMPLE = 200
#: Failure groups shown (largest first).
FAILURE_GROUPS = 10
#: Failed jobs grouped for the overview (the newest ones).
FAILURE_SAMPLE = 2000

#: Runs waiting for a worker (a ``waiting`` job waits for something outside it instead).
_READY = (JobStatus.QUEUED, JobStatus.RETRYING)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class MinuteBucket:
    """Jobs that finished in one minute."""

    start: datetime
    completed: int
    failed: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WaitGroup:
    """Waiting jobs that wait for the same thing."""

    reason: str
    count: int
    oldest_since: datetime

    def to_json(self) -> JSONDict:
        """JSON form for the API."""
        return {
            "reason": self.reason,
            "count": self.count,
            "oldest_since": self.oldest_since.isoformat(),
        }


def wait_groups(jobs: Sequence[Job]) -> list[WaitGroup]:
    """The waiting ``jobs`` grouped by what they wait for, largest group first."""
    groups: dict[str, list[datetime]] = {}
    for job in jobs:
        if job.status is JobStatus.WAITING and job.waiting is not None:
            groups.setdefault(job.waiting.reason, []).append(job.waiting.since)
    found = [WaitGroup(reason=r, count=len(s), oldest_since=min(s)) for r, s in groups.items()]
    return sorted(found, key=lambda g: (-g.count, g.oldest_since))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Overview:
    """The store at a glance."""

    at: datetime
    #: Jobs per status (every status present, zero included).
    statuses: dict[str, int]
    #: Jobs per kind and status.
    kinds: dict[str, dict[str, int]]
    #: Jobs waiting for a worker (queued or retrying), due now or later.
    queue_depth: int
    #: Waiting jobs by what they wait for (among the oldest active ones), largest first.
    waiting: list[WaitGroup]
    #: The job that has waited longest for its (first or next) run and is due, if any.
    oldest_waiting_id: str | None
    oldest_waiting_seconds: float
    #: Finished jobs per minute, oldest minute first.
    per_minute: list[MinuteBucket]
    failures: list[FailureGroup]
    #: The newest event's id when the overview was read: follow the log from here.
    last_event_id: int

    def to_json(self) -> JSONDict:
        """JSON form for the API."""
        return {
            "at": self.at.isoformat(),
            "statuses": dict(self.statuses),
            "kinds": {kind: dict(counts) for kind, counts in self.kinds.items()},
            "queue_depth": self.queue_depth,
            "waiting": [g.to_json() for g in self.waiting],
            "oldest_waiting_id": self.oldest_waiting_id,
            "oldest_waiting_seconds": self.oldest_waiting_seconds,
            "per_minute": [
                {"start": b.start.isoformat(), "completed": b.completed, "failed": b.failed}
                for b in self.per_minute
            ],
            "failures": [g.to_json() for g in self.failures],
            "last_event_id": self.last_event_id,
        }


async def overview(
    repository: JobRepository,
    *,
    kinds: Sequence[str] | None = None,
    now: datetime | None = None,
) -> Overview:
    """The overview of the store (of ``kinds`` only, when given)."""
    now = now or utcnow()
    last_event_id = await repository.last_event_id()  # first: nothing after it is missed
    wanted = None if kinds is None else set(kinds)
    statuses = {s.value: 0 for s in JobStatus}
    by_kind: dict[str, dict[str, int]] = {}
    for (kind, status), n in (await repository.counts()).items():
        if wanted is not None and kind not in wanted:
            continue
        statuses[status.value] += n
        by_kind.setdefault(kind, {})[status.value] = n
    active = [
        j
        for j in await repository.oldest_active(limit=ACTIVE_SAMPLE)
        if wanted is None or j.kind in wanted
    ]
    oldest = _oldest_waiting(active, now)
    finished = await repository.list_jobs(
        statuses=[JobStatus.COMPLETED, JobStatus.FAILED], kinds=kinds, limit=FINISHED_SAMPLE
    )
    groups = await failures(repository, kinds=kinds, limit=FAILURE_SAMPLE)
    return Overview(
        at=now,
        statuses=statuses,
        kinds=by_kind,
        queue_depth=sum(statuses[s.value] for s in _READY),
        waiting=wait_groups(active),
        oldest_waiting_id=None if oldest is None else oldest.id,
        oldest_waiting_seconds=0.0 if oldest is None else _waited(oldest, now),
        per_minute=per_minute(finished, now),
        failures=groups[:FAILURE_GROUPS],
        last_event_id=last_event_id,
    )


def per_minute(jobs: Sequence[Job], now: datetime, minutes: int = MINUTES) -> list[MinuteBucket]:
    """Finished ``jobs`` counted per minute over the last ``minutes`` (the current one last)."""
    current = now.replace(second=0, microsecond=0)
    starts = [current - timedelta(minutes=minutes - 1 - i) for i in range(minutes)]
    completed = dict.fromkeys(starts, 0)
    failed = dict.fromkeys(starts, 0)
    for job in jobs:
        if job.finished_at is None:
            continue
        start = job.finished_at.replace(second=0, microsecond=0)
        if start not in completed:
            continue
        target = completed if job.status is JobStatus.COMPLETED else failed
        target[start] += 1
    return [MinuteBucket(start=s, completed=completed[s], failed=failed[s]) for s in starts]


def _oldest_waiting(active: Sequence[Job], now: datetime) -> Job | None:
    """The due waiting job that has waited longest (not one scheduled for later)."""
    due = [j for j in active if j.status in _READY and j.run_at <= now]
    return max(due, key=lambda j: _waited(j, now), default=None)


def _waited(job: Job, now: datetime) -> float:
    """Seconds since ``job`` became due."""
    return max(0.0, (now - job.run_at).total_seconds())
