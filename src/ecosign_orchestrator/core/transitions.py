"""Pure state transitions: ``(job, operation) -> (new job, event to write)``.

Every backend applies these inside one transaction together with the event row, so the rules
(legal moves, fencing, attempt accounting) live here once and not per SQL dialect.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.events import EVENT_FOR_STATUS, Event, EventType
from ecosign_orchestrator.core.job import (
    Job,
    JobError,
    NewJob,
    Progress,
    StepRecord,
    StepStatus,
    Waiting,
)
from ecosign_orchestrator.core.status import CLAIMABLE, JobStatus, check_transition
from ecosign_orchestrator.core.types import JobId, JSONDict, JSONValue, LeaseToken


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EventDraft:
    """An event before the store gives it an id."""

    job_id: JobId
    type: EventType
    at: datetime
    attempt: int
    data: JSONDict

    def stored(self, event_id: int) -> Event:
        """The event once the store gave it ``event_id``."""
        return Event(
            id=event_id,
            job_id=self.job_id,
            type=self.type,
            at=self.at,
            attempt=self.attempt,
            data=self.data,
        )


Outcome = tuple[Job, EventDraft]


def _move(job: Job, target: JobStatus, now: datetime, data: JSONDict, **changes: object) -> Outcome:
    check_transition(job.id, job.status, target)
    if target not in (JobStatus.RUNNING, JobStatus.WAITING):
        changes.setdefault("waiting", None)  # a run that moves on waits for nothing
    new = dataclasses.replace(job, status=target, updated_at=now, **changes)  # type: ignore[arg-type]
    event = EventDraft(
        job_id=job.id, type=EVENT_FOR_STATUS[target], at=now, attempt=new.attempts, data=data
    )
    return new, event


_NO_LEASE: dict[str, object] = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}


def new_job(new: NewJob, *, job_id: JobId, now: datetime, max_attempts: int) -> Outcome:
    """A freshly enqueued job and its ``job_queued`` event."""
    job = Job(
        id=job_id,
        kind=new.kind,
        queue=new.queue,
        payload=new.payload,
        status=JobStatus.QUEUED,
        priority=new.priority,
        attempts=0,
        max_attempts=max_attempts,
        run_at=now + timedelta(seconds=new.delay) if new.delay else now,
        created_at=now,
        updated_at=now,
        dedupe_key=new.dedupe_key,
        retry=new.retry,
        timeout=new.timeout,
        idempotency_key=new.idempotency_key,
        fingerprint=new.fingerprint,
    )
    data: JSONDict = {"reason": "enqueued", "kind": new.kind, "queue": new.queue}
    if new.delay:
        data["run_at"] = job.run_at.isoformat()
    event = EventDraft(job_id=job_id, type=EventType.JOB_QUEUED, at=now, attempt=0, data=data)
    return job, event


def is_claimable(job: Job, now: datetime) -> bool:
    """Whether a worker may claim ``job`` now."""
    return job.status in CLAIMABLE and job.run_at <= now


def claim(
    job: Job, *, now: datetime, worker_id: str, token: LeaseToken, lease_seconds: float
) -> tuple[Job, EventDraft | None]:
    """A worker takes the job: one attempt is spent, a fresh lease token fences its writes.

    The claim of a ``waiting`` job is a check of what it waits for: it writes no event (a
    72-hour wait checked every few minutes would otherwise fill the log, and a reader of the
    events would see the job "started" between checks). The check's outcome writes one if
    anything changed: a new wait, a step's progress, the end of the flow.
    """
    new, event = _move(
        job,
        JobStatus.RUNNING,
        now,
        {"worker": worker_id},
        attempts=job.attempts + 1,
        started_at=job.started_at or now,
        lease_owner=worker_id,
        lease_token=token,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        finished_at=None,
    )
    return new, None if job.status is JobStatus.WAITING else event


def ensure_lease(job: Job, token: LeaseToken) -> None:
    """Raise :class:`LeaseLost` unless ``token`` still holds the job's lease."""
    if job.status is not JobStatus.RUNNING or job.lease_token != token:
        raise errors.LeaseLost(job.id)


def renew(job: Job, *, token: LeaseToken, now: datetime, lease_seconds: float) -> Job:
    """Heartbeat: push the lease expiry forward (no event)."""
    ensure_lease(job, token)
    return dataclasses.replace(
        job, lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now
    )


def with_progress(job: Job, *, token: LeaseToken, now: datetime, progress: Progress) -> Job:
    """Record progress (no event)."""
    ensure_lease(job, token)
    return dataclasses.replace(job, progress=progress, updated_at=now)


def with_steps(job: Job, *, token: LeaseToken, now: datetime, steps: tuple[StepRecord, ...]) -> Job:
    """Record the job's step list (no event)."""
    ensure_lease(job, token)
    return dataclasses.replace(job, steps=steps, updated_at=now)


def complete(job: Job, *, token: LeaseToken, now: datetime, result: JSONValue) -> Outcome:
    """The lease holder finished the job."""
    ensure_lease(job, token)
    progress = Progress(fraction=1.0, message=job.progress.message)
    return _move(
        job,
        JobStatus.COMPLETED,
        now,
        {},
        result=result,
        finished_at=now,
        progress=progress,
        cancel_requested=False,
        # Earlier transient errors stay in the event log; a completed job shows none.
        last_error=None,
        **_NO_LEASE,
    )


def fail(job: Job, *, token: LeaseToken, now: datetime, error: JobError) -> Outcome:
    """The lease holder gives up: a fatal error or the last attempt failed."""
    ensure_lease(job, token)
    return _move(
        job,
        JobStatus.FAILED,
        now,
        {"error": error.to_json()},
        last_error=error,
        finished_at=now,
        cancel_requested=False,
        **_NO_LEASE,
    )


def schedule_retry(
    job: Job, *, token: LeaseToken, now: datetime, error: JobError, delay: float
) -> Outcome:
    """A transient failure: wait ``delay`` seconds in ``retrying``, then run again."""
    ensure_lease(job, token)
    if job.attempts >= job.max_attempts:
        # A retry would run attempt max+1: the caller must fail the job instead.
        raise errors.IllegalTransition(job.id, job.status.value, "retrying (attempts exhausted)")
    run_at = now + timedelta(seconds=delay)
    data: JSONDict = {"error": error.to_json(), "delay": delay, "run_at": run_at.isoformat()}
    return _move(job, JobStatus.RETRYING, now, data, last_error=error, run_at=run_at, **_NO_LEASE)


def requeue(
    job: Job, *, token: LeaseToken, now: datetime, delay: float, reason: str, message: str = ""
) -> Outcome:
    """Snooze or graceful release: back to ``queued``; the attempt is refunded."""
    ensure_lease(job, token)
    run_at = now + timedelta(seconds=delay)
    data: JSONDict = {"reason": reason, "run_at": run_at.isoformat()}
    if message:
        data["message"] = message
    return _move(
        job,
        JobStatus.QUEUED,
        now,
        data,
        attempts=max(job.attempts - 1, 0),
        run_at=run_at,
        **_NO_LEASE,
    )


def wait(
    job: Job,
    *,
    token: LeaseToken,
    now: datetime,
    delay: float,
    reason: str,
    deadline: datetime | None = None,
) -> tuple[Job, EventDraft | None]:
    """A snooze: the job waits for something outside it until its next check, ``delay``
    seconds from now; the attempt is refunded. ``job_waiting`` is written when the wait begins
    or what it waits for changes, not at every check (a 72-hour wait stays a short log)."""
    ensure_lease(job, token)
    run_at = now + timedelta(seconds=delay)
    same = job.waiting is not None and job.waiting.reason == reason
    since = job.waiting.since if same and job.waiting is not None else now
    new, event = _move(
        job,
        JobStatus.WAITING,
        now,
        {"reason": reason, "run_at": run_at.isoformat(), "deadline": _iso(deadline)},
        attempts=max(job.attempts - 1, 0),
        run_at=run_at,
        waiting=Waiting(reason=reason, since=since, deadline=deadline),
        **_NO_LEASE,
    )
    return new, None if same else event


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _stop_waiting_steps(
    steps: tuple[StepRecord, ...], now: datetime, why: str
) -> tuple[StepRecord, ...]:
    """Steps that wait (a confirmation, a retry) wait no more: back to pending, no next check."""
    stopped = []
    for step in steps:
        if step.status in (StepStatus.WAITING, StepStatus.RETRYING):
            data = {k: v for k, v in step.data.items() if k not in _NEXT_CHECKS}
            step = dataclasses.replace(
                step, status=StepStatus.PENDING, message=why, data=data, updated_at=now
            )
        stopped.append(step)
    return tuple(stopped)


#: A cancelled job's waiting steps say this (and show no next check).
CANCELLED_STEP = "no longer waited for: the job was cancelled"
#: The step data keys that say when a waiting step is checked next.
_NEXT_CHECKS = frozenset({"next_poll_at", "retry_at", "held_until"})


def acknowledge_cancel(job: Job, *, token: LeaseToken, now: datetime) -> Outcome:
    """The lease holder stopped the job after a cancel request."""
    ensure_lease(job, token)
    steps = _stop_waiting_steps(job.steps, now, CANCELLED_STEP)
    return _move(
        job,
        JobStatus.CANCELLED,
        now,
        {"requested": True},
        finished_at=now,
        steps=steps,
        **_NO_LEASE,
    )


def lease_expired(job: Job, now: datetime) -> bool:
    """Whether ``job`` is running on a lease that has expired (its worker is presumed dead)."""
    return (
        job.status is JobStatus.RUNNING
        and job.lease_expires_at is not None
        and job.lease_expires_at <= now
    )


def recover(job: Job, *, now: datetime) -> Outcome:
    """Expired lease: back to ``queued``, keeping the spent attempt (``failed`` if last;
    ``cancelled`` if a user asked to cancel it)."""
    if not lease_expired(job, now):
        raise errors.IllegalTransition(job.id, job.status.value, "queued (lease not expired)")
    previous_owner = job.lease_owner
    if job.cancel_requested:
        # The user asked to stop it: it ends cancelled, never back in the queue (another worker
        # would otherwise start it again after the user cancelled).
        data: JSONDict = {"requested": True, "reason": "lease_expired", "worker": previous_owner}
        steps = _stop_waiting_steps(job.steps, now, CANCELLED_STEP)
        return _move(job, JobStatus.CANCELLED, now, data, finished_at=now, steps=steps, **_NO_LEASE)
    if job.attempts >= job.max_attempts:
        error = JobError(
            type="LeaseExpired",
            message=f"worker {previous_owner} stopped heartbeating; attempts exhausted",
            transient=True,
        )
        return _move(
            job,
            JobStatus.FAILED,
            now,
            {"error": error.to_json(), "reason": "lease_expired", "worker": previous_owner},
            last_error=error,
            finished_at=now,
            **_NO_LEASE,
        )
    requeued: JSONDict = {"reason": "lease_expired", "worker": previous_owner}
    return _move(job, JobStatus.QUEUED, now, requeued, run_at=now, **_NO_LEASE)


#: Why a person cannot retry or cancel a job in this status, in their words.
_ALREADY = {
    JobStatus.COMPLETED: "already completed",
    JobStatus.FAILED: "already failed",
    JobStatus.CANCELLED: "already cancelled",
}


def cancel(job: Job, *, now: datetime, actor: str | None = None) -> tuple[Job, EventDraft | None]:
    """A user (``actor``, when known) cancels: waiting jobs end at once; a running one gets a
    request its worker obeys, recorded as ``job_cancel_requested``."""
    if job.status.is_terminal:
        raise errors.IllegalTransition(
            job.id,
            job.status.value,
            JobStatus.CANCELLED.value,
            f"{_ALREADY[job.status]}: an ended job cannot be cancelled",
        )
    who = _actor(actor)
    if job.status is JobStatus.RUNNING:
        if job.cancel_requested:
            return job, None
        requested = EventDraft(
            job_id=job.id,
            type=EventType.JOB_CANCEL_REQUESTED,
            at=now,
            attempt=job.attempts,
            data={"worker": job.lease_owner, **who},
        )
        return dataclasses.replace(job, cancel_requested=True, updated_at=now), requested
    steps = _stop_waiting_steps(job.steps, now, CANCELLED_STEP)
    data: JSONDict = {"requested": True, **who}
    return _move(job, JobStatus.CANCELLED, now, data, finished_at=now, steps=steps)


def _actor(actor: str | None) -> JSONDict:
    """``{"actor": name}`` for an event's data, or nothing when nobody is named."""
    return {} if actor is None else {"actor": actor}


def manual_retry(job: Job, *, now: datetime, actor: str | None = None) -> Outcome:
    """A user (``actor``, when known) re-runs a failed or cancelled job: a fresh start,
    attempts reset to zero."""
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        # running -> queued is legal for leases, not for users: only ended jobs are re-run.
        words = (
            "already completed: there is nothing to retry"
            if job.status is JobStatus.COMPLETED
            else f"is {job.status.value}, not ended: only a failed or cancelled job can be retried"
        )
        raise errors.IllegalTransition(job.id, job.status.value, "queued (manual retry)", words)
    return _move(
        job,
        JobStatus.QUEUED,
        now,
        {"reason": "manual_retry", "previous_status": job.status.value, **_actor(actor)},
        attempts=0,
        run_at=now,
        finished_at=None,
        cancel_requested=False,
        progress=Progress(),
    )
