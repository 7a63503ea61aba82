"""The lane transport carries many concurrent callers over real HTTP."""

from __future__ import annotations

import asyncio

import httpx

from ecosign_orchestrator.service.http_pool import LaneTransport
from tests.support.flows import SANDBOX_KEY


async def test_many_concurrent_callers_each_get_their_own_answer(sandbox_url: str) -> None:
    transport = LaneTransport(100)
    headers = {"Authorization": f"Bearer {SANDBOX_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url=sandbox_url, headers=headers) as c:

        async def caller(n: int) -> list[str]:
            ids = []
            for _ in range(3):
                answer = await c.post("/admin/documents", json={})
                answer.raise_for_status()
                ids.append(answer.json()["id"])
            return ids

        made = await asyncio.gather(*(caller(n) for n in range(150)))  # more callers than lanes
        assert transport.lanes == 100
        again = await asyncio.gather(*(caller(n) for n in range(20)))  # lanes are given back
        assert transport.lanes == 100
    ids = [i for batch in [*made, *again] for i in batch]
    assert len(ids) == len(set(ids)) == 510


async def test_a_finished_task_gives_its_lane_and_warm_connection_to_the_next(
    sandbox_url: str,
) -> None:
    transport = LaneTransport(10)
    headers = {"Authorization": f"Bearer {SANDBOX_KEY}"}
    async with httpx.AsyncClient(transport=transport, base_url=sandbox_url, headers=headers) as c:

        async def job() -> None:
            (await c.post("/admin/documents", json={})).raise_for_status()

        for _ in range(5):  # one job after another: one lane, reused
            await asyncio.create_task(job())
        assert transport.lanes == 1
        await asyncio.gather(*(asyncio.create_task(job()) for _ in range(3)))
        assert transport.lanes == 3
