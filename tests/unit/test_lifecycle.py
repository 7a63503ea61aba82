"""Lifecycle write-back never goes backwards: every (current, implied) pair."""

from __future__ import annotations

import itertools

import pytest

from ecosign_orchestrator.ecosign.lifecycle import LIFECYCLE_STATUSES, may_write_back

#: How far along each status is (the test's own statement of the order).
RANK = {
    "needs_witness": 0,
    "witness_ready": 1,
    "protected": 2,
    "in_signature_flow": 3,
    "signed": 4,
    "anchored": 5,
}
FINAL = {"revoked", "archived"}


@pytest.mark.parametrize(
    ("current", "implied"), list(itertools.product([None, *LIFECYCLE_STATUSES], LIFECYCLE_STATUSES))
)
def test_write_back_only_moves_forward_and_never_touches_final_statuses(
    current: str | None, implied: str
) -> None:
    if current in FINAL or implied in FINAL:
        expected = False  # a person's decision; and no flow implies revoked or archived
    elif current is None:
        expected = True
    else:
        expected = RANK[implied] > RANK[current]
    assert may_write_back(current, implied) is expected


def test_the_named_cases() -> None:
    assert not may_write_back("anchored", "protected")  # a later protect-only flow
    assert not may_write_back("signed", "protected")
    assert not may_write_back("revoked", "anchored")
    assert not may_write_back("archived", "signed")
    assert may_write_back("witness_ready", "protected")
    assert may_write_back("signed", "anchored")
    assert not may_write_back("anchored", "anchored")  # nothing to change
