"""PostgreSQL schema versioning: the orchestrator's own schema and its migration files.

``migrate`` runs under a transaction-scoped advisory lock, so callers on any number of machines
wait for each other and the second finds nothing to do. It creates the schema only when it is
missing: ``CREATE SCHEMA IF NOT EXISTS`` needs the CREATE privilege on the database even when the
schema is already there, and a role that was given its own schema should not need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from ecosign_orchestrator.core.repository import sql

MIGRATION_LOCK = "ecosign_orchestrator.migrate"

Connection = psycopg.AsyncConnection[dict[str, Any]]


async def migrate(
    conn: Connection, schema: str, extra: Sequence[tuple[str, str]] = ()
) -> list[str]:
    """Apply pending migrations to ``schema`` (a validated name), the engine's then ``extra``
    (``(version, sql)`` a layer above adds); returns the versions applied."""
    quoted = f'"{schema}"'
    done: list[str] = []
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{MIGRATION_LOCK}:{schema}",)
        )
        cursor = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if await cursor.fetchone() is None:
            await conn.execute(f"CREATE SCHEMA {quoted}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations "
            "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = await _applied(conn, quoted)
        for version, script in [*sql.migrations("postgres"), *extra]:
            if version in applied:
                continue
            for statement in sql.split_statements(script):
                await conn.execute(statement.replace("{schema}", quoted))
            await conn.execute(
                f"INSERT INTO {quoted}.schema_migrations (version) VALUES (%s)", (version,)
            )
            done.append(version)
        await ensure_stream_era(conn, schema)
    return done


async def ensure_stream_era(conn: Connection, schema: str) -> None:
    """Start a new era of the event stream if this server's transaction count is behind the
    log's (the database was restored or moved: migration 0010). A no-op on a schema without
    eras yet, and on a healthy one (one indexed read)."""
    quoted = f'"{schema}"'
    cursor = await conn.execute(
        "SELECT to_regprocedure(%s) IS NOT NULL AS present", (f"{quoted}.ensure_stream_era()",)
    )
    row = await cursor.fetchone()
    if row is not None and row["present"]:
        await conn.execute(f"SELECT {quoted}.ensure_stream_era()")


async def schema_ready(
    conn: Connection, schema: str, extra: Sequence[tuple[str, str]] = ()
) -> bool:
    """Whether every known migration (the engine's and ``extra``) is applied to ``schema``."""
    quoted = f'"{schema}"'
    cursor = await conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL AS present", (f"{quoted}.schema_migrations",)
    )
    row = await cursor.fetchone()
    if row is None or not row["present"]:
        return False
    applied = await _applied(conn, quoted)
    return all(version in applied for version, _ in [*sql.migrations("postgres"), *extra])


async def _applied(conn: Connection, quoted: str) -> set[str]:
    cursor = await conn.execute(f"SELECT version FROM {quoted}.schema_migrations")
    return {row["version"] for row in await cursor.fetchall()}
