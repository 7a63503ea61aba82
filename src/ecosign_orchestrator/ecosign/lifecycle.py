"""Terminal flow states vs the document's ``lifecycle_status`` (design §5).

The flow's ``completed``/``failed`` never overwrite ``lifecycle_status``; this one table says what a
finished flow implies. Writing it back is opt-in (``ECOSIGN_ORCH_LIFECYCLE_WRITE_BACK``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

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
        "an anchor was required (a completed flow has it confirmed)",
        lambda intent: intent.forensic.polygon or intent.forensic.bitcoin,
        "anchored",
    ),
    Rule("a signing flow (sign_owner or sign_workflow)", lambda i: i.is_signing_flow, "signed"),
    Rule("any other completed flow", lambda intent: True, "protected"),
)
assert all(rule.status in LIFECYCLE_STATUSES for rule in MAPPING)


def implied_lifecycle(intent: DocumentJob, *, completed: bool) -> str | None:
    """The ``lifecycle_status`` a finished flow implies (None: leave it unchanged)."""
    if not completed:
        return None
    return next(rule.status for rule in MAPPING if rule.applies(intent))
