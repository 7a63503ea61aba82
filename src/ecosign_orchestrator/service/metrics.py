"""Prometheus metrics: worker and processor counters (process-local) plus gauges read from the
database at scrape time (jobs by kind and status, queue depth)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ecosign_orchestrator.core.repository import JobRepository
from ecosign_orchestrator.core.status import JobStatus

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

    async def render(self, repository: JobRepository) -> bytes:
        """The exposition text, with database gauges refreshed now."""
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
        return generate_latest(self.registry)
