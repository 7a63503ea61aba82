"""The planner: a pure function (intent, document state) -> every step with what to do about it.

Design §4 table. Steps run in canonical order; an anchor's submission blocks the next step, its
confirmation does not (``build_artifact`` never waits for a Bitcoin confirmation); the flow is
complete only when every required step, confirmations included, is satisfied.
"""

from __future__ import annotations

import dataclasses
import enum

from ecosign_orchestrator.ecosign import state as st
from ecosign_orchestrator.ecosign.model import DocumentJob
from ecosign_orchestrator.ecosign.steps import CANONICAL_ORDER, Step


class Disposition(enum.StrEnum):
    """What the flow must do about a step now."""

    #: Not needed by this intent.
    NOT_REQUIRED = "not_required"
    #: Already done according to the document's state.
    SATISFIED = "satisfied"
    #: Must be called.
    CALL = "call"
    #: Submitted; waiting for the asynchronous confirmation.
    AWAIT_CONFIRMATION = "await_confirmation"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PlannedStep:
    """One step with its disposition and the reason for it."""

    step: Step
    disposition: Disposition
    reason: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Every canonical step, in order."""

    steps: tuple[PlannedStep, ...]
    witness_hash: str | None

    def next_call(self) -> PlannedStep | None:
        """The first step to call now, if any."""
        return next((p for p in self.steps if p.disposition is Disposition.CALL), None)

    def awaiting(self) -> list[PlannedStep]:
        """Anchor steps submitted and not yet confirmed."""
        return [p for p in self.steps if p.disposition is Disposition.AWAIT_CONFIRMATION]

    @property
    def complete(self) -> bool:
        """Every required step satisfied (confirmations included)."""
        return all(
            p.disposition in (Disposition.NOT_REQUIRED, Disposition.SATISFIED) for p in self.steps
        )

    def by_step(self) -> dict[Step, PlannedStep]:
        """Steps by name."""
        return {p.step: p for p in self.steps}


def required_steps(intent: DocumentJob) -> dict[Step, str]:
    """The steps an intent needs, each with why (a pure function of the intent)."""
    actions = ", ".join(intent.actions.enabled())
    required: dict[Step, str] = {}
    if intent.custody_mode != "hash_only":
        required[Step.ENCRYPT_SOURCE] = f"required by {actions} (encrypted custody)"
    required[Step.CREATE_WITNESS] = (
        "required: the artifact embeds the witness; TSA and anchors sign it"
    )
    forensic = intent.forensic
    if forensic.tsa:
        required[Step.APPEND_TSA] = "requested: forensic.tsa"
    elif forensic.polygon or forensic.bitcoin:
        required[Step.APPEND_TSA] = "implied: anchors require a confirmed TSA"
    if forensic.polygon:
        required[Step.ANCHOR_POLYGON] = "requested: forensic.polygon"
    if forensic.bitcoin:
        required[Step.ANCHOR_BITCOIN] = "requested: forensic.bitcoin"
    required[Step.BUILD_ARTIFACT] = f"required by {actions}"
    required[Step.NOTIFY_ARTIFACT_READY] = f"required by {actions}"
    return required


def _satisfied(step: Step, state: st.DocumentState, witness: str | None, notified: bool) -> bool:
    if step is Step.ENCRYPT_SOURCE:
        return st.source_encrypted(state)
    if step is Step.CREATE_WITNESS:
        return st.witness_ready(state)
    if step is Step.APPEND_TSA:
        return st.tsa_confirmed(state, witness)
    if step.network is not None:
        return st.anchor_confirmed(state, step.network, witness)
    if step is Step.BUILD_ARTIFACT:
        return st.artifact_finalized(state)
    return notified


def plan(
    intent: DocumentJob,
    state: st.DocumentState,
    *,
    notified: bool = False,
    submitted: frozenset[Step] = frozenset(),
) -> Plan:
    """Plan the flow.

    ``notified``: the orchestrator's own record of a successful notify call for this flow.
    ``submitted``: anchor steps this flow already submitted (the state's ``anchor.submitted``
    events count too).
    """
    required = required_steps(intent)
    witness = state.current_witness_hash
    planned: list[PlannedStep] = []
    for step in CANONICAL_ORDER:
        if step not in required:
            planned.append(
                PlannedStep(step=step, disposition=Disposition.NOT_REQUIRED, reason="not requested")
            )
        elif _satisfied(step, state, witness, notified):
            planned.append(
                PlannedStep(
                    step=step,
                    disposition=Disposition.SATISFIED,
                    reason="already satisfied by state",
                )
            )
        elif step.network is not None and (
            step in submitted or st.anchor_submitted(state, step.network, witness)
        ):
            planned.append(
                PlannedStep(
                    step=step,
                    disposition=Disposition.AWAIT_CONFIRMATION,
                    reason=f"submitted; waiting for anchor.confirmed on {step.network}",
                )
            )
        else:
            planned.append(
                PlannedStep(step=step, disposition=Disposition.CALL, reason=required[step])
            )
    return Plan(steps=tuple(planned), witness_hash=witness)
