"""A document's state as the orchestrator reads it, and pure "already satisfied?" checks.

The probative truth is the append-only ``events[]`` ledger (reference §1.3-1.5); columns say where
the source and the witness are. Every check is a pure function, unit-tested on real-shaped rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

#: Columns the orchestrator reads (PostgREST ``select=``).
COLUMNS = (
    "id",
    "custody_mode",
    "lifecycle_status",
    "source_storage_path",
    "witness_current_hash",
    "witness_current_storage_path",
    "witness_hash",
    "witness_history",
    "events",
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DocumentState:
    """The parts of a ``document_entities`` row the planner needs."""

    id: str
    lifecycle_status: str | None = None
    custody_mode: str | None = None
    source_storage_path: str | None = None
    witness_current_hash: str | None = None
    witness_current_storage_path: str | None = None
    witness_hash: str | None = None
    #: Hashes of every witness version the document has had (``witness_history[].hash``).
    witness_history: tuple[str, ...] = ()
    #: The ledger events the checks below read, each cut to the fields they read (see
    #: :func:`essentials`): a flow holds its document's state while each call is in flight, and
    #: a real ledger carries RFC 3161 tokens and transaction receipts of kilobytes each.
    events: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DocumentState:
        """Parse a REST row (unknown columns ignored; ``events`` must be a list)."""
        events = row.get("events") or []
        if not isinstance(events, list):
            raise ValueError("document_entities.events is not an array")
        return cls(
            id=str(row["id"]),
            lifecycle_status=row.get("lifecycle_status"),
            custody_mode=row.get("custody_mode"),
            source_storage_path=row.get("source_storage_path") or None,
            witness_current_hash=row.get("witness_current_hash") or None,
            witness_current_storage_path=row.get("witness_current_storage_path") or None,
            witness_hash=row.get("witness_hash") or None,
            witness_history=_history_hashes(row.get("witness_history")),
            events=tuple(
                essentials(e)
                for e in events
                if isinstance(e, Mapping) and e.get("kind") in LEDGER_KINDS
            ),
        )

    @property
    def current_witness_hash(self) -> str | None:
        """The hash TSA and anchors sign: the current witness's."""
        return self.witness_current_hash or self.witness_hash

    def has_witness(self, witness_hash: str) -> bool:
        """Whether ``witness_hash`` is the current witness or one in the witness history (the
        only hashes a flow may be asked to sign: never the source hash, never a made-up one)."""
        return witness_hash in (self.current_witness_hash, *self.witness_history)

    def of_kind(self, kind: str) -> list[Mapping[str, Any]]:
        """Events of one kind, in ledger order."""
        return [e for e in self.events if e.get("kind") == kind]


#: Event kinds a check reads; the rest of the ledger is not kept.
LEDGER_KINDS = frozenset(
    {
        "tsa.confirmed",
        "anchor",
        "anchor.submitted",
        "anchor.confirmed",
        "anchor.timeout",
        "anchor.failed",
        "anchor.final.failed",
        "artifact.finalized",
    }
)
#: Fields a check reads, at the top of an event and in its ``anchor`` or ``payload`` block.
_TOP_FIELDS = ("kind", "at", "witness_hash")
_BLOCK_FIELDS = ("network", "witness_hash", "confirmed_at", "retryable", "reason")


def essentials(event: Mapping[str, Any]) -> dict[str, Any]:
    """``event`` cut to what the checks read (no token, receipt or envelope)."""
    kept: dict[str, Any] = {name: event[name] for name in _TOP_FIELDS if name in event}
    for container in ("anchor", "payload"):
        block = event.get(container)
        if isinstance(block, Mapping):
            kept[container] = {name: block[name] for name in _BLOCK_FIELDS if name in block}
    return kept


def _history_hashes(value: Any) -> tuple[str, ...]:
    """The hashes of ``witness_history`` entries (EcoSign's client appends ``{hash, mime_type,
    storage_path, status, generated_at}``; a bare hash string is read too)."""
    if not isinstance(value, list):
        return ()
    hashes = (entry.get("hash") if isinstance(entry, Mapping) else entry for entry in value)
    return tuple(h for h in hashes if isinstance(h, str) and h)


def _anchor_field(event: Mapping[str, Any], name: str) -> Any:
    """Read ``anchor.<name>``, falling back to ``payload.<name>`` (older writers)."""
    for container in ("anchor", "payload"):
        block = event.get(container)
        if isinstance(block, Mapping) and block.get(name) is not None:
            return block[name]
    return None


def _event_witness(event: Mapping[str, Any]) -> Any:
    return event.get("witness_hash") or _anchor_field(event, "witness_hash")


def source_encrypted(state: DocumentState) -> bool:
    """``encrypt_source`` is done: the encrypted source is in custody."""
    return state.source_storage_path is not None


def witness_ready(state: DocumentState) -> bool:
    """``create_witness`` is done: a current witness PDF with its hash."""
    return state.witness_current_hash is not None and state.witness_current_storage_path is not None


def tsa_confirmed(state: DocumentState, witness_hash: str | None) -> bool:
    """``append_tsa`` is done: a ``tsa.confirmed`` for this witness hash."""
    if witness_hash is None:
        return False
    return any(_event_witness(e) == witness_hash for e in state.of_kind("tsa.confirmed"))


def _is_anchor_event(event: Mapping[str, Any], network: str, witness_hash: str | None) -> bool:
    return (
        _anchor_field(event, "network") == network
        and witness_hash is not None
        and _event_witness(event) == witness_hash
    )


def anchor_confirmed(state: DocumentState, network: str, witness_hash: str | None) -> bool:
    """An ``anchor.confirmed`` (or legacy ``anchor`` with ``confirmed_at``) for network + hash."""
    for event in state.events:
        kind = event.get("kind")
        if kind == "anchor.confirmed" and _is_anchor_event(event, network, witness_hash):
            return True
        if (
            kind == "anchor"
            and _is_anchor_event(event, network, witness_hash)
            and _anchor_field(event, "confirmed_at")
        ):
            return True
    return False


def _gives_up(event: Mapping[str, Any]) -> bool:
    """The confirmer's terminal verdict: a timeout, or a failure it will not retry."""
    kind = event.get("kind")
    if kind == "anchor.timeout":
        return True
    return kind in ("anchor.failed", "anchor.final.failed") and (
        _anchor_field(event, "retryable") is False
    )


def anchor_submitted(state: DocumentState, network: str, witness_hash: str | None) -> bool:
    """A submission for network + hash is pending: an ``anchor.submitted`` that the confirmer
    has not given up on since."""
    pending = False
    for event in state.events:
        if not _is_anchor_event(event, network, witness_hash):
            continue
        if event.get("kind") == "anchor.submitted":
            pending = True
        elif _gives_up(event):
            pending = False
    return pending


def anchor_given_up(
    state: DocumentState,
    network: str,
    witness_hash: str | None,
    since: datetime | None = None,
) -> str | None:
    """The reason, if the confirmer gave up (timeout, non-retryable failure) on the latest
    submission for network + hash, counting only verdicts from ``since`` on (the flow's own
    submission: EcoSign drops a repeated ``anchor.submitted`` for the same key, so a
    re-submission is not in the ledger and an older verdict must not count against it)."""
    reason: str | None = None
    for event in state.events:
        if not _is_anchor_event(event, network, witness_hash):
            continue
        at = parse_time(event.get("at"))
        if since is not None and at is not None and at < since:
            continue
        if event.get("kind") == "anchor.submitted":
            reason = None
        elif _gives_up(event):
            reason = str(_anchor_field(event, "reason") or event.get("kind"))
    return reason


def artifact_finalized(state: DocumentState) -> bool:
    """``build_artifact`` is done: an ``artifact.finalized`` event (unique per document)."""
    return bool(state.of_kind("artifact.finalized"))


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 timestamp, or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
