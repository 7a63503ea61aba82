from __future__ import annotations

import uuid

import ecosign_orchestrator.core as core
from ecosign_orchestrator.core import ids


def test_job_ids_are_uuid7_and_strictly_increasing() -> None:
    generated = [ids.new_job_id() for _ in range(5000)]
    assert generated == sorted(generated)
    assert len(set(generated)) == len(generated)
    assert all(uuid.UUID(g).version == 7 for g in generated[:10])


def test_batched_job_ids_keep_the_order_across_batches_and_counter_overflow() -> None:
    # 5,000 in one call overflows the 12-bit per-millisecond counter at least once.
    generated = [ids.new_job_id(), *ids.new_job_ids(5000), ids.new_job_id(), *ids.new_job_ids(3)]
    assert generated == sorted(generated)
    assert len(set(generated)) == len(generated) == 5005
    parsed = [uuid.UUID(g) for g in generated]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)


def test_core_exports_a_sorted_public_list() -> None:
    assert core.__all__ == sorted(core.__all__)
    assert all(hasattr(core, name) for name in core.__all__)
    assert {"Job", "JobStatus", "JobQueue", "Worker", "Processor", "JobRepository"} <= set(
        core.__all__
    )
