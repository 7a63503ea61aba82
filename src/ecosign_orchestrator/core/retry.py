"""Retry policy: exponential backoff with full jitter."""

from __future__ import annotations

import dataclasses
import random

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import RetryOverride


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """``delay = uniform(0, min(cap, base * 2**(attempt-1)))``.

    A server's ``Retry-After`` raises the delay, never lowers it.

    Pass a seeded ``random.Random`` to :meth:`delay` for deterministic tests.
    """

    max_attempts: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise errors.ConfigurationError("max_attempts must be at least 1")
        if self.base_seconds < 0 or self.cap_seconds < 0:
            raise errors.ConfigurationError("base_seconds and cap_seconds must not be negative")

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the jittered delay after failed attempt ``attempt`` (1-based)."""
        exponent = min(max(attempt, 1) - 1, 62)  # avoid float overflow on absurd attempt counts
        return float(min(self.cap_seconds, self.base_seconds * (2**exponent)))

    def delay(
        self, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt ``attempt``."""
        jittered = (rng or random).uniform(0.0, self.ceiling(attempt))
        if retry_after is not None and retry_after > jittered:
            return float(retry_after)
        return jittered

    def exhausted(self, attempt: int) -> bool:
        """True when attempt ``attempt`` was the last one allowed."""
        return attempt >= self.max_attempts

    def with_override(self, override: RetryOverride) -> RetryPolicy:
        """This policy with a job's overrides applied."""
        return RetryPolicy(
            max_attempts=override.max_attempts or self.max_attempts,
            base_seconds=(
                self.base_seconds if override.base_seconds is None else override.base_seconds
            ),
            cap_seconds=self.cap_seconds if override.cap_seconds is None else override.cap_seconds,
        )
