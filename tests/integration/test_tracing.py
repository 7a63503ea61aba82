"""OpenTelemetry: a flow is one trace, a span per run with a child per step attempt, and every
Edge call carries a traceparent naming its step's span (real SDK, in-memory exporter, real
sandbox over HTTP)."""

from __future__ import annotations

import uuid

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ecosign_orchestrator.ecosign.steps import DEFAULT_FUNCTIONS
from ecosign_orchestrator.service import tracing
from tests.support.flows import FlowHarness
from tests.support.waiting import wait_job


async def test_a_flow_is_one_trace_with_a_span_per_step_attempt_and_traceparent_on_calls(
    flow: FlowHarness,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    doc = await flow.admin.create_document()
    job_id = await flow.submit(doc, {"protect": True}, {"tsa": True})
    async with flow.worker() as worker:
        worker.tracer = tracing.OtelTracer(provider)  # before the worker's task first runs
        job = await wait_job(flow.repository, job_id, lambda j: j.status.is_terminal)
    assert job.status.value == "completed"
    spans = exporter.get_finished_spans()
    trace_id = uuid.UUID(job_id).int
    assert {s.context.trace_id for s in spans} == {trace_id}, "the job's id is its trace id"
    runs = [s for s in spans if s.name == "ecosign.document run"]
    steps = [s for s in spans if s.name.startswith("step ")]
    assert len(runs) == 1 and len(runs) + len(steps) == len(spans)
    assert runs[0].attributes is not None and runs[0].attributes["job.outcome"] == "completed"
    assert all(s.parent is not None and s.parent.span_id == runs[0].context.span_id for s in steps)
    events = await flow.repository.events(job_id=job_id)
    started = [e.data["step"] for e in events if e.type.value == "step_started"]
    assert sorted(s.name.removeprefix("step ") for s in steps) == sorted(started)
    by_step = {s.name.removeprefix("step "): s.context.span_id for s in steps}
    calls = (await flow.admin.ledger(doc))["calls"]
    assert len(calls) == len(started)
    step_of = {function: step.value for step, function in DEFAULT_FUNCTIONS.items()}
    for call in calls:
        version, call_trace, parent, flags = call["traceparent"].split("-")
        assert (version, int(call_trace, 16), flags) == ("00", trace_id, "01")
        assert int(parent, 16) == by_step[step_of[call["function"]]], call["function"]


def test_tracing_is_off_unless_the_environment_asks_and_says_how_to_get_the_sdk() -> None:
    from ecosign_orchestrator.core.observe import NullTracer

    assert isinstance(tracing.tracer_from_environment({}), NullTracer)
    off = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
    assert isinstance(tracing.tracer_from_environment(off), NullTracer)
    on = tracing.tracer_from_environment({"OTEL_TRACES_EXPORTER": "console"})
    assert isinstance(on, tracing.OtelTracer)
    on.shutdown()
