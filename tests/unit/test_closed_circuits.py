"""A worker trusts a closed circuit it read for a moment, and forgets it at its first failure."""

from __future__ import annotations

import asyncio

import pytest

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


async def test_jobs_asking_together_share_one_read_of_a_closed_circuit() -> None:
    circuits = ClosedCircuits()
    reads: list[asyncio.Future[GateVerdict]] = []

    def read() -> asyncio.Future[GateVerdict]:
        reads.append(asyncio.get_running_loop().create_future())
        return reads[-1]

    asking = [asyncio.ensure_future(circuits.gate("run-tsa", 1.0, read)) for _ in range(100)]
    await asyncio.sleep(0)  # every job has asked (a scheduling step, not a wait for time)
    assert len(reads) == 1
    reads[0].set_result(GateVerdict(0.0))
    assert [v.go for v in await asyncio.gather(*asking)] == [True] * 100
    assert len(reads) == 1


async def test_a_probe_or_an_error_is_never_shared() -> None:
    circuits = ClosedCircuits()
    answers = iter([GateVerdict(0.0, probe=True), GateVerdict(7.0), GateVerdict(7.0)])
    reads: list[asyncio.Future[GateVerdict]] = []

    def read() -> asyncio.Future[GateVerdict]:
        reads.append(asyncio.get_running_loop().create_future())
        return reads[-1]

    asking = [asyncio.ensure_future(circuits.gate("anchor", 1.0, read)) for _ in range(3)]
    await asyncio.sleep(0)
    reads[0].set_result(next(answers))  # the first asker takes the half-open probe
    async with asyncio.timeout(5):
        while len(reads) < 3:  # each waiter then reads for itself (scheduling steps)
            await asyncio.sleep(0)
    for future in reads[1:]:
        future.set_result(next(answers))
    verdicts = await asyncio.gather(*asking)
    assert [v.probe for v in verdicts] == [True, False, False]
    assert [v.wait_seconds for v in verdicts] == [0.0, 7.0, 7.0]

    failing = asyncio.get_running_loop().create_future()
    failing.set_exception(RuntimeError("store down"))
    with pytest.raises(RuntimeError):
        await circuits.gate("anchor", 1.0, lambda: failing)
    assert not circuits.closed("anchor", 1.0)
