"""PostgreSQL: the fleet-wide gates (slots, rates, circuit breakers) of ``core/gates.py``.

A mixin of :class:`~ecosign_orchestrator.core.repository.postgres.PostgresRepository`: each rule
runs by the database clock, takers of one key serialised by a transaction-scoped advisory lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Protocol

from ecosign_orchestrator.core import gates
from ecosign_orchestrator.core.gates import CircuitPolicy, GateVerdict
from ecosign_orchestrator.core.types import JobId, LeaseToken

Row = dict[str, Any]


class _Statements(Protocol):
    async def _fetch(self, name: str, params: Row) -> list[Row]: ...


class PostgresGates:
    """Slots, rates and circuits in PostgreSQL (the repository supplies the two methods below)."""

    async def _fetch(self, name: str, params: Row) -> list[Row]:
        """One named statement outside a transaction."""
        raise NotImplementedError

    def _transaction(self) -> contextlib.AbstractAsyncContextManager[_Statements]:
        """A transaction whose statements are run with its ``_fetch``."""
        raise NotImplementedError

    async def acquire_slot(self, key: str, job_id: JobId, token: LeaseToken, limit: int) -> bool:
        """Take a slot: takers of one key are serialised by an advisory transaction lock."""
        params: Row = {"key": key, "job_id": job_id, "token": token}
        async with self._transaction() as tx:
            await tx._fetch("slot_lock", params)
            if (await tx._fetch("slots_held", params))[0]["n"] >= limit:
                return False
            await tx._fetch("slot_take", params)
            return True

    async def release_slot(self, key: str, job_id: JobId) -> None:
        """Give the slot back."""
        await self._fetch("slot_release", {"key": key, "job_id": job_id})

    async def slots_in_use(self) -> dict[str, int]:
        """Slots held per key by running jobs."""
        return {r["key"]: r["n"] for r in await self._fetch("slots_in_use", {})}

    async def take_rate(self, key: str, per: int, seconds: float) -> float:
        """The sliding-window rule by the database clock, takers of a key serialised."""
        async with self._transaction() as tx:
            now = (await tx._fetch("rate_lock", {"key": key}))[0]["db_now"]
            params: Row = {"key": key, "since": now - seconds, "now": now}
            await tx._fetch("rate_forget", params)
            row = (await tx._fetch("rate_window", params))[0]
            wait = gates.rate_wait(row["n"], row["oldest"], now, per, seconds)
            if wait == 0:
                await tx._fetch("rate_hit", params)
            return wait

    async def circuit_gate(self, key: str, policy: CircuitPolicy) -> GateVerdict:
        """Apply the gate rule by the database clock; a probe taker records it under a lock."""
        row = (await self._fetch("circuit_get", {"key": key}))[0]
        if row["failures"] is None:
            return GateVerdict(0.0)  # no circuit: one read on the hot path
        first = gates.gate(gates.Circuit.from_row(row), row["db_now"], policy)
        if not first.probe:
            return first
        async with self._transaction() as tx:  # maybe the probe: decide again under the lock
            await tx._fetch("circuit_lock", {"key": key})
            row = (await tx._fetch("circuit_get", {"key": key}))[0]
            circuit = gates.Circuit.from_row(row)
            verdict = gates.gate(circuit, row["db_now"], policy)
            if verdict.probe and circuit is not None:
                until = row["db_now"] + policy.probe_seconds
                probing = dataclasses.replace(circuit, probe_until=until)
                await tx._fetch("circuit_put", probing.row(key))
            return verdict

    async def circuit_failure(
        self, key: str, policy: CircuitPolicy, retry_after: float | None
    ) -> float:
        """Count a failure under the key's lock; seconds the circuit is open."""
        async with self._transaction() as tx:
            await tx._fetch("circuit_lock", {"key": key})
            row = (await tx._fetch("circuit_get", {"key": key}))[0]
            previous = gates.Circuit.from_row(row)
            circuit = gates.after_failure(previous, row["db_now"], policy, retry_after)
            await tx._fetch("circuit_put", circuit.row(key))
            return gates.open_for(circuit, row["db_now"])

    async def circuit_success(self, key: str) -> None:
        """Close the circuit."""
        await self._fetch("circuit_close", {"key": key})

    async def circuits(self) -> dict[str, tuple[int, float]]:
        """Failures and open seconds per key."""
        rows = await self._fetch("circuits_all", {})
        circuits = {r["key"]: (gates.Circuit.from_row(r), r["db_now"]) for r in rows}
        return {k: (c.failures, gates.open_for(c, now)) for k, (c, now) in circuits.items() if c}
