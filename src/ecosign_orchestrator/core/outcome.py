"""How a run ended, as the worker records it: one type per outcome, matched in one place."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import ClassVar

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import JobError
from ecosign_orchestrator.core.types import JSONValue


@dataclasses.dataclass(frozen=True, slots=True)
class Completed:
    """The processor returned a result."""

    label: ClassVar[str] = "completed"
    result: JSONValue = None

    @classmethod
    def checked(cls, result: JSONValue) -> Completed:
        """The outcome of a processor that returned ``result``; a :class:`FatalError` if the
        result is not JSON (it could never be stored)."""
        try:
            json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise errors.FatalError(f"processor result is not JSON-serialisable: {exc}") from None
        return cls(result)


@dataclasses.dataclass(frozen=True, slots=True)
class Snoozed:
    """Run again after ``delay`` seconds without spending an attempt."""

    label: ClassVar[str] = "snoozed"
    delay: float
    message: str = ""
    #: When the processor stops waiting (None: it did not say).
    deadline: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Retryable:
    """A transient failure: retry per policy, or after ``delay`` when the processor chose it."""

    label: ClassVar[str] = "retrying"
    error: JobError
    retry_after: float | None = None
    #: A delay the processor chose (``TransientError(delay=...)``); None: the policy's backoff.
    delay: float | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Failed:
    """A fatal failure: the job ends ``failed``."""

    label: ClassVar[str] = "failed"
    error: JobError


@dataclasses.dataclass(frozen=True, slots=True)
class CancelledByUser:
    """A user asked to cancel; the worker stopped the processor."""

    label: ClassVar[str] = "cancelled"


@dataclasses.dataclass(frozen=True, slots=True)
class Released:
    """The worker shut down before the job finished; it goes back to the queue."""

    label: ClassVar[str] = "released"


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseLost:
    """The worker learnt that its lease is gone: another worker may own the job now."""

    label: ClassVar[str] = "lease_lost"


Outcome = Completed | Snoozed | Retryable | Failed | CancelledByUser | Released | LeaseLost
#: Why the worker itself stopped a running processor.
Interruption = CancelledByUser | Released | LeaseLost
