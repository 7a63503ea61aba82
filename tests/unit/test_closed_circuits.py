"""A worker trusts a closed circuit it read for a moment, and forgets it at its first failure."""

from __future__ import annotations

from ecosign_orchestrator.core.gates import ClosedCircuits, GateVerdict


def test_only_a_closed_circuit_without_failures_is_trusted_and_only_for_a_while() -> None:
    now = [100.0]
    circuits = ClosedCircuits(clock=lambda: now[0])
    assert not circuits.closed("run-tsa", 1.0)
    circuits.saw("run-tsa", GateVerdict(0.0))
    assert circuits.closed("run-tsa", 1.0)
    now[0] += 0.99
    assert circuits.closed("run-tsa", 1.0)
    now[0] += 0.02
    assert not circuits.closed("run-tsa", 1.0), "trusted past its age"
    assert not circuits.closed("run-tsa", 0.0), "0 means read every time"

    circuits.saw("run-tsa", GateVerdict(0.0))
    circuits.forget("run-tsa")  # a failure here
    assert not circuits.closed("run-tsa", 1.0)
    for verdict in (GateVerdict(0.0, failures=3), GateVerdict(0.0, probe=True), GateVerdict(5.0)):
        circuits.saw("run-tsa", GateVerdict(0.0))
        circuits.saw("run-tsa", verdict)
        assert not circuits.closed("run-tsa", 1.0), verdict
    assert not circuits.closed("create-witness", 1.0)
