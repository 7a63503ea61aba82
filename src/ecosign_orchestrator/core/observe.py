"""Hooks for metrics and log context, so the core stays free of any metrics library.

``Instruments`` receives counts and durations (the service implements it with Prometheus);
``bind`` adds fields (job id, document id, step, attempt) to every log record emitted in the
current task, so each line of a job carries them.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, Protocol


class Instruments(Protocol):
    """Receives what a worker and its processors observe."""

    def job_claimed(self, kind: str) -> None:
        """A worker claimed a job."""

    def job_finished(self, kind: str, outcome: str) -> None:
        """A run ended: completed, failed, retrying, snoozed, cancelled or released."""

    def leases_recovered(self, count: int) -> None:
        """Expired leases were returned to the queue (or failed)."""

    def step_finished(self, kind: str, step: str, status: str, seconds: float) -> None:
        """One attempt of a named step ended with ``status`` after ``seconds``."""


class NullInstruments:
    """Instruments that record nothing (the default)."""

    def job_claimed(self, kind: str) -> None:
        """Ignore."""

    def job_finished(self, kind: str, outcome: str) -> None:
        """Ignore."""

    def leases_recovered(self, count: int) -> None:
        """Ignore."""

    def step_finished(self, kind: str, step: str, status: str, seconds: float) -> None:
        """Ignore."""


_EMPTY: Mapping[str, Any] = MappingProxyType({})
_log_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "ecosign_orchestrator_log_context", default=_EMPTY
)


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to the log context of the current task for the duration of the block."""
    token = _log_context.set({**_log_context.get(), **fields})
    try:
        yield
    finally:
        _log_context.reset(token)


def log_context() -> Mapping[str, Any]:
    """The fields bound in the current task."""
    return _log_context.get()
