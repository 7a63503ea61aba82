"""``db migrate`` and ``config show``: the schema and the effective configuration."""

from __future__ import annotations

from ecosign_orchestrator.service import wiring
from ecosign_orchestrator.service.cli.common import (
    config_app,
    console,
    db_app,
    emit_json,
    run,
    state,
)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (idempotent; safe to run from several machines at once)."""

    async def go() -> None:
        settings = state.settings
        async with wiring.open_repository(settings, migrate=True) as repository:
            del repository
        console.print("schema is up to date")

    run(go)


@config_app.command("show")
def config_show() -> None:
    """Print the effective configuration, secrets masked."""
    emit_json(state.settings.masked())
