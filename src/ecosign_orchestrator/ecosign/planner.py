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
from ecosign_orchestrator.ecosign.steps import STEPS, Step, StepSpec


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
    required: dict[Step, str] = {}
    for spec in STEPS:
        reason = spec.required_when(intent)
        if reason is not None:
            required[spec.step] = reason
    return required


def _satisfied(
    spec: StepSpec, state: st.DocumentState, witness: str | None, recorded: frozenset[Step]
) -> bool:
    if spec.satisfied_by is None:  # only this flow's own record of a successful call counts
        return spec.step in recorded
    return spec.satisfied_by(state, witness)


def plan(
    intent: DocumentJob,
    state: st.DocumentState,
    *,
    recorded: frozenset[Step] = frozenset(),
    submitted: frozenset[Step] = frozenset(),
    abandoned: frozenset[Step] = frozenset(),
) -> Plan:
    """Plan the flow.

    ``recorded``: steps this flow recorded as succeeded; they satisfy steps the document's state
    cannot show (notify). ``submitted``: anchor steps this flow submitted and waits on (a
    pending ``anchor.submitted`` in the state counts too). ``abandoned``: anchor steps whose
    confirmation this flow gave up on (the step failed): a retry submits them again, with a
    fresh confirmation window.
    """
    required = required_steps(intent)
    # A signature-workflow stage signs its own witness version; any other flow, the current one.
    witness = intent.stage_witness_hash or state.current_witness_hash
    planned: list[PlannedStep] = []
    for spec in STEPS:
        step = spec.step
        if step not in required:
            planned.append(
                PlannedStep(step=step, disposition=Disposition.NOT_REQUIRED, reason="not requested")
            )
        elif _satisfied(spec, state, witness, recorded):
            planned.append(
                PlannedStep(
                    step=step,
                    disposition=Disposition.SATISFIED,
                    reason="already satisfied by state",
                )
            )
        elif step.network is not None and step in abandoned:
            planned.append(
                PlannedStep(
                    step=step,
                    disposition=Disposition.CALL,
                    reason=f"its confirmation failed; submitting to {step.network} again",
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
