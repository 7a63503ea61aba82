"""EcoSign's real requests: the protection requests it writes, its stages, and its witness rules,
over real HTTP to a sandbox that writes and enforces them as EcoSign does (issue 19)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ecosign_orchestrator import ecosign
from ecosign_orchestrator.core import JobStatus, errors
from ecosign_orchestrator.core.job import Job
from ecosign_orchestrator.ecosign import RECONCILE_KIND, document_prefix
from tests.support.flows import FlowHarness, harness
from tests.support.procs import eventually
from tests.support.waiting import wait_job

SHAPES = ["required-evidence", "protection-details"]


async def _flows(flow: FlowHarness, doc: str) -> list[Job]:
    return await flow.repository.list_jobs(dedupe_prefix=document_prefix(doc))


async def _ended(flow: FlowHarness, doc: str, count: int) -> bool:
    found = await _flows(flow, doc)
    return len(found) == count and all(j.status.is_terminal for j in found)


async def test_the_sandboxs_default_request_is_ecosigns(flow: FlowHarness) -> None:
    doc = await flow.admin.create_document()
    row = await flow.admin.document(doc)
    [request] = [e for e in row["events"] if e["kind"] == "document.protected.requested"]
    payload = request["payload"]
    assert (payload["anchor_stage"], payload["step_index"]) == ("initial", 0)
    assert payload["flow_type"] == "DIRECT_PROTECTION"
    assert payload["required_evidence"] == ["tsa", "bitcoin"]
    assert payload["witness_hash"] == row["source_hash"]  # no witness yet: the source hash


@pytest.mark.parametrize("shape", SHAPES)
async def test_an_ecosign_direct_protection_request_builds_notifies_and_is_anchored(
    sandbox_url: str, tmp_path: Path, shape: str
) -> None:
    async with harness(
        sandbox_url, tmp_path, reconcile_every_seconds=0.2, lifecycle_write_back=True
    ) as flow:
        doc = await flow.admin.create_document(request={"shape": shape})
        payload = (await flow.admin.document(doc))["events"][0]["payload"]
        assert ("flow_type" in payload) is (shape == "required-evidence")
        async with flow.worker(kinds=[ecosign.KIND, RECONCILE_KIND]):
            await eventually(lambda: _ended(flow, doc, 1), timeout=30, what="the scan's flow")
        [job] = await _flows(flow, doc)
        row = await flow.admin.document(doc)
        calls = [c["function"] for c in (await flow.admin.ledger(doc))["calls"]]
    assert job.status is JobStatus.COMPLETED, job.last_error
    assert job.payload["forensic"] == {"tsa": True, "polygon": False, "bitcoin": True}
    assert "anchor_stage" not in job.payload["metadata"]  # a protection, not a stage
    assert {"build-artifact", "notify-artifact-ready"} <= set(calls)
    assert isinstance(job.result, dict) and job.result["lifecycle_status"] == "anchored"
    assert row["lifecycle_status"] == "anchored"  # written back
    # the request's witness_hash was the source hash: never the hash that is signed
    [tsa] = [e for e in row["events"] if e["kind"] == "tsa.confirmed"]
    assert tsa["witness_hash"] == row["witness_current_hash"] != row["source_hash"]


async def test_stage_fields_on_a_protection_change_nothing_but_reach_the_functions(
    flow: FlowHarness,
) -> None:
    doc = await flow.admin.create_document()
    stage = {"anchor_stage": "initial", "step_index": 0}
    with_stage = await flow.submit(doc, {"protect": True}, {"bitcoin": True}, metadata=stage)
    without = await flow.submit(doc, {"protect": True}, {"bitcoin": True})
    assert with_stage == without  # the same flow: stage fields are no identity here
    [job] = await flow.run_to_end([with_stage])
    assert job.status is JobStatus.COMPLETED
    assert isinstance(job.result, dict) and job.result["lifecycle_status"] == "anchored"
    events = (await flow.admin.document(doc))["events"]
    [submitted] = [e for e in events if e["kind"] == "anchor.submitted"]
    assert (submitted["anchor"]["anchor_stage"], submitted["anchor"]["step_index"]) == (
        "initial",
        0,
    )
    assert [e["kind"] for e in events].count("artifact.finalized") == 1


async def test_the_scan_gives_each_signature_stage_its_flow_and_one_artifact(
    sandbox_url: str, tmp_path: Path
) -> None:
    witnesses = [hashlib.sha256(f"signed by {n}".encode()).hexdigest() for n in ("ana", "bo")]
    async with harness(sandbox_url, tmp_path, reconcile_every_seconds=0.2) as flow:
        doc = await flow.admin.create_document(protect_requested=False)
        await flow.admin.set_witness(doc, witnesses[0], f"{doc}/v1.pdf")
        initial = {"signature_flow": True, "anchor_stage": "initial", "witness_hash": witnesses[0]}
        await flow.admin.add_request(doc, evidence=["tsa"], **initial)
        async with flow.worker(kinds=[ecosign.KIND, RECONCILE_KIND]):
            await eventually(lambda: _ended(flow, doc, 1), timeout=30, what="the initial stage")
            # the next signer signs a new witness version, and EcoSign records the final stage
            await flow.admin.set_witness(doc, witnesses[1], f"{doc}/v2.pdf")
            final = {"signature_flow": True, "anchor_stage": "final", "step_index": 1}
            await flow.admin.add_request(doc, evidence=["tsa", "polygon"], **final)
            await eventually(lambda: _ended(flow, doc, 2), timeout=30, what="the final stage")
        flows = sorted(await _flows(flow, doc), key=lambda j: j.created_at)
        row = await flow.admin.document(doc)
    assert [j.status for j in flows] == [JobStatus.COMPLETED] * 2, [j.last_error for j in flows]
    stages = [
        (j.payload["metadata"]["anchor_stage"], j.payload["metadata"].get("step_index"))
        for j in flows
    ]
    assert stages == [("initial", 0), ("final", 1)]
    results = [j.result for j in flows]
    assert [r["lifecycle_status"] for r in results if isinstance(r, dict)] == [
        "in_signature_flow",
        "anchored",
    ]
    kinds = [e["kind"] for e in row["events"]]
    assert kinds.count("artifact.finalized") == 1
    assert [e["witness_hash"] for e in row["events"] if e["kind"] == "tsa.confirmed"] == witnesses


@pytest.mark.parametrize("shape", SHAPES)
def test_both_request_shapes_read_to_the_same_intent(shape: str) -> None:
    from ecosign_orchestrator.sandbox.requests import request_event, request_payload
    from ecosign_orchestrator.sandbox.store import new_document

    row = new_document()
    payload = request_payload(row, shape=shape, evidence=["tsa", "polygon"])
    row["events"] = [request_event(payload, at=row["created_at"], source="record-protection")]
    intent = ecosign.intent_from_request(row)
    assert intent is not None
    assert intent.actions.enabled() == ["protect"]
    assert intent.forensic.enabled() == ["tsa", "polygon"]
    assert intent.stage is None and intent.declared_witness_hash is None


def test_a_signature_request_naming_the_source_hash_signs_the_current_witness() -> None:
    from ecosign_orchestrator.sandbox.requests import request_event, request_payload
    from ecosign_orchestrator.sandbox.store import new_document

    row = new_document()  # no witness: EcoSign writes the source hash as witness_hash
    payload = request_payload(row, signature_flow=True, anchor_stage="final", step_index=2)
    row["events"] = [request_event(payload, at=row["created_at"], source="x")]
    intent = ecosign.intent_from_request(row)
    assert intent is not None and intent.stage == ("final", 2)
    assert payload["witness_hash"] == row["source_hash"]
    assert intent.stage_witness_hash is None  # not carried: the source hash is no witness


async def test_a_stage_signs_only_a_witness_the_document_had(flow: FlowHarness) -> None:
    history = [hashlib.sha256(f"v{i}".encode()).hexdigest() for i in (1, 2)]
    doc = await flow.admin.create_document()
    for index, witness in enumerate(history):
        await flow.admin.set_witness(doc, witness, f"{doc}/v{index}.pdf")
    admission = flow.runtime.admission
    assert admission is not None

    def stage(witness: str) -> ecosign.DocumentJob:
        return ecosign.DocumentJob.model_validate(
            {
                "document_entity_id": doc,
                "actions": {"sign_workflow": True},
                "forensic": {"tsa": True},
                "metadata": {"anchor_stage": "initial", "witness_hash": witness},
            }
        )

    made_up = "ee" * 32
    with pytest.raises(errors.InvalidJob, match="not a witness of this document") as refused:
        await admission.check(stage(made_up))
    assert refused.value.field == "metadata.witness_hash"
    await admission.check(stage(history[0]))  # from its history: accepted
    await admission.check(stage(history[1]))  # its current witness: accepted
    # Admitted without a state read (the REST endpoint was down), the flow refuses it itself.
    job_id = (await flow.queue.submit(ecosign.flow_request(stage(made_up)))).job.id
    [job] = await flow.run_to_end([job_id])
    assert job.status is JobStatus.FAILED and job.attempts == 1
    assert job.last_error is not None
    assert job.last_error.message.startswith("metadata.witness_hash: not a witness")
    calls = (await flow.admin.ledger(doc))["calls"]
    assert calls == []  # nothing was signed


async def test_a_stage_whose_witness_was_superseded_before_its_tsa_fails_at_once(
    flow: FlowHarness,
) -> None:
    old, new = (hashlib.sha256(f"w{i}".encode()).hexdigest() for i in (1, 2))
    doc = await flow.admin.create_document()
    await flow.admin.set_witness(doc, old, f"{doc}/v1.pdf")
    await flow.admin.set_witness(doc, new, f"{doc}/v2.pdf")
    metadata = {"anchor_stage": "initial", "witness_hash": old}
    job_id = await flow.submit(doc, {"sign_workflow": True}, {"tsa": True}, metadata=metadata)
    [job] = await flow.run_to_end([job_id])
    assert job.status is JobStatus.FAILED and job.attempts == 1
    assert job.last_error is not None and "no longer the document's current witness" in (
        job.last_error.message
    )
    assert "run-tsa" not in [c["function"] for c in (await flow.admin.ledger(doc))["calls"]]


async def test_ecosign_refuses_a_tsa_for_a_hash_that_is_not_the_current_witness(
    flow: FlowHarness,
) -> None:
    """The sandbox's run-tsa applies EcoSign's trigger: a test that signs the wrong hash fails."""
    doc = await flow.admin.create_document()
    await flow.admin.set_witness(doc, "aa" * 32, f"{doc}/v1.pdf")
    answer = await flow.admin.client.post(
        "/functions/v1/run-tsa",
        json={"document_entity_id": doc, "witness_hash": "bb" * 32},
    )
    assert answer.status_code == 500
    assert "must match document witness_hash" in answer.json()["error"]
    kinds = [e["kind"] for e in (await flow.admin.document(doc))["events"]]
    assert "tsa.failed" in kinds and "tsa.confirmed" not in kinds


async def test_a_repeat_scan_does_not_double_a_served_request(
    sandbox_url: str, tmp_path: Path
) -> None:
    async with harness(sandbox_url, tmp_path, reconcile_every_seconds=0.2) as flow:
        doc = await flow.admin.create_document()
        given = await flow.submit(doc, {"protect": True}, {"tsa": True})  # the CTA reached us
        async with flow.worker(kinds=[ecosign.KIND, RECONCILE_KIND]):
            await wait_job(flow.repository, given, lambda j: j.status.is_terminal, timeout=30)

            async def scanned() -> bool:
                scans = await flow.repository.list_jobs(kinds=[RECONCILE_KIND], limit=10)
                return any(s.status is JobStatus.COMPLETED for s in scans)

            await eventually(scanned, timeout=30, what="a completed scan")
        flows = await _flows(flow, doc)
    assert [j.id for j in flows] == [given]  # its request was served by the CTA's flow
