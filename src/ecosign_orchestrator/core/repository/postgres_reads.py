"""PostgreSQL: reads (lists, events, calls, counts) and maintenance (pruning, probes).

A mixin of :class:`~ecosign_orchestrator.core.repository.postgres.PostgresRepository`; each is one
named statement outside a transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import Event
from ecosign_orchestrator.core.job import Job
from ecosign_orchestrator.core.repository.checks import (
    check_limit,
    check_terminal,
    id_patterns,
    like_prefix,
)
from ecosign_orchestrator.core.repository.postgres_tx import CODEC, Row, row_to_event, row_to_job
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.types import JobId


class PostgresReads:
    """Reads and maintenance statements (the repository supplies ``_fetch``)."""

    async def _fetch(self, name: str, params: Row) -> list[Row]:
        """One named statement outside a transaction."""
        raise NotImplementedError

    async def list_jobs(
        self,
        *,
        statuses: Sequence[JobStatus] | None = None,
        kinds: Sequence[str] | None = None,
        dedupe_key: str | None = None,
        dedupe_prefix: str | None = None,
        before: JobId | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """Jobs newest first."""
        params: Row = {
            "statuses": None if statuses is None else [s.value for s in statuses],
            "kinds": None if kinds is None else list(kinds),
            "dedupe_key": dedupe_key,
            "dedupe_like": None if dedupe_prefix is None else like_prefix(dedupe_prefix),
            "before": before,
            "limit": check_limit(limit),
        }
        return [row_to_job(r) for r in await self._fetch("list_jobs", params)]

    async def events(
        self, *, after_id: int = 0, job_id: JobId | None = None, limit: int = 1000
    ) -> list[Event]:
        """Events after ``after_id``, oldest first."""
        params: Row = {"after_id": after_id, "job_id": job_id, "limit": check_limit(limit)}
        query = "events" if job_id is None else "job_events"
        return [row_to_event(r) for r in await self._fetch(query, params)]

    async def ids_matching(self, short_id: str) -> list[JobId]:
        """Up to two ids starting or ending with ``short_id``."""
        rows = await self._fetch("ids_matching", dict(id_patterns(short_id)))
        return [JobId(r["id"]) for r in rows]

    async def calls(self, job_id: JobId, *, limit: int = 1000) -> list[CallRecord]:
        """A job's call log, oldest first."""
        params: Row = {"job_id": job_id, "limit": check_limit(limit)}
        return [CODEC.row_to_call(r) for r in await self._fetch("job_calls", params)]

    async def last_event_id(self) -> int:
        """The newest event id (0 when none)."""
        return int((await self._fetch("last_event_id", {}))[0]["id"])

    # -- maintenance ---------------------------------------------------------------------------

    async def prune(self, *, status: JobStatus, finished_before: datetime, limit: int) -> int:
        """Delete one retention batch (rows another pruner holds are skipped)."""
        params: Row = {
            "status": check_terminal(status).value,
            "before": finished_before,
            "limit": check_limit(limit),
        }
        return len(await self._fetch("prune", params))

    async def count_prunable(self, *, status: JobStatus, finished_before: datetime) -> int:
        """How many jobs :meth:`prune` would delete."""
        params: Row = {"status": check_terminal(status).value, "before": finished_before}
        return int((await self._fetch("count_prunable", params))[0]["n"])

    async def probe_write(self) -> None:
        """Commit one row rewrite (fails on a read-only, full or unreachable server)."""
        await self._fetch("probe_write", {})

    async def oldest_active(self, *, limit: int = 1000) -> list[Job]:
        """The oldest active jobs, oldest first."""
        params: Row = {"limit": check_limit(limit)}
        return [row_to_job(r) for r in await self._fetch("oldest_active", params)]

    async def counts(self) -> dict[tuple[str, JobStatus], int]:
        """Jobs per (kind, status)."""
        rows = await self._fetch("counts", {})
        return {(r["kind"], JobStatus(r["status"])): r["n"] for r in rows}
