"""Accepting connections without being flooded: a cap the server stops accepting at, a cap per
client, and accept errors that cannot fill a disk.

asyncio accepts every connection the kernel hands it; a server that refuses over its cap has
already spent a file descriptor on each one, and under a flood at a descriptor limit every failed
``accept()`` logged an error with a traceback (165,160 lines, 87 MB in 40 s) while the embedded
worker fought for the same descriptors. Here the server accepts only while it has room:

- at most ``max_connections`` are open at once; at the cap it stops accepting, and the kernel's
  backlog holds (or refuses) the rest at no cost to this process, while connections that make no
  progress (an answer left unread, a request never sent or trickled) are shed to make room;
- at most ``max_per_client`` are open from one address (0: no limit; behind a reverse proxy every
  client shares the proxy's address, so the proxy limits clients instead);
- an ``accept()`` that fails (descriptors exhausted) waits and tries again, and says so at most
  once a minute with a count.

:class:`GuardedServer` is uvicorn's server with this accept loop in place of
``loop.create_server``; everything else (lifespan, graceful shutdown) is uvicorn's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from ecosign_orchestrator.service.connections import ConnectionGate, RateLimitedLog

logger = logging.getLogger(__name__)

#: An accept that fails for want of resources is retried after this long (then twice as long,
#: up to a second).
_RETRY_SECONDS = (0.05, 1.0)
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: The kernel's send buffer of an accepted connection (see ``_serve``).
SEND_BUFFER_BYTES = 256 * 1024
#: At the cap, how often the loop looks for connections to shed.
_SHED_CHECK_SECONDS = 0.2


class Acceptor:
    """The accept loop of one listening socket (uvicorn calls ``close``/``wait_closed`` on
    shutdown, as on an ``asyncio.Server``)."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
        gate: ConnectionGate,
        *,
        owns_socket: bool,
    ) -> None:
        self.sock = sock
        self.protocol_factory = protocol_factory
        self.gate = gate
        self.owns_socket = owns_socket
        self._task: asyncio.Task[None] | None = None
        self._exhausted = RateLimitedLog(logging.WARNING)
        self._over_client_cap = RateLimitedLog(logging.WARNING)

    def start(self) -> None:
        """Start accepting in the background."""
        self.sock.setblocking(False)
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="accept")

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        pause = _RETRY_SECONDS[0]
        while True:
            while self.gate.full:
                try:
                    async with asyncio.timeout(_SHED_CHECK_SECONDS):
                        await self.gate.room()
                except TimeoutError:
                    self.gate.shed()  # make room: drop connections that make no progress
            try:
                conn, address = await loop.sock_accept(self.sock)
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS and exc.errno != errno.ECONNABORTED:
                    raise
                self._exhausted(
                    "cannot accept connections (%s); waiting for descriptors to free",
                    exc.strerror or exc,
                    action="accept_exhausted",
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RETRY_SECONDS[1])
                continue
            pause = _RETRY_SECONDS[0]
            client = str(address[0]) if isinstance(address, tuple) else ""
            if not self.gate.allows(client):
                self.gate.cut["client_cap"] += 1
                self._over_client_cap(
                    "refused a connection from %s: it has %d open "
                    "(ECOSIGN_ORCH_HTTP_MAX_CONNECTIONS_PER_CLIENT)",
                    client,
                    self.gate.max_per_client,
                    action="connection_refused",
                )
                conn.close()
                continue
            # answers go out as they are written (asyncio sets this only on sockets created
            # with an explicit TCP protocol number; without it a keep-alive client waits out
            # Nagle and delayed ACKs, 40 ms a request)
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                # A client that pipelines requests and reads nothing is answered only until
                # this much waits unread in the kernel (then the server stops producing for it
                # and may shed it): without a bound the kernel takes megabytes per connection,
                # and a thousand such clients kept the event loop busy rendering answers nobody
                # reads. Our answers are small; 256 KiB still fills a 50 ms path at 5 MB/s.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
            try:  # the protocol counts the connection in the gate as it is made
                await loop.connect_accepted_socket(self.protocol_factory, conn)
            except OSError:
                conn.close()

    def close(self) -> None:
        """Stop accepting."""
        if self._task is not None:
            self._task.cancel()
        if self.owns_socket:
            self.sock.close()

    async def wait_closed(self) -> None:
        """Wait for the accept loop to end."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class GuardedServer(uvicorn.Server):
    """uvicorn's server, accepting through :class:`Acceptor` (the protocol class, made by
    ``slow_clients.guarded_protocol``, carries the gate and releases its slot on close)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        config = self.config
        protocol_class: Any = config.http_protocol_class

        def create_protocol() -> asyncio.Protocol:
            protocol: asyncio.Protocol = protocol_class(
                config=config, server_state=self.server_state, app_state=self.lifespan.state
            )
            return protocol

        listeners = sockets if sockets is not None else [config.bind_socket()]
        acceptors = []
        for sock in listeners:
            sock.listen(config.backlog)
            acceptor = Acceptor(
                sock, create_protocol, protocol_class.gate, owns_socket=sockets is None
            )
            acceptor.start()
            acceptors.append(acceptor)
        self.servers = acceptors  # type: ignore[assignment]  # close() and wait_closed() only
        self.started = True
