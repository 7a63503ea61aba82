"""``JobQueue``: the producer side. Validates a request completely before anything is written."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import EnqueueResult, NewJob, RetryOverride, utcnow
from ecosign_orchestrator.core.jsonvalue import json_value_problem
from ecosign_orchestrator.core.registry import Registry
from ecosign_orchestrator.core.repository.protocol import JobRepository
from ecosign_orchestrator.core.types import JSONDict

MAX_KEY_LENGTH = 256
#: Bounds of the numeric fields: what every backend stores (PostgreSQL ``integer``, dates up
#: to year 9999) with room for sense: a job may wait ten years, run a week, retry a million times.
MAX_PRIORITY = 2**31 - 1
MAX_ATTEMPTS = 1_000_000
MAX_DELAY_SECONDS = 10 * 365 * 86_400.0
MAX_TIMEOUT_SECONDS = 7 * 86_400.0
MAX_BACKOFF_SECONDS = 365 * 86_400.0


def check_json(value: Any, field: str = "payload") -> JSONDict:
    """``value`` if it is a JSON object (string keys, finite numbers); else ``InvalidJob``."""
    if not isinstance(value, Mapping):
        raise errors.InvalidJob(field, f"must be a JSON object, got {type(value).__name__}")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidJob(field, f"is not JSON-serialisable: {exc}") from None
    loaded: JSONDict = json.loads(text)
    if loaded != value:  # e.g. non-string keys silently converted, tuples turned into lists
        raise errors.InvalidJob(field, "must contain only JSON types with string keys")
    problem = json_value_problem(loaded, field)
    if problem:
        where, _, reason = problem.partition(": ")
        raise errors.InvalidJob(where, reason)
    return loaded


def schedule_options(priority: int, not_before: datetime | None) -> tuple[int, float]:
    """A submission's ``priority`` and ``not_before`` (an aware time) as a checked priority and
    delay in seconds (``InvalidJob`` naming the field)."""
    if isinstance(priority, bool) or not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise errors.InvalidJob("priority", f"must be between -{MAX_PRIORITY} and {MAX_PRIORITY}")
    if not_before is None:
        return priority, 0.0
    if not_before.tzinfo is None:
        raise errors.InvalidJob("not_before", "must carry a time zone (e.g. ...Z or +02:00)")
    delay = max((not_before - utcnow()).total_seconds(), 0.0)
    if delay > MAX_DELAY_SECONDS:
        raise errors.InvalidJob("not_before", "must be within ten years")
    return priority, delay


def fingerprint(kind: str, payload: Any) -> str:
    """A digest of a normalised request: same kind and payload, same fingerprint."""
    canonical = json.dumps([kind, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_number(
    field: str, value: float | None, *, maximum: float, positive: bool = False
) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise errors.InvalidJob(field, "must be a finite number")
    if value < 0 or (positive and value == 0):
        raise errors.InvalidJob(field, "must be positive" if positive else "must not be negative")
    if value > maximum:
        raise errors.InvalidJob(field, f"must be at most {maximum:g}")


class JobQueue:
    """Enqueue jobs for registered kinds.

    >>> queue = JobQueue(repository, registry)
    >>> result = await queue.enqueue("email.send", {"to": "a@b.c"}, dedupe_key="welcome:42")
    >>> result.created  # False when an active job already held the key
    """

    def __init__(self, repository: JobRepository, registry: Registry) -> None:
        self.repository = repository
        self.registry = registry

    def build(
        self,
        kind: str,
        payload: Any = None,
        *,
        queue: str = "default",
        priority: int = 0,
        delay: float = 0.0,
        dedupe_key: str | None = None,
        max_attempts: int | None = None,
        retry: RetryOverride | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> NewJob:
        """Validate an untrusted request into a :class:`NewJob`: the generic fields here, the
        payload by the kind's own validator (raises ``InvalidJob``/``UnknownJobKind``)."""
        job_kind = self.registry.get(kind)
        data = check_json({} if payload is None else payload)
        if job_kind.validate is not None:
            data = job_kind.validate(data)
        _check_number("delay", delay, maximum=MAX_DELAY_SECONDS)
        _check_number("timeout", timeout, positive=True, maximum=MAX_TIMEOUT_SECONDS)
        if not queue or len(queue) > MAX_KEY_LENGTH:
            raise errors.InvalidJob("queue", f"must be 1 to {MAX_KEY_LENGTH} characters")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise errors.InvalidJob("priority", "must be an integer")
        if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
            raise errors.InvalidJob(
                "priority", f"must be between -{MAX_PRIORITY} and {MAX_PRIORITY}"
            )
        if dedupe_key is not None and not 0 < len(dedupe_key) <= MAX_KEY_LENGTH:
            raise errors.InvalidJob("dedupe_key", f"must be 1 to {MAX_KEY_LENGTH} characters")
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not 1 <= max_attempts <= MAX_ATTEMPTS
        ):
            raise errors.InvalidJob("max_attempts", f"must be between 1 and {MAX_ATTEMPTS}")
        retry = retry or RetryOverride()
        _check_number("retry.base_seconds", retry.base_seconds, maximum=MAX_BACKOFF_SECONDS)
        _check_number("retry.cap_seconds", retry.cap_seconds, maximum=MAX_BACKOFF_SECONDS)
        return NewJob(
            kind=kind,
            payload=data,
            queue=queue,
            priority=priority,
            delay=float(delay),
            dedupe_key=dedupe_key,
            max_attempts=max_attempts or retry.max_attempts,
            retry=retry,
            timeout=timeout,
            idempotency_key=idempotency_key,
        )

    async def enqueue(self, kind: str, payload: Any = None, **options: Any) -> EnqueueResult:
        """Validate and insert a job (see :meth:`build` for the options)."""
        new = self.build(kind, payload, **options)
        return await self.submit(new)

    async def submit_many(self, batch: list[NewJob]) -> list[EnqueueResult]:
        """Insert already validated jobs in one transaction."""
        return await self.repository.enqueue_many([self._prepared(new) for new in batch])

    async def submit(self, new: NewJob) -> EnqueueResult:
        """Insert an already validated :class:`NewJob`, or return the job it repeats.

        The one submission rule, checked once inside the insert's transaction: the same
        ``idempotency_key`` with the same request returns the job it created (with another
        request: ``IdempotencyConflict``); else an active job holding ``dedupe_key`` (or a
        completed one, with ``reuse_completed``) is returned instead of a new one.
        """
        prepared, budget = self._prepared(new)
        return await self.repository.enqueue(prepared, max_attempts=budget)

    def _prepared(self, new: NewJob) -> tuple[NewJob, int]:
        """The request with its fingerprint, and its attempt budget."""
        if new.idempotency_key is not None:
            if not 0 < len(new.idempotency_key) <= MAX_KEY_LENGTH:
                raise errors.InvalidJob(
                    "idempotency_key", f"must be 1 to {MAX_KEY_LENGTH} characters"
                )
            new = dataclasses.replace(new, fingerprint=fingerprint(new.kind, new.payload))
        return new, new.max_attempts or self.registry.get(new.kind).retry.max_attempts
