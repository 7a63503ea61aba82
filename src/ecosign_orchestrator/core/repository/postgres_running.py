"""PostgreSQL: a running job's writes (step saves, completion), group-committed.

A mixin of :class:`~ecosign_orchestrator.core.repository.postgres.PostgresRepository`. A flow
saves its steps about once a step; with hundreds in flight, a commit each was what their calls
waited for. Saves that arrive while one is being written share the next transaction (one
pipelined round trip, one commit), and so do completions; a completion carries its run's last
step save, so a flow's end is one transaction, not two. Every statement stays fenced by its own
lease token.
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
from ecosign_orchestrator.core.repository.protocol import StepSave
from ecosign_orchestrator.core.transitions import EventDraft
from ecosign_orchestrator.core.types import JobId, JSONValue, LeaseToken

#: A completion waiting for its group commit: job, token, result and the run's last step save.
Completion = tuple[JobId, LeaseToken, JSONValue, "Row | None"]


class PostgresRunning:
    """``save_steps`` and ``complete`` (the repository supplies the pool, the queries and the
    bus)."""

    bus: EventBus
    _step_saves: Batcher[Row, list[Row]]
    _completions: Batcher[Completion, bool]

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
        rows = await self._step_saves.submit(_save_params(job_id, token, steps, events, calls))
        if not rows:
            raise await self._lease_lost(job_id)
        stored = _stored_events(job_id, rows)
        if stored:
            self.bus.publish(stored)
        return stored

    async def complete(
        self,
        job_id: JobId,
        token: LeaseToken,
        result: JSONValue,
        *,
        steps: StepSave | None = None,
    ) -> None:
        """running -> completed, fenced by the lease token (``LeaseLost`` if it no longer
        holds), after the run's last step save in the same transaction; completions arriving
        together share one commit."""
        save = None
        if steps is not None:
            save = _save_params(job_id, token, steps.steps, steps.events, steps.calls)
        if not await self._completions.submit((job_id, token, result, save)):
            raise await self._lease_lost(job_id)

    async def _complete_many(self, items: Sequence[Completion]) -> list[bool]:
        """Many completions (and the step saves they carry) in one transaction: for each,
        whether it held its lease. Only the ids, attempts and times of the completed events
        come back (the whole rows were a sixth of a worker's CPU in the no-op drain, and
        nobody read them)."""
        params: Row = {
            "ids": [job_id for job_id, _, _, _ in items],
            # One JSON document (one encode) rather than an array of jsonb values, each dumped
            # on its own: the dumping was a fifth of a worker's CPU in the no-op drain.
            "items": Jsonb([{"id": i, "token": t, "result": r} for i, t, r, _ in items]),
        }
        events: list[Event] = []
        if any(save is not None for *_, save in items):
            saved, done_rows = await self._save_and_complete(items, params)
            for (job_id, *_), rows in zip(items, saved, strict=True):
                events.extend(_stored_events(job_id, rows))
        else:
            done_rows = await self._fetch("complete_many", params)
        rows_by_id = {r["id"]: r for r in done_rows}
        done: list[bool] = []
        for job_id, *_ in items:
            row = rows_by_id.pop(job_id, None)  # the same job twice: the second is refused
            done.append(row is not None)
            if row is not None:
                events.append(
                    Event(
                        id=row["event_id"],
                        job_id=job_id,
                        type=EventType.JOB_COMPLETED,
                        at=row["updated_at"],
                        attempt=row["attempts"],
                        data={},
                    )
                )
        self.bus.publish(sorted(events, key=lambda e: e.id))
        return done

    async def _save_and_complete(
        self, items: Sequence[Completion], params: Row
    ) -> tuple[list[list[Row]], list[Row]]:
        """The step saves the completions carry, then the completions, in one transaction and
        one pipelined round trip. With more than one job, the rows are locked first, all in
        the byte order renewals lock them in: saves locking some rows and completions the rest
        afterwards would take them out of that order, and could deadlock with a renewal."""
        order = sorted(range(len(items)), key=lambda i: str(items[i][0]))
        saves = [(i, save) for i in order if (save := items[i][3]) is not None]
        saved: list[list[Row]] = [[] for _ in items]
        async with self._connection() as conn:
            with translate_errors():
                async with conn.pipeline(), conn.transaction():
                    if len(items) > 1:
                        await conn.execute(self.query("lock_running"), {"ids": params["ids"]})
                    cursor = conn.cursor()
                    await cursor.executemany(
                        self.query("save_steps"), [save for _, save in saves], returning=True
                    )
                    completed = await conn.execute(self.query("complete_many"), params)
                    for index, _ in saves:
                        saved[index] = await cursor.fetchall()
                        cursor.nextset()
                    done_rows = await completed.fetchall()
        return saved, done_rows

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


def _save_params(
    job_id: JobId,
    token: LeaseToken,
    steps: Sequence[StepRecord],
    events: Sequence[EventDraft],
    calls: Sequence[CallRecord],
) -> Row:
    """The parameters of one ``save_steps`` statement."""
    return {
        "id": job_id,
        "token": token,
        "steps": CODEC.steps_in(list(steps)),
        # One JSON document each, not arrays: psycopg adapts an array element by element (its
        # list dumpers were an eighth of a flow worker's CPU).
        "events": Jsonb([_event_json(d) for d in events]),
        "calls": Jsonb([_call_json(c) for c in calls]),
    }


def _stored_events(job_id: JobId, rows: Sequence[Row]) -> list[Event]:
    """The step events a ``save_steps`` statement returned, as stored."""
    return [
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
