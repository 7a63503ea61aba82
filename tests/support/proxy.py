"""A loopback TCP proxy a test controls: pass traffic, black-hole it (a network partition), or
reset a fraction of connections mid-stream."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct


class Proxy:
    """Forwards ``127.0.0.1:port`` to ``upstream_port``.

    ``partition()`` black-holes every connection (bytes are read and dropped, nothing is
    closed: what a peer sees when a network path dies); ``heal()`` ends it and aborts the
    connections that lived through it, as a real partition long enough breaks them.
    ``reset_rate`` resets that fraction of client writes' connections (TCP RST).
    """

    def __init__(self, upstream_port: int, *, reset_rate: float = 0.0, seed: int = 0) -> None:
        self.upstream_port = upstream_port
        self.reset_rate = reset_rate
        self.port = 0
        self.partitioned = False
        self.resets = 0
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tainted: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            for writer in link:
                _abort(writer)

    def partition(self) -> None:
        self.partitioned = True
        self._tainted |= self._links

    def heal(self) -> None:
        self.partitioned = False
        for link in self._tainted:
            for writer in link:
                _abort(writer)
        self._tainted.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            _abort(writer)
            return
        link = (writer, up_writer)
        self._links.add(link)
        if self.partitioned:
            self._tainted.add(link)
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, link, from_client=True),
                self._pump(up_reader, writer, link, from_client=False),
            )
        finally:
            self._links.discard(link)
            self._tainted.discard(link)
            for w in link:
                w.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        *,
        from_client: bool,
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                if self.partitioned or link in self._tainted:
                    continue  # black hole: read and drop
                if from_client and self.reset_rate and self._rng.random() < self.reset_rate:
                    self.resets += 1
                    for w in link:
                        _abort(w)
                    return
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (linger 0), not a polite FIN."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError, AttributeError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
