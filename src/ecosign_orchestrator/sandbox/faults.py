"""Fault injection per function: error rate, status codes, latency, timeouts, Retry-After, 204.

Faults are drawn from a seeded random source so a test run is repeatable.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from typing import Any


@dataclasses.dataclass(slots=True)
class Fault:
    """How one function misbehaves."""

    #: Probability in [0, 1] that a call fails (before doing any work).
    rate: float = 0.0
    #: Statuses to answer with, drawn uniformly (204: empty body, like a disabled function).
    statuses: list[int] = dataclasses.field(default_factory=lambda: [500])
    #: Seconds to add to every call (failing or not).
    latency: float = 0.0
    #: Seconds a failing call hangs before answering (simulates a client-side timeout).
    hang: float = 0.0
    #: Probability in [0, 1], drawn apart from ``rate``, that a call hangs ``hang`` seconds and
    #: then answers 504 (a timeout, mixed with plain failures).
    hang_rate: float = 0.0
    #: ``Retry-After`` seconds sent with failures (None: no header).
    retry_after: float | None = None
    #: Fail the next N calls regardless of ``rate`` (deterministic scripting).
    fail_next: int = 0
    #: Body sent with a failure (default: ``{"error": "injected_fault"}``).
    body: dict[str, Any] | None = None
    #: Only calls for these documents fail (None: every call).
    documents: list[str] | None = None
    #: The failure's error text repeats the request's headers, secrets included (a careless
    #: function: what the orchestrator keeps of the answer must not leak them).
    echo_headers: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        """Build from a JSON object, refusing unknown fields."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        fault = cls(**data)
        if not 0 <= fault.rate <= 1 or not 0 <= fault.hang_rate <= 1:
            raise ValueError("rate and hang_rate must be within [0, 1]")
        if not fault.statuses or any(not 100 <= s <= 599 for s in fault.statuses):
            raise ValueError("statuses must be HTTP status codes")
        return fault

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dataclasses.asdict(self)


class FaultPlan:
    """Faults by function name; ``draw`` decides, per call, whether and how it fails."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.faults: dict[str, Fault] = {}

    def set(self, function: str, fault: Fault | None) -> None:
        """Install (or with None, remove) a fault."""
        with self._lock:
            if fault is None:
                self.faults.pop(function, None)
            else:
                self.faults[function] = fault

    def draw(
        self, function: str, document_id: str | None = None
    ) -> tuple[Fault | None, int | None]:
        """``(fault, status)``: the status to fail with, or None to proceed."""
        with self._lock:
            fault = self.faults.get(function)
            if fault is None:
                return None, None
            if fault.documents is not None and document_id not in fault.documents:
                return None, None
            if fault.fail_next > 0:
                fault.fail_next -= 1
                return fault, self._rng.choice(fault.statuses)
            if fault.hang_rate and self._rng.random() < fault.hang_rate:
                return dataclasses.replace(fault, hang=fault.hang or 1.0), 504
            if fault.rate and self._rng.random() < fault.rate:
                return dataclasses.replace(fault, hang=0.0 if fault.hang_rate else fault.hang), (
                    self._rng.choice(fault.statuses)
                )
            return fault, None
