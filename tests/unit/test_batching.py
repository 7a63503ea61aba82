"""Group commit: callers arriving during a write share the next one; each gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from ecosign_orchestrator.core.repository.batching import Batcher


async def test_callers_during_a_write_share_the_next_and_get_their_own_answers() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        batches.append(list(items))
        if len(batches) == 1:
            await release.wait()  # the first write is slow: the others queue up behind it
        return [ValueError(f"refused {i}") if i % 5 == 0 else i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(flush, max_batch=3)
    first = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)
    others = [asyncio.create_task(batcher.submit(i)) for i in range(2, 8)]
    await asyncio.sleep(0)
    release.set()
    assert await first == 10
    answers = await asyncio.gather(*others, return_exceptions=True)
    assert batches == [[1], [2, 3, 4], [5, 6, 7]]
    assert answers[:3] == [20, 30, 40] and answers[4:] == [60, 70]
    assert isinstance(answers[3], ValueError) and "refused 5" in str(answers[3])


async def test_a_failed_write_fails_its_batch_only() -> None:
    calls = 0

    async def flush(items: Sequence[str]) -> list[str | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("store down")
        return list(items)

    batcher: Batcher[str, str] = Batcher(flush)
    with pytest.raises(ConnectionError):
        await batcher.submit("a")
    assert await batcher.submit("b") == "b"


async def test_a_cancelled_writer_leaves_no_caller_waiting_forever() -> None:
    started = asyncio.Event()

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        started.set()
        await asyncio.Event().wait()  # a write that never ends
        return list(items)

    batcher: Batcher[int, int] = Batcher(flush)
    first = asyncio.create_task(batcher.submit(1))
    await started.wait()
    second = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)
    assert batcher._runner is not None
    batcher._runner.cancel()
    for caller in (first, second):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(caller, 5)


async def test_drain_returns_once_every_accepted_write_is_done() -> None:
    release = asyncio.Event()
    written: list[int] = []

    async def flush(items: Sequence[int]) -> list[int | BaseException]:
        await release.wait()
        written.extend(items)
        return list(items)

    batcher: Batcher[int, int] = Batcher(flush)
    callers = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0)
    draining = asyncio.create_task(batcher.drain())
    await asyncio.sleep(0)
    assert not draining.done()
    release.set()
    await asyncio.wait_for(draining, 5)
    assert written == [0, 1, 2] and [c.result() for c in callers] == [0, 1, 2]
