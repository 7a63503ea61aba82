"""Document flows end to end, over real HTTP to the sandbox (issue acceptance 1-3, 5)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ecosign_orchestrator.core import JobStatus
from ecosign_orchestrator.core.job import Job, StepStatus
from ecosign_orchestrator.ecosign import Step, required_steps
from ecosign_orchestrator.ecosign.model import DocumentJob
from ecosign_orchestrator.ecosign.steps import CANONICAL_ORDER, DEFAULT_FUNCTIONS
from tests.support.flows import FlowHarness, harness
from tests.support.waiting import wait_job

INTENTS: list[tuple[dict[str, bool], dict[str, bool], dict[str, Any]]] = [
    ({"protect": True}, {}, {}),
    ({"protect": True}, {"tsa": True}, {}),
    ({"protect": True}, {"tsa": True, "polygon": True, "bitcoin": True}, {}),
    ({"protect": True}, {"bitcoin": True}, {}),  # TSA implied by the anchor
    ({"nda": True}, {"polygon": True}, {}),
    ({"sign_owner": True}, {"tsa": True}, {}),
    ({"sign_workflow": True}, {"tsa": True, "bitcoin": True}, {}),
    ({"protect": True, "nda": True}, {}, {"custody_mode": "hash_only"}),
    ({"sign_owner": True, "sign_workflow": True}, {"polygon": True}, {"custody_mode": "hash_only"}),
]


def expected_functions(
    actions: dict[str, bool], forensic: dict[str, bool], metadata: dict[str, Any]
) -> list[str]:
    intent = DocumentJob.model_validate(
        {
            "document_entity_id": "00000000-0000-4000-8000-000000000001",
            "actions": actions,
            "forensic": forensic,
            "metadata": metadata,
        }
    )
    needed = required_steps(intent)
    return [DEFAULT_FUNCTIONS[s] for s in CANONICAL_ORDER if s in needed]


@pytest.mark.parametrize(("actions", "forensic", "metadata"), INTENTS)
async def test_each_intent_completes_calling_exactly_the_required_functions_in_order(
    flow: FlowHarness, actions: dict[str, bool], forensic: dict[str, bool], metadata: dict[str, Any]
) -> None:
    doc = await flow.admin.create_document()
    job_id = await flow.submit(doc, actions, forensic, metadata=metadata or None)
    [job] = await flow.run_to_end([job_id])
    assert job.status is JobStatus.COMPLETED, job.last_error
    ledger = await flow.admin.ledger(doc)
    expected = expected_functions(actions, forensic, metadata)
    assert ledger["effect_order"] == expected
    assert [c["function"] for c in ledger["calls"]] == expected  # nothing skipped was called
    assert all(n == 1 for n in ledger["effects_by_key"].values())
    assert set(ledger["effects_by_key"]) == {
        f"{job_id}:{s.value}" for s in CANONICAL_ORDER if DEFAULT_FUNCTIONS[s] in expected
    }
    steps = {s.name: s for s in job.steps}
    assert [s.name for s in job.steps] == [s.value for s in CANONICAL_ORDER]
    for step in CANONICAL_ORDER:
        status = steps[step.value].status
        if DEFAULT_FUNCTIONS[step] in expected:
            assert status is StepStatus.SUCCEEDED, (step, steps[step.value])
            assert steps[step.value].started_at and steps[step.value].finished_at
        else:
            assert status is StepStatus.SKIPPED
    assert isinstance(job.result, dict)
    implied = (
        "anchored"
        if (forensic.get("polygon") or forensic.get("bitcoin"))
        else (
            "signed" if actions.get("sign_owner") or actions.get("sign_workflow") else "protected"
        )
    )
    assert job.result["lifecycle_status"] == implied


async def test_a_flow_reads_the_state_once_before_each_call_and_not_after_the_last(
    flow: FlowHarness,
) -> None:
    """Each read verifies the call before it and plans the next one; after notify (which the
    state cannot show) the read before it already verified everything: no read follows."""
    doc = await flow.admin.create_document()
    job_id = await flow.submit(doc, {"protect": True}, {"tsa": True})
    [job] = await flow.run_to_end([job_id])
    assert job.status is JobStatus.COMPLETED, job.last_error
    ledger = await flow.admin.ledger(doc)
    functions = [c["function"] for c in ledger["calls"]]
    assert functions[-1] == "notify-artifact-ready" and len(functions) == 5
    assert ledger["rest_requests"] == {"GET": 5}


async def test_steps_already_satisfied_by_state_are_skipped_without_a_call(
    flow: FlowHarness,
) -> None:
    witness = "ab" * 32
    doc = await flow.admin.create_document(
        source_storage_path="owner/doc/encrypted_source",
        witness_current_hash=witness,
        witness_hash=witness,
        witness_current_storage_path="owner/doc/witness.pdf",
        events=[
            {
                "kind": "document.protected.requested",
                "at": "2026-01-01T00:00:00+00:00",
                "payload": {},
            },
            {
                "kind": "tsa.confirmed",
                "at": "2026-01-01T00:00:01+00:00",
                "witness_hash": witness,
                "tsa": {"token_b64": "AAAA"},
            },
        ],
    )
    job_id = await flow.submit(doc, {"protect": True}, {"tsa": True, "polygon": True})
    [job] = await flow.run_to_end([job_id])
    assert job.status is JobStatus.COMPLETED
    calls = [c["function"] for c in (await flow.admin.ledger(doc))["calls"]]
    assert calls == ["submit-anchor-polygon", "build-artifact", "notify-artifact-ready"]
    steps = {s.name: s for s in job.steps}
    for name in ("encrypt_source", "create_witness", "append_tsa"):
        assert steps[name].status is StepStatus.SKIPPED and steps[name].attempts == 0
        assert "already satisfied" in steps[name].message


async def test_a_repeat_submission_returns_the_same_flow(flow: FlowHarness) -> None:
    doc = await flow.admin.create_document()
    first = await flow.submit(doc, {"protect": True, "nda": False}, {"tsa": True})
    second = await flow.submit(doc.upper(), {"protect": True}, {"tsa": True, "bitcoin": False})
    assert first == second
    [job] = await flow.run_to_end([first])
    assert job.status is JobStatus.COMPLETED
    assert await flow.submit(doc, {"protect": True}, {"tsa": True}) == first  # completed: same flow
    assert await flow.submit(doc, {"protect": True}, {}) != first  # another intent: another flow


async def test_thirty_percent_transient_faults_still_complete_every_flow(
    sandbox_url: str, tmp_path: Any
) -> None:
    # Budgets of 12 attempts per step: with 30 % faults, 12 failures in a row (p = 5e-7) cannot
    # happen in practice, so the test measures resilience, not luck. The design's own budgets (5 to
    # 10) are exercised by test_transient_failures_use_the_step_budget_then_fail.
    from tests.support.flows import harness

    roomy = {step: {"max_attempts": 12} for step in DEFAULT_FUNCTIONS}
    async with harness(sandbox_url, tmp_path, step_policies=roomy) as flow:
        await _thirty_percent(flow)


async def _thirty_percent(flow: FlowHarness) -> None:
    faults = {
        name: {
            "rate": 0.3,
            "statuses": [500, 503, 429, 204],
            "retry_after": 0.01 if i % 2 else None,
        }
        for i, name in enumerate(DEFAULT_FUNCTIONS.values())
    }
    await flow.admin.set_faults(faults)
    intents = list(itertools.islice(itertools.cycle(INTENTS), 12))
    docs = [await flow.admin.create_document() for _ in intents]
    ids = [
        await flow.submit(d, a, f, metadata=m or None)
        for d, (a, f, m) in zip(docs, intents, strict=True)
    ]
    jobs = await flow.run_to_end(ids, timeout=90)
    assert [j.status for j in jobs] == [JobStatus.COMPLETED] * len(jobs), [
        j.last_error for j in jobs
    ]
    ledger = await flow.admin.ledger()
    assert any(c["status"] >= 400 or c["status"] == 204 for c in ledger["calls"]), (
        "faults were injected"
    )
    assert all(n == 1 for n in ledger["effects_by_key"].values()), "an effect was applied twice"
    retried = [j for j in jobs if j.attempts > 1]
    assert retried, "some flows retried"


async def test_fatal_400_on_build_artifact_fails_the_flow_at_once(flow: FlowHarness) -> None:
    doc = await flow.admin.create_document()
    await flow.admin.set_faults(
        {
            "build-artifact": {
                "rate": 1.0,
                "statuses": [400],
                "body": {"error": "missing_witness_pdf"},
            }
        }
    )
    job_id = await flow.submit(doc, {"protect": True}, {"tsa": True})
    [job] = await flow.run_to_end([job_id])
    assert job.status is JobStatus.FAILED and job.attempts == 1
    assert job.last_error is not None and not job.last_error.transient
    details = job.last_error.details
    assert (details["function"], details["status"], details["message"]) == (
        "build-artifact",
        400,
        "missing_witness_pdf",
    )
    assert "build_artifact" in job.last_error.message
    calls = [c["function"] for c in (await flow.admin.ledger(doc))["calls"]]
    assert calls.count("build-artifact") == 1 and "notify-artifact-ready" not in calls
    step = job.step("build_artifact")
    assert step is not None and step.status is StepStatus.FAILED and step.error is not None


@pytest.mark.parametrize("circuit_failures", [10, 3], ids=["default-breaker", "breaker-at-3"])
async def test_transient_failures_use_the_step_budget_then_fail(
    sandbox_url: str, tmp_path: Path, circuit_failures: int
) -> None:
    # The breaker is on: with its default threshold (10 failures) and with one lower than the
    # step's budget, where the circuit opens on this flow's own failures and used to hand every
    # later attempt back (a budget that never ended). Every call sent counts.
    async with harness(sandbox_url, tmp_path, circuit_failures=circuit_failures) as flow:
        doc = await flow.admin.create_document()
        alone = {"rate": 1.0, "statuses": [503], "documents": [doc]}  # 503 for this flow alone
        await flow.admin.set_faults({"notify-artifact-ready": alone})
        job_id = await flow.submit(doc, {"protect": True})
        [job] = await flow.run_to_end([job_id])
        calls = [c["function"] for c in (await flow.admin.ledger(doc))["calls"]]
        events = await flow.repository.events(job_id=job_id)
    assert job.status is JobStatus.FAILED
    step = job.step(Step.NOTIFY_ARTIFACT_READY.value)
    assert step is not None and step.attempts == 10  # design §3: notify has 10 attempts
    assert job.last_error is not None and "attempts exhausted: 10/10" in job.last_error.message
    assert calls.count("notify-artifact-ready") == 10
    retrying = [e for e in events if e.type.value == "step_retrying"]
    assert len(retrying) == 9  # one event per failed attempt that is retried


async def test_an_outage_opens_the_circuit_and_flows_wait_instead_of_failing(
    sandbox_url: str, tmp_path: Path
) -> None:
    async with harness(
        sandbox_url, tmp_path, circuit_failures=3, circuit_cooldown_seconds=100
    ) as flow:  # cool-down 100 s x backoff scale 0.002 = 0.2 s
        docs = [await flow.admin.create_document() for _ in range(3)]
        await flow.admin.set_faults({"build-artifact": {"rate": 1.0, "statuses": [503]}})
        ids = [await flow.submit(doc, {"protect": True}) for doc in docs]
        async with flow.worker():
            await wait_job(
                flow.repository,
                ids[0],
                lambda j: j.waiting is not None and "circuit of build-artifact" in j.waiting.reason,
            )
            held = await flow.repository.get(ids[0])
            assert held.status is not JobStatus.FAILED
            await flow.admin.set_faults({"build-artifact": None})  # the function comes back
            ends = [await wait_job(flow.repository, i, lambda j: j.status.is_terminal) for i in ids]
        assert [j.status for j in ends] == [JobStatus.COMPLETED] * 3
        build = [j.step(Step.BUILD_ARTIFACT.value) for j in ends]
        assert all(s is not None and s.status is StepStatus.SUCCEEDED for s in build)
        assert len(await flow.repository.circuits()) == 0, "the probe's success closed it"
        failures = [
            c for c in (await flow.admin.ledger())["calls"] if c["function"] == "build-artifact"
        ]
        assert sum(c["status"] == 503 for c in failures) < 3 * 5, "calls were held, not spent"


def _step_message(job: Job, name: str) -> str:
    step = job.step(name)
    return "" if step is None else step.message


async def test_a_function_that_lies_about_success_spends_the_steps_budget_not_the_jobs(
    flow: FlowHarness,
) -> None:
    doc = await flow.admin.create_document()
    lie = {"rate": 1.0, "statuses": [200], "body": {"success": True}, "documents": [doc]}
    await flow.admin.set_faults({"build-artifact": lie})
    job_id = await flow.submit(doc, {"protect": True}, {})
    [job] = await flow.run_to_end([job_id], timeout=60)
    assert job.status is JobStatus.FAILED
    assert job.last_error is not None and "attempts exhausted: 5/5" in job.last_error.message
    assert "state does not show it" in job.last_error.message
    calls = [c["function"] for c in (await flow.admin.ledger(doc))["calls"]]
    assert calls.count("build-artifact") == 5  # build_artifact's budget, not the job's 54
    assert job.attempts == 5


async def test_unknown_document_fails_the_flow_at_once(flow: FlowHarness) -> None:
    job_id = await flow.submit("7d0c1b36-3a57-4c2a-9a57-2f9a4f1f0000", {"protect": True})
    [job] = await flow.run_to_end([job_id])
    assert job.status is JobStatus.FAILED and job.attempts == 1
    assert job.last_error is not None
    assert "7d0c1b36-3a57-4c2a-9a57-2f9a4f1f0000 not found" in job.last_error.message
    assert (await flow.admin.ledger())["calls"] == []


async def test_bitcoin_confirmation_after_several_polls_costs_no_attempts(
    flow: FlowHarness,
) -> None:
    await flow.admin.set_timing(bitcoin=2.5)  # schedule 0.9, 1.8, 3.6 s...: several polls
    doc = await flow.admin.create_document()
    job_id = await flow.submit(doc, {"protect": True}, {"bitcoin": True})
    [job] = await flow.run_to_end([job_id])
    assert job.status is JobStatus.COMPLETED and job.attempts == 1
    step = job.step("anchor_bitcoin")
    assert step is not None and step.status is StepStatus.SUCCEEDED and step.attempts == 1
    assert int(step.data["polls"]) >= 2  # type: ignore[call-overload]
    events = await flow.repository.events(job_id=job_id)
    types = [e.type.value for e in events]
    assert "job_retrying" not in types
    # one wait, checked several times: the log says so once, not at every check
    assert types.count("job_waiting") == 1
    waiting = [e for e in events if e.type.value == "step_waiting"]
    assert [e.data["step"] for e in waiting] == ["anchor_bitcoin"]
    ledger = (await flow.admin.ledger(doc))["calls"]
    assert [c["function"] for c in ledger].count("submit-anchor-bitcoin") == 1
    # the artifact did not wait for bitcoin: it was built before the confirmation came
    built = next(c["at"] for c in ledger if c["function"] == "build-artifact")
    events = (await flow.admin.document(doc))["events"]
    confirmed = next(e["at"] for e in events if e["kind"] == "anchor.confirmed")
    assert datetime.fromisoformat(built) < datetime.fromisoformat(confirmed)


async def test_each_network_is_polled_on_its_own_schedule(sandbox_url: str, tmp_path: Any) -> None:
    from tests.support.flows import harness

    schedules = {
        "polygon": {"schedule_seconds": [0.1], "deadline_seconds": 30},
        "bitcoin": {"schedule_seconds": [0.5], "deadline_seconds": 30},
    }
    async with harness(sandbox_url, tmp_path, confirmation_scale=1.0, confirmations=schedules) as h:
        await h.admin.set_timing(polygon=1.0, bitcoin=1.5)
        doc = await h.admin.create_document()
        job_id = await h.submit(doc, {"protect": True}, {"polygon": True, "bitcoin": True})
        [job] = await h.run_to_end([job_id])
    assert job.status is JobStatus.COMPLETED
    polls = {s.name: s.data["polls"] for s in job.steps if s.name.startswith("anchor_")}
    # Polygon confirms after ~1 s polled every 0.1 s; Bitcoin after ~1.5 s polled every 0.5 s.
    # Had Bitcoin been polled on Polygon's clock it would count about as many polls.
    assert polls["anchor_bitcoin"] <= 5, polls
    assert polls["anchor_polygon"] >= 2 * polls["anchor_bitcoin"], polls


async def test_a_confirmation_that_never_arrives_fails_at_the_deadline(flow: FlowHarness) -> None:
    await flow.admin.set_timing(polygon=None)  # never confirms; scaled deadline 3.6 s
    doc = await flow.admin.create_document()
    job_id = await flow.submit(doc, {"protect": True}, {"polygon": True})
    [job] = await flow.run_to_end([job_id], timeout=30)
    assert job.status is JobStatus.FAILED and job.attempts == 1
    assert (
        job.last_error is not None
        and "no polygon confirmation within 3.6s" in job.last_error.message
    )
    assert job.finished_at is not None and job.started_at is not None
    assert (job.finished_at - job.started_at).total_seconds() >= 3.6
    calls = [c["function"] for c in (await flow.admin.ledger(doc))["calls"]]
    assert "build-artifact" in calls  # built while waiting: the artifact never waits for anchors


async def test_an_anchor_the_confirmer_gave_up_on_is_submitted_again_by_retry_or_resubmission(
    flow: FlowHarness,
) -> None:
    await flow.admin.set_timing(polygon=None)  # pending until the confirmer gives up
    docs = [await flow.admin.create_document() for _ in range(2)]
    ids = [await flow.submit(doc, {"protect": True}, {"polygon": True}) for doc in docs]

    def waiting(job: Job) -> bool:
        step = job.step("anchor_polygon")
        return step is not None and step.status is StepStatus.WAITING

    async with flow.worker():
        for job_id in ids:
            await wait_job(flow.repository, job_id, waiting, timeout=20)
        for doc in docs:
            witness = (await flow.admin.document(doc))["witness_current_hash"]
            gave_up = await flow.admin.client.post(
                "/admin/anchors/timeout", json={"witness_hash": witness, "network": "polygon"}
            )
            assert gave_up.json() == {"timed_out": True}
        failed = [await wait_job(flow.repository, i, _ended, timeout=20) for i in ids]
        assert [j.status for j in failed] == [JobStatus.FAILED] * 2
        assert all(
            "confirmer gave up" in (j.last_error.message if j.last_error else "") for j in failed
        )

        await flow.admin.set_timing(polygon=0.2)
        await flow.repository.retry(ids[0])  # 1. a retry of the failed flow
        again = await flow.submit(docs[1], {"protect": True}, {"polygon": True})  # 2. anew
        assert again != ids[1]
        done = [await wait_job(flow.repository, i, _ended, timeout=20) for i in (ids[0], again)]
    assert [j.status for j in done] == [JobStatus.COMPLETED] * 2
    for doc in docs:
        calls = [c["function"] for c in (await flow.admin.ledger(doc))["calls"]]
        assert calls.count("submit-anchor-polygon") == 2  # submitted again, once
        kinds = [e["kind"] for e in (await flow.admin.document(doc))["events"]]
        assert "anchor.timeout" in kinds and "anchor.confirmed" in kinds


def _ended(job: Job) -> bool:
    return job.status.is_terminal


async def test_a_three_stage_signature_workflow_runs_a_flow_per_stage_and_one_artifact(
    flow: FlowHarness,
) -> None:
    witnesses = [hashlib.sha256(f"witness v{i}".encode()).hexdigest() for i in (1, 2, 3)]
    doc = await flow.admin.create_document()
    stage_flows = []
    for index, (stage, witness) in enumerate(
        zip(("initial", "intermediate", "final"), witnesses, strict=True)
    ):
        # The signer's client makes this witness version current (EcoSign's ensureWitnessCurrent).
        await flow.admin.set_witness(doc, witness, f"witness/{doc}/v{index + 1}.pdf")
        metadata = {"anchor_stage": stage, "step_index": index, "witness_hash": witness}
        job_id = await flow.submit(
            doc, {"sign_workflow": True}, {"tsa": True, "polygon": True}, metadata=metadata
        )
        [job] = await flow.run_to_end([job_id])
        assert job.status is JobStatus.COMPLETED, job.last_error
        assert job_id not in stage_flows  # a later stage is never the earlier stage's flow
        stage_flows.append(job_id)
        repeat = await flow.submit(
            doc, {"sign_workflow": True}, {"tsa": True, "polygon": True}, metadata=metadata
        )
        assert repeat == job_id  # a repeat of a stage returns that stage's flow
    events = (await flow.admin.document(doc))["events"]
    tsa = [e["witness_hash"] for e in events if e["kind"] == "tsa.confirmed"]
    anchored = [e["anchor"]["witness_hash"] for e in events if e["kind"] == "anchor.confirmed"]
    assert tsa == witnesses and anchored == witnesses  # TSA and anchor per witness version
    assert [e["kind"] for e in events].count("artifact.finalized") == 1
    calls = [c["function"] for c in (await flow.admin.ledger(doc))["calls"]]
    assert calls.count("build-artifact") == 1 and calls.index("build-artifact") > calls.index(
        "submit-anchor-polygon"
    )
    first = await flow.repository.get(stage_flows[0])
    assert (
        isinstance(first.result, dict) and first.result["lifecycle_status"] == "in_signature_flow"
    )
    last = await flow.repository.get(stage_flows[-1])
    assert isinstance(last.result, dict) and last.result["lifecycle_status"] == "anchored"


async def test_lifecycle_write_back_is_opt_in(sandbox_url: str, tmp_path: Any) -> None:
    from tests.support.flows import harness

    async with harness(sandbox_url, tmp_path, lifecycle_write_back=True) as h:
        doc = await h.admin.create_document()
        job_id = await h.submit(doc, {"sign_owner": True}, {"tsa": True})
        [job] = await h.run_to_end([job_id])
        assert job.status is JobStatus.COMPLETED
        assert isinstance(job.result, dict) and job.result["lifecycle_written"] is True
        assert (await h.admin.document(doc))["lifecycle_status"] == "signed"


async def test_write_back_never_downgrades_nor_touches_a_revoked_document(
    sandbox_url: str, tmp_path: Any
) -> None:
    from tests.support.flows import harness

    async with harness(sandbox_url, tmp_path, lifecycle_write_back=True) as h:
        # Documents whose witness exists: creating one would itself reset the status (EcoSign's
        # ensureWitnessCurrent), and here only the write-back rule is under test.
        witness = {
            "witness_current_hash": "cd" * 32,
            "witness_hash": "cd" * 32,
            "witness_current_storage_path": "owner/doc/witness.pdf",
        }
        anchored = await h.admin.create_document(lifecycle_status="anchored", **witness)
        revoked = await h.admin.create_document(lifecycle_status="revoked", **witness)
        fresh = await h.admin.create_document(lifecycle_status="witness_ready", **witness)
        ids = [await h.submit(doc, {"protect": True}, {}) for doc in (anchored, revoked, fresh)]
        jobs = await h.run_to_end(ids)
        assert [j.status for j in jobs] == [JobStatus.COMPLETED] * 3
        assert [isinstance(j.result, dict) and j.result["lifecycle_written"] for j in jobs] == [
            False,
            False,
            True,
        ]
        assert (await h.admin.document(anchored))["lifecycle_status"] == "anchored"
        assert (await h.admin.document(revoked))["lifecycle_status"] == "revoked"
        assert (await h.admin.document(fresh))["lifecycle_status"] == "protected"


async def test_without_write_back_the_lifecycle_status_is_left_alone(flow: FlowHarness) -> None:
    doc = await flow.admin.create_document()
    [job] = await flow.run_to_end([await flow.submit(doc, {"protect": True}, {"bitcoin": True})])
    assert isinstance(job.result, dict) and job.result["lifecycle_status"] == "anchored"
    assert job.result["lifecycle_written"] is False
    assert (await flow.admin.document(doc))["lifecycle_status"] == "witness_ready"


async def test_a_429_with_retry_after_holds_every_flows_calls_to_that_function(
    flow: FlowHarness,
) -> None:
    docs = [await flow.admin.create_document() for _ in range(6)]
    busy = {"rate": 1.0, "statuses": [429], "retry_after": 0.5}
    await flow.admin.set_faults({"run-tsa": busy})
    ids = [await flow.submit(doc, {"protect": True}, {"tsa": True}) for doc in docs]

    async def answered_429() -> int:
        calls = (await flow.admin.ledger())["calls"]
        return sum(c["function"] == "run-tsa" and c["status"] == 429 for c in calls)

    async with flow.worker():
        async with asyncio.timeout(20):
            while await answered_429() < 3:  # three held windows of 0.5 s: the outage lasts
                await asyncio.sleep(0.05)
        await flow.admin.set_faults({"run-tsa": None})
        ends = [await wait_job(flow.repository, i, lambda j: j.status.is_terminal) for i in ids]
    assert [j.status for j in ends] == [JobStatus.COMPLETED] * 6
    refused = await answered_429()
    # Without the circuit each flow would spend its own attempts (6 flows x 8): the fleet held
    # its calls instead, one probe per Retry-After window.
    assert refused < 6 * 3, refused


async def test_a_function_rate_holds_across_flows(sandbox_url: str, tmp_path: Path) -> None:
    from datetime import datetime

    rates = {"run-tsa": {"per": 3, "seconds": 0.5}}
    async with harness(sandbox_url, tmp_path, function_rates=rates) as flow:
        docs = [await flow.admin.create_document() for _ in range(9)]
        ids = [await flow.submit(doc, {"protect": True}, {"tsa": True}) for doc in docs]
        ends = await flow.run_to_end(ids, timeout=60)
        calls = [c for c in (await flow.admin.ledger())["calls"] if c["function"] == "run-tsa"]
    assert [j.status for j in ends] == [JobStatus.COMPLETED] * 9
    times = sorted(datetime.fromisoformat(c["at"]).timestamp() for c in calls)
    assert len(times) == 9
    # any 4 consecutive calls span more than the window (3 per 0.5 s), allowing for the
    # time between the rate check and the sandbox's record of the answer
    assert all(b - a > 0.45 for a, b in zip(times, times[3:], strict=False)), times


async def test_reconciliation_gives_a_flow_to_each_requested_document_without_one(
    sandbox_url: str, tmp_path: Path
) -> None:
    import uuid

    from ecosign_orchestrator import ecosign
    from ecosign_orchestrator.ecosign import RECONCILE_KIND, document_prefix
    from tests.support.procs import eventually

    def requested(evidence: list[str]) -> list[dict[str, Any]]:
        payload = {"flow_type": "DIRECT_PROTECTION", "required_evidence": evidence}
        event = {"id": str(uuid.uuid4()), "kind": "document.protected.requested", "v": 1}
        return [{**event, "at": "2026-11-27T00:00:00Z", "payload": payload}]

    async with harness(sandbox_url, tmp_path, reconcile_every_seconds=0.2) as flow:
        served = await flow.admin.create_document(events=requested(["tsa"]))
        missed = [await flow.admin.create_document(events=requested(["tsa"])) for _ in range(2)]
        unrequested = await flow.admin.create_document(protect_requested=False)
        await flow.submit(served, {"protect": True}, {"tsa": True})

        async def flows(doc: str) -> list[Job]:
            return await flow.repository.list_jobs(dedupe_prefix=document_prefix(doc))

        async def all_done() -> bool:
            found = [await flows(d) for d in [served, *missed]]
            return all(len(f) == 1 and f[0].status is JobStatus.COMPLETED for f in found)

        async with flow.worker(kinds=[ecosign.KIND, RECONCILE_KIND]):
            await eventually(all_done, timeout=30, what="every requested document's flow")
        assert await flows(unrequested) == [], "no request, no flow"
        [given] = await flows(missed[0])
        assert given.payload["forensic"] == {"tsa": True, "polygon": False, "bitcoin": False}
        assert given.payload["metadata"]["source"] == "orchestrator.reconcile"
        scans = await flow.repository.list_jobs(kinds=[RECONCILE_KIND], limit=100)
        results = [s.result for s in scans if s.status is JobStatus.COMPLETED]
        assert results, "a scan completed"
        # Scans may overlap (a tick every 0.2 s): each accounts for all three documents, and
        # across them each missed document got its flow exactly once.
        for result in results:
            assert result["scanned"] == 3 and result["unusable"] == 0, result
            assert result["created"] + result["had_flow"] == 3, result
        assert sum(r["created"] for r in results) == 2, results
