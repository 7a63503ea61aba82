"""``ecosign-orchestrator demo``: end-to-end flows on the embedded defaults."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ecosign_orchestrator.service.cli.common import app, run, state


@app.command()
def demo(
    non_interactive: Annotated[
        bool, typer.Option("--non-interactive", help="Plain lines instead of a live display.")
    ] = False,
    core: Annotated[
        bool, typer.Option("--core", help="Core jobs only, no document flows.")
    ] = False,
) -> None:
    """Run end-to-end document flows against the local sandbox, live, on the embedded defaults."""
    from ecosign_orchestrator.service import demo as demo_module

    live = not non_interactive and sys.stdout.isatty()
    code = run(lambda: demo_module.run_demo(state.settings, live=live, core=core))
    raise typer.Exit(code)
