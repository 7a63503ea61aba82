"""A worker process SIGKILLed in the middle of a document flow, then restarted (acceptance 4)."""

from __future__ import annotations

import signal
from pathlib import Path

from ecosign_orchestrator.core import JobStatus
from ecosign_orchestrator.core.job import StepStatus
from tests.support.flows import SANDBOX_KEY, FlowHarness
from tests.support.procs import cli_env, eventually, start_worker, stop


async def test_killed_worker_flow_completes_after_restart_without_double_effects(
    flow: FlowHarness, sandbox_url: str, tmp_path: Path
) -> None:
    doc = await flow.admin.create_document()
    # run-tsa is slow, so the worker is inside that call when it dies; the sandbox finishes the
    # call anyway (like a timed-out request that did its work).
    await flow.admin.set_faults({"run-tsa": {"latency": 1.5}})
    job_id = await flow.submit(doc, {"protect": True}, {"tsa": True, "polygon": True})
    env = cli_env(
        f"sqlite:///{tmp_path}/jobs.db",
        {
            "EDGE_BASE_URL": sandbox_url,
            "SUPABASE_URL": sandbox_url,
            "ECOSIGN_ORCH_SERVICE_KEY": SANDBOX_KEY,
            "ECOSIGN_ORCH_BACKOFF_SCALE": "0.002",
            "ECOSIGN_ORCH_CONFIRMATION_SCALE": "0.001",
            "ECOSIGN_ORCH_LEASE_SECONDS": "1.5",
            "ECOSIGN_ORCH_RECOVERY_SECONDS": "0.2",
            "ECOSIGN_ORCH_POLL_SECONDS": "0.05",
        },
    )

    async def tsa_running() -> bool:
        step = (await flow.repository.get(job_id)).step("append_tsa")
        return step is not None and step.status is StepStatus.RUNNING

    first = start_worker(env, "--kind", "ecosign.document", log=tmp_path / "first.log")
    try:
        await eventually(tsa_running, timeout=30, what="append_tsa running")
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        stop(first)
    await flow.admin.set_faults({"run-tsa": None})

    second = start_worker(env, "--kind", "ecosign.document", log=tmp_path / "second.log")
    try:

        async def terminal() -> bool:
            return (await flow.repository.get(job_id)).status.is_terminal

        await eventually(terminal, timeout=60, what="flow terminal")
    finally:
        assert stop(second) == 0
    job = await flow.repository.get(job_id)
    assert job.status is JobStatus.COMPLETED, job.last_error
    ledger = await flow.admin.ledger(doc)
    assert all(n == 1 for n in ledger["effects_by_key"].values()), ledger["effects_by_key"]
    assert ledger["effect_order"] == [
        "store-encrypted-custody",
        "create-witness",
        "run-tsa",
        "submit-anchor-polygon",
        "build-artifact",
        "notify-artifact-ready",
    ]
    events = [e.data.get("reason") for e in await flow.repository.events(job_id=job_id)]
    assert "lease_expired" in events
