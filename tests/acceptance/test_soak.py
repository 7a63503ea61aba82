"""Chaos soak (``make soak``, not part of ``make test``): document flows under faults while worker
processes are SIGKILLed and restarted at random. Every flow must complete, every effect once."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest

from ecosign_orchestrator.core import JobStatus
from ecosign_orchestrator.ecosign.steps import DEFAULT_FUNCTIONS, Step
from tests.support.flows import SANDBOX_KEY, FlowHarness
from tests.support.procs import cli_env, start_worker, stop

pytestmark = pytest.mark.slow

FLOWS = int(os.environ.get("ECOSIGN_SOAK_FLOWS", "150"))
DURATION_LIMIT = float(os.environ.get("ECOSIGN_SOAK_SECONDS", "240"))


async def test_flows_survive_faults_and_killed_workers(
    flow: FlowHarness, sandbox_url: str, tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("ECOSIGN_SOAK_SEED", "7")))
    await flow.admin.set_faults(
        {
            name: {"rate": 0.2, "statuses": [500, 503, 429, 204], "latency": 0.01}
            for name in DEFAULT_FUNCTIONS.values()
        }
    )
    intents = [
        ({"protect": True}, {"tsa": True, "polygon": True, "bitcoin": True}),
        ({"sign_owner": True}, {"tsa": True}),
        ({"nda": True}, {}),
        ({"sign_workflow": True}, {"polygon": True}),
    ]
    ids = []
    for i in range(FLOWS):
        actions, forensic = intents[i % len(intents)]
        ids.append(await flow.submit(await flow.admin.create_document(), actions, forensic))
    env = cli_env(
        f"sqlite:///{tmp_path}/jobs.db",
        {
            "EDGE_BASE_URL": sandbox_url,
            "SUPABASE_URL": sandbox_url,
            "ECOSIGN_ORCH_SERVICE_KEY": SANDBOX_KEY,
            "ECOSIGN_ORCH_BACKOFF_SCALE": "0.002",
            "ECOSIGN_ORCH_CONFIRMATION_SCALE": "0.001",
            "ECOSIGN_ORCH_LEASE_SECONDS": "2",
            "ECOSIGN_ORCH_RECOVERY_SECONDS": "0.3",
            "ECOSIGN_ORCH_POLL_SECONDS": "0.05",
            "ECOSIGN_ORCH_LOG_LEVEL": "WARNING",
            "ECOSIGN_ORCH_STEP_POLICIES": json.dumps(
                {step.value: {"max_attempts": 20} for step in Step}
            ),
        },
    )
    workers = [
        start_worker(env, "--kind", "ecosign.document", log=tmp_path / f"w{i}.log")
        for i in range(2)
    ]
    kills = 0
    started = time.monotonic()
    try:
        while True:
            counts = await flow.repository.counts()
            done = sum(n for (_, s), n in counts.items() if s.is_terminal)
            if done == FLOWS:
                break
            assert time.monotonic() - started < DURATION_LIMIT, f"only {done}/{FLOWS} ended"
            await asyncio.sleep(rng.uniform(1.0, 3.0))  # chaos cadence, not synchronisation
            victim = rng.randrange(len(workers))
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait(10)
            kills += 1
            workers[victim] = start_worker(
                env, "--kind", "ecosign.document", log=tmp_path / f"w{victim}.log"
            )
    finally:
        for worker in workers:
            stop(worker)
    jobs = [await flow.repository.get(i) for i in ids]
    assert [j.status for j in jobs] == [JobStatus.COMPLETED] * FLOWS, [
        j.last_error for j in jobs if j.last_error
    ]
    ledger = await flow.admin.ledger()
    assert all(n == 1 for n in ledger["effects_by_key"].values()), "an effect was applied twice"
    assert kills >= 1
    elapsed = time.monotonic() - started
    calls = len(ledger["calls"])
    print(f"soak: {FLOWS} flows, {kills} worker kills, {calls} calls, {elapsed:.1f}s")
