"""The real functions' rules in configuration, proved against a sandbox that enforces them."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import SecretStr

from ecosign_orchestrator import sandbox
from ecosign_orchestrator.core import JobStatus
from ecosign_orchestrator.core.job import Job, StepStatus
from tests.support.flows import SANDBOX_KEY, harness
from tests.support.waiting import wait_job

CRON_SECRET = "cron-secret-4f1c9a7e2b"


async def test_notify_gets_its_cron_secret_from_configuration(tmp_path: Path) -> None:
    app = sandbox.create_app(
        SANDBOX_KEY,
        cron_secret=CRON_SECRET,
        timing=sandbox.AnchorTiming(polygon=0.3, bitcoin=0.6),
    )
    with sandbox.SandboxServer(app) as server:
        headers = {"notify_artifact_ready": {"x-cron-secret": SecretStr(CRON_SECRET)}}
        async with harness(server.url, tmp_path / "with", step_headers=headers) as h:
            doc = await h.admin.create_document()
            [job] = await h.run_to_end([await h.submit(doc, {"protect": True}, {})])
            assert job.status is JobStatus.COMPLETED, job.last_error
            assert CRON_SECRET not in json.dumps(job.to_json())
        async with harness(server.url, tmp_path / "without") as h:
            doc = await h.admin.create_document()
            [job] = await h.run_to_end([await h.submit(doc, {"protect": True}, {})])
            assert job.status is JobStatus.FAILED
            assert job.last_error is not None and not job.last_error.transient
            assert "notify_artifact_ready: notify-artifact-ready -> 403" in job.last_error.message
            notify = job.step("notify_artifact_ready")
            assert notify is not None and notify.attempts == 1  # fatal at once: not retried


async def test_create_witness_as_a_state_gate_waits_for_the_witness_then_continues(
    sandbox_url: str, tmp_path: Path
) -> None:
    gate = {"create_witness": {"schedule_seconds": [0.1], "deadline_seconds": 30}}
    async with harness(sandbox_url, tmp_path, state_gates=gate, confirmation_scale=1.0) as h:
        doc = await h.admin.create_document()
        job_id = await h.submit(doc, {"protect": True}, {"tsa": True})

        def gated(job: Job) -> bool:
            step = job.step("create_witness")
            return step is not None and step.status is StepStatus.WAITING

        async with h.worker():
            waiting = await wait_job(h.repository, job_id, gated, timeout=20)
            assert (
                "done outside the orchestrator" in (waiting.step("create_witness") or _no()).message
            )
            witness = "ef" * 32
            await h.admin.set_witness(doc, witness, f"witness/{doc}/client.pdf")
            job = await wait_job(h.repository, job_id, lambda j: j.status.is_terminal, timeout=20)
        assert job.status is JobStatus.COMPLETED, job.last_error
        witnessed = job.step("create_witness")
        assert witnessed is not None and witnessed.message == "witness present"  # in its words
        calls = [c["function"] for c in (await h.admin.ledger(doc))["calls"]]
        assert "create-witness" not in calls  # a gate calls nothing
        tsa = [e for e in (await h.admin.document(doc))["events"] if e["kind"] == "tsa.confirmed"]
        assert [e["witness_hash"] for e in tsa] == [witness]


async def test_a_state_gate_fails_its_step_at_the_deadline(
    sandbox_url: str, tmp_path: Path
) -> None:
    gate = {"create_witness": {"schedule_seconds": [0.1], "deadline_seconds": 1}}
    async with harness(sandbox_url, tmp_path, state_gates=gate, confirmation_scale=1.0) as h:
        doc = await h.admin.create_document()
        [job] = await h.run_to_end([await h.submit(doc, {"protect": True}, {})])
    assert job.status is JobStatus.FAILED
    assert job.last_error is not None
    assert job.last_error.message.startswith("create_witness: the document's state did not show")
    step = job.step("create_witness")
    assert step is not None and step.status is StepStatus.FAILED


def _no() -> object:
    raise AssertionError("create_witness has no record")
