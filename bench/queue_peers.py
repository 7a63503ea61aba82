"""The three job queues under comparison, each behind the same small interface.

Each system gets its own database on the benchmark's PostgreSQL server and is used through its
own documented API: ours through ``JobQueue``/the repository and ``ecosign-orchestrator worker``;
PgQueuer through ``Queries`` and ``QueueManager`` (asyncpg, its recommended driver);
Procrastinate through ``App`` with the psycopg connector. Worker processes run each system's own
worker loop with its defaults (see ``peer_worker.py``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


class Peer:
    """One queue system on one database."""

    name = ""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._admin: psycopg.AsyncConnection[Any] | None = None

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def _conn(self) -> psycopg.AsyncConnection[Any]:
        """One connection for the benchmark's own reads (progress polls must not cost a
        connection each: that load would land on the system being measured)."""
        if self._admin is None or self._admin.closed:
            self._admin = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        return self._admin

    async def reset(self) -> None:
        """Empty every table (between runs)."""

    async def enqueue_one(self) -> None:
        """One job, in its own transaction."""

    async def enqueue_batch(self, n: int) -> None:
        """``n`` jobs in one call of the system's batch API."""

    async def done(self) -> int:
        """Jobs finished successfully so far."""
        raise NotImplementedError

    async def latencies(self) -> list[float]:
        """Seconds from each job's enqueue to its start, from the system's own timestamps."""
        raise NotImplementedError

    def worker_command(self, concurrency: int) -> tuple[list[str], dict[str, str]]:
        """The command line and environment of one worker process."""
        raise NotImplementedError

    async def scalar(self, sql: str) -> Any:
        cursor = await (await self._conn()).execute(sql)
        if cursor.description is None:  # a command, not a query
            return None
        row = await cursor.fetchone()
        return None if row is None else row[0]

    async def column(self, sql: str) -> list[float]:
        cursor = await (await self._conn()).execute(sql)
        return [float(r[0]) for r in await cursor.fetchall()]


class Ours(Peer):
    """ecosign-orchestrator on PostgreSQL: an event row per transition, fenced leases."""

    name = "ours"
    schema = "bench"

    async def open(self) -> None:
        from ecosign_orchestrator.core.repository.postgres import PostgresRepository
        from ecosign_orchestrator.service.wiring import document_migrations

        # The schema a worker expects: the engine's migrations and the document flows' own.
        self.repo = PostgresRepository(
            self.dsn, schema=self.schema, migrations=document_migrations()
        )
        await self.repo.open()
        await self.repo.migrate()

    async def close(self) -> None:
        await self.repo.close()

    async def reset(self) -> None:
        await self.scalar(f"TRUNCATE {self.schema}.events, {self.schema}.jobs CASCADE")

    async def enqueue_one(self) -> None:
        from ecosign_orchestrator.core.job import NewJob

        await self.repo.enqueue(NewJob(kind="demo.noop"), max_attempts=1)

    async def enqueue_batch(self, n: int) -> None:
        from ecosign_orchestrator.core.job import NewJob

        await self.repo.enqueue_many([(NewJob(kind="demo.noop"), 1) for _ in range(n)])

    async def done(self) -> int:
        return int(
            await self.scalar(f"SELECT count(*) FROM {self.schema}.jobs WHERE status='completed'")
        )

    async def latencies(self) -> list[float]:
        return await self.column(
            "SELECT extract(epoch FROM started_at - created_at) "
            f"FROM {self.schema}.jobs WHERE started_at IS NOT NULL"
        )

    def worker_command(self, concurrency: int) -> tuple[list[str], dict[str, str]]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECOSIGN_ORCH_")}
        env.update(
            {
                "ECOSIGN_ORCH_DATABASE_URL": self.dsn,
                "ECOSIGN_ORCH_DATABASE_SCHEMA": self.schema,
                "ECOSIGN_ORCH_LOG_LEVEL": "WARNING",
                "ECOSIGN_ORCH_DEMO_KINDS": "true",
                "ECOSIGN_ORCH_RETENTION_EVERY_SECONDS": "0",
            }
        )
        command = [PYTHON, "-m", "ecosign_orchestrator", "worker", "--kind", "demo.noop"]
        return [*command, "--concurrency", str(concurrency)], env


class PgQueuerPeer(Peer):
    """PgQueuer: a job row deleted on completion, a log row per status change."""

    name = "pgqueuer"

    async def open(self) -> None:
        import asyncpg
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries

        self.connection = await asyncpg.connect(self.dsn)
        self.queries = Queries(AsyncpgDriver(self.connection))
        if not await self.scalar("SELECT to_regclass('pgqueuer') IS NOT NULL"):
            await self.queries.install()

    async def close(self) -> None:
        await self.connection.close()

    async def reset(self) -> None:
        await self.scalar("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")

    async def enqueue_one(self) -> None:
        await self.queries.enqueue("noop", None)

    async def enqueue_batch(self, n: int) -> None:
        await self.queries.enqueue(["noop"] * n, [None] * n, [0] * n)

    async def done(self) -> int:
        return int(
            await self.scalar(
                "SELECT count(DISTINCT job_id) FROM pgqueuer_log WHERE status = 'successful'"
            )
        )

    async def latencies(self) -> list[float]:
        return await self.column(
            "SELECT extract(epoch FROM p.created - q.created) FROM pgqueuer_log q "
            "JOIN pgqueuer_log p ON p.job_id = q.job_id AND p.status = 'picked' "
            "WHERE q.status = 'queued'"
        )

    def worker_command(self, concurrency: int) -> tuple[list[str], dict[str, str]]:
        command = [PYTHON, str(ROOT / "bench" / "peer_worker.py"), "pgqueuer", self.dsn]
        return [*command, str(concurrency)], dict(os.environ)


class ProcrastinatePeer(Peer):
    """Procrastinate: a job row kept with its status, an event row per transition."""

    name = "procrastinate"

    async def open(self) -> None:
        import procrastinate

        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=self.dsn))

        @self.app.task(name="noop")
        async def noop() -> None:
            return None

        self.task = noop
        await self.app.open_async()
        if not await self.scalar("SELECT to_regclass('procrastinate_jobs') IS NOT NULL"):
            await self.app.schema_manager.apply_schema_async()

    async def close(self) -> None:
        await self.app.close_async()

    async def reset(self) -> None:
        await self.scalar("TRUNCATE procrastinate_jobs CASCADE")

    async def enqueue_one(self) -> None:
        await self.task.defer_async()

    async def enqueue_batch(self, n: int) -> None:
        await self.task.batch_defer_async(*({} for _ in range(n)))

    async def done(self) -> int:
        return int(
            await self.scalar("SELECT count(*) FROM procrastinate_jobs WHERE status='succeeded'")
        )

    async def latencies(self) -> list[float]:
        return await self.column(
            "SELECT extract(epoch FROM s.at - d.at) FROM procrastinate_events d "
            "JOIN procrastinate_events s ON s.job_id = d.job_id AND s.type = 'started' "
            "WHERE d.type = 'deferred'"
        )

    def worker_command(self, concurrency: int) -> tuple[list[str], dict[str, str]]:
        command = [PYTHON, str(ROOT / "bench" / "peer_worker.py"), "procrastinate", self.dsn]
        return [*command, str(concurrency)], dict(os.environ)


PEERS: list[type[Peer]] = [Ours, PgQueuerPeer, ProcrastinatePeer]
