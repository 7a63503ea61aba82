"""The sandbox's store: EcoSign's ledger rules, and persistence to a SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecosign_orchestrator.sandbox.store import EventRejected, Store, new_document


def test_events_follow_ecosign_rules() -> None:
    store = Store()
    doc = store.put(new_document())
    with pytest.raises(EventRejected, match="underscores"):
        store.append_event(doc["id"], {"kind": "artifact.chain_pending"}, "x")
    anchor = {"kind": "anchor.submitted", "anchor": {"network": "polygon", "witness_hash": "w"}}
    assert store.append_event(doc["id"], anchor, "submit-anchor-polygon") is True
    assert store.append_event(doc["id"], anchor, "submit-anchor-polygon") is False  # deduped
    store.append_event(doc["id"], {"kind": "artifact.finalized"}, "build-artifact")
    with pytest.raises(EventRejected, match="unique"):
        store.append_event(doc["id"], {"kind": "artifact.finalized"}, "build-artifact")
    stored = store.get(doc["id"])
    assert stored is not None
    events = stored["events"]
    assert [e["kind"] for e in events] == ["anchor.submitted", "artifact.finalized"]
    assert all(e["entity_id"] == e["correlation_id"] == doc["id"] for e in events)


def test_a_file_backed_store_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.db"
    first = Store(path)
    doc = first.put(new_document(source_storage_path="a/b"))
    first.append_event(doc["id"], {"kind": "artifact.finalized"}, "build-artifact")
    first.record_call("run-tsa", "job:append_tsa", doc["id"], 200, effect=True)
    second = Store(path)
    again = second.get(doc["id"])
    assert again is not None and again["source_storage_path"] == "a/b"
    assert [e["kind"] for e in again["events"]] == ["artifact.finalized"]
    assert second.ledger_summary()["effects_by_key"] == {"job:append_tsa": 1}


def _requested() -> dict[str, object]:
    return {"kind": "document.protected.requested", "id": "r", "at": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    ("event", "source", "refusal"),
    [
        # the row's current witness is "w1": EcoSign's trigger refuses a TSA for any other hash
        ({"kind": "tsa.confirmed", "witness_hash": "w0"}, "run-tsa", "must match document"),
        # only run-tsa may write tsa.confirmed
        ({"kind": "tsa.confirmed", "witness_hash": "w1"}, "other", "must be emitted by run-tsa"),
    ],
)
def test_the_ledger_trigger_refuses_evidence_for_another_witness(
    event: dict[str, object], source: str, refusal: str
) -> None:
    store = Store()
    doc = store.put(new_document(witness_hash="w1", witness_current_hash="w1"))
    doc = store.put({**doc, "events": [_requested()]})
    with pytest.raises(EventRejected, match=refusal):
        store.append_event(doc["id"], event, source)
    tsa = {"kind": "tsa.confirmed", "witness_hash": "w1"}
    assert store.append_event(doc["id"], tsa, "run-tsa") is True
    with pytest.raises(EventRejected, match="unique per witness_hash"):
        store.append_event(doc["id"], tsa, "run-tsa")


def test_a_tsa_needs_a_protection_request_first() -> None:
    store = Store()
    doc = store.put(new_document(witness_hash="w1", witness_current_hash="w1"))
    with pytest.raises(EventRejected, match=r"requires prior document\.protected\.requested"):
        store.append_event(doc["id"], {"kind": "tsa.confirmed", "witness_hash": "w1"}, "run-tsa")
