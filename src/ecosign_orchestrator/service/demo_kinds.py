"""Small job kinds built on the core alone: the core demo and a smoke test of a deployment.

``demo.sleep`` reports progress, ``demo.flaky`` fails transiently a given number of times before
succeeding, ``demo.fail`` fails fatally, ``demo.noop`` does nothing (benchmarks).
"""

from __future__ import annotations

import asyncio

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.context import JobContext
from ecosign_orchestrator.core.registry import Registry
from ecosign_orchestrator.core.retry import RetryPolicy
from ecosign_orchestrator.core.types import JSONValue

registry = Registry()


def _number(ctx: JobContext, key: str, default: float) -> float:
    value = ctx.payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise errors.FatalError(f"payload.{key} must be a non-negative number")
    return float(value)


@registry.processor("demo.noop", retry=RetryPolicy(max_attempts=1))
async def noop(ctx: JobContext) -> JSONValue:
    """Do nothing."""
    return None


@registry.processor("demo.sleep", retry=RetryPolicy(max_attempts=3, base_seconds=0.5))
async def sleep(ctx: JobContext) -> JSONValue:
    """Sleep ``seconds`` (default 1) in ``steps`` (default 10) slices, reporting progress."""
    seconds = _number(ctx, "seconds", 1.0)
    steps = max(int(_number(ctx, "steps", 10.0)), 1)
    for i in range(steps):
        await asyncio.sleep(seconds / steps)
        await ctx.progress((i + 1) / steps, f"slice {i + 1}/{steps}")
    return {"slept": seconds}


@registry.processor(
    "demo.flaky", retry=RetryPolicy(max_attempts=5, base_seconds=0.5, cap_seconds=2)
)
async def flaky(ctx: JobContext) -> JSONValue:
    """Fail transiently until attempt ``failures + 1`` (default 2 failures), then succeed."""
    failures = int(_number(ctx, "failures", 2.0))
    if ctx.attempt <= failures:
        raise errors.TransientError(f"simulated outage (attempt {ctx.attempt} of {failures + 1})")
    return {"succeeded_on_attempt": ctx.attempt}


@registry.processor("demo.fail", retry=RetryPolicy(max_attempts=3))
async def fail(ctx: JobContext) -> JSONValue:
    """Fail fatally with ``reason``."""
    raise errors.FatalError(str(ctx.payload.get("reason", "simulated fatal error")))
