"""Run the sandbox with uvicorn: in a background thread (tests, demo) or in the foreground (CLI)."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn
from starlette.applications import Starlette

#: uvicorn's C HTTP parser: the sandbox shares the machine with what it serves, so its CPU per
#: request is CPU a worker under test does not get (h11 cost about a fifth more per flow).
HTTP = "httptools"


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class SandboxServer:
    """A uvicorn server for ``app`` on a loopback port, in a daemon thread.

    >>> with SandboxServer(create_app("sandbox-key")) as server:
    ...     print(server.url)
    """

    def __init__(self, app: Starlette, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.app = app
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app, host=host, port=self.port, log_level="warning", lifespan="off", http=HTTP
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="sandbox", daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start and wait until the socket accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox did not start on {self.url}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop and join the thread."""
        self._server.should_exit = True
        self._thread.join(10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(app: Starlette, *, host: str, port: int) -> None:
    """Serve in the foreground until SIGINT/SIGTERM."""
    uvicorn.run(app, host=host, port=port, log_level="info", lifespan="off", http=HTTP)
