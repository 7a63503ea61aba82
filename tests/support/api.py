"""Run the API for tests: in a thread (uvicorn, lifespan on) or as a real ``serve`` process."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
from fastapi import FastAPI

from ecosign_orchestrator.service.acceptor import GuardedServer
from ecosign_orchestrator.service.http_limits import HttpLimits
from ecosign_orchestrator.service.listen import uvicorn_config
from tests.support.procs import start_cli, stop


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


def api_ready(url: str) -> bool:
    """Whether the API at ``url`` answers ``/readyz`` with 200 (it can commit to its store)."""
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def serve_process(env: Mapping[str, str], log: Path, *args: str) -> Iterator[str]:
    """A real ``serve`` process (``args`` added) on a loopback port, its output in ``log``;
    yields the base URL once it is ready. It must exit 0 when stopped at the end."""
    port = free_port()
    proc = start_cli(env, "serve", "--port", str(port), *args, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not api_ready(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not become ready: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield url
    finally:
        assert stop(proc) == 0, log.read_text()[-2000:]
