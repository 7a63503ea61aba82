"""``DocumentJob``: the declarative intent a CTA hands to the orchestrator (contract "Entradas").

Strict: unknown fields, wrong types, a non-UUID id and an intent with no action are refused, each
error naming its field. An explicit ``false`` and an absent flag are the same intent.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ecosign_orchestrator.core.jsonvalue import json_value_problem

ACTIONS = ("protect", "nda", "sign_owner", "sign_workflow")
FORENSIC = ("tsa", "polygon", "bitcoin")
#: Stages of a signature workflow, in order; each stage signs its own witness version.
ANCHOR_STAGES = ("initial", "intermediate", "final")
_WITNESS_HASH = re.compile(r"[0-9a-f]{64}", re.ASCII)
_CANONICAL_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"
)


class Actions(BaseModel):
    """What the CTA asks for."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    protect: bool = False
    nda: bool = False
    sign_owner: bool = False
    sign_workflow: bool = False

    def enabled(self) -> list[str]:
        """Names of the requested actions, in contract order."""
        return [name for name in ACTIONS if getattr(self, name)]


class Forensic(BaseModel):
    """Which evidence the CTA asks for."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    tsa: bool = False
    polygon: bool = False
    bitcoin: bool = False

    def enabled(self) -> list[str]:
        """Names of the requested evidence, in contract order."""
        return [name for name in FORENSIC if getattr(self, name)]


def _check_stage(metadata: dict[str, Any]) -> None:
    """The stage fields EcoSign's anchor functions read, when present, must be well formed."""
    stage = metadata.get("anchor_stage")
    if stage is not None and stage not in ANCHOR_STAGES:
        raise ValueError(f"anchor_stage must be one of {', '.join(ANCHOR_STAGES)}")
    index = metadata.get("step_index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise ValueError("step_index must be a whole number, 0 or more")
    if index is not None and index > 10_000:
        raise ValueError("step_index must be at most 10000")
    witness = metadata.get("witness_hash")
    if witness is not None and (
        not isinstance(witness, str) or not _WITNESS_HASH.fullmatch(witness)
    ):
        raise ValueError("witness_hash must be 64 lowercase hex characters (a SHA-256)")


class DocumentJob(BaseModel):
    """A CTA's intent for one document.

    >>> DocumentJob.model_validate({
    ...     "document_entity_id": "0b6c8a5e-5d3f-4f5e-9a41-2f4b8f1a9c10",
    ...     "actions": {"protect": True},
    ...     "forensic": {"tsa": True, "bitcoin": True},
    ... })
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "document_entity_id": "0b6c8a5e-5d3f-4f5e-9a41-2f4b8f1a9c10",
                    "actions": {"protect": True},
                    "forensic": {"tsa": True, "polygon": True, "bitcoin": True},
                    "metadata": {"custody_mode": "encrypted_custody", "source": "cta.protect"},
                }
            ]
        },
    )

    document_entity_id: str = Field(description="The document_entities row (UUID)")
    actions: Actions = Field(description="What the CTA asks for; at least one action")
    forensic: Forensic = Field(default_factory=Forensic, description="Evidence to add")
    metadata: dict[str, Any] | None = Field(
        default=None, description="Free-form context; custody_mode 'hash_only' skips encryption"
    )

    @field_validator("document_entity_id", mode="before")
    @classmethod
    def _uuid(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError("must be a UUID string")
        # uuid.UUID() also takes non-ASCII digits, braces and URNs: only the canonical
        # 8-4-4-4-12 hex form is an id (any case; stored lowercase).
        if not _CANONICAL_UUID.match(value):
            raise ValueError("must be a UUID (8-4-4-4-12 hexadecimal digits)")
        return str(uuid.UUID(value))

    @field_validator("metadata", mode="after")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            problem = json_value_problem(value, "metadata", 1)
            if problem:
                raise ValueError(problem)
            _check_stage(value)
        return value

    @field_validator("actions", mode="after")
    @classmethod
    def _some_action(cls, value: Actions) -> Actions:
        if not value.enabled():
            raise ValueError("at least one of protect, nda, sign_owner, sign_workflow must be true")
        return value

    @property
    def custody_mode(self) -> str | None:
        """``metadata.custody_mode``, compared exactly."""
        mode = (self.metadata or {}).get("custody_mode")
        return mode if isinstance(mode, str) else None

    @property
    def is_signing_flow(self) -> bool:
        """Owner or workflow signatures."""
        return self.actions.sign_owner or self.actions.sign_workflow

    @property
    def anchor_stage(self) -> str | None:
        """``metadata.anchor_stage`` as given (None: absent). It names a stage only for a
        signature workflow (see :attr:`is_staged`); any flow carries it to the anchor functions."""
        stage = (self.metadata or {}).get("anchor_stage")
        return stage if isinstance(stage, str) else None

    @property
    def step_index(self) -> int:
        """``metadata.step_index``: which signer's stage (0 when not given)."""
        index = (self.metadata or {}).get("step_index", 0)
        return index if isinstance(index, int) else 0

    @property
    def declared_witness_hash(self) -> str | None:
        """``metadata.witness_hash`` as given (None: absent). It must be a witness the document
        has had; only a signature-workflow stage signs it (:attr:`stage_witness_hash`)."""
        value = (self.metadata or {}).get("witness_hash")
        return value if isinstance(value, str) else None

    @property
    def is_staged(self) -> bool:
        """A stage of a signature workflow: a ``sign_workflow`` intent that names a stage, a
        signer index or a witness. EcoSign writes ``anchor_stage: "initial", step_index: 0`` on
        every protection request too; for protect, NDA and owner signature those fields are only
        carried to the functions and change nothing about the flow."""
        metadata = self.metadata or {}
        return self.actions.sign_workflow and any(
            key in metadata for key in ("anchor_stage", "step_index", "witness_hash")
        )

    @property
    def stage_witness_hash(self) -> str | None:
        """The witness version a signature-workflow stage signs (None: the document's current
        witness, which is what every other flow signs)."""
        return self.declared_witness_hash if self.is_staged else None

    @property
    def stage(self) -> tuple[str, int] | None:
        """``(anchor_stage, step_index)`` of a signature-workflow stage (None: not a stage)."""
        return (self.anchor_stage or "initial", self.step_index) if self.is_staged else None

    @property
    def builds_artifact(self) -> bool:
        """Whether this flow builds the final artifact: EcoSign's ``artifact.finalized`` is unique
        per document, so a signature workflow builds it at its final stage only."""
        return not self.is_staged or self.anchor_stage == "final"

    def intent_key(self) -> str:
        """The flow's identity: the document, the intent (false and absent flags are equal),
        the custody mode, and for a signature-workflow stage the stage, the signer index and the
        witness hash it signs."""
        actions = ",".join(self.actions.enabled())
        forensic = ",".join(self.forensic.enabled())
        custody = "hash_only" if self.custody_mode == "hash_only" else "custody"
        prefix = f"ecosign:{self.document_entity_id}:"  # submission.document_prefix
        key = f"{prefix}{actions}:{forensic or '-'}:{custody}"
        if self.stage is not None:
            stage, index = self.stage
            key += f":stage={stage}/{index}/{self.stage_witness_hash or 'current'}"
        return key
