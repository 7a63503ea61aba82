"""``ecosign-orchestrator worker``: run jobs until stopped."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ecosign_orchestrator.service import wiring
from ecosign_orchestrator.service.cli.common import (
    app,
    example,
    fail,
    run,
    state,
    with_repository,
)


@app.command(
    epilog=example(
        "ecosign-orchestrator worker --concurrency 16",
        "ecosign-orchestrator worker --queue media --max-per-kind ffmpeg.transcode=2",
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
    queue: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME", help="Only jobs of this queue (repeatable)."),
    ] = None,
    max_per_kind: Annotated[
        list[str] | None,
        typer.Option(
            "--max-per-kind",
            metavar="KIND=N",
            help="At most N jobs of KIND at once on this worker (repeatable).",
        ),
    ] = None,
    burst: Annotated[
        bool, typer.Option("--burst", help="Stop once no job is ready and none is running.")
    ] = False,
) -> None:
    """Run jobs until SIGINT/SIGTERM (graceful: running jobs get the grace period)."""
    caps = _caps(max_per_kind or [])

    async def action(repository: Any, rt: wiring.Runtime) -> None:
        w = wiring.build_worker(
            state.settings,
            repository,
            rt,
            concurrency=concurrency,
            kinds=kind,
            burst=burst,
            queues=queue,
            kind_concurrency=caps,
        )
        await w.run_forever()

    run(with_repository(action))


def _caps(values: list[str]) -> dict[str, int]:
    """``KIND=N`` options as a dict (exit 2 naming the bad one)."""
    caps: dict[str, int] = {}
    for value in values:
        kind, sep, number = value.partition("=")
        if not sep or not kind or not (number.isascii() and number.isdigit()) or int(number) < 1:
            raise fail(f"--max-per-kind: expected KIND=N with N >= 1, got {value!r}")
        caps[kind] = int(number)
    return caps
