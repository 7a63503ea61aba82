"""``ecosign-orchestrator worker``: run jobs until stopped."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ecosign_orchestrator.service import wiring
from ecosign_orchestrator.service.cli.common import app, example, run, state, with_repository


@app.command(
    epilog=example(
        "ecosign-orchestrator worker --concurrency 16",
        "ecosign-orchestrator --app myjobs:registry worker --kind thumbnails.make --burst",
    )
)
def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Jobs run at once.")
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option(metavar="KIND", help="Only these kinds (repeatable).")
    ] = None,
    burst: Annotated[
        bool, typer.Option("--burst", help="Stop once no job is ready and none is running.")
    ] = False,
) -> None:
    """Run jobs until SIGINT/SIGTERM (graceful: running jobs get the grace period)."""

    async def action(repository: Any, rt: wiring.Runtime) -> None:
        w = wiring.build_worker(
            state.settings, repository, rt, concurrency=concurrency, kinds=kind, burst=burst
        )
        await w.run_forever()

    run(with_repository(action))
