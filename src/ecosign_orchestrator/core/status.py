"""Job statuses and the one table of legal transitions."""

from __future__ import annotations

import enum

from ecosign_orchestrator.core import errors


class JobStatus(enum.StrEnum):
    """Where a job is in its life. The values are the stored strings."""

    #: Waiting to be claimed (possibly not before ``run_at``).
    QUEUED = "queued"
    #: Claimed by a worker that holds its lease.
    RUNNING = "running"
    #: Failed transiently; waiting out a backoff before it runs again.
    RETRYING = "retrying"
    #: Waiting for something outside it (an anchor's confirmation, a free slot, a circuit to
    #: close, a state change) until its next check at ``run_at``; no attempt is spent. What it
    #: waits for is ``Job.waiting``.
    WAITING = "waiting"
    #: Finished successfully. Terminal.
    COMPLETED = "completed"
    #: Failed: a fatal error, or attempts exhausted. Terminal (a manual retry re-queues it).
    FAILED = "failed"
    #: Cancelled by a user. Terminal (a manual retry re-queues it).
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for completed, failed and cancelled."""
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.WAITING})
#: Statuses a worker claims from once ``run_at`` has come.
CLAIMABLE = frozenset({JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.WAITING})

#: Every legal move. ``running -> queued`` covers lease expiry and release on shutdown,
#: ``running -> waiting`` a snooze;
#: ``failed|cancelled -> queued`` is a manual retry. ``completed`` has no way out: a completed
#: job is never run again.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.RETRYING,
            JobStatus.QUEUED,
            JobStatus.WAITING,
        }
    ),
    JobStatus.RETRYING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.WAITING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED}),
}


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    """Whether ``current -> target`` is legal."""
    return target in TRANSITIONS[current]


def check_transition(job_id: str, current: JobStatus, target: JobStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``current -> target`` is legal."""
    if not can_transition(current, target):
        raise errors.IllegalTransition(job_id, current.value, target.value)
