"""SQLite: the process-wide gates (slots, rates, circuit breakers) of ``core/gates.py``.

A mixin of :class:`~ecosign_orchestrator.core.repository.sqlite.SqliteRepository`: each rule is
one write transaction, the file's lock serialising takers across processes.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ecosign_orchestrator.core import gates
from ecosign_orchestrator.core.gates import CircuitPolicy, GateVerdict
from ecosign_orchestrator.core.repository import sql
from ecosign_orchestrator.core.types import JobId, LeaseToken

T = TypeVar("T")
Q = sql.queries("sqlite")


class SqliteGates:
    """Slots, rates and circuits in SQLite (the repository supplies ``_read`` and ``_write``)."""

    async def _read(self, name: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        """One named query on the connection's thread."""
        raise NotImplementedError

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in a write transaction (group-committed)."""
        raise NotImplementedError

    async def acquire_slot(self, key: str, job_id: JobId, token: LeaseToken, limit: int) -> bool:
        """Take a slot in one write transaction (the file's lock serialises takers)."""
        params = {"key": key, "job_id": job_id, "token": token, "now": time.time()}

        def take(conn: sqlite3.Connection) -> bool:
            if conn.execute(Q["slots_held"], params).fetchone()["n"] >= limit:
                return False
            conn.execute(Q["slot_take"], params)
            return True

        return await self._write(take)

    async def release_slot(self, key: str, job_id: JobId) -> None:
        """Give the slot back."""
        params = {"key": key, "job_id": job_id}
        await self._write(lambda c: c.execute(Q["slot_release"], params))

    async def slots_in_use(self) -> dict[str, int]:
        """Slots held per key by running jobs."""
        return {r["key"]: r["n"] for r in await self._read("slots_in_use", {})}

    async def take_rate(self, key: str, per: int, seconds: float) -> float:
        """The sliding-window rule in one write transaction."""

        def take(conn: sqlite3.Connection) -> float:
            now = time.time()
            params = {"key": key, "since": now - seconds, "now": now}
            conn.execute(Q["rate_forget"], params)
            row = conn.execute(Q["rate_window"], params).fetchone()
            wait = gates.rate_wait(row["n"], row["oldest"], now, per, seconds)
            if wait == 0:
                conn.execute(Q["rate_hit"], params)
            return wait

        return await self._write(take)

    async def circuit_gate(self, key: str, policy: CircuitPolicy) -> GateVerdict:
        """Apply the gate rule; a probe taker records it in the same transaction."""

        def check(conn: sqlite3.Connection) -> GateVerdict:
            now = time.time()
            circuit = _circuit(conn, key)
            verdict = gates.gate(circuit, now, policy)
            if verdict.probe and circuit is not None:
                probing = dataclasses.replace(circuit, probe_until=now + policy.probe_seconds)
                _put_circuit(conn, key, probing, now)
            return verdict

        if not await self._read("circuit_get", {"key": key}):
            return GateVerdict(0.0)  # no circuit: no write transaction on the hot path
        return await self._write(check)

    async def circuit_failure(
        self, key: str, policy: CircuitPolicy, retry_after: float | None
    ) -> float:
        """Count a failure; seconds the circuit is open."""

        def fail(conn: sqlite3.Connection) -> float:
            now = time.time()
            circuit = gates.after_failure(_circuit(conn, key), now, policy, retry_after)
            _put_circuit(conn, key, circuit, now)
            return gates.open_for(circuit, now)

        return await self._write(fail)

    async def circuit_success(self, key: str) -> None:
        """Close the circuit."""
        await self._write(lambda c: c.execute(Q["circuit_close"], {"key": key}))

    async def circuits(self) -> dict[str, tuple[int, float]]:
        """Failures and open seconds per key."""
        now = time.time()
        rows = await self._read("circuits_all", {})
        circuits = {r["key"]: gates.Circuit.from_row(r) for r in rows}
        return {k: (c.failures, gates.open_for(c, now)) for k, c in circuits.items() if c}


def _circuit(conn: sqlite3.Connection, key: str) -> gates.Circuit | None:
    return gates.Circuit.from_row(conn.execute(Q["circuit_get"], {"key": key}).fetchone())


def _put_circuit(conn: sqlite3.Connection, key: str, circuit: gates.Circuit, now: float) -> None:
    conn.execute(Q["circuit_put"], {**circuit.row(key), "now": now})
