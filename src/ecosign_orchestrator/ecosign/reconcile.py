"""Reconciliation: documents whose protection was requested in EcoSign and that have no flow
here get one (an opt-in scheduled scan, for requests made while the CTA could not reach the
orchestrator).

The intent is read from the latest ``document.protected.requested`` event of the document: a
``SIGNATURE_FLOW`` asks for workflow signatures, anything else for protection; its
``required_evidence`` is the forensic evidence; its stage and step index go to the metadata.
A document with any flow (active, completed, failed or cancelled) is left alone: a failed flow
is an operator's call (``jobs retry``), not the scan's.
"""

from __future__ import annotations

from typing import Any

import pydantic

from ecosign_orchestrator.core.context import JobContext
from ecosign_orchestrator.core.queue import JobQueue
from ecosign_orchestrator.core.registry import Registry
from ecosign_orchestrator.core.types import JSONValue
from ecosign_orchestrator.ecosign.model import DocumentJob
from ecosign_orchestrator.ecosign.state_source import RestStateSource
from ecosign_orchestrator.ecosign.submission import document_prefix, flow_request

#: The job kind of one scan.
RECONCILE_KIND = "ecosign.reconcile"
REQUEST_EVENT = "document.protected.requested"
EVIDENCE = ("tsa", "polygon", "bitcoin")


def intent_from_request(document_id: str, events: list[Any]) -> DocumentJob | None:
    """The intent the latest protection request of a document states (None: none usable)."""
    requests = [e for e in events if isinstance(e, dict) and e.get("kind") == REQUEST_EVENT]
    if not requests:
        return None
    payload = requests[-1].get("payload")
    payload = payload if isinstance(payload, dict) else {}
    evidence = payload.get("required_evidence")
    evidence = evidence if isinstance(evidence, list) else []
    signature = payload.get("flow_type") == "SIGNATURE_FLOW"
    metadata = {k: payload[k] for k in ("anchor_stage", "step_index") if k in payload}
    body: dict[str, Any] = {
        "document_entity_id": document_id,
        "actions": {"sign_workflow": True} if signature else {"protect": True},
        "forensic": {name: True for name in EVIDENCE if name in evidence},
        "metadata": {**metadata, "source": "orchestrator.reconcile"},
    }
    try:
        return DocumentJob.model_validate(body)
    except pydantic.ValidationError:
        return None


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
            prefix = document_prefix(after)
            if await queue.repository.list_jobs(dedupe_prefix=prefix, limit=1):
                report["had_flow"] += 1
                continue
            events = row.get("events")
            intent = intent_from_request(after, events if isinstance(events, list) else [])
            if intent is None:
                report["unusable"] += 1
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
