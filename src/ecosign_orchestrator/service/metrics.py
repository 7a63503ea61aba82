"""Prometheus metrics: worker and processor counters (process-local) plus gauges read from the
database at scrape time (jobs by kind and status, queue depth, the age of the oldest active job
per kind and step, steps waiting for a confirmation and for how long)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ecosign_orchestrator.core.job import Job, StepRecord, StepStatus, utcnow
from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.service.connections import ConnectionGate

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def status_class(status: int | None) -> str:
    """``2xx``/``4xx``/``5xx``/... or ``network`` when no answer came back."""
    return "network" if status is None else f"{status // 100}xx"


class Metrics:
    """One registry per process (or per app in tests); implements the core ``Instruments``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Gauge(
            "ecosign_orch_jobs", "Jobs by kind and status", ["kind", "status"], registry=r
        )
        self.queue_depth = Gauge(
            "ecosign_orch_queue_depth",
            "Jobs waiting to run (queued or retrying)",
            ["kind"],
            registry=r,
        )
        self.oldest_active = Gauge(
            "ecosign_orch_oldest_active_seconds",
            "Age of the oldest active job by kind and the step it is at ('-' before any step), "
            f"among the {AGE_SAMPLE} oldest active jobs",
            ["kind", "step"],
            registry=r,
        )
        self.waiting = Gauge(
            "ecosign_orch_steps_waiting",
            "Active jobs whose current step waits for a confirmation (anchors), by step",
            ["kind", "step"],
            registry=r,
        )
        self.waiting_oldest = Gauge(
            "ecosign_orch_step_waiting_oldest_seconds",
            "How long the oldest waiting step has waited since it started, by step",
            ["kind", "step"],
            registry=r,
        )
        self.slots = Gauge(
            "ecosign_orch_slots_in_use",
            "Fleet-wide slots held per key (an Edge Function with a limit)",
            ["key"],
            registry=r,
        )
        self.circuit_open = Gauge(
            "ecosign_orch_circuit_open_seconds",
            "Seconds a key's circuit stays open (0: closed or probing)",
            ["key"],
            registry=r,
        )
        self.circuit_failures = Gauge(
            "ecosign_orch_circuit_failures",
            "Consecutive transient failures of a key, fleet-wide",
            ["key"],
            registry=r,
        )
        self.claims = Counter("ecosign_orch_claims_total", "Jobs claimed", ["kind"], registry=r)
        self.outcomes = Counter(
            "ecosign_orch_job_outcomes_total",
            "Runs by outcome (completed, failed, retrying, snoozed, cancelled, released)",
            ["kind", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "ecosign_orch_retries_total",
            "Runs rescheduled after a transient failure",
            ["kind"],
            registry=r,
        )
        self.lease_recoveries = Counter(
            "ecosign_orch_lease_recoveries_total", "Expired leases recovered", registry=r
        )
        self.step_duration = Histogram(
            "ecosign_orch_step_duration_seconds",
            "Duration of one attempt of a step",
            ["kind", "step", "status"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.edge_calls = Counter(
            "ecosign_orch_edge_calls_total",
            "Edge Function calls by function and status class",
            ["function", "status_class"],
            registry=r,
        )
        self.connections = Gauge(
            "ecosign_orch_http_connections", "HTTP connections open now", registry=r
        )
        self.connections_cut = Counter(
            "ecosign_orch_http_connections_cut_total",
            "HTTP connections the server cut or refused, by reason (header_timeout, "
            "body_timeout, stalled: an answer left unread; client_cap; cap)",
            ["reason"],
            registry=r,
        )
        self._cut_seen: dict[str, int] = {}
        self.edge_exchanges = Gauge(
            "ecosign_orch_edge_exchanges",
            "HTTP requests to EcoSign (Edge calls, REST reads) by state: open now, or waiting "
            "for one of the EDGE_MAX_CONNECTIONS to end",
            ["state"],
            registry=r,
        )

    # -- core Instruments ------------------------------------------------------------------------

    def job_claimed(self, kind: str) -> None:
        """Count a claim."""
        self.claims.labels(kind).inc()

    def job_finished(self, kind: str, outcome: str) -> None:
        """Count a run's outcome."""
        self.outcomes.labels(kind, outcome).inc()
        if outcome == "retrying":
            self.retries.labels(kind).inc()

    def leases_recovered(self, count: int) -> None:
        """Count recovered leases."""
        self.lease_recoveries.inc(count)

    def step_finished(self, kind: str, step: str, status: str, seconds: float) -> None:
        """Observe a step attempt's duration."""
        self.step_duration.labels(kind, step, status).observe(seconds)

    # -- Edge client observer --------------------------------------------------------------------

    def edge_call(self, function: str, status: int | None, seconds: float) -> None:
        """Count an Edge Function call by status class."""
        del seconds
        self.edge_calls.labels(function, status_class(status)).inc()

    def watch_exchanges(self, source: Callable[[], tuple[int, int]]) -> None:
        """Read (open, waiting) from ``source`` whenever the gauges are collected (the
        process's EcoSign client)."""
        self.edge_exchanges.labels("open").set_function(lambda: source()[0])
        self.edge_exchanges.labels("waiting").set_function(lambda: source()[1])

    def connection_gate(self, gate: ConnectionGate) -> None:
        """Bring the HTTP connection figures up to date with the server's gate."""
        self.connections.set(gate.open)
        for reason, total in gate.cut.items():
            self.connections_cut.labels(reason).inc(total - self._cut_seen.get(reason, 0))
            self._cut_seen[reason] = total

    async def render(
        self,
        repository: JobRepository,
        *,
        now: datetime | None = None,
        gate: ConnectionGate | None = None,
    ) -> bytes:
        """The exposition text, with database gauges refreshed now (ages measured at ``now``)
        and, for a server, its connection figures."""
        if gate is not None:
            self.connection_gate(gate)
        counts = await repository.counts()
        self.jobs.clear()
        self.queue_depth.clear()
        depth: dict[str, int] = {}
        for (kind, status), n in counts.items():
            self.jobs.labels(kind, status.value).set(n)
            if status in (JobStatus.QUEUED, JobStatus.RETRYING):
                depth[kind] = depth.get(kind, 0) + n
        for kind, n in depth.items():
            self.queue_depth.labels(kind).set(n)
        self._ages(await repository.oldest_active(limit=AGE_SAMPLE), now or utcnow())
        for gauge in (self.slots, self.circuit_open, self.circuit_failures):
            gauge.clear()
        for key, used in (await repository.slots_in_use()).items():
            self.slots.labels(key).set(used)
        for key, (failures, open_seconds) in (await repository.circuits()).items():
            self.circuit_failures.labels(key).set(failures)
            self.circuit_open.labels(key).set(open_seconds)
        return generate_latest(self.registry)

    def _ages(self, jobs: list[Job], now: datetime) -> None:
        for gauge in (self.oldest_active, self.waiting, self.waiting_oldest):
            gauge.clear()
        oldest: dict[tuple[str, str], float] = {}
        waiting: dict[tuple[str, str], list[float]] = {}
        for job in jobs:
            step = current_step(job)
            key = (job.kind, step.name if step is not None else "-")
            oldest[key] = max(oldest.get(key, 0.0), (now - job.created_at).total_seconds())
            if step is not None and step.status is StepStatus.WAITING:
                since = step.started_at or step.updated_at or job.created_at
                waiting.setdefault(key, []).append((now - since).total_seconds())
        for (kind, step_name), age in oldest.items():
            self.oldest_active.labels(kind, step_name).set(age)
        for (kind, step_name), ages in waiting.items():
            self.waiting.labels(kind, step_name).set(len(ages))
            self.waiting_oldest.labels(kind, step_name).set(max(ages))


#: Age gauges are computed from this many of the oldest active jobs.
AGE_SAMPLE = 1000
_CURRENT = (StepStatus.RUNNING, StepStatus.WAITING, StepStatus.RETRYING)


def current_step(job: Job) -> StepRecord | None:
    """The step a job is at: the first one running, waiting or retrying (None if none is)."""
    return next((s for s in job.steps if s.status in _CURRENT), None)
