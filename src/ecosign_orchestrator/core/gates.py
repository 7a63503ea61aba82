"""Fleet-wide gates in front of an outside service: concurrency slots and circuit breakers.

Both live in the job store, so every worker on every machine sees the same state.

**Slots.** A key (an Edge Function, say) allows at most N calls in flight. A job takes a slot
before its call and gives it back after; a slot counts only while its job is running under the
same lease, so a worker that dies gives its slots back when its lease expires. A job that finds
no free slot waits (the processor snoozes: no attempt spent, no worker slot held).

**Rates.** A key allows at most ``per`` calls in any ``seconds`` window (a sliding window of the
calls it let through); a caller over the rate waits until the oldest call leaves the window.

**Circuit breakers.** Consecutive transient failures of a key, counted across the fleet, open
its circuit at ``failures`` for ``cooldown_seconds``. While open, every worker holds its calls to
that key; when the cool-down ends, one caller takes the probe (half-open) and the others keep
waiting; its success closes the circuit, its failure opens it again. A 429 or 546 answer with
``Retry-After`` holds every worker's calls for that long at once; then calls resume without a
probe (the service said when to come back). A failure that opens the circuit is not counted against
the step's budget: an outage pauses flows, it does not fail them.

The circuit rules are pure functions of the stored state and the store's clock; each backend
applies them in one transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol


class StoredRow(Protocol):
    """A database row read by column name (``sqlite3.Row``, a psycopg ``dict_row``)."""

    def __getitem__(self, key: str, /) -> Any: ...


#: How long a half-open probe has before another caller may probe (a probe whose worker died).
DEFAULT_PROBE_SECONDS = 60.0
#: How long a caller waits, at most, while another one probes.
PROBE_WAIT_SECONDS = 1.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CircuitPolicy:
    """When a key's circuit opens and for how long (``failures=0``: never)."""

    failures: int = 10
    cooldown_seconds: float = 30.0
    probe_seconds: float = DEFAULT_PROBE_SECONDS
    #: A closed circuit a worker read is trusted this long (see :class:`ClosedCircuits`).
    cache_seconds: float = 1.0

    @property
    def enabled(self) -> bool:
        """Whether this policy ever opens a circuit."""
        return self.failures > 0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Circuit:
    """A key's stored circuit; times are seconds on the store's clock (epoch)."""

    failures: int = 0
    open_until: float | None = None
    probe_until: float | None = None

    @classmethod
    def from_row(cls, row: StoredRow | None) -> Circuit | None:
        """A stored ``circuits`` row (None: no row, or the empty side of an outer join)."""
        if row is None or row["failures"] is None:
            return None
        return cls(
            failures=row["failures"], open_until=row["open_until"], probe_until=row["probe_until"]
        )

    def row(self, key: str) -> dict[str, Any]:
        """The ``circuit_put`` parameters of this circuit."""
        return {
            "key": key,
            "failures": self.failures,
            "open_until": self.open_until,
            "probe_until": self.probe_until,
        }


@dataclasses.dataclass(frozen=True, slots=True)
class GateVerdict:
    """Whether a caller may call now; if not, how long to wait."""

    wait_seconds: float
    #: The caller took the half-open probe: the store must record it.
    probe: bool = False
    #: Consecutive failures so far (a success must reset them).
    failures: int = 0

    @property
    def go(self) -> bool:
        """Call now."""
        return self.wait_seconds <= 0


def gate(circuit: Circuit | None, now: float, policy: CircuitPolicy) -> GateVerdict:
    """May a caller call the key now? (closed: yes; open: wait; cool-down over: one probe; a
    ``Retry-After`` pause over: everyone, the service said when to come back)"""
    if circuit is None or circuit.open_until is None:
        return GateVerdict(0.0, failures=0 if circuit is None else circuit.failures)
    if circuit.open_until > now:
        return GateVerdict(circuit.open_until - now, failures=circuit.failures)
    if circuit.failures < policy.failures:
        return GateVerdict(0.0, failures=circuit.failures)
    if circuit.probe_until is None or circuit.probe_until <= now:
        return GateVerdict(0.0, probe=True, failures=circuit.failures)
    return GateVerdict(
        min(circuit.probe_until - now, PROBE_WAIT_SECONDS), failures=circuit.failures
    )


def after_failure(
    circuit: Circuit | None,
    now: float,
    policy: CircuitPolicy,
    retry_after: float | None,
) -> Circuit:
    """The circuit after one more transient failure."""
    failures = (0 if circuit is None else circuit.failures) + 1
    open_until = None if circuit is None else circuit.open_until
    if not policy.enabled:
        pass
    elif retry_after is not None and retry_after > 0:
        open_until = now + retry_after
    elif failures >= policy.failures:
        open_until = now + policy.cooldown_seconds
    return Circuit(failures=failures, open_until=open_until, probe_until=None)


def open_for(circuit: Circuit, now: float) -> float:
    """Seconds the circuit stays open (0: closed or cooling down to a probe)."""
    return 0.0 if circuit.open_until is None else max(circuit.open_until - now, 0.0)


def rate_wait(count: int, oldest: float | None, now: float, per: int, seconds: float) -> float:
    """Seconds until a call may go under ``per`` calls per ``seconds`` (0: now)."""
    if count < per or oldest is None:
        return 0.0
    return max(oldest + seconds - now, 0.0) or 1e-3


class ClosedCircuits:
    """Keys this worker recently saw with a closed circuit and no failure.

    Reading the circuit before every call is one store round trip per outside call; a worker
    that saw a key closed within ``CircuitPolicy.cache_seconds`` calls without asking again. A
    failure this worker meets forgets the key at once; failures met by other workers are seen
    at the next read, ``cache_seconds`` later at most.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, float] = {}
        self._reading: dict[str, asyncio.Future[GateVerdict]] = {}

    async def gate(
        self, key: str, max_age: float, read: Callable[[], Awaitable[GateVerdict]]
    ) -> GateVerdict:
        """``key``'s verdict: a closed circuit seen within ``max_age`` seconds, else ``read()``.

        Jobs that ask while a read of the same key is on its way wait for it instead of reading
        too (with 100 flows in lockstep every step was 100 reads: the cache never had a value
        yet). Only a plain closed circuit is shared; any other answer (open, a probe that must
        go to one job only, an error) makes each waiter read for itself."""
        if self.closed(key, max_age):
            return GateVerdict(0.0)
        pending = self._reading.get(key)
        if pending is not None:
            await asyncio.wait({pending})  # its outcome, whatever it is, never raises here
            if self.closed(key, max_age):
                return GateVerdict(0.0)
        task = asyncio.ensure_future(read())
        self._reading[key] = task
        task.add_done_callback(lambda done: self._read(key, done))  # runs before any waiter
        return await asyncio.shield(task)  # a cancelled reader leaves the read to the waiters

    def _read(self, key: str, task: asyncio.Future[GateVerdict]) -> None:
        if self._reading.get(key) is task:
            del self._reading[key]
        if not task.cancelled() and task.exception() is None:
            self.saw(key, task.result())

    def closed(self, key: str, max_age: float) -> bool:
        """Whether ``key`` was seen closed less than ``max_age`` seconds ago."""
        seen = self._seen.get(key)
        return seen is not None and self._clock() - seen < max_age

    def saw(self, key: str, verdict: GateVerdict) -> None:
        """Remember what a read of ``key`` said (only a closed circuit with no failure is kept)."""
        if verdict.go and not verdict.probe and verdict.failures == 0:
            self._seen[key] = self._clock()
        else:
            self._seen.pop(key, None)

    def forget(self, key: str) -> None:
        """``key`` failed here: read it again next time."""
        self._seen.pop(key, None)
