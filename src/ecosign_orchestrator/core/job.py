"""The job model: frozen values with converters to and from JSON."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Self

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.types import JobId, JSONDict, JSONValue, LeaseToken


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def to_epoch(value: datetime) -> float:
    """A timezone-aware datetime as epoch seconds (naive datetimes are refused)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: timestamps must be timezone-aware")
    return value.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    """Epoch seconds as a UTC datetime (None stays None)."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_iso(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobError:
    """Why a run failed: the exception type, its message, and whether it was transient."""

    type: str
    message: str
    transient: bool
    details: JSONDict = dataclasses.field(default_factory=dict)

    def to_json(self) -> JSONDict:
        """JSON form, as stored."""
        return {
            "type": self.type,
            "message": self.message,
            "transient": self.transient,
            "details": self.details,
        }

    @classmethod
    def from_exception(cls, exc: BaseException) -> Self:
        """A processor's exception as an error record: type, message, whether it is a
        ``TransientError``, and its ``details`` (``TransientError``/``FatalError`` carry them)."""
        details = getattr(exc, "details", None)
        if callable(details):  # some errors compute their details
            details = details()
        return cls(
            type=type(exc).__name__,
            message=str(exc),
            transient=isinstance(exc, errors.TransientError),
            details=dict(details) if isinstance(details, Mapping) else {},
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_json`."""
        return cls(
            type=str(data["type"]),
            message=str(data["message"]),
            transient=bool(data["transient"]),
            details=dict(data.get("details") or {}),
        )


class StepStatus(enum.StrEnum):
    """Status of a named step inside a job (the EcoSign flow shows its seven steps this way)."""

    #: Planned, not started yet.
    PENDING = "pending"
    #: Being executed now.
    RUNNING = "running"
    #: Not needed: already satisfied, or not required by the intent.
    SKIPPED = "skipped"
    #: Submitted and waiting for an asynchronous confirmation.
    WAITING = "waiting"
    #: Failed transiently; will run again after a backoff.
    RETRYING = "retrying"
    #: Done.
    SUCCEEDED = "succeeded"
    #: Failed for good.
    FAILED = "failed"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StepRecord:
    """One named step of a job, as recorded through the job context."""

    name: str
    status: StepStatus
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    message: str = ""
    error: JobError | None = None
    data: JSONDict = dataclasses.field(default_factory=dict)

    def to_json(self) -> JSONDict:
        """JSON form, as stored."""
        return {
            "name": self.name,
            "status": self.status.value,
            "attempts": self.attempts,
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "updated_at": _iso(self.updated_at),
            "message": self.message,
            "error": None if self.error is None else self.error.to_json(),
            "data": self.data,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_json`."""
        error = data.get("error")
        return cls(
            name=str(data["name"]),
            status=StepStatus(data["status"]),
            attempts=int(data.get("attempts", 0)),
            started_at=_parse_iso(data.get("started_at")),
            finished_at=_parse_iso(data.get("finished_at")),
            updated_at=_parse_iso(data.get("updated_at")),
            message=str(data.get("message", "")),
            error=None if error is None else JobError.from_json(error),
            data=dict(data.get("data") or {}),
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """How far a running job is: a fraction in [0, 1] (None when unknown) and a message."""

    fraction: float | None = None
    message: str = ""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Waiting:
    """What a waiting job waits for (its next check is ``Job.run_at``)."""

    #: In an operator's words: "confirmation of the bitcoin anchor", "a free slot of run-tsa".
    reason: str
    #: When this wait began (checks that find nothing new keep it).
    since: datetime
    #: When the processor stops waiting and fails the step (None: it did not say).
    deadline: datetime | None = None

    def to_json(self) -> JSONDict:
        """JSON form, as stored and shown."""
        return {"reason": self.reason, "since": _iso(self.since), "deadline": _iso(self.deadline)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Waiting | None:
        """Inverse of :meth:`to_json` (None stays None)."""
        if not data:
            return None
        since = _parse_iso(data.get("since"))
        assert since is not None
        return cls(
            reason=str(data.get("reason", "")),
            since=since,
            deadline=_parse_iso(data.get("deadline")),
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetryOverride:
    """Per-job overrides of the kind's retry policy (None keeps the kind's value)."""

    max_attempts: int | None = None
    base_seconds: float | None = None
    cap_seconds: float | None = None

    def to_json(self) -> JSONDict:
        """JSON form, as stored (only the fields that are set)."""
        fields = (
            ("max_attempts", self.max_attempts),
            ("base_seconds", self.base_seconds),
            ("cap_seconds", self.cap_seconds),
        )  # not dataclasses.asdict: it deep-copies, and every enqueue calls this
        return {k: v for k, v in fields if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Self:
        """Inverse of :meth:`to_json`."""
        data = data or {}
        return cls(
            max_attempts=data.get("max_attempts"),
            base_seconds=data.get("base_seconds"),
            cap_seconds=data.get("cap_seconds"),
        )


#: The defaults every new job shares (immutable, so one instance serves all: building one per
#: job was a tenth of an enqueue's client CPU).
NO_PROGRESS = Progress()
KIND_RETRY = RetryOverride()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NewJob:
    """A request to enqueue a job, validated by :class:`..queue.JobQueue`."""

    kind: str
    payload: JSONDict = dataclasses.field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    #: Seconds to wait before the job may run (0 = now).
    delay: float = 0.0
    #: While a job with this key is not terminal, enqueueing again returns it instead of a new one.
    dedupe_key: str | None = None
    #: Also return a *completed* job holding ``dedupe_key`` (work that is done is not redone);
    #: a failed or cancelled one never blocks a new job.
    reuse_completed: bool = False
    max_attempts: int | None = None
    retry: RetryOverride = KIND_RETRY
    #: Per-job timeout in seconds (None: the kind's default).
    timeout: float | None = None
    #: A client's idempotency key: the same key with the same ``fingerprint`` returns the job it
    #: created, whatever its status; with another fingerprint it is a conflict.
    idempotency_key: str | None = None
    #: A digest of the request the key was first used with.
    fingerprint: str | None = None

    @property
    def keyless(self) -> bool:
        """Holds neither an idempotency nor a dedupe key: it cannot repeat an earlier job, so
        nothing is looked up before it is written."""
        return self.idempotency_key is None and self.dedupe_key is None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A durable unit of work, as stored; transitions produce new values."""

    id: JobId
    kind: str
    queue: str
    payload: JSONDict
    status: JobStatus
    priority: int
    #: Attempts spent so far (a claim spends one; snooze and graceful release refund it).
    attempts: int
    max_attempts: int
    run_at: datetime
    created_at: datetime
    updated_at: datetime
    dedupe_key: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_owner: str | None = None
    lease_token: LeaseToken | None = None
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False
    progress: Progress = NO_PROGRESS
    steps: tuple[StepRecord, ...] = ()
    result: JSONValue = None
    last_error: JobError | None = None
    retry: RetryOverride = KIND_RETRY
    timeout: float | None = None
    idempotency_key: str | None = None
    fingerprint: str | None = None
    #: What a ``waiting`` job waits for (kept while it runs a check, so the next wait knows
    #: whether it is the same one; None once it moves on).
    waiting: Waiting | None = None

    def step(self, name: str) -> StepRecord | None:
        """The record of step ``name``, if any."""
        return next((s for s in self.steps if s.name == name), None)

    def to_json(self) -> JSONDict:
        """A JSON view for APIs and the CLI (lease token omitted: it is a capability)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "queue": self.queue,
            "status": self.status.value,
            "priority": self.priority,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "run_at": _iso(self.run_at),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "dedupe_key": self.dedupe_key,
            "lease_owner": self.lease_owner,
            "lease_expires_at": _iso(self.lease_expires_at),
            "cancel_requested": self.cancel_requested,
            "progress": {"fraction": self.progress.fraction, "message": self.progress.message},
            "steps": [s.to_json() for s in self.steps],
            "payload": self.payload,
            "result": self.result,
            "last_error": None if self.last_error is None else self.last_error.to_json(),
            "timeout": self.timeout,
            "idempotency_key": self.idempotency_key,
            "waiting": None if self.waiting is None else self.waiting.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Inverse of :meth:`to_json` (for API clients; the lease token is not in it)."""
        progress = data.get("progress") or {}
        error = data.get("last_error")
        run_at = _parse_iso(data["run_at"])
        created_at = _parse_iso(data["created_at"])
        updated_at = _parse_iso(data["updated_at"])
        assert run_at and created_at and updated_at
        return cls(
            id=JobId(str(data["id"])),
            kind=str(data["kind"]),
            queue=str(data["queue"]),
            payload=dict(data.get("payload") or {}),
            status=JobStatus(data["status"]),
            priority=int(data["priority"]),
            attempts=int(data["attempts"]),
            max_attempts=int(data["max_attempts"]),
            run_at=run_at,
            created_at=created_at,
            updated_at=updated_at,
            dedupe_key=data.get("dedupe_key"),
            started_at=_parse_iso(data.get("started_at")),
            finished_at=_parse_iso(data.get("finished_at")),
            lease_owner=data.get("lease_owner"),
            lease_expires_at=_parse_iso(data.get("lease_expires_at")),
            cancel_requested=bool(data.get("cancel_requested")),
            progress=Progress(
                fraction=progress.get("fraction"), message=str(progress.get("message", ""))
            ),
            steps=tuple(StepRecord.from_json(s) for s in data.get("steps") or ()),
            result=data.get("result"),
            last_error=None if error is None else JobError.from_json(error),
            timeout=data.get("timeout"),
            idempotency_key=data.get("idempotency_key"),
            waiting=Waiting.from_json(data.get("waiting")),
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EnqueueResult:
    """What ``enqueue`` did: the job, and whether it was created or already existed (dedupe)."""

    job: Job
    created: bool
