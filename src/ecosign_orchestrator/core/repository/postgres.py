"""PostgreSQL backend: the distributed engine.

Workers on any number of machines coordinate only through the database: claims in one statement
with ``FOR UPDATE SKIP LOCKED``, leases by the database clock, fenced writes, ``LISTEN/NOTIFY``
wake-ups (polling stays the fallback, so a lost notification costs latency, never a job).
Tables live in their own schema (default ``orchestrator``) so they can share EcoSign's database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.events import Event, EventType
from ecosign_orchestrator.core.job import EnqueueResult, Job, NewJob, Progress
from ecosign_orchestrator.core.repository import postgres_documents as documents
from ecosign_orchestrator.core.repository import postgres_pooler, postgres_schema, sql
from ecosign_orchestrator.core.repository.base import (
    TransactionalRepository,
)
from ecosign_orchestrator.core.repository.batching import Batcher
from ecosign_orchestrator.core.repository.postgres_enqueue import PostgresEnqueue
from ecosign_orchestrator.core.repository.postgres_gates import PostgresGates
from ecosign_orchestrator.core.repository.postgres_reads import PostgresReads
from ecosign_orchestrator.core.repository.postgres_running import Completion, PostgresRunning
from ecosign_orchestrator.core.repository.postgres_tx import (
    CODEC,
    PgTx,
    Row,
    fast_json,
    prepare_flag,
    row_to_job,
    translate_errors,
)
from ecosign_orchestrator.core.types import JobId, LeaseToken

logger = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,50}", re.ASCII)


def check_schema_name(name: str) -> str:
    """Only plain lowercase identifiers are interpolated into SQL."""
    if not _IDENTIFIER.fullmatch(name):
        raise errors.ConfigurationError(
            f"invalid schema name {name!r}: use lowercase letters, digits and _ (max 51)"
        )
    return name


async def _configure(conn: psycopg.AsyncConnection[Row]) -> None:
    """Each pooled connection's set-up."""
    fast_json(conn)


class PostgresRepository(
    PostgresEnqueue, PostgresRunning, PostgresGates, PostgresReads, TransactionalRepository
):
    """Jobs in PostgreSQL (14+), shared by workers on any number of machines."""

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        schema: str = "orchestrator",
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout: float = 10.0,
        migrations: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__()
        #: ``(version, sql)`` a layer above adds to the schema, after the engine's migrations.
        self.extra_migrations = list(migrations)
        #: The URL as given (the ``pooler`` option included) and what the driver gets.
        self.url = url
        self.connection = postgres_pooler.parse(url)
        self._schema = check_schema_name(schema)
        self._min_size = min_size
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._queries: dict[str, str] = {}
        #: Lease renewals run on their own connection, never behind the pool's queue.
        self._lease_conn: psycopg.AsyncConnection[Row] | None = None
        self._lease_lock = asyncio.Lock()
        #: Group commit of completions (the hot path of short jobs).
        self._completions: Batcher[Completion, bool] = Batcher(self._complete_many)
        self._step_saves: Batcher[Row, list[Row]] = Batcher(self._save_steps_many, max_batch=200)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresRepository:
        """Build from ``postgresql://user:pass@host:5432/db``."""
        return cls(url, **options)

    @property
    def schema(self) -> str:
        """The schema holding the orchestrator's tables."""
        return self._schema

    @schema.setter
    def schema(self, name: str) -> None:
        if self._pool is not None:
            raise errors.ConfigurationError("set the schema before opening the repository")
        self._schema = check_schema_name(name)
        self._queries = {}

    @property
    def channel(self) -> str:
        """The NOTIFY channel idle workers listen on."""
        return f"{self._schema}_jobs_ready"

    def query(self, name: str) -> str:
        """A named query with the (validated) schema substituted."""
        if not self._queries:
            generated = {
                # A concurrent insert holding the same active dedupe key wins: no row returned.
                "insert_job": CODEC.insert_job_sql(
                    "{schema}.jobs", suffix="ON CONFLICT DO NOTHING RETURNING id"
                ),
                "update_job": CODEC.update_job_sql("{schema}.jobs"),
                # Many new jobs in one statement (the batch enqueue), from one JSON document.
                "insert_jobs": documents.insert_jobs_sql(
                    "{schema}.jobs", "jsonb_array_elements(%(jobs)s::jsonb)"
                ),
            }
            self._queries = {
                # Only vetted SQL reaches the driver: package files, the codec's statements, and
                # a validated schema name.
                key: text.replace("{schema}", f'"{self._schema}"')
                for key, text in {**sql.queries("postgres"), **generated}.items()
            }
        return self._queries[name]

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the connection pool.

        Connections are not pinged before each use (that doubles the round trips of the hot
        path): after a server restart a stale connection fails once, the pool discards it, and
        the caller's retry (claim loop, outcome recording) gets a fresh one.
        """
        if self._pool is not None:
            return
        await self._probe()
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = AsyncConnectionPool(
            self.connection.url,
            min_size=self._min_size,
            max_size=self._max_size,
            kwargs={
                "row_factory": dict_row,
                "autocommit": True,
                "prepare_threshold": self.connection.prepare_threshold,
            },
            configure=_configure,
            timeout=self._connect_timeout,
            reconnect_timeout=0,  # keep trying to refill the pool while the server is away
            open=False,
            name="ecosign-orchestrator",
        )
        with translate_errors():
            await pool.open(wait=True, timeout=self._connect_timeout)
        self._pool = pool

    async def _connect(self) -> psycopg.AsyncConnection[Row]:
        """A connection of its own, outside the pool (the probe, LISTEN, lease renewals)."""
        conn = await psycopg.AsyncConnection.connect(
            self.connection.url,
            autocommit=True,
            row_factory=dict_row,
            prepare_threshold=self.connection.prepare_threshold,
            connect_timeout=max(int(self._connect_timeout), 1),  # libpq: 0 would mean forever
        )
        fast_json(conn)
        return conn

    async def _probe(self) -> None:
        """Connect once before opening the pool, so an unreachable server or a refused login is
        reported at once with its cause (the pool would retry quietly until its timeout)."""
        try:
            conn = await self._connect()
        except (psycopg.Error, OSError) as exc:
            lines = str(exc).strip().splitlines()
            cause = lines[0].removeprefix("connection failed: ") if lines else type(exc).__name__
            raise errors.StoreUnavailable(
                f"cannot connect to PostgreSQL at {self.location}: {cause} "
                "(check ECOSIGN_ORCH_DATABASE_URL and that the server accepts connections)"
            ) from None
        try:
            # Before this process writes an event: a restored or moved database starts a new
            # era of the event stream, so its events sort after the log's (migration 0010).
            await postgres_schema.ensure_stream_era(conn, self._schema)
        except psycopg.Error as exc:
            logger.error(
                "could not check the event stream's era: %s (a restored database's new events "
                "may not reach readers until `db migrate` runs)",
                exc,
                extra={"action": "stream_era_unchecked"},
            )
        finally:
            await conn.close()

    @property
    def location(self) -> str:
        """``host:port/database`` of the URL (no credentials), for messages."""
        try:
            info = psycopg.conninfo.conninfo_to_dict(self.connection.url)
        except psycopg.ProgrammingError:
            return "the configured URL"
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    async def close(self) -> None:
        """Stop listening, close the lease connection and the pool."""
        await self._completions.drain()  # completions already accepted reach the database
        await self._step_saves.drain()
        await self._drop_lease_connection()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Row]]:
        if self._pool is None:
            raise errors.RepositoryError("repository is not open: use `async with` or open()")
        with translate_errors():
            async with self._pool.connection() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[PgTx]:
        async with self._connection() as conn:
            with translate_errors():
                async with conn.transaction():
                    yield PgTx(self, conn)

    async def _fetch(self, name: str, params: Row) -> list[Row]:
        async with self._connection() as conn:
            with translate_errors():
                cursor = await conn.execute(self.query(name), params, prepare=prepare_flag(name))
                return await cursor.fetchall() if cursor.description else []

    # -- wake-ups ------------------------------------------------------------------------------

    async def wait_for_jobs(self, timeout: float) -> None:
        """Wait for a NOTIFY, the next delayed job's due time, or ``timeout``. Through a
        transaction-mode pooler there is no LISTEN (a notification would reach whichever client
        holds the server connection then): the wait is a short poll instead."""
        if self.connection.transaction_mode:
            await super().wait_for_jobs(min(timeout, postgres_pooler.POLL_SECONDS))
            return
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name=f"listen:{self.channel}")
        await super().wait_for_jobs(timeout)

    async def _listen(self) -> None:
        """Hold a dedicated connection in LISTEN; reconnect with back-off when it drops."""
        delay = 0.5
        while True:
            try:
                conn = await self._connect()
                async with conn:
                    await conn.execute(f'LISTEN "{self.channel}"')
                    delay = 0.5
                    self._wakeup.set()  # we may have missed notifications while away
                    async for _ in conn.notifies():
                        logger.debug("notified on %s", self.channel, extra={"action": "notified"})
                        self._wakeup.set()
            except (psycopg.Error, OSError) as exc:
                logger.warning(
                    "LISTEN connection lost (%s); reconnecting in %.1fs (polling meanwhile)",
                    type(exc).__name__,
                    delay,
                    extra={"action": "listen_reconnect"},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _next_run_at(self) -> datetime | None:
        rows = await self._fetch("next_run_at", {})
        value: datetime | None = rows[0]["next_run_at"] if rows else None
        return value

    # -- operations done in one statement ------------------------------------------------------

    async def _claim(
        self,
        *,
        worker_id: str,
        kinds: Sequence[str],
        limit: int,
        lease_seconds: float,
        queues: Sequence[str] | None,
    ) -> list[Job]:
        """Take up to ``limit`` ready jobs in one statement."""
        params: Row = {
            "kinds": list(kinds),
            "queues": None if queues is None else list(queues),
            "limit": limit,
            "worker_id": worker_id,
            "lease_seconds": lease_seconds,
        }
        rows = await self._fetch("claim", params)
        jobs = [row_to_job(r) for r in rows]
        if jobs:
            self.bus.publish(
                [
                    Event(
                        id=r["event_id"],
                        job_id=JobId(r["id"]),
                        type=EventType.JOB_STARTED,
                        at=r["updated_at"],
                        attempt=r["attempts"],
                        data={"worker": worker_id},
                    )
                    for r in rows
                    if r["event_id"] is not None
                ]
            )
        return jobs

    async def enqueue(self, new: NewJob, *, max_attempts: int) -> EnqueueResult:
        """Insert a job (one statement when it holds no key), or return the job it repeats."""
        if not new.keyless:
            return await super().enqueue(new, max_attempts=max_attempts)
        return (await self._enqueue_new([(new, max_attempts)]))[0]

    async def enqueue_many(self, batch: Sequence[tuple[NewJob, int]]) -> list[EnqueueResult]:
        """Enqueue ``(job, max_attempts)`` pairs in one transaction: one statement when none
        holds a key (else each keyed one is looked up first)."""
        if not batch or not all(new.keyless for new, _ in batch):
            return await super().enqueue_many(batch)
        return await self._enqueue_new(batch)

    async def renew_leases(
        self, leases: Sequence[tuple[JobId, LeaseToken]], lease_seconds: float
    ) -> dict[JobId, bool]:
        """Renew every lease still held, in one statement, on the repository's own lease
        connection: however busy the pool is with the jobs' work, renewals are never queued
        behind it."""
        if not leases:
            return {}
        params: Row = {
            "ids": [job_id for job_id, _ in leases],
            "tokens": [token for _, token in leases],
            "lease_seconds": lease_seconds,
        }
        async with self._lease_lock:
            try:
                if self._lease_conn is None or self._lease_conn.closed:
                    self._lease_conn = await self._connect()
                cursor = await self._lease_conn.execute(self.query("renew_leases"), params)
                rows = await cursor.fetchall()
            except (psycopg.Error, OSError) as exc:
                await self._drop_lease_connection()
                raise errors.RepositoryError(f"postgresql: renewing leases: {exc}") from exc
        return {JobId(r["id"]): bool(r["cancel_requested"]) for r in rows}

    async def _drop_lease_connection(self) -> None:
        conn, self._lease_conn = self._lease_conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    async def save_progress(self, job_id: JobId, token: LeaseToken, progress: Progress) -> None:
        """Record progress in one fenced statement (those columns only)."""
        params: Row = {"id": job_id, "token": token}
        params |= {"fraction": progress.fraction, "message": progress.message}
        if not await self._fetch("save_progress", params):
            raise await self._lease_lost(job_id)

    # -- schema --------------------------------------------------------------------------------

    async def migrate(self) -> list[str]:
        """Apply pending migrations (see :mod:`.postgres_schema`); returns the versions applied."""
        async with self._connection() as conn:
            with translate_errors():
                done = await postgres_schema.migrate(conn, self._schema, self.extra_migrations)
        if done:
            logger.info("applied migrations %s", ", ".join(done), extra={"action": "migrated"})
        return done

    async def schema_ready(self) -> bool:
        """Whether every migration is applied."""
        async with self._connection() as conn:
            with translate_errors():
                return await postgres_schema.schema_ready(conn, self._schema, self.extra_migrations)


__all__ = ["PostgresRepository", "check_schema_name"]
