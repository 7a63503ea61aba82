"""Counting a server's connections and saying what it cut, without flooding the log: what the
accept loop (``acceptor.py``), the protocol (``slow_clients.py``) and ``/metrics`` share."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Protocol

logger = logging.getLogger("ecosign_orchestrator.service.acceptor")


class RateLimitedLog:
    """One log line per ``every`` seconds for a recurring condition, with how often it recurred
    meanwhile (a flood is a count, not a line per event)."""

    def __init__(self, level: int, every: float = 60.0) -> None:
        self.level = level
        self.every = every
        self._last = float("-inf")
        self._suppressed = 0

    def __call__(self, message: str, *args: Any, **extra: Any) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            self._suppressed += 1
            return
        if self._suppressed:
            message += f" ({self._suppressed} more like it in the last {self.every:.0f} s)"
        self._last, self._suppressed = now, 0
        logger.log(self.level, message, *args, extra=extra)


class Sheddable(Protocol):
    """A connection the gate can shed when the server is full."""

    def idle_seconds(self) -> float | None:
        """How long it has made no progress (None: it is being served and moving)."""

    def shed(self) -> None:
        """Close it now."""


#: At its cap the server sheds connections that made no progress for this long (a client that
#: reads nothing of its answer, sends nothing, or trickles its request) to make room.
SHED_AFTER_SECONDS = 1.0
#: At most this many are shed at once (or a tenth of the cap, if more).
SHED_BATCH = 16


class ConnectionGate:
    """Open connections, overall and per client address; what the accept loop waits on.

    At the cap, the connections that make no progress are shed first (:meth:`shed`): under a
    flood of clients that never read or never send, a client that does gets a connection in
    about a second instead of waiting for every deadline to expire."""

    def __init__(self, max_connections: int, max_per_client: int) -> None:
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.members: set[Sheddable] = set()
        self.open = 0
        self.per_client: collections.Counter[str] = collections.Counter()
        #: Connections this server cut or refused, by reason (``/metrics``).
        self.cut: collections.Counter[str] = collections.Counter()
        self._room = asyncio.Event()
        self._room.set()

    async def room(self) -> None:
        """Wait until a connection may be accepted."""
        await self._room.wait()

    @property
    def full(self) -> bool:
        """Whether the server is at its cap."""
        return self.open >= self.max_connections

    def shed(self, grace: float = SHED_AFTER_SECONDS) -> int:
        """Close the connections that made no progress for ``grace`` seconds, the longest idle
        first (a batch at a time); how many."""
        idle = [(s, member) for member in self.members if (s := member.idle_seconds()) is not None]
        stale = sorted((pair for pair in idle if pair[0] >= grace), key=lambda p: -p[0])
        batch = max(SHED_BATCH, self.max_connections // 10)
        for _, member in stale[:batch]:
            member.shed()
        shed = min(len(stale), batch)
        self.cut["shed"] += shed
        return shed

    def allows(self, client: str) -> bool:
        """Whether ``client`` may open one more connection (its own cap)."""
        return not self.max_per_client or self.per_client[client] < self.max_per_client

    def opened(self, client: str) -> None:
        """A connection from ``client`` is open."""
        self.open += 1
        self.per_client[client] += 1
        if self.open >= self.max_connections:
            self._room.clear()

    def closed(self, client: str) -> None:
        """A connection from ``client`` closed."""
        self.open -= 1
        self.per_client[client] -= 1
        if self.per_client[client] <= 0:
            del self.per_client[client]
        if self.open < self.max_connections:
            self._room.set()


def peer_address(transport: asyncio.BaseTransport) -> str:
    """The client address a connection counts against ("" when unknown)."""
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else ""
