"""What every command shares: the Typer apps, global options, output, and error handling.

Exit codes: 0 success; 1 the job or flow ended badly (``--wait``) or an unexpected store error;
2 bad input or configuration (the message names the field and the reason; nothing is written);
3 something needed is unavailable (database, API, port). Errors are one line on stderr, never a
traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from importlib import metadata
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import pydantic
import typer
from rich.console import Console
from rich.markup import escape

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.service.jsonio import JSONInputError
from ecosign_orchestrator.service.logs import configure_logging
from ecosign_orchestrator.service.settings import Settings
from ecosign_orchestrator.service.tables import terminal_width

if TYPE_CHECKING:
    from ecosign_orchestrator.service import wiring

T = TypeVar("T")

#: Exit codes.
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

app = typer.Typer(
    name="ecosign-orchestrator",
    help="The single authority that drives EcoSign's document flows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Click's plain help: flags without type noise, the metavars we name, examples kept as written.
    rich_markup_mode=None,
)
jobs_app = typer.Typer(help="Inspect and act on jobs of any kind.", no_args_is_help=True)
db_app = typer.Typer(help="The job store's schema.", no_args_is_help=True)
config_app = typer.Typer(help="The effective configuration.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

# Pipes get a wide console so tables stay readable in logs and scripts.
console = Console(width=terminal_width(sys.stdout))
err_console = Console(stderr=True, width=terminal_width(sys.stderr))

#: Errors that mean "your input or configuration is wrong": exit 2.
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


def example(*lines: str) -> str:
    """A command's help epilog: the example lines, printed as written."""
    return "\b\nExample:\n" + "\n".join(f"  {line}" for line in lines)


class State:
    """Options shared by every command."""

    def __init__(self) -> None:
        self.apps: list[str] = []
        self.database_url: str | None = None
        self.api_url: str | None = None
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        """The effective settings (read once)."""
        if self._settings is None:
            overrides: dict[str, Any] = {}
            if self.database_url:
                overrides["database_url"] = self.database_url
            self._settings = Settings(**overrides)
        return self._settings

    @property
    def remote(self) -> str | None:
        """The API URL commands act through, if any."""
        return self.api_url or self.settings.api_url


state = State()


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``error: message`` on stderr; return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def run(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine, turning known errors into exit codes."""
    return guard(lambda: asyncio.run(factory()))


def guard(fn: Callable[[], T]) -> T:
    """Call ``fn``, turning known errors into one line and an exit code."""
    try:
        return fn()
    except errors.JobNotFound as exc:
        raise fail(f"{exc}{_where()}") from None
    except USAGE_ERRORS as exc:
        raise fail(str(exc)) from None
    except pydantic.ValidationError as exc:
        raise fail(format_validation_error(exc)) from None
    except errors.Unavailable as exc:
        raise fail(str(exc), code=EXIT_UNAVAILABLE) from None
    except errors.RepositoryError as exc:
        raise fail(f"database: {exc}", code=1) from None


def _where() -> str:
    """Which store a lookup searched (a relative SQLite path depends on the current folder)."""
    if state.remote:
        return f" (searched the API at {state.remote})"
    return f" (searched {state.settings.database_location})"


def format_validation_error(exc: pydantic.ValidationError) -> str:
    """One line per invalid field: ``field: reason``."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "input"
        lines.append(f"{field}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines)


def read_input(source: str, field: str) -> str:
    """A file's text, or stdin's for ``-``: at most ``max_body_bytes`` (the API's limit too),
    UTF-8; anything else is ``JSONInputError`` naming ``field`` (exit 2), not a traceback."""
    limit = state.settings.max_body_bytes
    try:
        if source == "-":
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with open(source, "rb") as handle:
                data = handle.read(limit + 1)
    except OSError as exc:
        raise JSONInputError(field, f"cannot read {source}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise JSONInputError(field, f"larger than {limit} bytes (ECOSIGN_ORCH_MAX_BODY_BYTES)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONInputError(field, f"not valid UTF-8 (byte {exc.start})") from None


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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ecosign-orchestrator {metadata.version('ecosign-orchestrator')}")
        raise typer.Exit()


@app.callback(
    epilog=example(
        "ecosign-orchestrator demo",
        "ecosign-orchestrator --database-url sqlite:///./jobs.db jobs list",
        "ecosign-orchestrator --install-completion   # then restart your shell",
    )
)
def main_options(
    app_specs: Annotated[
        list[str] | None,
        typer.Option(
            "--app",
            envvar="ECOSIGN_ORCH_APPS",
            metavar="MODULE:REGISTRY",
            help="Extra job kinds from an importable module (repeatable).",
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            envvar="ECOSIGN_ORCH_API_URL",
            metavar="URL",
            help="Act through this API instead of the database (bearer token from "
            "ECOSIGN_ORCH_API_TOKEN).",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            metavar="URL",
            help="sqlite:///path or postgresql://...; overrides ECOSIGN_ORCH_DATABASE_URL.",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """The single authority that drives EcoSign's document flows."""
    del version
    state.apps = list(app_specs or [])
    state.database_url = database_url
    state.api_url = api_url
    try:
        settings = state.settings
    except pydantic.ValidationError as exc:
        raise fail(format_validation_error(exc)) from None
    except errors.ConfigurationError as exc:
        raise fail(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)


def with_repository(
    action: Callable[[Any, wiring.Runtime], Awaitable[T]],
) -> Callable[[], Coroutine[Any, Any, T]]:
    """A coroutine factory running ``action`` with the job kinds and an open repository."""

    async def go() -> T:
        from ecosign_orchestrator.service import wiring

        settings = state.settings
        async with (
            wiring.runtime(settings, state.apps) as rt,
            wiring.open_repository(settings) as repository,
        ):
            return await action(repository, rt)

    return go
