"""PostgreSQL: the dialect's rows, error mapping and one transaction's statements.

``PgTx`` is the unit of work ``TransactionalRepository`` applies transitions with; every
statement is a named query of ``postgres_queries.sql``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Protocol

import psycopg
from psycopg.types.json import Jsonb, set_json_dumps, set_json_loads
from psycopg_pool import PoolTimeout

from ecosign_orchestrator.core import errors, jsonfast
from ecosign_orchestrator.core.events import Event
from ecosign_orchestrator.core.job import Job
from ecosign_orchestrator.core.repository import postgres_documents as documents
from ecosign_orchestrator.core.repository.codec import RowCodec
from ecosign_orchestrator.core.transitions import EventDraft
from ecosign_orchestrator.core.types import JobId

Row = dict[str, Any]


class _Queries(Protocol):
    """What a transaction needs of its repository."""

    @property
    def channel(self) -> str: ...

    def query(self, name: str) -> str: ...


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Map driver and pool errors to :class:`RepositoryError` (the original in ``__cause__``)."""
    try:
        yield
    except psycopg.errors.UniqueViolation as exc:
        raise errors.DuplicateJob(None) from exc
    except (psycopg.Error, PoolTimeout, OSError) as exc:
        raise errors.RepositoryError(f"postgresql: {type(exc).__name__}: {exc}".strip()) from exc


def fast_json(conn: psycopg.AsyncConnection[Any]) -> None:
    """Decode and encode this connection's ``json``/``jsonb`` values with orjson (see
    :mod:`..jsonfast`): a connection's own adapters, nothing process-wide changes."""
    set_json_loads(jsonfast.loads, conn)
    set_json_dumps(jsonfast.dumps, conn)


#: Rows of this dialect: JSON as ``jsonb``, time as ``timestamptz`` (psycopg adapts both).
CODEC = RowCodec(
    json_in=Jsonb,
    json_out=lambda value: value,
    time_in=lambda value: value,
    time_out=lambda value: value,
    placeholder=lambda name: f"%({name})s",
)
row_to_job = CODEC.row_to_job
row_to_event = CODEC.row_to_event


#: Queries planned afresh at every run, never prepared: psycopg prepares a statement run 5 times
#: on a connection, and the generic plan PostgreSQL may then cache cannot see which optional
#: filters (``param IS NULL OR ...``) are in use, so it scans the whole table.
PLANNED_EACH_RUN = frozenset({"list_jobs"})


def prepare_flag(name: str) -> bool | None:
    """psycopg's ``prepare`` flag for a named query (None: its default threshold)."""
    return False if name in PLANNED_EACH_RUN else None


class PgTx:
    """One transaction's statements (``TransactionalRepository``'s unit of work)."""

    def __init__(self, repo: _Queries, conn: psycopg.AsyncConnection[Row]) -> None:
        self._repo = repo
        self._conn = conn

    async def _fetch(self, name: str, params: Row) -> list[Row]:
        cursor = await self._conn.execute(
            self._repo.query(name), params, prepare=prepare_flag(name)
        )
        return await cursor.fetchall() if cursor.description else []

    async def load(self, job_id: JobId) -> Job:
        rows = await self._fetch("load_job", {"id": job_id})
        if not rows:
            raise errors.JobNotFound(job_id)
        return row_to_job(rows[0])

    async def fetch(self, job_id: JobId) -> Job:
        rows = await self._fetch("get_job", {"id": job_id})
        if not rows:
            raise errors.JobNotFound(job_id)
        return row_to_job(rows[0])

    async def find_holder(self, dedupe_key: str, *, reuse_completed: bool) -> Job | None:
        params = {"dedupe_key": dedupe_key, "reuse_completed": reuse_completed}
        rows = await self._fetch("find_holder", params)
        return row_to_job(rows[0]) if rows else None

    async def find_idempotent(self, key: str) -> Job | None:
        rows = await self._fetch("find_idempotent", {"key": key})
        return row_to_job(rows[0]) if rows else None

    async def insert(self, job: Job) -> None:
        if not await self._fetch("insert_job", CODEC.job_to_row(job)):
            raise errors.DuplicateJob(job.dedupe_key)

    async def update(self, job: Job) -> None:
        await self._fetch("update_job", CODEC.job_to_row(job))

    async def add_event(self, draft: EventDraft) -> Event:
        rows = await self._fetch(
            "insert_event",
            {
                "job_id": draft.job_id,
                "type": draft.type.value,
                "at": draft.at,
                "attempt": draft.attempt,
                "data": Jsonb(draft.data),
            },
        )
        return draft.stored(rows[0]["id"])

    async def insert_many(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        # One statement and one parameter for the whole batch (see postgres_documents).
        await self._fetch("insert_jobs", {"jobs": Jsonb([documents.job_document(j) for j in jobs])})

    async def add_events(self, drafts: Sequence[EventDraft]) -> list[Event]:
        if not drafts:
            return []
        params = {"events": Jsonb([documents.event_document(d) for d in drafts])}
        rows = await self._fetch("insert_events", params)  # one statement, ids in input order
        return [d.stored(row["id"]) for row, d in zip(rows, drafts, strict=True)]

    async def expired(self, *, limit: int, now: datetime) -> list[Job]:
        return [row_to_job(r) for r in await self._fetch("expired", {"limit": limit})]

    async def ready(self) -> None:
        await self._fetch("notify", {"channel": self._repo.channel, "kind": ""})
