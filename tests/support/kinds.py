"""Job kinds for tests that run real worker processes (``--app tests.support.kinds:registry``).

Side effects are appended to the SQLite file named by ``TEST_EFFECTS_DB`` so a test can count how
many times each job really ran, independently of job statuses.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3

from ecosign_orchestrator.core import JobContext, Registry, RetryPolicy
from ecosign_orchestrator.core.types import JSONValue

registry = Registry()


def record_effect(job_id: str, attempt: int) -> None:
    """Append one effect row (a separate connection: the job store must not be involved)."""
    path = os.environ["TEST_EFFECTS_DB"]
    with sqlite3.connect(path, timeout=30) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS effects (job_id TEXT, attempt INT, pid INT)")
        conn.execute("INSERT INTO effects VALUES (?, ?, ?)", (job_id, attempt, os.getpid()))


@registry.processor("test.effect", retry=RetryPolicy(max_attempts=3, base_seconds=0.01))
async def effect(ctx: JobContext) -> JSONValue:
    """Record one side effect."""
    await asyncio.to_thread(record_effect, ctx.job.id, ctx.attempt)
    return {"pid": os.getpid()}


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
