"""The sharded HTTP transport carries many concurrent callers over real HTTP."""

from __future__ import annotations

import asyncio

import httpx

from ecosign_orchestrator.service.http_pool import SHARD, ShardedTransport
from tests.support.flows import SANDBOX_KEY


async def test_many_concurrent_callers_each_get_their_own_answer(sandbox_url: str) -> None:
    transport = ShardedTransport(100)
    assert transport.shards == -(-100 // SHARD)
    headers = {"Authorization": f"Bearer {SANDBOX_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url=sandbox_url, headers=headers) as c:

        async def caller(n: int) -> list[str]:
            ids = []
            for _ in range(3):
                answer = await c.post("/admin/documents", json={})
                answer.raise_for_status()
                ids.append(answer.json()["id"])
            return ids

        made = await asyncio.gather(*(caller(n) for n in range(150)))
    ids = [i for batch in made for i in batch]
    assert len(ids) == len(set(ids)) == 450
    assert ShardedTransport(1).shards == 1
