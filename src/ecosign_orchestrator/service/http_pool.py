"""An HTTP transport for many concurrent callers: a lane of connections per calling task.

httpcore's pool examines every pooled connection for each request it assigns (its expiry check
asks the socket through anyio's typed attributes; encode/httpcore#1035): with hundreds of flows
in flight that bookkeeping took most of a worker's CPU, and still 15 % with shards of 16. Here a
task (a job run) takes a lane of its own, a small transport of at most ``PER_LANE`` connections,
on its first request and gives it back when it ends; the next job reuses the lane and its warm
connection. A request scans one or two connections, and with a lane per job slot no request
waits for another job's connection. All lanes share one TLS context (each used to load the CA
store again: 1,000 slots made 63 of them).
"""

from __future__ import annotations

import asyncio

import httpx

#: Connections one lane keeps (a job makes one request at a time; two origins, Edge and REST).
PER_LANE = 2


class LaneTransport(httpx.AsyncBaseTransport):
    """Up to ``lanes`` lanes, one per calling task (see the module docstring); tasks beyond
    that share the existing lanes."""

    def __init__(self, lanes: int) -> None:
        self._max = max(1, lanes)
        self._tls = httpx.create_ssl_context()
        # An idle connection is dropped after 4 s, before the common 5 s server keep-alive
        # (uvicorn's, nginx's) closes it under a request about to be sent (a ReadError).
        self._limits = httpx.Limits(
            max_connections=PER_LANE, max_keepalive_connections=PER_LANE, keepalive_expiry=4.0
        )
        self._lanes: list[httpx.AsyncHTTPTransport] = []
        self._free: list[httpx.AsyncHTTPTransport] = []
        self._holders: dict[httpx.AsyncHTTPTransport, int] = {}
        self._held: dict[asyncio.Task[object], httpx.AsyncHTTPTransport] = {}

    @property
    def lanes(self) -> int:
        """How many lanes exist so far (they are made on demand)."""
        return len(self._lanes)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the calling task's lane."""
        task = asyncio.current_task()
        lane = self._held.get(task) if task is not None else None
        if lane is None:
            lane = self._take(task)
        return await lane.handle_async_request(request)

    def _take(self, task: asyncio.Task[object] | None) -> httpx.AsyncHTTPTransport:
        if task is None and self._lanes:  # not in a task (a callback): borrow, hold nothing
            return self._lanes[0]
        if self._free:
            lane = self._free.pop()  # the most recently used: its connection is the warmest
        elif len(self._lanes) < self._max:
            lane = httpx.AsyncHTTPTransport(verify=self._tls, limits=self._limits)
            self._lanes.append(lane)
            self._holders[lane] = 0
        else:  # more tasks than lanes: share one (its pool queues what it cannot carry)
            lane = min(self._lanes, key=self._holders.__getitem__)
        if task is not None:
            self._held[task] = lane
            self._holders[lane] += 1
            task.add_done_callback(self._release)
        return lane

    def _release(self, task: asyncio.Task[object]) -> None:
        lane = self._held.pop(task)
        self._holders[lane] -= 1
        if self._holders[lane] == 0:
            self._free.append(lane)

    async def aclose(self) -> None:
        """Close every lane."""
        for lane in self._lanes:
            await lane.aclose()
