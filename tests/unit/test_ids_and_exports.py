from __future__ import annotations

import uuid

import ecosign_orchestrator.core as core
from ecosign_orchestrator.core import ids


def test_job_ids_are_uuid7_and_strictly_increasing() -> None:
    generated = [ids.new_job_id() for _ in range(5000)]
    assert generated == sorted(generated)
    assert len(set(generated)) == len(generated)
    assert all(uuid.UUID(g).version == 7 for g in generated[:10])


def test_core_exports_a_sorted_public_list() -> None:
    assert core.__all__ == sorted(core.__all__)
    assert all(hasattr(core, name) for name in core.__all__)
    assert {"Job", "JobStatus", "JobQueue", "Worker", "Processor", "JobRepository"} <= set(
        core.__all__
    )
