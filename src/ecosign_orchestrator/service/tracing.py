"""Distributed tracing with OpenTelemetry, configured the standard way.

Off, and free, unless the environment asks for it: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) exports spans over OTLP/HTTP,
``OTEL_TRACES_EXPORTER=console`` prints them; ``OTEL_SERVICE_NAME`` names the service (default
``ecosign-orchestrator``) and ``OTEL_SDK_DISABLED=true`` turns it off. The SDK is the ``otel`` extra
(``pip install 'ecosign-orchestrator[otel]'``).

Shape: one span per run of a job (``<kind> run``) with a child per step attempt (``step
<name>``); every outside call carries a W3C ``traceparent`` naming its step's span, so an Edge
Function's own logs join the flow. All runs of one job share one trace: its id is the job's id
(a UUID), so a flow that waits for anchors across several runs is still one trace.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ecosign_orchestrator.core.observe import NullTracer, RunTrace, Span, Tracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

logger = logging.getLogger(__name__)


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for tracing."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").lower()
    if exporter == "none":
        return False
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return bool(exporter) or any(environ.get(name) for name in endpoints)


def tracer_from_environment(environ: Mapping[str, str] | None = None) -> Tracer:
    """An OpenTelemetry tracer when the environment configures one, else a tracer that does
    nothing (also when the SDK is missing: a warning says how to install it)."""
    environ = os.environ if environ is None else environ
    if not wanted(environ):
        return NullTracer()
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError:
        logger.warning(
            "OTEL_* asks for tracing but the OpenTelemetry SDK is not installed: "
            "pip install 'ecosign-orchestrator[otel]'",
            extra={"action": "tracing_unavailable"},
        )
        return NullTracer()
    exporter: SpanExporter
    if environ.get("OTEL_TRACES_EXPORTER", "").lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself
    name = environ.get("OTEL_SERVICE_NAME", "ecosign-orchestrator")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    logger.info("tracing to %s", type(exporter).__name__, extra={"action": "tracing_on"})
    return OtelTracer(provider)


class OtelTracer:
    """The core's :class:`Tracer` on an OpenTelemetry ``TracerProvider``."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer("ecosign_orchestrator")
        self._propagator = TraceContextTextMapPropagator()

    @contextlib.contextmanager
    def run(self, job_id: str, kind: str, attempt: int) -> Iterator[RunTrace]:
        """A span around one run, in the job's trace."""
        attributes: dict[str, str | int] = {
            "job.id": job_id,
            "job.kind": kind,
            "job.attempt": attempt,
        }
        with self._tracer.start_as_current_span(
            f"{kind} run", context=_job_trace(job_id), attributes=attributes
        ) as span:
            yield _OtelRunTrace(span)

    def step(self, job_id: str, kind: str, name: str, attempt: int) -> Span:
        """A child span of the current run for one step attempt."""
        attributes: dict[str, str | int] = {
            "job.id": job_id,
            "job.kind": kind,
            "step.name": name,
            "step.attempt": attempt,
        }
        span = self._tracer.start_span(f"step {name}", attributes=attributes)
        return _OtelStepSpan(span, self._propagator)

    def shutdown(self) -> None:
        """Export what is buffered and stop (at process exit)."""
        self._provider.shutdown()


def _job_trace(job_id: str) -> Any:
    """A context whose remote parent carries the job's trace id (the job id's 128 bits)."""
    from opentelemetry import trace

    try:
        trace_id = uuid.UUID(job_id).int
    except ValueError:
        trace_id = uuid.uuid5(uuid.NAMESPACE_OID, job_id).int
    parent = trace.SpanContext(
        trace_id=trace_id,
        span_id=(trace_id & 0xFFFF_FFFF_FFFF_FFFF) or 1,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


class _OtelRunTrace:
    def __init__(self, span: Any) -> None:
        self._span = span

    def outcome(self, label: str, error: str = "") -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("job.outcome", label)
        if label in ("failed", "retrying"):
            self._span.set_status(Status(StatusCode.ERROR, error or label))


class _OtelStepSpan:
    def __init__(self, span: Any, propagator: Any) -> None:
        self._span = span
        self._propagator = propagator

    def end(self, status: str, error: str = "") -> None:
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("step.status", status)
        if status in ("failed", "retrying"):
            self._span.set_status(Status(StatusCode.ERROR, error or status))
        self._span.end()

    def headers(self) -> dict[str, str]:
        from opentelemetry import trace

        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(self._span))
        return carrier


def shutdown(tracer: Tracer) -> None:
    """Flush and stop ``tracer`` if it exports anything."""
    if isinstance(tracer, OtelTracer):
        tracer.shutdown()
