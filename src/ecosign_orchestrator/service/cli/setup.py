"""``db migrate`` and ``config show``: the schema and the effective configuration."""

from __future__ import annotations

from typing import Annotated

import typer

from ecosign_orchestrator.service import wiring
from ecosign_orchestrator.service.cli.common import (
    config_app,
    console,
    db_app,
    emit_json,
    example,
    run,
    state,
)


@db_app.command(
    "migrate",
    epilog=example(
        "ECOSIGN_ORCH_DATABASE_URL=postgresql://orch:secret@db:5432/ecosign "
        "ecosign-orchestrator db migrate"
    ),
)
def db_migrate(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Apply pending migrations, and say which (idempotent; safe from several machines at once)."""

    async def go() -> None:
        settings = state.settings
        async with wiring.open_repository(settings, migrate=False, check=False) as repository:
            applied = await repository.migrate()
        where = settings.database_location
        if as_json:
            emit_json({"database": where, "applied": applied})
        elif applied:
            console.print(f"applied {len(applied)} migration(s) to {where}: {', '.join(applied)}")
        else:
            console.print(f"{where}: schema already up to date, nothing applied")

    run(go)


@config_app.command("show", epilog=example("ecosign-orchestrator config show"))
def config_show() -> None:
    """Print the effective configuration as JSON, secrets masked, the database's absolute path."""
    emit_json(state.settings.masked())
