"""Exceptions of the orchestrator core.

    OrchestratorError
    ├── JobNotFound
    ├── IllegalTransition
    ├── UnknownJobKind
    ├── InvalidJob
    ├── LeaseLost
    ├── DuplicateJob
    ├── IdempotencyConflict
    ├── ConfigurationError
    ├── RepositoryError
    │   └── MigrationError
    └── ProcessorError          (raised by processors; the worker decides what it means)
        ├── TransientError      retried per policy, optionally after ``retry_after`` seconds
        └── FatalError          fails the job at once

``Snooze`` is not an error: a processor raises it to be run again later without spending an attempt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


class OrchestratorError(Exception):
    """An orchestrator error."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class JobNotFound(OrchestratorError):
    """No job has this id."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id {job_id!r}")


class IllegalTransition(OrchestratorError):
    """A job cannot move from its current status to the requested one."""

    def __init__(self, job_id: str, current: str, target: str, words: str = "") -> None:
        self.job_id = job_id
        self.current = current
        self.target = target
        # ``words``: what a person asked for and why it cannot be done (a user's retry or
        # cancel); the engine's own wrong moves keep the state-machine form.
        super().__init__(f"job {job_id}: {words or f'illegal transition {current} -> {target}'}")


class UnknownJobKind(OrchestratorError):
    """No processor is registered for this job kind."""

    def __init__(self, kind: str, known: list[str]) -> None:
        self.kind = kind
        self.known = known
        super().__init__(f"unknown job kind {kind!r}; known kinds: {', '.join(known) or 'none'}")


class InvalidJob(OrchestratorError):
    """A job request is invalid; ``field`` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class LeaseLost(OrchestratorError):
    """This worker no longer holds the job's lease (expired and taken over, or job ended)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"lease lost for job {job_id}")


class DuplicateJob(OrchestratorError):
    """Another active job already holds this dedupe key (a concurrent enqueue won)."""

    def __init__(self, dedupe_key: str | None, holder: str | None = None) -> None:
        self.dedupe_key = dedupe_key
        self.holder = holder
        by = f" (job {holder})" if holder else ""
        super().__init__(f"an active job already holds dedupe key {dedupe_key!r}{by}")


class IdempotencyConflict(OrchestratorError):
    """An idempotency key was reused with a different request."""

    def __init__(self, key: str, job_id: str) -> None:
        self.key = key
        self.job_id = job_id
        super().__init__(
            f"idempotency key {key!r} was already used for a different request (job {job_id})"
        )


class ConfigurationError(OrchestratorError):
    """The configuration is invalid."""


class RepositoryError(OrchestratorError):
    """The job store failed; the driver's exception is in ``__cause__``."""


class Unavailable(OrchestratorError):
    """Something the command needs cannot be had now (a server, a port): try again or fix it."""


class StoreUnavailable(Unavailable, RepositoryError):
    """The job store cannot be reached (server down, wrong address, refused credentials)."""


class MigrationError(RepositoryError):
    """A schema migration failed or the schema is not at the expected version."""


class ProcessorError(OrchestratorError):
    """A processor failed."""


class TransientError(ProcessorError):
    """A failure worth retrying (timeout, network, 5xx...).

    ``retry_after`` (seconds) raises the backoff delay, never lowers it. ``delay`` replaces the
    kind's backoff with the processor's own (e.g. a per-step policy). ``details`` is JSON-able
    data recorded with the error.
    """

    transient = True

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        delay: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.delay = delay
        self.details = details or {}


class FatalError(ProcessorError):
    """A failure that retrying cannot fix (validation, other 4xx...): the job fails at once."""

    transient = False

    def __init__(
        self, message: str | None = None, *, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.details = details or {}


class Snooze(Exception):
    """Run this job again after ``delay`` seconds without spending an attempt: it waits for
    something outside it (``reason``, in an operator's words), until ``deadline`` at most."""

    def __init__(self, delay: float, reason: str = "", deadline: datetime | None = None) -> None:
        super().__init__(reason or f"snoozed for {delay}s")
        self.delay = delay
        self.reason = reason
        self.deadline = deadline
