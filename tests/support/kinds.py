"""Job kinds for tests that run real worker processes (``--app tests.support.kinds:registry``).

Side effects are appended to SQLite files in the folder ``TEST_EFFECTS_DIR`` (one file per
process, so processes never contend) so a test can count how many times each job really ran,
independently of job statuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from pathlib import Path

from ecosign_orchestrator.core import JobContext, Registry, RetryPolicy
from ecosign_orchestrator.core.types import JSONValue

registry = Registry()


_conn: sqlite3.Connection | None = None
_lock = threading.Lock()


def record_effect(job_id: str, attempt: int) -> None:
    """Append one effect row to this process's own SQLite file: the job store is not involved,
    so an outage of the job store cannot hide or fake an effect."""
    global _conn
    with _lock:
        if _conn is None:
            path = Path(os.environ["TEST_EFFECTS_DIR"]) / f"effects-{os.getpid()}.db"
            _conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            _conn.execute("PRAGMA synchronous=OFF")
            _conn.execute("CREATE TABLE IF NOT EXISTS effects (job_id TEXT, attempt INT, pid INT)")
        _conn.execute("INSERT INTO effects VALUES (?, ?, ?)", (job_id, attempt, os.getpid()))


def read_effects(folder: Path) -> list[tuple[str, int, int]]:
    """Every effect row of every process: ``(job_id, attempt, pid)``."""
    rows: list[tuple[str, int, int]] = []
    for path in sorted(folder.glob("effects-*.db")):
        with contextlib.closing(sqlite3.connect(path)) as conn:
            rows.extend(conn.execute("SELECT job_id, attempt, pid FROM effects").fetchall())
    return rows


@registry.processor("test.effect", retry=RetryPolicy(max_attempts=3, base_seconds=0.01))
async def effect(ctx: JobContext) -> JSONValue:
    """Record one side effect."""
    await asyncio.to_thread(record_effect, ctx.job.id, ctx.attempt)
    return {"pid": os.getpid()}


@registry.processor("test.slow_effect", retry=RetryPolicy(max_attempts=5, base_seconds=0.01))
async def slow_effect(ctx: JobContext) -> JSONValue:
    """Take ``seconds`` (default 0.05), then record one side effect."""
    await asyncio.sleep(float(ctx.payload.get("seconds", 0.05)))  # type: ignore[arg-type]
    await asyncio.to_thread(record_effect, ctx.job.id, ctx.attempt)
    return None


@registry.processor("test.block_first", retry=RetryPolicy(max_attempts=3, base_seconds=0.01))
async def block_first(ctx: JobContext) -> JSONValue:
    """Block forever on the first attempt (to be killed); record an effect and finish after."""
    if ctx.attempt == 1:
        await asyncio.Event().wait()
    await asyncio.to_thread(record_effect, ctx.job.id, ctx.attempt)
    return {"attempt": ctx.attempt}


@registry.processor("test.sleep", retry=RetryPolicy(max_attempts=3, base_seconds=0.01))
async def sleep(ctx: JobContext) -> JSONValue:
    """Sleep ``seconds`` then record an effect (a job that finishes within a grace period)."""
    await asyncio.sleep(float(ctx.payload.get("seconds", 0.5)))  # type: ignore[arg-type]
    await asyncio.to_thread(record_effect, ctx.job.id, ctx.attempt)
    return None


@registry.processor("test.forever", retry=RetryPolicy(max_attempts=3, base_seconds=0.01))
async def forever(ctx: JobContext) -> JSONValue:
    """Never finish (a job that outlives a grace period)."""
    await asyncio.Event().wait()
    return None
