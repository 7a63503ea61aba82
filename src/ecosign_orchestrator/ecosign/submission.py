"""Submitting document flows: one core job per ``DocumentJob``.

A repeat of the same document and intent returns the flow that is active or already completed
(work that is done is not redone); a failed or cancelled flow does not block a new one. The
client's ``Idempotency-Key`` returns the job it created whatever its status. The core applies
both rules in the insert's own transaction (``JobQueue.submit``).
"""

from __future__ import annotations

from ecosign_orchestrator.core import errors
from ecosign_orchestrator.core.job import NewJob
from ecosign_orchestrator.core.types import JSONDict
from ecosign_orchestrator.ecosign.inputs import problem
from ecosign_orchestrator.ecosign.model import ACTIONS, FORENSIC, DocumentJob
from ecosign_orchestrator.ecosign.steps import Step

#: The core job kind of a document flow.
KIND = "ecosign.document"


def check_step_inputs(intent: DocumentJob) -> None:
    """``metadata.step_inputs`` may only carry, per step, the fields the step table lets a caller
    give, each of the type, pattern and size its rule says (``InvalidJob`` naming the first
    other one): what a step acts on, such as the witness hash TSA signs, comes from the
    document's state and never from the caller."""
    inputs = (intent.metadata or {}).get("step_inputs")
    if inputs is None:
        return
    if not isinstance(inputs, dict):
        raise errors.InvalidJob("metadata.step_inputs", "must be an object keyed by step name")
    for name, fields in inputs.items():
        field = f"metadata.step_inputs.{name}"
        try:
            spec = Step(name).spec
        except ValueError:
            raise errors.InvalidJob(field, "no such step") from None
        if not isinstance(fields, dict):
            raise errors.InvalidJob(field, "must be an object of body fields")
        for key, value in fields.items():
            rule = spec.caller_inputs.get(key)
            if rule is None:
                allowed = ", ".join(sorted(spec.caller_inputs)) or "none"
                raise errors.InvalidJob(
                    f"{field}.{key}",
                    f"not an input a caller may give this step (allowed: {allowed})",
                )
            why = problem(rule, value)
            if why is not None:
                raise errors.InvalidJob(f"{field}.{key}", why)


def flow_request(
    intent: DocumentJob,
    *,
    priority: int = 0,
    delay: float = 0.0,
    idempotency_key: str | None = None,
) -> NewJob:
    """The core job for an already validated intent (it is not parsed again; its step inputs
    are checked against the step table). ``priority`` and ``delay`` schedule it; they are not
    part of the intent, so a repeat with other ones returns the same flow."""
    check_step_inputs(intent)
    return NewJob(
        kind=KIND,
        payload=intent.model_dump(mode="json", exclude_none=True),
        priority=priority,
        delay=delay,
        dedupe_key=intent.intent_key(),
        reuse_completed=True,
        idempotency_key=idempotency_key,
    )


def document_prefix(document_id: str) -> str:
    """The dedupe-key prefix shared by every flow of one document (see ``intent_key``)."""
    return f"ecosign:{document_id.strip().lower()}:"


def intent_label(payload: JSONDict) -> str:
    """``protect+tsa+bitcoin``: the requested actions and evidence of a flow's payload."""
    parts: list[str] = []
    for group, names in (("actions", ACTIONS), ("forensic", FORENSIC)):
        block = payload.get(group)
        if isinstance(block, dict):
            parts.extend(name for name in names if block.get(name) is True)
    return "+".join(parts)
