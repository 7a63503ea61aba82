"""The seven Edge Functions, as EcoSign's behave (reference ``ecosign-contracts.md`` §2).

Each handler takes the JSON body and returns ``(status, body, effect)``: ``effect`` says whether
the call changed anything (the ledger counts effects per idempotency key). Handlers hold no
orchestration logic: they check their own preconditions and answer, exactly like the real ones.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from ecosign_orchestrator.sandbox.store import EventRejected, Store, now_iso

Result = tuple[int, dict[str, Any], bool]
Handler = Callable[["Functions", dict[str, Any]], Result]


@dataclasses.dataclass(slots=True)
class AnchorTiming:
    """Simulated confirmation delay per network in seconds (None: never confirms)."""

    polygon: float | None = 2.0
    bitcoin: float | None = 5.0


def _error(status: int, error: str, *, retryable: bool | None = None) -> Result:
    body: dict[str, Any] = {"success": False, "error": error}
    if retryable is not None:
        body["retryable"] = retryable
    return status, body, False


def witness_columns(doc: dict[str, Any], witness_hash: str, path: str) -> dict[str, Any]:
    """The columns EcoSign's client sets to make a witness version current
    (``ensureWitnessCurrent``): the witness, its hash in the hash chain, and one more entry in
    the append-only ``witness_history``."""
    generated_at = now_iso()
    entry = {
        "hash": witness_hash,
        "mime_type": "application/pdf",
        "storage_path": path,
        "status": "generated",
        "generated_at": generated_at,
    }
    return {
        "witness_current_hash": witness_hash,
        "witness_hash": witness_hash,
        "witness_current_mime": "application/pdf",
        "witness_current_status": "generated",
        "witness_current_storage_path": path,
        "witness_current_generated_at": generated_at,
        "witness_history": [*doc.get("witness_history", []), entry],
        "hash_chain": {**doc.get("hash_chain", {}), "witness_hash": witness_hash},
        "lifecycle_status": "witness_ready",
    }


def _has_tsa(doc: dict[str, Any], witness_hash: str) -> bool:
    return any(
        e["kind"] == "tsa.confirmed" and e.get("witness_hash") == witness_hash
        for e in doc["events"]
    )


class Functions:
    """Handlers bound to a store."""

    def __init__(self, store: Store, timing: AnchorTiming | None = None) -> None:
        self.store = store
        self.timing = timing or AnchorTiming()

    def _doc(self, body: dict[str, Any]) -> dict[str, Any] | Result:
        doc_id = body.get("document_entity_id")
        if not isinstance(doc_id, str) or not doc_id:
            return _error(400, "document_entity_id required")
        doc = self.store.get(doc_id)
        if doc is None:
            return _error(404, "document_entity not found")
        return doc

    def store_encrypted_custody(self, body: dict[str, Any]) -> Result:
        """Store the encrypted source: sets ``source_storage_path``. Not idempotent upstream."""
        doc = self._doc(body)
        if isinstance(doc, tuple):
            return doc
        if doc["source_storage_path"]:
            # EcoSign uploads with upsert:false: a second call fails at the upload.
            return _error(500, "upload failed: object already exists")
        path = f"{doc['owner_id']}/{doc['id']}/encrypted_source"
        self.store.update(doc["id"], source_storage_path=path, custody_mode="encrypted_custody")
        return (
            200,
            {"success": True, "storage_path": path, "purpose": "source", "message": "stored"},
            True,
        )

    def create_witness(self, body: dict[str, Any]) -> Result:
        """Set the current witness PDF (``ensureWitnessCurrent``): a no-op when the document
        already has one; otherwise the witness becomes current and joins ``witness_history``."""
        doc = self._doc(body)
        if isinstance(doc, tuple):
            return doc
        if doc["witness_current_hash"]:
            return 200, {"success": True, "noop": True, "witness_hash": doc["witness_hash"]}, False
        witness_hash = hashlib.sha256(f"witness:{doc['source_hash']}".encode()).hexdigest()
        path = f"{doc['owner_id']}/{doc['id']}/witness/{witness_hash[:16]}.pdf"
        self.store.update(doc["id"], **witness_columns(doc, witness_hash, path))
        return 200, {"success": True, "witness_hash": witness_hash, "storage_path": path}, True

    def run_tsa(self, body: dict[str, Any]) -> Result:
        """RFC 3161 timestamp of the witness hash, appended as ``tsa.confirmed``. The ledger's
        trigger refuses a TSA for any hash but the row's current ``witness_hash``; ``run-tsa``
        then records ``tsa.failed`` and answers 500 with the trigger's message."""
        doc = self._doc(body)
        if isinstance(doc, tuple):
            return doc
        witness_hash = body.get("witness_hash") or doc["witness_hash"]
        if not witness_hash:
            return _error(400, "witness_hash missing")
        if _has_tsa(doc, witness_hash):
            return 200, {"success": True, "noop": True}, False
        if not any(e["kind"] == "document.protected.requested" for e in doc["events"]):
            return _error(
                409, "precondition_failed:missing_document.protected.requested", retryable=True
            )
        token = base64.b64encode(hashlib.sha256(f"tsa:{witness_hash}".encode()).digest()).decode()
        try:
            self.store.append_event(
                doc["id"],
                {
                    "kind": "tsa.confirmed",
                    "witness_hash": witness_hash,
                    "tsa": {"token_b64": token},
                },
                "run-tsa",
            )
        except EventRejected as exc:
            failed = {"retryable": True, "error": {"message": str(exc)}}
            self.store.append_event(doc["id"], {"kind": "tsa.failed", "payload": failed}, "run-tsa")
            return 500, {"error": str(exc)}, False
        return 200, {"success": True}, True

    def _submit_anchor(self, body: dict[str, Any], network: str) -> Result:
        doc = self._doc(body)
        if isinstance(doc, tuple):
            return doc
        witness_hash = body.get("witness_hash")
        if not witness_hash:
            return _error(400, "witness_hash missing")
        if not _has_tsa(doc, witness_hash):
            return _error(409, "precondition_failed:missing_tsa_for_witness_hash")
        existing = self.store.anchors.get((witness_hash, network))
        if existing is not None and existing["status"] not in ("failed", "timed_out"):
            return 200, {"success": True, "status": existing["status"], **existing["ids"]}, False
        delay = getattr(self.timing, network)
        anchor_id = str(uuid.uuid4())
        ids: dict[str, Any] = {"anchorId": anchor_id}
        if network == "polygon":
            ids["txHash"] = "0x" + hashlib.sha256(f"tx:{witness_hash}".encode()).hexdigest()
        else:
            ids["estimatedTime"] = "4-24 hours"
        stage = body.get("anchor_stage") or "initial"
        step_index = body.get("step_index") or 0
        with self.store.lock:
            self.store.anchors[(witness_hash, network)] = {
                "document_entity_id": doc["id"],
                "network": network,
                "status": "pending",
                "ids": ids,
                "anchor_stage": stage,
                "step_index": step_index,
                "submitted_at": time.time(),
                "confirm_at": None if delay is None else time.time() + delay,
            }
            self.store.append_event(
                doc["id"],
                {
                    "kind": "anchor.submitted",
                    "anchor": {
                        "network": network,
                        "witness_hash": witness_hash,
                        "anchor_stage": stage,
                        "step_index": step_index,
                        "anchor_id": anchor_id,
                        "txid": ids.get("txHash"),
                    },
                },
                f"submit-anchor-{network}",
            )
        return 200, {"success": True, **ids}, True

    def submit_anchor_polygon(self, body: dict[str, Any]) -> Result:
        """Submit a Polygon anchor (confirmation comes later, asynchronously)."""
        return self._submit_anchor(body, "polygon")

    def submit_anchor_bitcoin(self, body: dict[str, Any]) -> Result:
        """Submit a Bitcoin/OpenTimestamps anchor (confirmation takes hours upstream)."""
        return self._submit_anchor(body, "bitcoin")

    def build_artifact(self, body: dict[str, Any]) -> Result:
        """Build the final PDF + ECO certificate; ``artifact.finalized`` is unique per document."""
        doc = self._doc(body)
        if isinstance(doc, tuple):
            return doc
        if any(e["kind"] == "artifact.finalized" for e in doc["events"]):
            return 200, {"success": True, "noop": True}, False
        if not doc["witness_current_storage_path"]:
            self.store.append_event(
                doc["id"],
                {
                    "kind": "artifact.failed",
                    "payload": {"reason": "missing_witness_pdf", "retryable": False},
                },
                "build-artifact",
            )
            return _error(400, "missing_witness_pdf", retryable=False)
        version = body.get("artifact_version") or "v1"
        pdf = f"artifacts/{doc['id']}/{version}.pdf"
        eco = f"artifacts/{doc['id']}/{version}.eco.json"
        try:
            self.store.append_event(
                doc["id"],
                {
                    "kind": "artifact.finalized",
                    "payload": {
                        "artifact_storage_path": pdf,
                        "eco_storage_path": eco,
                        "artifact_hash": hashlib.sha256(pdf.encode()).hexdigest(),
                        "mime": "application/pdf",
                        "artifact_version": version,
                        "eco_format": "eco.v2.canonical.certificate",
                    },
                },
                "build-artifact",
            )
        except EventRejected as exc:
            return _error(500, str(exc), retryable=True)
        return 200, {"success": True, "artifact_storage_path": pdf, "eco_storage_path": eco}, True

    def notify_artifact_ready(self, body: dict[str, Any]) -> Result:
        """Queue the 'artifact ready' notification (unique per document, like upstream)."""
        doc = self._doc(body)
        if isinstance(doc, tuple):
            return doc
        if not any(e["kind"] == "artifact.finalized" for e in doc["events"]):
            return _error(409, "precondition_failed:missing_artifact")
        notified = doc["metadata"].get("notifications", [])
        if "artifact_ready" in notified:
            return 200, {"success": True, "processed": 1, "notified": 0, "noop": True}, False
        self.store.update(
            doc["id"], metadata={**doc["metadata"], "notifications": [*notified, "artifact_ready"]}
        )
        return 200, {"success": True, "processed": 1, "notified": 1}, True

    def settle(self, doc_id: str) -> None:
        """Confirm anchors of this document whose simulated confirmation time has come."""
        now = time.time()
        with self.store.lock:
            for (witness_hash, network), anchor in self.store.anchors.items():
                due = anchor["confirm_at"]
                if anchor["document_entity_id"] != doc_id or anchor["status"] != "pending":
                    continue
                if due is not None and due <= now:
                    self.confirm(witness_hash, network)

    def give_up(
        self, witness_hash: str, network: str, reason: str = "confirmation_timeout"
    ) -> bool:
        """The cron confirmer gives up on a pending anchor: ``anchor.timeout`` (upstream after
        its own deadline); the anchor may then be submitted again."""
        with self.store.lock:
            anchor = self.store.anchors.get((witness_hash, network))
            if anchor is None or anchor["status"] != "pending":
                return False
            anchor["status"] = "timed_out"
            return self._verdict(anchor, witness_hash, network, "anchor.timeout", reason=reason)

    def confirm(self, witness_hash: str, network: str) -> bool:
        """Confirm one anchor now (the cron confirmer's job upstream)."""
        with self.store.lock:
            anchor = self.store.anchors.get((witness_hash, network))
            if anchor is None or anchor["status"] == "confirmed":
                return False
            anchor["status"] = "confirmed"
            txid = anchor["ids"].get("txHash") or hashlib.sha256(witness_hash.encode()).hexdigest()
            return self._verdict(
                anchor,
                witness_hash,
                network,
                "anchor.confirmed",
                txid=txid,
                confirmed_at=now_iso(),
                block_height=1000,
            )

    def _verdict(
        self, anchor: dict[str, Any], witness_hash: str, network: str, kind: str, **fields: Any
    ) -> bool:
        """The cron confirmer's event about one anchor (its key fields, plus ``fields``)."""
        return self.store.append_event(
            anchor["document_entity_id"],
            {
                "kind": kind,
                "anchor": {
                    "network": network,
                    "witness_hash": witness_hash,
                    "anchor_stage": anchor["anchor_stage"],
                    "step_index": anchor["step_index"],
                    **fields,
                },
            },
            f"process-{network}-anchors",
        )


#: Function name -> handler, as deployed.
HANDLERS: dict[str, Handler] = {
    "store-encrypted-custody": Functions.store_encrypted_custody,
    "create-witness": Functions.create_witness,
    "run-tsa": Functions.run_tsa,
    "submit-anchor-polygon": Functions.submit_anchor_polygon,
    "submit-anchor-bitcoin": Functions.submit_anchor_bitcoin,
    "build-artifact": Functions.build_artifact,
    "notify-artifact-ready": Functions.notify_artifact_ready,
}
