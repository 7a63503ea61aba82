"""The ``ecosign-orchestrator`` command line: one module per command group, ``common`` holds
what they share, ``target`` is where they act (the local database or a remote API)."""

from __future__ import annotations

import faulthandler

from ecosign_orchestrator.service.cli.common import app

__all__ = ["app", "main", "register_commands"]


def register_commands() -> None:
    """Import every command module: importing one registers its commands on ``app``."""
    from ecosign_orchestrator.service.cli import (  # noqa: F401
        bulk,
        ffmpeg,
        flows,
        housekeeping,
        jobs,
        local,
        sandbox,
        serve,
        setup,
        worker,
    )


def main() -> None:
    """Console-script entry point."""
    # A fatal signal (SIGSEGV, SIGBUS: e.g. an SQLite file whose folder became unreadable or
    # immutable under a running process) leaves a traceback on stderr instead of nothing.
    faulthandler.enable()
    register_commands()
    app()
