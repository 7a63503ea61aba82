"""``DocumentJob``: the declarative intent a CTA hands to the orchestrator (contract "Entradas").

Strict: unknown fields, wrong types, a non-UUID id and an intent with no action are refused, each
error naming its field. An explicit ``false`` and an absent flag are the same intent.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_METADATA_DEPTH = 32
ACTIONS = ("protect", "nda", "sign_owner", "sign_workflow")
FORENSIC = ("tsa", "polygon", "bitcoin")


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


def _check_json_value(value: Any, path: str, depth: int) -> None:
    """Refuse what PostgreSQL jsonb cannot store, or that could hide an attack."""
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"{path}: nesting deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path}: NaN and Infinity are not JSON")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{path}: keys must be strings")
            _check_text(key, f"{path} key")
            _check_json_value(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_value(item, f"{path}[{index}]", depth + 1)
    elif value is not None and not isinstance(value, bool | int | float):
        raise ValueError(f"{path}: {type(value).__name__} is not a JSON value")


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise ValueError(f"{path}: NUL characters are not allowed")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise ValueError(f"{path}: lone surrogate characters are not allowed")


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
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("must be a UUID") from None

    @field_validator("metadata", mode="after")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            _check_json_value(value, "metadata", 1)
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

    def intent_key(self) -> str:
        """Dedupe key: same document + same intent (false and absent flags are equal)."""
        actions = ",".join(self.actions.enabled())
        forensic = ",".join(self.forensic.enabled())
        custody = "hash_only" if self.custody_mode == "hash_only" else "custody"
        prefix = f"ecosign:{self.document_entity_id}:"  # submission.document_prefix
        return f"{prefix}{actions}:{forensic or '-'}:{custody}"
