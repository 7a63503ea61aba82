"""Checks and patterns every backend applies to its arguments the same way: page sizes, short
ids, LIKE prefixes, prunable statuses (each refusal an ``InvalidJob`` naming the field)."""

from __future__ import annotations

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.status import JobStatus


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching strings that start with ``prefix`` (wildcards escaped)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


#: The shortest job id fragment accepted in place of a full id.
MIN_SHORT_ID = 8
_SHORT_ID_CHARS = frozenset("0123456789abcdef-")


def check_short_id(short_id: str) -> str:
    """A lowercase fragment of a job id, or ``InvalidJob`` naming ``job_id``."""
    value = short_id.strip().lower()
    if len(value) < MIN_SHORT_ID or len(value) > 36 or not set(value) <= _SHORT_ID_CHARS:
        raise errors.InvalidJob(
            "job_id", f"must be a job id, or {MIN_SHORT_ID} or more of its first or last characters"
        )
    return value


def id_patterns(short_id: str) -> dict[str, str]:
    """LIKE patterns for ids starting or ending with ``short_id`` (hex and ``-`` only: no
    wildcard to escape)."""
    value = check_short_id(short_id)
    return {"prefix": value + "%", "suffix": "%" + value}


def check_limit(limit: int) -> int:
    """Validate a page size."""
    if not 1 <= limit <= 10_000:
        raise errors.InvalidJob("limit", "must be between 1 and 10000")
    return limit


def check_terminal(status: JobStatus) -> JobStatus:
    """Only finished jobs may be pruned."""
    if not status.is_terminal:
        raise errors.InvalidJob("status", f"only finished jobs are pruned, not {status.value}")
    return status
