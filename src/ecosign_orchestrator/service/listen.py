"""Serving on a socket: bound before anything is announced (so "port in use" is a clear error),
stopped gracefully by SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from typing import Any

import uvicorn

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.service.http_limits import HttpLimits
from ecosign_orchestrator.service.slow_clients import guarded_protocol


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: any free port), or ``Unavailable`` naming the
    cause and the fix."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise errors.Unavailable(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (another server may be using "
            "it: choose another port, or stop that server)"
        ) from None
    return sock


def bound_port(sock: socket.socket) -> int:
    """The port a socket is bound to (the real one when it was bound to port 0)."""
    port: int = sock.getsockname()[1]
    return port


def stop_gracefully_on_signals(server: Any) -> None:
    """SIGINT/SIGTERM make a uvicorn ``server`` shut down gracefully and the process exit 0.

    uvicorn re-raises the signal it caught once it has stopped (so the exit status would say
    "killed"); a graceful stop is a success, so the signals are handled here instead.
    """
    server.capture_signals = contextlib.nullcontext
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, setattr, server, "should_exit", True)


def uvicorn_config(app: Any, limits: HttpLimits, **options: Any) -> uvicorn.Config:
    """How every server of ours runs uvicorn: our logging, no access log, lifespan on, and the
    slow-client limits (deadlines, connection caps). The app gets the server's connection gate
    (``app.state.connection_gate``) for ``/metrics``."""
    protocol = guarded_protocol(limits)
    state = getattr(app, "state", None)
    if state is not None:
        state.connection_gate = protocol.gate  # type: ignore[attr-defined]
    return uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        http=protocol,
        **options,
    )
