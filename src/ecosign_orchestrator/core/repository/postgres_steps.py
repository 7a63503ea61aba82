"""PostgreSQL: a running job's step records, their events and outside calls, group-committed.

A mixin of :class:`~ecosign_orchestrator.core.repository.postgres.PostgresRepository`. A flow
saves its steps about once a step; with hundreds in flight, a commit each was what their calls
waited for. Saves that arrive while one is being written share the next transaction (one
pipelined round trip, one commit); each statement stays fenced by its own lease token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.calls import CallRecord
from ecosign_orchestrator.core.events import Event, EventBus, EventType
from ecosign_orchestrator.core.job import StepRecord
from ecosign_orchestrator.core.repository.batching import Batcher
from ecosign_orchestrator.core.repository.postgres_tx import CODEC, Row, translate_errors
from ecosign_orchestrator.core.transitions import EventDraft
from ecosign_orchestrator.core.types import JobId, LeaseToken


class PostgresSteps:
    """``save_steps`` (the repository supplies the pool, the queries and the bus)."""

    bus: EventBus
    _step_saves: Batcher[Row, list[Row]]

    def query(self, name: str) -> str:
        """A named statement."""
        raise NotImplementedError

    async def _fetch(self, name: str, params: Row) -> list[Row]:
        """One named statement outside a transaction."""
        raise NotImplementedError

    def _connection(self) -> contextlib.AbstractAsyncContextManager[psycopg.AsyncConnection[Row]]:
        """A pooled connection."""
        raise NotImplementedError

    if TYPE_CHECKING:  # the repository's base class has it (a stub here would shadow it)

        async def _lease_lost(self, job_id: JobId) -> errors.OrchestratorError: ...

    async def save_steps(
        self,
        job_id: JobId,
        token: LeaseToken,
        steps: Sequence[StepRecord],
        events: Sequence[EventDraft] = (),
        calls: Sequence[CallRecord] = (),
    ) -> list[Event]:
        """Record the steps (that column only), their events and calls in one fenced
        statement."""
        params = {
            "id": job_id,
            "token": token,
            "steps": CODEC.steps_in(list(steps)),
            # One JSON document each, not arrays: psycopg adapts an array element by element
            # (its list dumpers were an eighth of a flow worker's CPU).
            "events": Jsonb([_event_json(d) for d in events]),
            "calls": Jsonb([_call_json(c) for c in calls]),
        }
        rows = await self._step_saves.submit(params)
        if not rows:
            raise await self._lease_lost(job_id)
        stored = [
            Event(
                id=r["event_id"],
                job_id=job_id,
                type=EventType(r["type"]),
                at=r["at"],
                attempt=r["attempt"],
                data=r["data"],
            )
            for r in rows
            if r["event_id"] is not None
        ]
        if stored:
            self.bus.publish(stored)
        return stored

    async def _save_steps_many(self, items: Sequence[Row]) -> list[list[Row]]:
        """Many jobs' step saves in one transaction: one round trip (psycopg pipelines an
        ``executemany``) and one commit; each statement stays fenced by its own lease token
        (no row back: that job's lease is lost, the others' saves stand)."""
        if len(items) == 1:
            return [await self._fetch("save_steps", items[0])]
        # Rows are locked in id byte order, as lease renewals and completions lock them: two
        # transactions taking the same rows in different orders would deadlock.
        order = sorted(range(len(items)), key=lambda i: str(items[i]["id"]))
        answers: list[list[Row]] = [[] for _ in items]
        async with self._connection() as conn:
            with translate_errors():
                async with conn.transaction():
                    cursor = conn.cursor()
                    await cursor.executemany(
                        self.query("save_steps"), [items[i] for i in order], returning=True
                    )
                    for index in order:
                        answers[index] = await cursor.fetchall()
                        cursor.nextset()
        return answers


def _event_json(draft: EventDraft) -> dict[str, Any]:
    """An event as one element of the JSON array ``save_steps`` expands."""
    return {
        "type": draft.type.value,
        "at": draft.at.isoformat(),
        "attempt": draft.attempt,
        "data": draft.data,
    }


def _call_json(call: CallRecord) -> dict[str, Any]:
    """A call as one element of the JSON array ``save_steps`` expands."""
    return {**call.storable().to_json(), "duration_ms": call.duration_ms}
