"""Age gauges an operator alerts on, computed from the store at scrape time."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from ecosign_orchestrator.core.job import NewJob, StepRecord, StepStatus, utcnow
from ecosign_orchestrator.core.repository import MemoryRepository
from ecosign_orchestrator.service.metrics import Metrics


async def test_oldest_active_job_and_waiting_confirmations_by_kind_and_step(
    memory_repository: MemoryRepository,
) -> None:
    repo = memory_repository
    flow = (await repo.enqueue(NewJob(kind="ecosign.document"), max_attempts=3)).job
    [claimed] = await repo.claim(
        worker_id="w", kinds=["ecosign.document"], limit=1, lease_seconds=60
    )
    assert claimed.lease_token is not None
    submitted = utcnow()
    steps = [
        StepRecord(name="append_tsa", status=StepStatus.SUCCEEDED, attempts=1),
        StepRecord(
            name="anchor_bitcoin", status=StepStatus.WAITING, attempts=1, started_at=submitted
        ),
        StepRecord(name="build_artifact", status=StepStatus.PENDING),
    ]
    await repo.save_steps(flow.id, claimed.lease_token, steps)
    await repo.enqueue(NewJob(kind="other"), max_attempts=3)
    done = (await repo.enqueue(NewJob(kind="other"), max_attempts=3)).job
    await repo.cancel(done.id)  # finished jobs have no age
    text = (await Metrics().render(repo, now=submitted + timedelta(hours=25))).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith(
            ("ecosign_orch_oldest", "ecosign_orch_step_waiting", "ecosign_orch_steps")
        )
    }
    bitcoin = (("kind", "ecosign.document"), ("step", "anchor_bitcoin"))
    queued = (("kind", "other"), ("step", "-"))
    assert samples[("ecosign_orch_steps_waiting", bitcoin)] == 1
    assert (
        25 * 3600 - 5 < samples[("ecosign_orch_step_waiting_oldest_seconds", bitcoin)] <= 25 * 3600
    )
    assert samples[("ecosign_orch_oldest_active_seconds", bitcoin)] >= 25 * 3600
    assert samples[("ecosign_orch_oldest_active_seconds", queued)] >= 25 * 3600 - 5
    assert ("ecosign_orch_steps_waiting", queued) not in samples
    assert len([k for k in samples if k[0] == "ecosign_orch_oldest_active_seconds"]) == 2


async def test_slots_and_circuits_per_key(memory_repository: MemoryRepository) -> None:
    from ecosign_orchestrator.core.gates import CircuitPolicy

    repo = memory_repository
    await repo.enqueue(NewJob(kind="k"), max_attempts=1)
    [job] = await repo.claim(worker_id="w", kinds=["k"], limit=1, lease_seconds=60)
    assert job.lease_token is not None
    assert await repo.acquire_slot("submit-anchor-polygon", job.id, job.lease_token, 1)
    await repo.circuit_failure("run-tsa", CircuitPolicy(failures=1, cooldown_seconds=30), None)
    text = (await Metrics().render(repo)).decode()
    assert 'ecosign_orch_slots_in_use{key="submit-anchor-polygon"} 1.0' in text
    assert 'ecosign_orch_circuit_failures{key="run-tsa"} 1.0' in text
    assert 'ecosign_orch_circuit_open_seconds{key="run-tsa"} 29.' in text
