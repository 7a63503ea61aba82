"""What every command shares: the Typer apps, global options, output, and error handling.

Bad input exits with status 2 and a message naming the field and the reason; nothing is written.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any, TypeVar

import pydantic
import typer
from rich.console import Console

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.service import wiring
from ecosign_orchestrator.service.jsonio import JSONInputError
from ecosign_orchestrator.service.logs import configure_logging
from ecosign_orchestrator.service.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    name="ecosign-orchestrator",
    help="The single authority that drives EcoSign's document flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
jobs_app = typer.Typer(help="Inspect and act on jobs.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

# Pipes get a wide console so tables stay readable in logs and scripts.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)

#: Errors that mean "your input is wrong": exit 2.
USAGE_ERRORS: tuple[type[Exception], ...] = (
    errors.InvalidJob,
    errors.UnknownJobKind,
    errors.JobNotFound,
    errors.IllegalTransition,
    errors.IdempotencyConflict,
    errors.DuplicateJob,
    errors.ConfigurationError,
    errors.MigrationError,
    JSONInputError,
)


class State:
    """Options shared by every command."""

    def __init__(self) -> None:
        self.apps: list[str] = []
        self.database_url: str | None = None
        self.api_url: str | None = None
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            overrides: dict[str, Any] = {}
            if self.database_url:
                overrides["database_url"] = self.database_url
            self._settings = Settings(**overrides)
        return self._settings


state = State()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr; return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine, turning known errors into exit codes."""
    return guard(lambda: asyncio.run(factory()))


def guard(fn: Callable[[], T]) -> T:
    """Call ``fn``, turning known errors into exit codes (2: bad input; 1: database)."""
    try:
        return fn()
    except USAGE_ERRORS as exc:
        raise fail(str(exc)) from None
    except pydantic.ValidationError as exc:
        raise fail(format_validation_error(exc)) from None
    except errors.RepositoryError as exc:
        raise fail(f"database: {exc}", code=1) from None


def format_validation_error(exc: pydantic.ValidationError) -> str:
    """One line per invalid field: ``field: reason``."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "input"
        lines.append(f"{field}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines)


def emit_json(data: Any, *, line: bool = False) -> None:
    """Machine-readable output on stdout (``line``: one compact JSON document per line)."""
    text = json.dumps(
        data,
        ensure_ascii=False,
        separators=(",", ":") if line else None,
        indent=None if line else 2,
    )
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@app.callback()
def main_options(
    app_specs: Annotated[
        list[str] | None,
        typer.Option(
            "--app",
            envvar="ECOSIGN_ORCH_APPS",
            help="Extra job kinds: module:registry (repeatable).",
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            envvar="ECOSIGN_ORCH_API_URL",
            help="Act through this API (token: ECOSIGN_ORCH_API_TOKEN) instead of the database.",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="Overrides ECOSIGN_ORCH_DATABASE_URL.", show_default=False
        ),
    ] = None,
) -> None:
    """Options for every command."""
    state.apps = list(app_specs or [])
    state.database_url = database_url
    state.api_url = api_url
    try:
        settings = state.settings
    except pydantic.ValidationError as exc:
        raise fail(format_validation_error(exc)) from None
    configure_logging(settings.log_level, settings.log_format)


def with_repository(
    action: Callable[[Any, wiring.Runtime], Awaitable[T]],
) -> Callable[[], Coroutine[Any, Any, T]]:
    """A coroutine factory running ``action`` with the job kinds and an open repository."""

    async def go() -> T:
        settings = state.settings
        async with (
            wiring.runtime(settings, state.apps) as rt,
            wiring.open_repository(settings) as repository,
        ):
            return await action(repository, rt)

    return go
