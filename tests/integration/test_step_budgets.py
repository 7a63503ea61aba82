"""Every step budget ends; an outage pauses flows; a failed flow waits for nothing (#19 §3, §5).

The circuit breaker is on with its default threshold in every test here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ecosign_orchestrator.core import JobStatus
from ecosign_orchestrator.core.job import Job, StepRecord, StepStatus
from tests.support.flows import FlowHarness, harness
from tests.support.procs import eventually
from tests.support.waiting import wait_job


async def _refused(flow: FlowHarness, function: str) -> int:
    calls = (await flow.admin.ledger())["calls"]
    return sum(c["function"] == function and c["status"] == 503 for c in calls)


async def test_a_function_outage_for_every_flow_pauses_them_and_all_complete(
    sandbox_url: str, tmp_path: Path
) -> None:
    # Time runs at 0.1: the default cool-down (30 s) is 3 s here and the outage (20 s) 2 s.
    async with harness(sandbox_url, tmp_path, backoff_scale=0.1) as flow:
        docs = [await flow.admin.create_document() for _ in range(12)]
        await flow.admin.set_faults({"notify-artifact-ready": {"rate": 1.0, "statuses": [503]}})
        ids = [await flow.submit(doc, {"protect": True}) for doc in docs]
        async with flow.worker(concurrency=12):
            await eventually(
                lambda: _circuit_open(flow), timeout=30, what="the breaker to open (10 failures)"
            )
            await asyncio.sleep(2.0)  # the outage goes on (scenario time, not a wait for state)
            await flow.admin.set_faults({"notify-artifact-ready": None})
            ends = [await wait_job(flow.repository, i, _ended, timeout=30) for i in ids]
        refused = await _refused(flow, "notify-artifact-ready")
    assert [j.status for j in ends] == [JobStatus.COMPLETED] * 12, [j.last_error for j in ends]
    # 10 failures opened the circuit; the other calls were held, never sent, until it closed
    assert 10 <= refused <= 12, refused
    attempts = [_notify(j).attempts for j in ends]
    assert max(attempts) <= 3 and sum(attempts) == 12 + refused, attempts


async def _circuit_open(flow: FlowHarness) -> bool:
    return bool(await flow.repository.circuits())


def _ended(job: Job) -> bool:
    return job.status.is_terminal


def _notify(job: Job) -> StepRecord:
    step = job.step("notify_artifact_ready")
    assert step is not None
    return step


async def test_a_failed_flow_leaves_no_step_waiting(flow: FlowHarness) -> None:
    await flow.admin.set_timing(polygon=None, bitcoin=None)  # neither ever confirms
    doc = await flow.admin.create_document()
    job_id = await flow.submit(doc, {"protect": True}, {"polygon": True, "bitcoin": True})
    [job] = await flow.run_to_end([job_id], timeout=30)  # polygon's deadline: 3.6 s here
    assert job.status is JobStatus.FAILED
    assert job.last_error is not None and "no polygon confirmation" in job.last_error.message
    bitcoin = job.step("anchor_bitcoin")
    assert bitcoin is not None and bitcoin.status is StepStatus.PENDING
    assert bitcoin.message == "no longer waited for: the flow failed at anchor_polygon"
    assert bitcoin.data.get("next_poll_at") is None
    assert "submitted_at" in bitcoin.data  # a retry resumes waiting instead of submitting again
    waiting = [s.name for s in job.steps if s.status in (StepStatus.WAITING, StepStatus.RETRYING)]
    assert waiting == []


async def test_a_resubmitted_anchor_given_up_again_fails_at_its_own_deadline(
    flow: FlowHarness,
) -> None:
    """EcoSign keys ``anchor.timeout`` by (witness, network, stage, step): after a re-submission
    its second give-up writes nothing, so the flow's confirmation deadline ends the wait."""
    await flow.admin.set_timing(polygon=None)
    doc = await flow.admin.create_document()
    job_id = await flow.submit(doc, {"protect": True}, {"polygon": True})

    def waiting(job: Job) -> bool:
        step = job.step("anchor_polygon")
        return step is not None and step.status is StepStatus.WAITING

    async def give_up() -> bool:
        witness = (await flow.admin.document(doc))["witness_current_hash"]
        answer = await flow.admin.client.post(
            "/admin/anchors/timeout", json={"witness_hash": witness, "network": "polygon"}
        )
        return bool(answer.json()["timed_out"])

    async with flow.worker():
        await wait_job(flow.repository, job_id, waiting, timeout=20)
        assert await give_up() is True  # the first give-up: anchor.timeout in the ledger
        first = await wait_job(flow.repository, job_id, _ended, timeout=20)
        assert first.last_error is not None and "gave up" in first.last_error.message
        await flow.repository.retry(job_id)
        await wait_job(flow.repository, job_id, waiting, timeout=20)
        assert await give_up() is False  # de-duplicated: nothing new in the ledger
        final = await wait_job(flow.repository, job_id, _ended, timeout=30)
    assert final.status is JobStatus.FAILED
    assert final.last_error is not None
    message = final.last_error.message
    assert "no polygon confirmation within 3.6s of its re-submission" in message, message
    calls = [c["function"] for c in (await flow.admin.ledger(doc))["calls"]]
    assert calls.count("submit-anchor-polygon") == 2
