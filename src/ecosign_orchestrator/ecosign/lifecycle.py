"""Terminal flow states vs the document's ``lifecycle_status`` (design §5).

The flow's ``completed``/``failed`` never overwrite ``lifecycle_status``; this one table says what a
finished flow implies. Writing it back is opt-in (``ECOSIGN_ORCH_LIFECYCLE_WRITE_BACK``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ecosign_orchestrator.core.job import Job
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.ecosign.model import DocumentJob

LIFECYCLE_STATUSES = (
    "protected",
    "needs_witness",
    "witness_ready",
    "in_signature_flow",
    "signed",
    "anchored",
    "revoked",
    "archived",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One row of the mapping: a completed flow matching ``applies`` implies ``status``."""

    condition: str
    applies: Callable[[DocumentJob], bool]
    status: str


#: Completed flows, first match wins. A failed flow implies no change (the reason is on the flow).
MAPPING: tuple[Rule, ...] = (
    Rule(
        "a signature-workflow stage before the final one",
        lambda intent: not intent.builds_artifact,
        "in_signature_flow",
    ),
    Rule(
        "an anchor was required (a completed flow has it confirmed)",
        lambda intent: intent.forensic.polygon or intent.forensic.bitcoin,
        "anchored",
    ),
    Rule("a signing flow (sign_owner or sign_workflow)", lambda i: i.is_signing_flow, "signed"),
    Rule("any other completed flow", lambda intent: True, "protected"),
)
assert all(rule.status in LIFECYCLE_STATUSES for rule in MAPPING)


#: Write-back moves a document forward along this order, never back: a protect-only flow that
#: completes after an anchored one must not turn ``anchored`` into ``protected``.
FORWARD_ORDER: tuple[str, ...] = (
    "needs_witness",
    "witness_ready",
    "protected",
    "in_signature_flow",
    "signed",
    "anchored",
)
#: Decisions a person took about the document: no flow ever changes them.
FINAL_STATUSES = frozenset({"revoked", "archived"})
assert set(FORWARD_ORDER) | FINAL_STATUSES == set(LIFECYCLE_STATUSES)


def may_write_back(current: str | None, implied: str) -> bool:
    """Whether write-back may replace ``current`` with ``implied``: only a move forward, and
    never away from ``revoked`` or ``archived`` (an unset status may take any value)."""
    if current in FINAL_STATUSES or implied not in FORWARD_ORDER:
        return False
    if current not in FORWARD_ORDER:
        return current is None
    return FORWARD_ORDER.index(implied) > FORWARD_ORDER.index(current)


def implied_lifecycle(intent: DocumentJob, *, completed: bool) -> str | None:
    """The ``lifecycle_status`` a finished flow implies (None: leave it unchanged)."""
    if not completed:
        return None
    return next(rule.status for rule in MAPPING if rule.applies(intent))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FlowLifecycle:
    """A document flow's terminal state and the ``lifecycle_status`` it implies."""

    #: ``completed`` or ``failed`` once the flow ended (None before).
    terminal_state: str | None
    implied_lifecycle_status: str | None
    written_back: bool


def flow_lifecycle(job: Job) -> FlowLifecycle:
    """What a flow's job says about its document (read from the result the flow recorded)."""
    ended = job.status in (JobStatus.COMPLETED, JobStatus.FAILED)
    result = job.result if isinstance(job.result, dict) else {}
    implied = result.get("lifecycle_status") if job.status is JobStatus.COMPLETED else None
    return FlowLifecycle(
        terminal_state=job.status.value if ended else None,
        implied_lifecycle_status=implied if isinstance(implied, str) else None,
        written_back=bool(result.get("lifecycle_written")),
    )
