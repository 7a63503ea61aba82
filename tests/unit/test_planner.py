"""The planner on every combination of actions x forensic flags, and on real-shaped states."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ecosign_orchestrator.ecosign import planner
from ecosign_orchestrator.ecosign.model import ACTIONS, FORENSIC, DocumentJob
from ecosign_orchestrator.ecosign.planner import Disposition
from ecosign_orchestrator.ecosign.state import DocumentState, anchor_confirmed, tsa_confirmed
from ecosign_orchestrator.ecosign.steps import CANONICAL_ORDER, Step

DOC = "5e3c2b8a-0f1d-4e7a-9b6c-1d2e3f4a5b6c"
W = "9f" * 32
OTHER_W = "11" * 32


def intent(actions: tuple[str, ...], forensic: tuple[str, ...], **metadata: Any) -> DocumentJob:
    return DocumentJob.model_validate(
        {
            "document_entity_id": DOC,
            "actions": {a: True for a in actions},
            "forensic": {f: True for f in forensic},
            "metadata": metadata or None,
        }
    )


def subsets(names: tuple[str, ...], *, nonempty: bool) -> list[tuple[str, ...]]:
    out = [c for r in range(len(names) + 1) for c in itertools.combinations(names, r)]
    return [c for c in out if c] if nonempty else out


ALL_COMBINATIONS = [
    (a, f) for a in subsets(ACTIONS, nonempty=True) for f in subsets(FORENSIC, nonempty=False)
]


@pytest.mark.parametrize(("actions", "forensic"), ALL_COMBINATIONS)
@pytest.mark.parametrize("hash_only", [False, True])
def test_required_steps_for_every_combination(
    actions: tuple[str, ...], forensic: tuple[str, ...], hash_only: bool
) -> None:
    job = intent(actions, forensic, **({"custody_mode": "hash_only"} if hash_only else {}))
    expected = {Step.CREATE_WITNESS, Step.BUILD_ARTIFACT, Step.NOTIFY_ARTIFACT_READY}
    if not hash_only:
        expected.add(Step.ENCRYPT_SOURCE)
    if forensic:
        expected.add(Step.APPEND_TSA)  # asked for, or implied by an anchor
    if "polygon" in forensic:
        expected.add(Step.ANCHOR_POLYGON)
    if "bitcoin" in forensic:
        expected.add(Step.ANCHOR_BITCOIN)
    required = planner.required_steps(job)
    assert set(required) == expected
    assert all(reason for reason in required.values())
    plan = planner.plan(job, DocumentState(id=DOC))
    assert [p.step for p in plan.steps] == list(CANONICAL_ORDER)
    calls = [p.step for p in plan.steps if p.disposition is Disposition.CALL]
    assert calls == [s for s in CANONICAL_ORDER if s in expected]
    assert plan.next_call() is not None and plan.next_call().step == calls[0]  # type: ignore[union-attr]
    assert not plan.complete


def test_custody_mode_must_match_exactly() -> None:
    assert Step.ENCRYPT_SOURCE in planner.required_steps(
        intent(("protect",), (), custody_mode="HASH_ONLY")
    )
    assert Step.ENCRYPT_SOURCE not in planner.required_steps(
        intent(("protect",), (), custody_mode="hash_only")
    )


def ecosign_row(*events: dict[str, Any], witness: str | None = W, **columns: Any) -> DocumentState:
    """A row shaped like EcoSign's (events with the RPC's envelope)."""
    enveloped = [
        {
            "id": f"e{i}",
            "v": 1,
            "actor": "x",
            "entity_id": DOC,
            "correlation_id": DOC,
            "at": "2026-02-01T10:00:00Z",
            **e,
        }
        for i, e in enumerate(events)
    ]
    row = {
        "id": DOC,
        "custody_mode": "encrypted_custody",
        "lifecycle_status": "witness_ready",
        "source_storage_path": "u/d/encrypted_source",
        "witness_current_hash": witness,
        "witness_current_storage_path": None if witness is None else "u/d/witness.pdf",
        "witness_hash": witness,
        "events": enveloped,
        **columns,
    }
    return DocumentState.from_row(row)


REQUESTED = {
    "kind": "document.protected.requested",
    "payload": {"required_evidence": ["tsa", "bitcoin"]},
}
TSA = {
    "kind": "tsa.confirmed",
    "witness_hash": W,
    "tsa": {"token_b64": "MII..."},
    "_source": "run-tsa",
}


def anchor(kind: str, network: str, witness: str = W, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "anchor": {
            "network": network,
            "witness_hash": witness,
            "anchor_stage": "initial",
            "step_index": 0,
            **extra,
        },
    }


def dispositions(plan: planner.Plan) -> dict[str, str]:
    return {p.step.value: p.disposition.value for p in plan.steps}


def test_real_shaped_state_tsa_confirmed_for_the_current_witness_is_satisfied() -> None:
    job = intent(("protect",), ("tsa", "bitcoin"))
    plan = planner.plan(job, ecosign_row(REQUESTED, TSA))
    assert dispositions(plan) == {
        "encrypt_source": "satisfied",
        "create_witness": "satisfied",
        "append_tsa": "satisfied",
        "anchor_polygon": "not_required",
        "anchor_bitcoin": "call",
        "build_artifact": "call",
        "notify_artifact_ready": "call",
    }


def test_tsa_for_another_witness_hash_does_not_count() -> None:
    job = intent(("protect",), ("tsa",))
    stale = {**TSA, "witness_hash": OTHER_W}
    assert planner.plan(job, ecosign_row(REQUESTED, stale)).next_call().step is Step.APPEND_TSA  # type: ignore[union-attr]


def test_submitted_anchor_awaits_confirmation_and_does_not_block_the_artifact() -> None:
    job = intent(("protect",), ("bitcoin",))
    plan = planner.plan(
        job, ecosign_row(REQUESTED, TSA, anchor("anchor.submitted", "bitcoin", txid=None))
    )
    assert dispositions(plan)["anchor_bitcoin"] == "await_confirmation"
    assert plan.next_call().step is Step.BUILD_ARTIFACT  # type: ignore[union-attr]
    done = planner.plan(
        job,
        ecosign_row(
            REQUESTED,
            TSA,
            anchor("anchor.submitted", "bitcoin"),
            {"kind": "artifact.finalized", "payload": {"artifact_storage_path": "a.pdf"}},
        ),
        recorded=frozenset({Step.NOTIFY_ARTIFACT_READY}),
    )
    assert done.next_call() is None and not done.complete
    assert [p.step for p in done.awaiting()] == [Step.ANCHOR_BITCOIN]


def test_confirmed_anchor_completes_and_legacy_anchor_event_counts() -> None:
    job = intent(("protect",), ("polygon", "bitcoin"))
    finalized = {"kind": "artifact.finalized", "payload": {}}
    legacy = {
        "kind": "anchor",
        "anchor": {"network": "bitcoin", "witness_hash": W, "confirmed_at": "2026-02-02T00:00:00Z"},
    }
    state = ecosign_row(
        REQUESTED, TSA, anchor("anchor.confirmed", "polygon", confirmed_at="x"), legacy, finalized
    )
    plan = planner.plan(job, state, recorded=frozenset({Step.NOTIFY_ARTIFACT_READY}))
    assert plan.complete and plan.next_call() is None


def test_anchor_confirmed_for_another_network_or_hash_does_not_count() -> None:
    job = intent(("protect",), ("polygon",))
    state = ecosign_row(
        REQUESTED,
        TSA,
        anchor("anchor.confirmed", "bitcoin"),
        anchor("anchor.confirmed", "polygon", OTHER_W),
    )
    assert dispositions(planner.plan(job, state))["anchor_polygon"] == "call"


def test_payload_fallback_for_anchor_fields() -> None:
    job = intent(("protect",), ("polygon",))
    event = {"kind": "anchor.confirmed", "payload": {"network": "polygon", "witness_hash": W}}
    assert (
        dispositions(planner.plan(job, ecosign_row(REQUESTED, TSA, event)))["anchor_polygon"]
        == "satisfied"
    )


def test_witness_requires_both_hash_and_path() -> None:
    job = intent(("nda",), ())
    half = ecosign_row(witness=None, witness_current_hash=W)
    assert planner.plan(job, half).next_call().step is Step.CREATE_WITNESS  # type: ignore[union-attr]


def test_notify_is_satisfied_only_by_the_flows_own_record() -> None:
    job = intent(("protect",), ())
    state = ecosign_row(REQUESTED, {"kind": "artifact.finalized", "payload": {}})
    assert planner.plan(job, state).next_call().step is Step.NOTIFY_ARTIFACT_READY  # type: ignore[union-attr]
    assert planner.plan(job, state, recorded=frozenset({Step.NOTIFY_ARTIFACT_READY})).complete


def test_events_that_are_not_objects_are_ignored_and_a_non_list_is_refused() -> None:
    state = DocumentState.from_row({"id": DOC, "events": ["junk", 3, TSA]})
    assert len(state.events) == 1
    with pytest.raises(ValueError, match="not an array"):
        DocumentState.from_row({"id": DOC, "events": {"kind": "x"}})


def test_the_state_keeps_only_what_the_checks_read_and_the_checks_agree() -> None:
    receipt = {"network": "polygon", "witness_hash": W, "tx_hash": "0x" + "ab" * 32}
    confirmed = {"kind": "anchor.confirmed", "anchor": {**receipt, "confirmed_at": "t"}}
    token = {"token_b64": "A" * 6000}  # a real RFC 3161 token is kilobytes
    state = ecosign_row(REQUESTED, {**TSA, "tsa": token}, confirmed)
    assert [e["kind"] for e in state.events] == ["tsa.confirmed", "anchor.confirmed"]
    assert "tsa" not in state.events[0] and "actor" not in state.events[0]
    assert state.events[1]["anchor"] == {
        "network": "polygon",
        "witness_hash": W,
        "confirmed_at": "t",
    }
    assert tsa_confirmed(state, W)
    assert anchor_confirmed(state, "polygon", W)
    assert not anchor_confirmed(state, "bitcoin", W)
