"""``ecosign-orchestrator worker``: run jobs until stopped."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ecosign_orchestrator.service import wiring
from ecosign_orchestrator.service.cli.common import app, run, state, with_repository


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(min=1, help="Jobs run at once.")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="Only these kinds (repeatable).")] = None,
) -> None:
    """Run a worker until SIGINT/SIGTERM (graceful: running jobs get the grace period)."""

    async def action(repository: Any, rt: wiring.Runtime) -> None:
        w = wiring.build_worker(state.settings, repository, rt, concurrency=concurrency, kinds=kind)
        await w.run_forever()

    run(with_repository(action))
