"""A plan before a flow: what a DocumentJob would do against the document's state now.

``ecosign-orchestrator plan`` and ``POST /v1/document-jobs:plan`` read the document's state once
(the same read a flow makes), run the planner on it, and look for the flow a submission would
return instead of creating one (same document and intent, active or completed). They write
nothing: not a job, not an event, not a call to an Edge Function.
"""

from __future__ import annotations

import dataclasses

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import Job
from ecosign_orchestrator.core.repository.protocol import JobRepository
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.core.types import JSONDict
from ecosign_orchestrator.ecosign.admission import NOT_FOUND
from ecosign_orchestrator.ecosign.config import EcosignConfig
from ecosign_orchestrator.ecosign.http import CallError
from ecosign_orchestrator.ecosign.model import DocumentJob
from ecosign_orchestrator.ecosign.planner import Disposition, plan
from ecosign_orchestrator.ecosign.processor import WITNESS_UNKNOWN
from ecosign_orchestrator.ecosign.state_source import DocumentNotFound, DocumentStateSource
from ecosign_orchestrator.ecosign.steps import Step
from ecosign_orchestrator.ecosign.submission import check_step_inputs

#: A submission returns the newest flow of the same intent in one of these statuses.
JOINABLE = (
    JobStatus.QUEUED,
    JobStatus.RUNNING,
    JobStatus.WAITING,
    JobStatus.RETRYING,
    JobStatus.COMPLETED,
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PreviewStep:
    """One canonical step: whether the flow would run it, and why."""

    step: str
    #: The Edge Function it calls (as configured).
    function: str
    #: ``required`` (the flow would do it), ``skipped`` (not requested, or already done) or
    #: ``awaiting`` (submitted before; the flow would wait for its confirmation).
    action: str
    reason: str

    def to_json(self) -> JSONDict:
        """JSON form for the API and the CLI."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Preview:
    """What submitting an intent now would do."""

    document_entity_id: str
    intent_key: str
    #: The witness the flow's steps would act on (None: the document has none yet).
    witness_hash: str | None
    steps: tuple[PreviewStep, ...]
    #: The flow a submission would return instead of creating one, if any.
    joins: Job | None

    def to_json(self) -> JSONDict:
        """JSON form for the API and the CLI."""
        joins: JSONDict | None = None
        if self.joins is not None:
            joins = {"id": self.joins.id, "status": self.joins.status.value}
        return {
            "document_entity_id": self.document_entity_id,
            "intent_key": self.intent_key,
            "witness_hash": self.witness_hash,
            "steps": [s.to_json() for s in self.steps],
            "joins": joins,
            "writes": "nothing: a plan creates no flow and calls no function",
        }


class Previewer:
    """Plans intents against the documents' current state, writing nothing."""

    def __init__(self, source: DocumentStateSource, config: EcosignConfig) -> None:
        self.source = source
        self.config = config

    async def preview(self, intent: DocumentJob, repository: JobRepository) -> Preview:
        """The plan of ``intent`` now (``InvalidJob`` naming the field for what a submission
        would refuse; ``Unavailable`` when the document's state cannot be read)."""
        check_step_inputs(intent)
        try:
            state = await self.source.read(intent.document_entity_id)
        except DocumentNotFound:
            raise errors.InvalidJob("document_entity_id", NOT_FOUND) from None
        except CallError as exc:
            raise errors.Unavailable(f"the document's state cannot be read: {exc}") from None
        declared = intent.declared_witness_hash
        if declared is not None and not state.has_witness(declared):
            raise errors.InvalidJob("metadata.witness_hash", WITNESS_UNKNOWN)
        planned = plan(intent, state)
        steps = tuple(self._step(p.step, p.disposition, p.reason) for p in planned.steps)
        key = intent.intent_key()
        found = await repository.list_jobs(statuses=list(JOINABLE), dedupe_key=key, limit=1)
        return Preview(
            document_entity_id=intent.document_entity_id,
            intent_key=key,
            witness_hash=planned.witness_hash,
            steps=steps,
            joins=found[0] if found else None,
        )

    def _step(self, step: Step, disposition: Disposition, reason: str) -> PreviewStep:
        function = self.config.functions.get(step, step.spec.function)
        if disposition is Disposition.NOT_REQUIRED:
            return PreviewStep(
                step=step.value,
                function=function,
                action="skipped",
                reason="not requested by this intent",
            )
        if disposition is Disposition.SATISFIED:
            return PreviewStep(
                step=step.value,
                function=function,
                action="skipped",
                reason=f"already done: {step.spec.done_in_state}",
            )
        if disposition is Disposition.AWAIT_CONFIRMATION:
            return PreviewStep(step=step.value, function=function, action="awaiting", reason=reason)
        if step in self.config.gates:
            reason = f"{reason}; done by EcoSign itself: the flow waits for the document's state"
        return PreviewStep(step=step.value, function=function, action="required", reason=reason)
