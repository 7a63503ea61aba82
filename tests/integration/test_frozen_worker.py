"""A worker frozen past its lease calls nothing when it wakes (issue 23 §4).

A real worker process is stopped with SIGSTOP while its flows wait on ``run-tsa``; their leases
expire, the flows are cancelled and recovered (they end ``cancelled``); then SIGCONT. The pending
answers arrive, and the woken worker must make no further call: every outside call checks the
lease on the monotonic clock first. Two rounds of ten flows: twenty repetitions of the race.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ecosign_orchestrator import ecosign
from ecosign_orchestrator.core import JobStatus, errors
from ecosign_orchestrator.core.context import JobContext
from ecosign_orchestrator.core.job import Job, StepStatus
from ecosign_orchestrator.core.repository import SqliteRepository
from ecosign_orchestrator.core.types import JobId
from ecosign_orchestrator.ecosign.model import DocumentJob
from tests.support.flows import SANDBOX_KEY, FlowHarness, SandboxAdmin
from tests.support.procs import cli_env, eventually, start_worker, stop

LEASE = 2.0
ROUNDS, FLOWS = 2, 10


def _calling_tsa(job: Job) -> bool:
    step = job.step("append_tsa")
    return step is not None and step.status is StepStatus.RUNNING


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_a_worker_woken_after_its_lease_calls_nothing(
    sandbox_url: str, tmp_path: Path, round_: int
) -> None:
    admin = SandboxAdmin(sandbox_url)
    await admin.reset()
    docs = [await admin.create_document() for _ in range(FLOWS)]
    # run-tsa answers these documents only after 1.5 s: long enough to freeze the worker
    # while every call is in flight
    await admin.set_faults({"run-tsa": {"latency": 1.5, "documents": docs}})
    repo = SqliteRepository(tmp_path / "jobs.db")
    env = cli_env(
        f"sqlite:///{tmp_path}/jobs.db",
        {
            "EDGE_BASE_URL": sandbox_url,
            "SUPABASE_URL": sandbox_url,
            "ECOSIGN_ORCH_SERVICE_KEY": SANDBOX_KEY,
            "ECOSIGN_ORCH_LEASE_SECONDS": str(LEASE),
            "ECOSIGN_ORCH_BACKOFF_SCALE": "0.002",
            "ECOSIGN_ORCH_CONFIRMATION_SCALE": "0.001",
            "ECOSIGN_ORCH_POLL_SECONDS": "0.05",
        },
    )
    async with repo:
        await repo.migrate()
        ids = []
        for doc in docs:
            intent = DocumentJob.model_validate(
                {"document_entity_id": doc, "actions": {"protect": True}, "forensic": {"tsa": True}}
            )
            request = ecosign.flow_request(intent)
            ids.append((await repo.enqueue(request, max_attempts=50)).job.id)
        worker = start_worker(env, "--kind", ecosign.KIND, "--concurrency", str(FLOWS),
                              log=tmp_path / "worker.log")  # fmt: skip
        try:
            await eventually(
                lambda: _all(repo, ids, _calling_tsa), timeout=30, what="every flow calling TSA"
            )
            os.kill(worker.pid, signal.SIGSTOP)
            for job_id in ids:
                await repo.cancel(job_id)
            recovered: set[JobId] = set()

            async def all_recovered() -> bool:
                recovered.update(await repo.recover_expired())
                return recovered == set(ids)

            # the frozen worker's leases expire; recovering them ends the cancelled flows
            await eventually(all_recovered, timeout=LEASE + 10, what="the leases to expire")
            assert await _all(repo, ids, lambda j: j.status is JobStatus.CANCELLED)
            woken_at = datetime.now(UTC)
            os.kill(worker.pid, signal.SIGCONT)
        finally:
            os.kill(worker.pid, signal.SIGCONT)
            # a graceful stop waits for the worker's runs to end: any call it would make after
            # waking is made before it exits
            assert stop(worker) == 0
    calls = (await admin.ledger())["calls"]
    await admin.aclose()
    mine = [c for c in calls if c["document_entity_id"] in docs]
    assert [c["function"] for c in mine].count("run-tsa") == FLOWS  # the calls in flight
    after = [c for c in mine if datetime.fromisoformat(c["at"]) > woken_at]
    assert after == [], f"called after waking: {[c['function'] for c in after]}"
    assert "build-artifact" not in [c["function"] for c in mine]


async def _all(repo: SqliteRepository, ids: list[JobId], condition: object) -> bool:
    jobs = [await repo.get(job_id) for job_id in ids]
    return all(condition(job) for job in jobs)  # type: ignore[operator]


async def test_no_outside_call_is_made_once_the_lease_is_no_longer_trusted(
    flow: FlowHarness,
) -> None:
    """The mechanism, deterministically: a run whose lease the worker stops trusting while a
    call is in flight (the moment a frozen worker wakes in) makes no further call, not even the
    state read, and records nothing."""
    doc = await flow.admin.create_document()
    await flow.admin.set_faults({"run-tsa": {"latency": 0.5, "documents": [doc]}})
    job_id = await flow.submit(doc, {"protect": True}, {"tsa": True})
    [job] = await flow.repository.claim(
        worker_id="frozen", kinds=[ecosign.KIND], limit=1, lease_seconds=30
    )
    assert job.id == job_id
    trusted_until = [float("inf")]

    async def freeze_during_tsa() -> None:  # the lease is lost while run-tsa is in flight
        await eventually(lambda: _in_flight(flow, "run-tsa"), timeout=20, what="run-tsa in flight")
        trusted_until[0] = time.monotonic()

    ctx = JobContext(
        job, flow.repository, lease_trusted=lambda: time.monotonic() < trusted_until[0]
    )
    processor = flow.runtime.registry.get(ecosign.KIND).processor
    freezer = asyncio.create_task(freeze_during_tsa())
    with pytest.raises(errors.LeaseLost):
        await processor(ctx)
    await freezer
    calls = [c["function"] for c in (await flow.admin.ledger(doc))["calls"]]
    assert calls == ["store-encrypted-custody", "create-witness", "run-tsa"]  # nothing after


async def _in_flight(flow: FlowHarness, function: str) -> bool:
    response = await flow.admin.client.get("/admin/ledger")
    return bool(response.json()["in_flight"].get(function))
