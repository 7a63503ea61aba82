"""The sandbox's documents (``document_entities`` rows with their ``events[]``) and call ledger.

Kept in memory, optionally persisted to a SQLite file so a restarted sandbox keeps its state.
All mutation happens under one lock, like EcoSign's ``SELECT ... FOR UPDATE`` on the row.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

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

#: Anchor event kinds deduplicated by (kind, witness_hash, network, anchor_stage, step_index).
ANCHOR_DEDUPED = ("anchor.confirmed", "anchor.submitted", "anchor.failed", "anchor.timeout")


def now_iso() -> str:
    """The current UTC time in ISO-8601."""
    return dt.datetime.now(dt.UTC).isoformat()


class EventRejected(Exception):
    """An append the ledger rules refuse (EcoSign's trigger would raise)."""


def new_document(**fields: Any) -> dict[str, Any]:
    """A ``document_entities`` row with EcoSign's defaults; ``fields`` override them."""
    doc_id = str(fields.pop("id", None) or uuid.uuid4()).lower()
    source_hash = fields.pop("source_hash", None) or hashlib.sha256(doc_id.encode()).hexdigest()
    doc: dict[str, Any] = {
        "id": doc_id,
        "owner_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"owner:{doc_id}")),
        "source_name": "contract.pdf",
        "source_mime": "application/pdf",
        "source_size": 48213,
        "source_hash": source_hash,
        "source_captured_at": now_iso(),
        "source_storage_path": None,
        "custody_mode": "encrypted_custody",
        "lifecycle_status": "protected",
        "witness_current_hash": None,
        "witness_current_mime": None,
        "witness_current_status": None,
        "witness_current_storage_path": None,
        "witness_current_generated_at": None,
        "witness_history": [],
        "witness_hash": None,
        "signed_hash": None,
        "composite_hash": None,
        "hash_chain": {"source_hash": source_hash},
        "transform_log": [],
        "events": [],
        "tsa_latest": None,
        "metadata": {},
        "created_at": now_iso(),
        "updated_at": now_iso(),
    }
    doc.update(fields)
    return doc


def _anchor_key(event: dict[str, Any]) -> tuple[Any, ...]:
    anchor = event.get("anchor") or {}
    return (
        event.get("kind"),
        anchor.get("witness_hash"),
        anchor.get("network"),
        anchor.get("anchor_stage", "initial"),
        anchor.get("step_index", 0),
    )


def _check_append(doc: dict[str, Any], event: dict[str, Any]) -> None:
    """EcoSign's ``enforce_events_append_only`` trigger: the rules a new event must meet
    (``EventRejected`` with the trigger's own message otherwise)."""
    kind = event.get("kind")
    events: list[dict[str, Any]] = doc["events"]
    current = doc.get("witness_hash")
    if kind in ("tsa", "tsa.confirmed"):
        if not any(e.get("kind") == "document.protected.requested" for e in events):
            raise EventRejected("TSA evidence requires prior document.protected.requested")
        if kind == "tsa.confirmed" and event.get("_source") != "run-tsa":
            raise EventRejected(
                f"tsa.confirmed must be emitted by run-tsa (got source={event.get('_source')})"
            )
        if any(
            e.get("kind") in ("tsa", "tsa.confirmed") and e.get("witness_hash") == current
            for e in events
        ):
            raise EventRejected(f"TSA event is unique per witness_hash: cannot append {kind} twice")
        # (SQL's NULL comparison: with no witness on the row the check does not fire.)
        if current is not None and event.get("witness_hash") != current:
            raise EventRejected(
                f"TSA event witness_hash ({event.get('witness_hash')}) must match document "
                f"witness_hash ({current})"
            )
    if kind == "artifact.finalized" and any(e.get("kind") == kind for e in events):
        raise EventRejected("artifact.finalized is unique per document entity")


class Store:
    """Documents, anchors and the ledger of calls; thread-safe."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.lock = threading.RLock()
        self.documents: dict[str, dict[str, Any]] = {}
        #: Anchor rows by (witness_hash, network), like EcoSign's ``anchors`` table.
        self.anchors: dict[tuple[str, str], dict[str, Any]] = {}
        #: One row per function call: function, idempotency key, status, whether it had an effect.
        self.ledger: list[dict[str, Any]] = []
        #: Calls being served now, and the most ever served at once, per function.
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        #: Authorised REST requests served, per method, overall (key None) and per document:
        #: what a flow costs in state reads.
        self.rest_requests: dict[str | None, dict[str, int]] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT)")
            self._load()

    # -- persistence ---------------------------------------------------------------------------

    def _load(self) -> None:
        assert self._db is not None
        row = self._db.execute("SELECT value FROM state WHERE key = 'state'").fetchone()
        if row:
            data = json.loads(row[0])
            self.documents = data["documents"]
            self.anchors = {tuple(k.split("|", 1)): v for k, v in data["anchors"].items()}
            self.ledger = data["ledger"]

    def save(self) -> None:
        """Persist everything (when backed by a file)."""
        if self._db is None:
            return
        data = {
            "documents": self.documents,
            "anchors": {"|".join(k): v for k, v in self.anchors.items()},
            "ledger": self.ledger,
        }
        self._db.execute(
            "INSERT OR REPLACE INTO state (key, value) VALUES ('state', ?)", (json.dumps(data),)
        )

    def reset(self) -> None:
        """Forget everything."""
        with self.lock:
            self.documents.clear()
            self.anchors.clear()
            self.ledger.clear()
            self.in_flight.clear()
            self.max_in_flight.clear()
            self.rest_requests.clear()
            self.save()

    def call_began(self, function: str) -> None:
        """A call to ``function`` is being served (concurrency is recorded per function)."""
        with self.lock:
            now = self.in_flight.get(function, 0) + 1
            self.in_flight[function] = now
            self.max_in_flight[function] = max(self.max_in_flight.get(function, 0), now)

    def call_ended(self, function: str) -> None:
        """The call to ``function`` was answered."""
        with self.lock:
            self.in_flight[function] = self.in_flight.get(function, 1) - 1

    # -- documents -----------------------------------------------------------------------------

    def put(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Insert or replace a document."""
        with self.lock:
            self.documents[doc["id"]] = doc
            self.save()
            return copy.deepcopy(doc)

    def get(self, doc_id: str) -> dict[str, Any] | None:
        """A deep copy of the document, or None."""
        with self.lock:
            doc = self.documents.get(doc_id.lower())
            return None if doc is None else copy.deepcopy(doc)

    def ids(self) -> list[str]:
        """Every document id, sorted."""
        with self.lock:
            return sorted(self.documents)

    def update(self, doc_id: str, **fields: Any) -> None:
        """Set columns of a document."""
        with self.lock:
            doc = self.documents[doc_id]
            doc.update(fields)
            doc["updated_at"] = now_iso()
            self.save()

    def append_event(self, doc_id: str, event: dict[str, Any], source: str) -> bool:
        """Append an event with EcoSign's envelope and rules; False for a deduplicated no-op."""
        kind = str(event.get("kind", ""))
        if "." not in kind or "_" in kind:
            raise EventRejected(f"invalid event kind {kind!r}: must be dotted, without underscores")
        with self.lock:
            doc = self.documents[doc_id]
            events: list[dict[str, Any]] = doc["events"]
            if kind in ANCHOR_DEDUPED and any(_anchor_key(e) == _anchor_key(event) for e in events):
                return False
            _check_append(doc, {**event, "_source": source})
            envelope = {
                "id": str(uuid.uuid4()),
                "at": now_iso(),
                "v": 1,
                "actor": source,
                **event,
                "entity_id": doc_id,
                "correlation_id": doc_id,
                "_source": source,
            }
            events.append(envelope)
            if kind == "tsa.confirmed":
                doc["tsa_latest"] = envelope
            doc["updated_at"] = now_iso()
            self.save()
            return True

    # -- ledger --------------------------------------------------------------------------------

    def count_rest(self, method: str, doc_id: str | None) -> None:
        """One more REST request (``GET`` reads, ``PATCH`` write-backs) was served, for one
        document (``doc_id``) or a listing (None)."""
        with self.lock:
            for key in {None, doc_id}:
                counts = self.rest_requests.setdefault(key, {})
                counts[method] = counts.get(method, 0) + 1

    def record_call(
        self,
        function: str,
        key: str | None,
        doc_id: str | None,
        status: int,
        effect: bool,
        traceparent: str | None = None,
    ) -> None:
        """Append one row to the call ledger (with the caller's W3C ``traceparent``, as a
        function's own logs would keep it)."""
        with self.lock:
            self.ledger.append(
                {
                    "seq": len(self.ledger) + 1,
                    "function": function,
                    "idempotency_key": key,
                    "document_entity_id": doc_id,
                    "status": status,
                    "effect": effect,
                    "traceparent": traceparent,
                    "at": now_iso(),
                }
            )
            self.save()

    def ledger_summary(self, doc_id: str | None = None) -> dict[str, Any]:
        """Calls and effects, overall and per idempotency key."""
        with self.lock:
            rows = [r for r in self.ledger if doc_id is None or r["document_entity_id"] == doc_id]
        effects: dict[str, int] = {}
        for row in rows:
            if row["effect"] and row["idempotency_key"]:
                effects[row["idempotency_key"]] = effects.get(row["idempotency_key"], 0) + 1
        return {
            "calls": rows,
            "in_flight": {k: n for k, n in self.in_flight.items() if n},
            "max_in_flight": dict(self.max_in_flight),
            "rest_requests": dict(self.rest_requests.get(doc_id, {})),
            "effects_by_key": effects,
            "effect_order": [r["function"] for r in rows if r["effect"]],
        }
