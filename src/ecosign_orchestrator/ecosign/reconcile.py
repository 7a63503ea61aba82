"""Reconciliation: documents whose protection was requested in EcoSign and that have no flow
for that request here get one (an opt-in scheduled scan, for requests made while the CTA could
not reach the orchestrator).

The intent is read from the latest ``document.protected.requested`` event of the document, in
either shape EcoSign has written:

- with ``flow_type`` and ``required_evidence``: ``SIGNATURE_FLOW`` asks for workflow signatures,
  anything else for protection; the evidence is ``required_evidence``;
- the newest, with no ``flow_type`` (absent means ``DIRECT_PROTECTION``, as EcoSign's own decision
  code reads it) and the evidence given as ``protection_details.{tsa,polygon,bitcoin}_requested``
  (already resolved by the owner's plan) or the ``protection`` array.

EcoSign writes ``anchor_stage: "initial", step_index: 0`` on every protection request; only a
``SIGNATURE_FLOW`` request's stage fields make the flow a stage. Its ``witness_hash`` is passed on
only when it is a witness the document has had: EcoSign writes the **source hash** there when no
witness exists yet, and that must never become the hash a stage signs.

A request is served when the document has a flow for it: any flow that is not a signature stage
for a protection request, a flow of the same stage for a signature stage. A later signature stage
of a document with a flow for an earlier one is therefore picked up. A failed flow for the same
request is an operator's call (``jobs retry``), not the scan's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic

from ecosign_orchestrator.core.context import JobContext
from ecosign_orchestrator.core.queue import JobQueue
from ecosign_orchestrator.core.registry import Registry
from ecosign_orchestrator.core.types import JSONValue
from ecosign_orchestrator.ecosign.model import DocumentJob
from ecosign_orchestrator.ecosign.state import DocumentState
from ecosign_orchestrator.ecosign.state_source import RestStateSource
from ecosign_orchestrator.ecosign.submission import document_prefix, flow_request

#: The job kind of one scan.
RECONCILE_KIND = "ecosign.reconcile"
REQUEST_EVENT = "document.protected.requested"
EVIDENCE = ("tsa", "polygon", "bitcoin")
#: Flows of one document looked at to decide whether a request is served.
FLOWS_PER_DOCUMENT = 200


def _evidence(payload: Mapping[str, Any]) -> list[str]:
    """The evidence a request asks for, from whichever field its shape carries."""
    required = payload.get("required_evidence")
    if isinstance(required, list):
        return [name for name in EVIDENCE if name in required]
    details = payload.get("protection_details")
    if isinstance(details, Mapping):
        return [name for name in EVIDENCE if details.get(f"{name}_requested") is True]
    protection = payload.get("protection")
    if isinstance(protection, list):
        return [name for name in EVIDENCE if name in protection]
    return []


def intent_from_request(row: Mapping[str, Any]) -> DocumentJob | None:
    """The intent the latest protection request of a ``document_entities`` row states (None:
    no request, or none usable)."""
    events = row.get("events")
    events = events if isinstance(events, list) else []
    requests = [e for e in events if isinstance(e, Mapping) and e.get("kind") == REQUEST_EVENT]
    if not requests:
        return None
    payload = requests[-1].get("payload")
    payload = payload if isinstance(payload, Mapping) else {}
    signature = payload.get("flow_type") == "SIGNATURE_FLOW"
    metadata: dict[str, Any] = {"source": "orchestrator.reconcile"}
    if signature:
        metadata.update({k: payload[k] for k in ("anchor_stage", "step_index") if k in payload})
        witness = payload.get("witness_hash")
        state = DocumentState.from_row({**row, "events": []})
        if isinstance(witness, str) and state.has_witness(witness):
            metadata["witness_hash"] = witness
    body: dict[str, Any] = {
        "document_entity_id": str(row.get("id", "")),
        "actions": {"sign_workflow": True} if signature else {"protect": True},
        "forensic": {name: True for name in _evidence(payload)},
        "metadata": metadata,
    }
    try:
        return DocumentJob.model_validate(body)
    except (pydantic.ValidationError, ValueError):
        return None


def _served(intent: DocumentJob, payloads: list[Any]) -> bool:
    """Whether one of a document's flows (their payloads) serves the request ``intent`` states:
    the same signature stage, or for a protection request any flow that is not a stage."""
    for payload in payloads:
        try:
            flow = DocumentJob.model_validate(payload)
        except pydantic.ValidationError:
            continue
        if flow.stage == intent.stage:
            return True
    return False


async def reconcile(
    source: RestStateSource, queue: JobQueue, *, page: int = 100, max_documents: int = 10_000
) -> dict[str, int]:
    """One scan: how many documents it read, gave a flow, found with one, could not read."""
    report = {"scanned": 0, "created": 0, "had_flow": 0, "unusable": 0}
    after = ""
    while report["scanned"] < max_documents:
        rows = await source.list_requested(after, page)
        for row in rows:
            report["scanned"] += 1
            after = str(row.get("id", after))
            intent = intent_from_request(row)
            if intent is None:
                report["unusable"] += 1
                continue
            flows = await queue.repository.list_jobs(
                dedupe_prefix=document_prefix(after), limit=FLOWS_PER_DOCUMENT
            )
            if _served(intent, [job.payload for job in flows]):
                report["had_flow"] += 1
                continue
            # A flow submitted meanwhile (a CTA, or an overlapping scan) is returned, not doubled.
            created = (await queue.submit(flow_request(intent))).created
            report["created" if created else "had_flow"] += 1
        if len(rows) < page:
            break
    return report


def reconcile_processor(source: RestStateSource, registry: Registry) -> Any:
    """The processor of :data:`RECONCILE_KIND` jobs (a schedule submits them)."""

    async def run(ctx: JobContext) -> JSONValue:
        report = await reconcile(source, JobQueue(ctx.repository, registry))
        ctx.log.info("reconciliation: %s", report, extra={"action": "reconciled", **report})
        return dict(report)

    return run
