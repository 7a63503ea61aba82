"""``ecosign-orchestrator serve``: the HTTP API (and, unless ``--no-worker``, a worker)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Annotated, Any

import typer

from ecosign_orchestrator.service import wiring
from ecosign_orchestrator.service.cli.common import (
    app,
    console,
    example,
    fail,
    guard,
    run,
    state,
)
from ecosign_orchestrator.service.settings import Settings

#: The shortest API token accepted when the API listens beyond loopback.
MIN_PUBLIC_TOKEN_LENGTH = 24


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts local connections."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command(
    epilog=example(
        "ECOSIGN_ORCH_API_TOKENS=change-me ecosign-orchestrator serve --port 8080",
        "ecosign-orchestrator serve --host 0.0.0.0 --no-worker   # API only, tokens required",
    )
)
def serve(
    host: Annotated[str, typer.Option(metavar="HOST", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT")] = 8080,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="API only; workers run elsewhere.")
    ] = False,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs and /openapi.json) and the web console at /ui."""
    from ecosign_orchestrator.service.acceptor import GuardedServer
    from ecosign_orchestrator.service.api import create_app

    settings = state.settings
    if not settings.api_tokens and not settings.api_read_tokens and not is_loopback(host):
        raise fail(
            f"refusing to bind {host} without API tokens: set ECOSIGN_ORCH_API_TOKENS "
            "(and optionally ECOSIGN_ORCH_API_READ_TOKENS), or bind 127.0.0.1"
        )
    run(lambda: _check_store(settings))  # an unreachable or unmigrated store: one line, exit 2/3
    if not is_loopback(host):
        short = [
            name
            for name, tokens in (
                ("ECOSIGN_ORCH_API_TOKENS", settings.api_tokens),
                ("ECOSIGN_ORCH_API_READ_TOKENS", settings.api_read_tokens),
            )
            if any(len(t.get_secret_value()) < MIN_PUBLIC_TOKEN_LENGTH for t in tokens)
        ]
        if short:
            raise fail(
                f"refusing to bind {host} with short tokens in {', '.join(short)}: on an interface "
                f"others can reach, every token needs {MIN_PUBLIC_TOKEN_LENGTH}+ characters"
            )
    application = create_app(settings, apps=tuple(state.apps), embedded_worker=not no_worker)
    # uvicorn only when serving: every other command starts without it.
    from ecosign_orchestrator.service.listen import bind, uvicorn_config

    sock = guard(lambda: bind(host, port))
    console.print(
        f"serving on http://{host}:{port} (worker: {'no' if no_worker else 'yes'}; "
        f"console: http://{host}:{port}/ui)"
    )
    config = uvicorn_config(application, settings.http_limits(), host=host, port=port)
    run(lambda: _serve(GuardedServer(config), sock))


async def _check_store(settings: Settings) -> None:
    async with wiring.open_repository(settings):
        pass


async def _serve(server: Any, sock: socket.socket) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully and exit 0."""
    from ecosign_orchestrator.service.listen import stop_gracefully_on_signals

    stop_gracefully_on_signals(server)
    await server.serve(sockets=[sock])
