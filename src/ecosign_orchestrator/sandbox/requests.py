"""The ``document.protected.requested`` events EcoSign writes, in the two shapes it has written.

- ``required-evidence`` (``record-protection-event`` as of early 2026): ``flow_type``
  (``DIRECT_PROTECTION`` or ``SIGNATURE_FLOW``) and ``required_evidence``, besides the fields below.
- ``protection-details`` (the newest public version): **no** ``flow_type`` (EcoSign's decision code
  reads an absent one as ``DIRECT_PROTECTION``) and no ``required_evidence``; the evidence is the
  ``protection`` array (the signature type when not ``none``, then the anchors the owner's plan
  allows) and ``protection_details.{tsa,polygon,bitcoin}_requested``, already resolved by the plan.

Both always carry ``anchor_stage: "initial"`` and ``step_index: 0`` on a protection request, and a
``witness_hash`` that is ``entity.witness_hash || entity.source_hash``: the **source hash** when no
witness exists yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

REQUEST_KIND = "document.protected.requested"
#: The shapes, newest last.
SHAPES = ("required-evidence", "protection-details")
DEFAULT_SHAPE = "required-evidence"
EVIDENCE = ("tsa", "polygon", "bitcoin")
#: What EcoSign's plan policy requires of a direct protection on the free plan.
DEFAULT_EVIDENCE = ("tsa", "bitcoin")
STAGES = ("initial", "intermediate", "final")


def request_payload(
    doc: dict[str, Any],
    *,
    shape: str = DEFAULT_SHAPE,
    evidence: Sequence[str] = DEFAULT_EVIDENCE,
    signature_flow: bool = False,
    anchor_stage: str = "initial",
    step_index: int = 0,
    witness_hash: str | None = None,
    signature_type: str = "none",
) -> dict[str, Any]:
    """The payload EcoSign writes for ``doc`` (``ValueError`` for an unknown shape or stage)."""
    if shape not in SHAPES:
        raise ValueError(f"request shape must be one of {', '.join(SHAPES)}")
    if anchor_stage not in STAGES:
        raise ValueError(f"anchor_stage must be one of {', '.join(STAGES)}")
    unknown = [name for name in evidence if name not in EVIDENCE]
    if unknown:
        raise ValueError(f"unknown evidence {unknown}; evidence is {', '.join(EVIDENCE)}")
    chosen = [name for name in EVIDENCE if name in evidence]
    effective_witness = witness_hash or doc.get("witness_hash") or doc["source_hash"]
    protection = ([signature_type] if signature_type != "none" else []) + chosen
    payload: dict[str, Any] = {
        "document_entity_id": doc["id"],
        "document_id": None,
        "document_hash": doc["source_hash"],
        "witness_hash": effective_witness,
        "protection": protection,
        "anchor_stage": anchor_stage,
        "step_index": step_index,
        "plan_key": "free",
        "policy_source": "plan_default",
        "protection_details": {
            "signature_type": signature_type,
            "forensic_enabled": bool(chosen),
            **{f"{name}_requested": name in chosen for name in EVIDENCE},
            "contract_hash": effective_witness,
        },
    }
    if shape == "required-evidence":
        payload["flow_type"] = "SIGNATURE_FLOW" if signature_flow else "DIRECT_PROTECTION"
        payload["required_evidence"] = chosen
    elif signature_flow:
        raise ValueError(
            "the protection-details shape has no flow_type: it cannot state a signature flow"
        )
    return payload


def request_event(payload: dict[str, Any], *, at: str, source: str) -> dict[str, Any]:
    """A ledger event with EcoSign's envelope around ``payload``."""
    doc_id = payload["document_entity_id"]
    return {
        "id": str(uuid.uuid4()),
        "kind": REQUEST_KIND,
        "at": at,
        "v": 1,
        "actor": source,
        "entity_id": doc_id,
        "correlation_id": doc_id,
        "_source": source,
        "payload": payload,
    }
