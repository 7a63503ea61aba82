"""Terminal flow states vs the document's ``lifecycle_status`` (design §5).

The flow's ``completed``/``failed`` never overwrite ``lifecycle_status``; this one table says what a
finished flow implies. Writing it back is opt-in (``ECOSIGN_ORCH_LIFECYCLE_WRITE_BACK``).
"""

from __future__ import annotations

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

#: (flow outcome, condition) -> lifecycle_status, first match wins.
MAPPING: tuple[tuple[str, str, str | None], ...] = (
    ("completed", "an anchor was required and confirmed", "anchored"),
    ("completed", "a signing flow (sign_owner or sign_workflow)", "signed"),
    ("completed", "any other completed flow", "protected"),
    ("failed", "any failed flow: no change, the reason lives on the flow", None),
)


def implied_lifecycle(intent: DocumentJob, *, completed: bool) -> str | None:
    """The ``lifecycle_status`` a finished flow implies (None: leave it unchanged)."""
    if not completed:
        return None
    if intent.forensic.polygon or intent.forensic.bitcoin:
        return "anchored"
    if intent.is_signing_flow:
        return "signed"
    return "protected"
