"""The ``ecosign-orchestrator`` command line: one module per command group, ``common`` holds
what they share, ``target`` is where they act (the local database or a remote API)."""

from __future__ import annotations

from ecosign_orchestrator.service.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point."""
    # Importing the command modules registers their commands on `app`.
    from ecosign_orchestrator.service.cli import (  # noqa: F401
        ffmpeg,
        flows,
        jobs,
        local,
        serve,
        setup,
        worker,
    )

    app()
