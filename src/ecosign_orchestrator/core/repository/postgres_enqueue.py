"""PostgreSQL: new jobs that hold no key, with their events and the wake-up, in one statement.

A mixin of :class:`~ecosign_orchestrator.core.repository.postgres.PostgresRepository`, the
enqueue hot path (one by one and in batches). A new job's row is mostly defaults, so it travels
as a compact JSON object of what the request set (one ``json.dumps`` for a whole batch, one
parameter); the statement fills in the rest, inserts the ``job_queued`` events and wakes idle
workers. The whole 27-column document per job it replaces was two thirds of a batch's client
CPU, and the jobs, their events and the wake-up were three statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from ecosign_orchestrator.core import ids, transitions
from ecosign_orchestrator.core.events import EventBus
from ecosign_orchestrator.core.job import KIND_RETRY, EnqueueResult, Job, NewJob, utcnow
from ecosign_orchestrator.core.repository.postgres_tx import Row
from ecosign_orchestrator.core.transitions import EventDraft


class PostgresEnqueue:
    """``_enqueue_new`` (the repository supplies the queries, the channel and the bus)."""

    bus: EventBus

    @property
    def channel(self) -> str:
        """The NOTIFY channel idle workers listen on."""
        raise NotImplementedError

    async def _fetch(self, name: str, params: Row) -> list[Row]:
        """One named statement outside a transaction."""
        raise NotImplementedError

    if TYPE_CHECKING:  # the repository's base class has it (a stub here would shadow it)

        def _notify_ready(self) -> None: ...

    async def _enqueue_new(self, batch: Sequence[tuple[NewJob, int]]) -> list[EnqueueResult]:
        """Insert ``(job, max_attempts)`` pairs holding neither an idempotency nor a dedupe
        key (nothing to look up: they cannot repeat a job) in one statement."""
        now = utcnow()
        made = [
            transitions.new_job(new, job_id=job_id, now=now, max_attempts=attempts)
            for (new, attempts), job_id in zip(batch, ids.new_job_ids(len(batch)), strict=True)
        ]
        params: Row = {
            "now": now,
            "jobs": Jsonb([_compact(job, draft) for job, draft in made]),
            "channel": self.channel,
        }
        rows = await self._fetch("enqueue_new", params)  # event ids, in input order
        if self.bus.listened:
            self.bus.publish([d.stored(r["id"]) for r, (_, d) in zip(rows, made, strict=True)])
        self._notify_ready()
        return [EnqueueResult(job=job, created=True) for job, _ in made]


def _compact(job: Job, queued: EventDraft) -> dict[str, Any]:
    """What a new job sets beyond the defaults of a new row (the statement's column list):
    ``run_at`` only when delayed, as its ``job_queued`` event says it; priority and retry
    overrides only when set (the statement fills in 0 and ``{}``)."""
    document: dict[str, Any] = {
        "id": job.id,
        "kind": job.kind,
        "queue": job.queue,
        "payload": job.payload,
        "max_attempts": job.max_attempts,
    }
    if job.priority:
        document["priority"] = job.priority
    if job.retry is not KIND_RETRY:
        document["retry"] = job.retry.to_json()
    if "run_at" in queued.data:
        document["run_at"] = queued.data["run_at"]
    if job.timeout is not None:
        document["timeout"] = job.timeout
    if job.fingerprint is not None:
        document["fingerprint"] = job.fingerprint
    return document
