"""Group commit for one kind of write: callers that arrive while a batch is being written share
the next one.

The first caller of an idle batcher is written at once (no added latency when the store is
quiet); callers arriving meanwhile wait for the next write, which takes all of them (up to
``max_batch``) in one commit. Each caller gets its own answer: its result, or
the error of its own item (a fenced write refused for one job fails that caller only), or the
error of the whole batch when the write itself failed. A caller is answered only after the commit
that holds its write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")

#: Writes one batch: one answer (a value or an exception) per item, in order.
Flush = Callable[[Sequence[Item]], Awaitable[Sequence[Answer | BaseException]]]


class Batcher(Generic[Item, Answer]):
    """Batches concurrent writes of one kind (see the module docstring)."""

    def __init__(self, flush: Flush[Item, Answer], *, max_batch: int = 500) -> None:
        self._flush = flush
        self._max = max_batch
        self._pending: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Answer:
        """Write ``item`` with whatever else is waiting; its answer once committed."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="group-commit")
        return await asyncio.shield(future)  # a cancelled caller does not cancel the batch

    async def drain(self) -> None:
        """Wait until every write submitted so far is done (before the store closes)."""
        while self._runner is not None:
            await asyncio.wait({self._runner})

    async def _run(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Answer]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending[: self._max], self._pending[self._max :]
                try:
                    answers = await self._flush([item for item, _ in batch])
                except Exception as exc:  # the write failed: no item of the batch holds
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), answer in zip(batch, answers, strict=True):
                    if future.done():
                        continue
                    if isinstance(answer, BaseException):
                        future.set_exception(answer)
                    else:
                        future.set_result(answer)
        except asyncio.CancelledError:  # the loop is shutting down: nobody waits forever
            for _, future in [*batch, *self._pending]:
                future.cancel()
            self._pending = []
            raise
        finally:
            self._runner = None
