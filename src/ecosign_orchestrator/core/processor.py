"""The ``Processor`` protocol: what the engine runs for a job kind."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ecosign_orchestrator.core.types import JSONValue

if TYPE_CHECKING:
    from ecosign_orchestrator.core.context import JobContext


class Processor(Protocol):
    """Any async callable taking a :class:`JobContext` and returning a JSON-able result.

    Raise :class:`~ecosign_orchestrator.core.errors.TransientError` to retry per policy,
    :class:`~ecosign_orchestrator.core.errors.FatalError` to fail at once, or
    :class:`~ecosign_orchestrator.core.errors.Snooze` (``ctx.snooze``) to run again later without
    spending an attempt. Any other exception fails the job at once.

    Example::

        async def resize(ctx: JobContext) -> dict:
            await ctx.progress(0.5, "halfway")
            return {"ok": True}
    """

    async def __call__(self, ctx: JobContext, /) -> JSONValue: ...
