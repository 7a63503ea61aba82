"""Run the API for tests: in a thread (uvicorn, lifespan on) or as a real ``serve`` process."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from fastapi import FastAPI

from ecosign_orchestrator.service.acceptor import GuardedServer
from ecosign_orchestrator.service.http_limits import HttpLimits
from ecosign_orchestrator.service.listen import uvicorn_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, limits: HttpLimits | None = None) -> Iterator[str]:
    """Serve ``app`` on a loopback port in a daemon thread, configured as ``serve`` does;
    yields the base URL."""
    port = free_port()
    config = uvicorn_config(app, limits or HttpLimits(), host="127.0.0.1", port=port)
    server = GuardedServer(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("API did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
