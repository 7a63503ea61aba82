"""Whether an enqueue repeats an earlier job: by its idempotency key, then its dedupe key.

Every backend's enqueue asks this inside its write transaction, before it creates anything; a
request holding neither key (``NewJob.keyless``) cannot repeat one and is never looked up.
"""

from __future__ import annotations

from typing import Protocol

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import Job, NewJob


class Lookups(Protocol):
    """The two reads of a write transaction this needs."""

    async def find_idempotent(self, key: str) -> Job | None:
        """The job created with idempotency key ``key``, whatever its status."""

    async def find_holder(self, dedupe_key: str, *, reuse_completed: bool) -> Job | None:
        """The job a repeat of ``dedupe_key`` returns (active, or completed if reused)."""


async def repeated_job(tx: Lookups, new: NewJob) -> Job | None:
    """The job a request must return instead of creating one (idempotency key, dedupe key);
    :class:`~ecosign_orchestrator.core.errors.IdempotencyConflict` if its idempotency key was
    first used with another request."""
    if new.idempotency_key is not None:
        previous = await tx.find_idempotent(new.idempotency_key)
        if previous is not None:
            if not _same_request(previous, new):
                raise errors.IdempotencyConflict(new.idempotency_key, previous.id)
            return previous
    if new.dedupe_key is not None:
        return await tx.find_holder(new.dedupe_key, reuse_completed=new.reuse_completed)
    return None


def _same_request(previous: Job, new: NewJob) -> bool:
    """Whether ``new`` repeats the request that created ``previous``. A job created in SQL
    (``jsonb:`` fingerprint) is compared by kind and normalised payload: SQL cannot reproduce
    Python's JSON text byte for byte."""
    if previous.fingerprint is not None and previous.fingerprint.startswith("jsonb:"):
        return previous.kind == new.kind and previous.payload == new.payload
    return previous.fingerprint == new.fingerprint
