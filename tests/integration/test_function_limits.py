"""A per-function limit holds fleet-wide: with submit-anchor-polygon at 1 in flight, many flows
across several worker processes never call it twice at once (the sandbox counts), and all end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecosign_orchestrator import ecosign
from ecosign_orchestrator.core.repository import JobRepository, SqliteRepository
from ecosign_orchestrator.core.repository.postgres import PostgresRepository
from ecosign_orchestrator.core.status import JobStatus
from ecosign_orchestrator.service import wiring
from ecosign_orchestrator.service.wiring import document_migrations
from tests.support.flows import SANDBOX_KEY, SandboxAdmin, flow_settings
from tests.support.pgcluster import PostgresCluster
from tests.support.procs import cli_env, eventually, start_worker, stop

FLOWS = 50
POLYGON = "submit-anchor-polygon"


async def _run(repo: JobRepository, url: str, db: str, workers: int, tmp_path: Path) -> None:
    admin = SandboxAdmin(url)
    await admin.reset()
    await admin.set_faults({POLYGON: {"latency": 0.05}, "create-witness": {"latency": 0.02}})
    settings = flow_settings(url)
    async with wiring.runtime(settings) as rt:
        queue = wiring.build_queue(repo, rt.registry)
        for _ in range(FLOWS):
            doc = await admin.create_document()
            intent = ecosign.DocumentJob.model_validate(
                {"document_entity_id": doc, "actions": {"nda": True}, "forensic": {"polygon": True}}
            )
            await queue.submit(ecosign.flow_request(intent))
    env = cli_env(
        db,
        {
            "EDGE_BASE_URL": url,
            "SUPABASE_URL": url,
            "ECOSIGN_ORCH_SERVICE_KEY": SANDBOX_KEY,
            "ECOSIGN_ORCH_BACKOFF_SCALE": "0.002",
            "ECOSIGN_ORCH_CONFIRMATION_SCALE": "0.001",
            "ECOSIGN_ORCH_EDGE_TIMEOUT_SCALE": "0.2",
            "ECOSIGN_ORCH_FUNCTION_LIMITS": json.dumps({POLYGON: 1}),
            "ECOSIGN_ORCH_POLL_SECONDS": "0.05",
            "ECOSIGN_ORCH_LOG_LEVEL": "WARNING",
        },
    )
    procs = [
        start_worker(env, "--kind", ecosign.KIND, log=tmp_path / f"w{i}.log")
        for i in range(workers)
    ]

    async def all_ended() -> bool:
        counts = await repo.counts()
        return all(s.is_terminal for (_, s), n in counts.items() if n)

    try:
        await eventually(all_ended, timeout=120, interval=0.2, what="every flow ends")
    finally:
        codes = [stop(p) for p in procs]
    counts = await repo.counts()
    ledger = await admin.ledger()
    await admin.aclose()
    assert codes == [0] * workers
    assert counts == {(ecosign.KIND, JobStatus.COMPLETED): FLOWS}
    assert ledger["max_in_flight"][POLYGON] == 1, "never two polygon submits at once"
    others = [n for name, n in ledger["max_in_flight"].items() if name != POLYGON]
    assert max(others) >= 2, "the other functions were called concurrently"
    submits = [c for c in ledger["calls"] if c["function"] == POLYGON]
    assert len(submits) == FLOWS


async def test_a_limit_of_one_holds_across_two_processes_on_sqlite(
    sandbox_url: str, tmp_path: Path
) -> None:
    async with SqliteRepository(tmp_path / "jobs.db") as repo:
        await repo.migrate()
        await _run(repo, sandbox_url, f"sqlite:///{tmp_path}/jobs.db", 2, tmp_path)


@pytest.mark.postgres
async def test_a_limit_of_one_holds_across_three_processes_on_postgresql(
    sandbox_url: str, tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    name = f"limits_{tmp_path.name[-8:].replace('-', '_').lower()}"
    db = pg_cluster.create_database(name)
    async with PostgresRepository(db, migrations=document_migrations()) as repo:
        await repo.migrate()
        await _run(repo, sandbox_url, db, 3, tmp_path)
