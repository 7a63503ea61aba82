"""Retention: finished jobs and their events are deleted once they are old enough.

How long each terminal status is kept is a :class:`RetentionPolicy`. Pruning deletes in small
batches (each its own short transaction, oldest finished first) so it never holds long locks;
on PostgreSQL two workers pruning at once skip each other's rows. Active jobs are never touched.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import utcnow
from ecosign_orchestrator.core.repository.protocol import JobRepository
from ecosign_orchestrator.core.status import TERMINAL, JobStatus

_DURATION = re.compile(r"([0-9]{1,6})([smhdw])", re.ASCII)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
#: Spellings of "keep forever".
FOREVER = ("never", "forever", "off")


def parse_duration(text: str, *, field: str) -> timedelta:
    """``90s``, ``45m``, ``12h``, ``30d`` or ``2w`` as a duration (else ``InvalidJob``)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise errors.InvalidJob(field, f"must be a duration like 30d, 12h, 45m or 90s: {text!r}")
    return timedelta(seconds=int(match[1]) * _UNIT[match[2]])


def parse_keep(text: str, *, field: str) -> timedelta | None:
    """A retention period, or ``None`` for ``never`` (keep forever)."""
    if text.strip().lower() in FOREVER:
        return None
    keep = parse_duration(text, field=field)
    if keep <= timedelta(0):
        raise errors.InvalidJob(field, f"must be positive, or 'never' to keep forever: {text!r}")
    return keep


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    """How long finished jobs are kept, by terminal status (``None``: forever)."""

    keep: Mapping[JobStatus, timedelta | None]
    #: Jobs deleted per transaction.
    batch: int = 500
    #: How often a worker prunes.
    every_seconds: float = 600.0
    #: The most batches one pass deletes (the next pass continues).
    max_batches: int = 20

    def __post_init__(self) -> None:
        active = set(self.keep) - TERMINAL
        if active:
            names = ", ".join(sorted(s.value for s in active))
            raise errors.ConfigurationError(f"retention applies to finished jobs only, not {names}")
        if self.batch < 1 or self.max_batches < 1 or self.every_seconds <= 0:
            raise errors.ConfigurationError("retention batch, max_batches, every_seconds: > 0")

    def cutoffs(self, now: datetime) -> dict[JobStatus, datetime]:
        """Per status, the finish time before which a job is deleted."""
        return {status: now - keep for status, keep in self.keep.items() if keep is not None}


async def prune(
    repository: JobRepository,
    cutoffs: Mapping[JobStatus, datetime],
    *,
    batch: int = 500,
    max_batches: int | None = None,
    dry_run: bool = False,
) -> dict[JobStatus, int]:
    """Delete finished jobs (and their events) older than their status's cutoff.

    Returns the count per status (with ``dry_run``: what would be deleted, nothing is).
    """
    counts: dict[JobStatus, int] = {}
    for status, before in cutoffs.items():
        if dry_run:
            counts[status] = await repository.count_prunable(status=status, finished_before=before)
            continue
        counts[status] = 0
        batches = 0
        while max_batches is None or batches < max_batches:
            deleted = await repository.prune(status=status, finished_before=before, limit=batch)
            counts[status] += deleted
            batches += 1
            if deleted < batch:
                break
    return counts


async def prune_by_policy(
    repository: JobRepository, policy: RetentionPolicy, *, now: datetime | None = None
) -> dict[JobStatus, int]:
    """One bounded pass of ``policy`` (what a worker runs every ``policy.every_seconds``)."""
    cutoffs = policy.cutoffs(now or utcnow())
    return await prune(repository, cutoffs, batch=policy.batch, max_batches=policy.max_batches)
