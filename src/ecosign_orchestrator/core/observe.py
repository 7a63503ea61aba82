"""Hooks for metrics, tracing and log context, so the core stays free of any such library.

``Instruments`` receives counts and durations (the service implements it with Prometheus);
``Tracer`` receives runs and step attempts (the service implements it with OpenTelemetry);
``bind`` adds fields (job id, document id, step, attempt) to every log record emitted in the
current task, so each line of a job carries them.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
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


class Span(Protocol):
    """One traced piece of work (a step attempt), ended explicitly."""

    def end(self, status: str, error: str = "") -> None:
        """End it: ``status`` is how the step attempt ended; ``error`` why it failed."""

    def headers(self) -> dict[str, str]:
        """Trace-context headers (W3C ``traceparent``) naming this span, for outgoing calls."""


class RunTrace(Protocol):
    """The trace of one run of a job, told how the run ended."""

    def outcome(self, label: str, error: str = "") -> None:
        """How the run ended (completed, failed, retrying, snoozed, ...) and why it failed."""


class Tracer(Protocol):
    """Receives the shape of the work for distributed tracing (the service implements it with
    OpenTelemetry when configured). Every run of one job belongs to one trace."""

    def run(self, job_id: str, kind: str, attempt: int) -> AbstractContextManager[RunTrace]:
        """Around one run of a job: the step spans started inside are its children."""

    def step(self, job_id: str, kind: str, name: str, attempt: int) -> Span:
        """A step attempt begins (a child of the current run)."""


class _NullSpan:
    def end(self, status: str, error: str = "") -> None:
        """Ignore."""

    def outcome(self, label: str, error: str = "") -> None:
        """Ignore."""

    def headers(self) -> dict[str, str]:
        """No trace context."""
        return {}


class NullTracer:
    """A tracer that records nothing (the default): free when tracing is not configured."""

    def run(self, job_id: str, kind: str, attempt: int) -> AbstractContextManager[RunTrace]:
        """Nothing around the run."""
        return contextlib.nullcontext(_NULL_SPAN)

    def step(self, job_id: str, kind: str, name: str, attempt: int) -> Span:
        """A span that does nothing."""
        return _NULL_SPAN


_NULL_SPAN = _NullSpan()
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
