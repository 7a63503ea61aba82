"""An HTTP transport for many concurrent callers: connections in small shards.

httpcore's pool examines every pooled connection for each request it assigns
(encode/httpcore#1035): with hundreds of flows in flight that bookkeeping took most of a worker's
CPU. Shards of ``SHARD`` connections, chosen by the calling task (one job's requests go to the
same shard, keeping its connection warm), keep each scan short; together they hold a connection
per job slot, so no request waits in a queue either.
"""

from __future__ import annotations

import asyncio
import math

import httpx

#: Connections per shard.
SHARD = 16


class ShardedTransport(httpx.AsyncBaseTransport):
    """``slots`` keep-alive connections in shards of :data:`SHARD`."""

    def __init__(self, slots: int) -> None:
        count = max(1, math.ceil(slots / SHARD))
        per = math.ceil(slots / count)
        # An idle connection is dropped after 4 s, before the common 5 s server keep-alive
        # (uvicorn's, nginx's) closes it under a request about to be sent (a ReadError).
        limits = httpx.Limits(
            max_connections=per, max_keepalive_connections=per, keepalive_expiry=4.0
        )
        self._shards = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(count)]

    @property
    def shards(self) -> int:
        """How many shards the connections are split into."""
        return len(self._shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the calling task's shard."""
        task = asyncio.current_task()
        shard = self._shards[hash(task) % len(self._shards)]
        return await shard.handle_async_request(request)

    async def aclose(self) -> None:
        """Close every shard."""
        for shard in self._shards:
            await shard.aclose()
